// State resolution of room version 1 (content/rooms/v1.md "State resolution"). Known to reset
// state in some forks; kept only because v1 rooms still exist.

import { createHash } from "node:crypto";
import { M_ROOM_JOIN_RULES, M_ROOM_MEMBER, M_ROOM_POWER_LEVELS } from "../auth/power-levels";
import { type RoomEvent, type StateKey, type StateMap, splitStateKey } from "../events";
import type { ResolutionContext } from "./context";
import { isAllowedByState } from "./iterative-auth-checks";

const sha1Hex = (eventId: string): string => createHash("sha1").update(eventId, "utf8").digest("hex");

interface Candidate {
  readonly event: RoomEvent;
  readonly sha1: string;
}

/** Ascending depth, then descending sha1(event_id). */
const byDepthThenSha1Descending = (a: Candidate, b: Candidate): number =>
  a.event.depth !== b.event.depth ? a.event.depth - b.event.depth : a.sha1 < b.sha1 ? 1 : a.sha1 > b.sha1 ? -1 : 0;

export async function resolveV1(context: ResolutionContext, stateSets: readonly StateMap[]): Promise<StateMap> {
  // R starts as the union of the states without the conflicting events: a conflict is two states
  // holding different event ids for one (event_type, state_key).
  const idsByKey = new Map<StateKey, Set<string>>();
  for (const stateSet of stateSets) {
    for (const [key, eventId] of stateSet) {
      let ids = idsByKey.get(key);
      if (!ids) idsByKey.set(key, (ids = new Set()));
      ids.add(eventId);
    }
  }
  const resolved: StateMap = new Map();
  const conflicts = new Map<StateKey, Candidate[]>();
  for (const [key, ids] of idsByKey) {
    if (ids.size === 1) {
      resolved.set(key, ids.values().next().value!);
      continue;
    }
    const candidates: Candidate[] = [];
    for (const id of ids) {
      const event = await context.events.get(id);
      if (event) candidates.push({ event, sha1: sha1Hex(id) });
    }
    if (candidates.length > 0) conflicts.set(key, candidates);
  }

  const allowedInR = (event: RoomEvent) => isAllowedByState(context, event, (k) => resolved.get(k));

  // Power levels, then join rules, then memberships: each key's events by ascending depth (then
  // descending sha1); the first goes into R, each next one while the rules allow it in R.
  const keysOfType = (type: string) =>
    [...conflicts.keys()].filter((k) => splitStateKey(k)[0] === type).sort();
  for (const type of [M_ROOM_POWER_LEVELS, M_ROOM_JOIN_RULES, M_ROOM_MEMBER]) {
    for (const key of keysOfType(type)) {
      const [first, ...rest] = conflicts.get(key)!.sort(byDepthThenSha1Descending);
      resolved.set(key, first.event.event_id);
      for (const candidate of rest) {
        if (!(await allowedInR(candidate.event))) break;
        resolved.set(key, candidate.event.event_id);
        await context.yielder.step();
      }
      conflicts.delete(key);
    }
  }

  // Every other conflict: the event with the highest depth (then lowest sha1) that the rules allow
  // in R.
  for (const key of [...conflicts.keys()].sort()) {
    const ordered = conflicts.get(key)!.sort(byDepthThenSha1Descending).reverse();
    let chosen: RoomEvent | undefined;
    for (const candidate of ordered) {
      await context.yielder.step();
      if (await allowedInR(candidate.event)) {
        chosen = candidate.event;
        break;
      }
    }
    // The spec does not say what happens when none passes; Synapse keeps the last one tried (the
    // lowest depth), so the key does not vanish from the room's state.
    resolved.set(key, (chosen ?? ordered[ordered.length - 1].event).event_id);
  }
  return resolved;
}
