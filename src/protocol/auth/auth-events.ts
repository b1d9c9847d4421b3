// Auth events selection (content/server-server-api.md "Auth events selection") and the checks the
// authorization rules make on an event's `auth_events` list (rule 2 in v1..v11, rule 3 in v12).

import type { RoomEvent } from "../events";
import { isJsonObject, type JsonObject } from "../json";
import type { RoomVersion } from "../room-versions";
import {
  type AuthStateLookup,
  M_ROOM_CREATE,
  M_ROOM_JOIN_RULES,
  M_ROOM_MEMBER,
  M_ROOM_POWER_LEVELS,
  M_ROOM_THIRD_PARTY_INVITE,
} from "./power-levels";
import { type AuthResult, reject } from "./result";

/** A (type, state_key) pair naming one piece of room state. */
export type StateTuple = readonly [type: string, stateKey: string];

/** The parts of an event (built or received) that decide which auth events it needs. */
export interface AuthEventsInput {
  readonly type: string;
  readonly sender: string;
  readonly state_key?: string;
  readonly content: JsonObject;
}

/**
 * The state an event's `auth_events` must be drawn from, as (type, state_key) pairs: the create
 * event (not in v12), the power levels, the sender's membership and, for `m.room.member`, the
 * target's membership, the join rules (join/invite/knock), the third-party invite named by
 * `signed.token`, and the authorising user's membership for restricted joins. Pairs are unique;
 * the caller takes those present in the state.
 */
export function authEventsForEvent(event: AuthEventsInput, version: RoomVersion): StateTuple[] {
  if (event.type === M_ROOM_CREATE) return []; // the create event has no auth events
  const keys: StateTuple[] = [];
  const add = (type: string, stateKey: string) => {
    if (!keys.some(([t, k]) => t === type && k === stateKey)) keys.push([type, stateKey]);
  };
  if (!version.createEventNotInAuthEvents) add(M_ROOM_CREATE, "");
  add(M_ROOM_POWER_LEVELS, "");
  add(M_ROOM_MEMBER, event.sender);
  if (event.type === M_ROOM_MEMBER && event.state_key !== undefined) {
    const membership = event.content.membership;
    add(M_ROOM_MEMBER, event.state_key);
    if (membership === "join" || membership === "invite" || membership === "knock") add(M_ROOM_JOIN_RULES, "");
    const thirdPartyInvite = event.content.third_party_invite;
    if (membership === "invite" && isJsonObject(thirdPartyInvite)) {
      const signed = thirdPartyInvite.signed;
      const token = isJsonObject(signed) ? signed.token : undefined;
      if (typeof token === "string") add(M_ROOM_THIRD_PARTY_INVITE, token);
    }
    const authoriser = event.content.join_authorised_via_users_server;
    // "the room version supports restricted rooms": v8 and later.
    if (membership === "join" && version.restrictedJoinRule && typeof authoriser === "string") {
      add(M_ROOM_MEMBER, authoriser);
    }
  }
  return keys;
}

/**
 * Rule 2 (v12: rule 3), "considering the event's auth_events", given the auth events themselves:
 * no duplicate (type, state_key) (2.1); nothing the selection would not pick, which in v12 includes
 * the create event (2.2); no rejected event, when `isRejected` is given (2.3); a create event
 * present before v12 (2.4); every room_id equal to the event's (2.5).
 * The create event itself is exempt: rule 1 decides it before rule 2 is reached.
 */
export function checkAuthEventsShape(
  event: RoomEvent,
  authEvents: readonly RoomEvent[],
  version: RoomVersion,
  isRejected?: (eventId: string) => boolean,
): AuthResult {
  if (event.type === M_ROOM_CREATE) return { allowed: true };
  const expected = authEventsForEvent(event, version);
  const seen = new Set<string>();
  let hasCreate = false;
  for (const authEvent of authEvents) {
    const stateKey = authEvent.state_key;
    const pair = `(${authEvent.type}, ${JSON.stringify(stateKey ?? null)})`;
    // 2.1
    const seenKey = `${authEvent.type}\u0000${stateKey ?? "\u0000"}`;
    if (seen.has(seenKey)) return reject(`duplicate auth_events entry for ${pair}`);
    seen.add(seenKey);
    if (authEvent.type === M_ROOM_CREATE && stateKey === "") hasCreate = true;
    // 2.2; in v12 the create event is named, as the most likely mistake.
    if (version.createEventNotInAuthEvents && authEvent.type === M_ROOM_CREATE) {
      return reject(`unexpected auth_event ${authEvent.event_id}: m.room.create must not be listed in room version ${version.id}`);
    }
    if (stateKey === undefined || !expected.some(([t, k]) => t === authEvent.type && k === stateKey)) {
      return reject(`unexpected auth_event for ${pair}: ${authEvent.event_id}`);
    }
    // 2.3
    if (isRejected?.(authEvent.event_id)) return reject(`auth_event ${authEvent.event_id} was rejected`);
    // 2.5
    if (authEvent.room_id !== event.room_id) {
      return reject(`auth_event ${authEvent.event_id} belongs to room ${authEvent.room_id}, not ${event.room_id}`);
    }
  }
  // 2.4
  if (!version.createEventNotInAuthEvents && !hasCreate) return reject("no m.room.create event among the auth_events");
  return { allowed: true };
}

/**
 * A lookup over a list of auth events, for `authorizeEvent`. In v12 the create event is not among
 * them, so pass it as `createEvent` (the event whose ID is the room ID with "$" for "!").
 */
export function authStateFromEvents(authEvents: Iterable<RoomEvent>, createEvent?: RoomEvent): AuthStateLookup {
  const byKey = new Map<string, RoomEvent>();
  const keyOf = (type: string, stateKey: string) => `${type}\u0000${stateKey}`;
  for (const authEvent of authEvents) {
    if (authEvent.state_key !== undefined) byKey.set(keyOf(authEvent.type, authEvent.state_key), authEvent);
  }
  if (createEvent) byKey.set(keyOf(M_ROOM_CREATE, ""), createEvent);
  return (type, stateKey) => byKey.get(keyOf(type, stateKey));
}
