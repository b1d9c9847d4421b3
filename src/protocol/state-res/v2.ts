// State resolution v2 (content/rooms/fragments/v2-state-res.md; room versions 2..11) and its
// revision v2.1 (content/rooms/v12.md "State resolution", MSC4297; room version 12).

import { M_ROOM_POWER_LEVELS } from "../auth/power-levels";
import { type StateMap, stateKey } from "../events";
import { authChainsWithin, authDifference, conflictedStateSubgraph } from "./auth-chain";
import type { ResolutionContext } from "./context";
import { iterativeAuthChecks } from "./iterative-auth-checks";
import {
  isPowerEvent,
  mainlineOrdering,
  type PowerOrderKey,
  reverseTopologicalPowerOrdering,
  senderPowerLevel,
} from "./ordering";

/**
 * The unconflicted state map (every state set holds the key, with the same event) and the
 * conflicted state set (every event of every other key, including keys some sets lack).
 */
export function separateStateSets(stateSets: readonly StateMap[]): {
  unconflicted: StateMap;
  conflicted: Set<string>;
} {
  const unconflicted: StateMap = new Map();
  const conflicted = new Set<string>();
  const keys = new Set<string>();
  for (const stateSet of stateSets) for (const key of stateSet.keys()) keys.add(key);
  for (const key of keys) {
    const first = stateSets[0].get(key);
    if (first !== undefined && stateSets.every((s) => s.get(key) === first)) {
      unconflicted.set(key, first);
    } else {
      for (const stateSet of stateSets) {
        const eventId = stateSet.get(key);
        if (eventId !== undefined) conflicted.add(eventId);
      }
    }
  }
  return { unconflicted, conflicted };
}

export async function resolveV2(context: ResolutionContext, stateSets: readonly StateMap[]): Promise<StateMap> {
  const { events, yielder, version } = context;
  const { unconflicted, conflicted } = separateStateSets(stateSets);
  // No conflicted key means every state set is the same map, with the same auth chains.
  if (conflicted.size === 0) return unconflicted;

  // Full conflicted set: the conflicted state set, the auth difference and, in v2.1, the
  // conflicted state subgraph.
  const candidates = new Set(conflicted);
  const stateSetEventIds = stateSets.map((s) => [...new Set(s.values())]);
  for (const id of await authDifference(stateSetEventIds, events, yielder)) candidates.add(id);
  if (version.stateResolution === "v2.1") {
    for (const id of await conflictedStateSubgraph(conflicted, events, yielder)) candidates.add(id);
  }
  // An event the store lacks can be neither ordered nor authorised; only state events have a key.
  const fullConflictedSet = new Set<string>();
  const powerEvents: string[] = [];
  for (const id of candidates) {
    const event = await events.get(id);
    if (event?.state_key === undefined) continue;
    fullConflictedSet.add(id);
    if (isPowerEvent(event)) powerEvents.push(id);
    await yielder.step();
  }

  // 1. The power events of the full conflicted set and the events of their auth chains in it,
  //    sorted by the reverse topological power ordering.
  const powerGraph = await authChainsWithin(powerEvents, fullConflictedSet, events, yielder);
  const keys = new Map<string, PowerOrderKey>();
  for (const id of powerGraph.keys()) {
    const event = (await events.get(id))!;
    keys.set(id, {
      eventId: id,
      powerLevel: await senderPowerLevel(context, event),
      originServerTs: event.origin_server_ts,
    });
    await yielder.step();
  }
  const sortedPowerEvents = await reverseTopologicalPowerOrdering(powerGraph, (id) => keys.get(id)!, yielder);

  // 2. Iterative auth checks from the unconflicted state map (v2.1: from an empty state map, so
  //    that no unconflicted event is taken for granted while the conflicted ones are checked).
  const initialState: StateMap = version.stateResolution === "v2.1" ? new Map() : unconflicted;
  const partiallyResolved = await iterativeAuthChecks(context, initialState, sortedPowerEvents);

  // 3. The remaining events, by the mainline ordering based on the partially resolved power levels.
  const remaining = [...fullConflictedSet].filter((id) => !powerGraph.has(id));
  const powerLevelsId = partiallyResolved.get(stateKey(M_ROOM_POWER_LEVELS, ""));
  const sortedRemaining = await mainlineOrdering(remaining, powerLevelsId, events, yielder);

  // 4. Iterative auth checks on the partially resolved state.
  const resolved = await iterativeAuthChecks(context, partiallyResolved, sortedRemaining);

  // 5. The unconflicted state map wins over anything the checks put under the same key.
  for (const [key, eventId] of unconflicted) resolved.set(key, eventId);
  return resolved;
}
