// The parameters of state resolution: all I/O (event lookups, auth chains, rejection status) and
// the authorization rules come in from the caller, so the algorithm stays pure (ARCHITECTURE.md).

import type { AuthChecks, AuthResult, AuthStateLookup } from "../auth";
import type { RoomEvent } from "../events";
import type { RoomVersion } from "../room-versions";

export type MaybePromise<T> = T | Promise<T>;

/**
 * The authorization rules for one event against a state (the shape of `authorizeEvent` in
 * src/protocol/auth, the default).
 */
export type Authorize = (
  event: RoomEvent,
  authState: AuthStateLookup,
  version: RoomVersion,
  checks?: AuthChecks,
) => AuthResult;

export interface StateResolutionLookups {
  /** Any event of the room by id; undefined when the server does not have it. */
  fetchEvent(eventId: string): MaybePromise<RoomEvent | undefined>;
  /**
   * The union of the auth chains of the given events (not including the events themselves unless
   * one is in another's chain). Optional: a store with an auth chain index answers this without
   * walking the DAG; without it the auth chains are walked through `fetchEvent`.
   */
  authChain?(eventIds: readonly string[]): MaybePromise<Iterable<string>>;
  /**
   * Whether the event was rejected on receipt. Rejected auth events are not used in the iterative
   * auth checks (v2-state-res.md "Rejected events"). Absent: nothing is rejected.
   */
  isRejected?(eventId: string): MaybePromise<boolean>;
  /**
   * The signature checks the authorization rules need for this event: whether it is signed by a
   * restricted join's authorising server, and the third-party invite signature check. Without
   * them, the rules treat such joins and invites as unsigned, so a caller resolving rooms with
   * restricted joins or third-party invites must supply them.
   */
  authChecks?(event: RoomEvent): AuthChecks | undefined;
}

export interface StateResolutionOptions {
  /** The authorization rules; defaults to this server's (src/protocol/auth). */
  authorize?: Authorize;
  /** Give the event loop a turn after this many steps (default 64). */
  yieldEvery?: number;
}
