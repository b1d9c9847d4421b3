// State resolution (content/rooms/v1.md, content/rooms/fragments/v2-state-res.md,
// content/rooms/v12.md): the state before an event from the states after its prev_events.
// Pure: events, auth chains and rejection status come in through `lookups`, and the work yields to
// the event loop every few hundred steps.

import { authorizeEvent } from "../auth";
import type { StateMap } from "../events";
import type { RoomVersion } from "../room-versions";
import type { ResolutionContext } from "./context";
import { EventCache } from "./event-cache";
import type { StateResolutionLookups, StateResolutionOptions } from "./types";
import { resolveV1 } from "./v1";
import { resolveV2 } from "./v2";
import { Yielder } from "./yielder";

export type { Authorize, MaybePromise, StateResolutionLookups, StateResolutionOptions } from "./types";
export { EventCache } from "./event-cache";
export { Yielder, DEFAULT_YIELD_EVERY } from "./yielder";
export { authDifference, conflictedStateSubgraph } from "./auth-chain";
export {
  isPowerEvent,
  compareEventIds,
  comparePowerOrderKeys,
  type PowerOrderKey,
  reverseTopologicalPowerOrdering,
  topologicalOrder,
  mainlineOrdering,
} from "./ordering";
export { separateStateSets } from "./v2";

/**
 * Resolves `stateSets` (each a map of (type, state_key) to event id) by the algorithm of the room
 * version: v1 for room version 1, v2 for 2..11, v2.1 for 12.
 */
export async function resolveState(
  version: RoomVersion,
  stateSets: readonly StateMap[],
  lookups: StateResolutionLookups,
  options: StateResolutionOptions = {},
): Promise<StateMap> {
  if (stateSets.length === 0) return new Map();
  if (stateSets.length === 1) return new Map(stateSets[0]);
  const authorize = options.authorize ?? authorizeEvent;
  const context: ResolutionContext = {
    version,
    events: new EventCache(lookups),
    yielder: new Yielder(options.yieldEvery),
    authorize: (event, authState) => authorize(event, authState, version, lookups.authChecks?.(event)),
  };
  switch (version.stateResolution) {
    case "v1":
      return resolveV1(context, stateSets);
    case "v2":
    case "v2.1":
      return resolveV2(context, stateSets);
  }
}
