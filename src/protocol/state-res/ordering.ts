// The orderings of v2 state resolution (v2-state-res.md "Definitions"): power events, the reverse
// topological power ordering and the mainline ordering.

import { authStateFromEvents, userPowerLevel } from "../auth";
import { M_ROOM_JOIN_RULES, M_ROOM_MEMBER, M_ROOM_POWER_LEVELS } from "../auth/power-levels";
import type { RoomEvent } from "../events";
import { implicitCreateEvent, type ResolutionContext } from "./context";
import type { EventCache } from "./event-cache";
import type { Yielder } from "./yielder";

/**
 * A power event: a state event of type `m.room.power_levels` or `m.room.join_rules`, or an
 * `m.room.member` leave or ban whose sender is not its state_key (a kick or a ban): the events
 * that might remove someone's ability to do something in the room.
 */
export function isPowerEvent(event: RoomEvent): boolean {
  if (event.state_key === undefined) return false;
  if (event.type === M_ROOM_POWER_LEVELS || event.type === M_ROOM_JOIN_RULES) return true;
  if (event.type !== M_ROOM_MEMBER) return false;
  const membership = event.content.membership;
  return (membership === "leave" || membership === "ban") && event.sender !== event.state_key;
}

/**
 * Event IDs compared by Unicode code point, as the spec's "less than" on strings means (and as
 * Synapse and Ruma compare). JavaScript's `<` compares UTF-16 units, which differs only when one
 * side is an astral character (a surrogate) and the other a unit at or above U+E000.
 */
export function compareEventIds(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xSurrogate = x >= 0xd800 && x <= 0xdfff;
    const ySurrogate = y >= 0xd800 && y <= 0xdfff;
    if (xSurrogate !== ySurrogate) return xSurrogate ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

/** What the reverse topological power ordering compares events by. */
export interface PowerOrderKey {
  readonly eventId: string;
  /** The sender's power level by the event's auth events (Infinity for v12 creators). */
  readonly powerLevel: number;
  readonly originServerTs: number;
}

/**
 * x < y when x's sender has the greater power level; then the smaller origin_server_ts; then the
 * smaller event_id.
 */
export function comparePowerOrderKeys(x: PowerOrderKey, y: PowerOrderKey): number {
  // Compared, not subtracted: Infinity - Infinity is NaN.
  if (x.powerLevel !== y.powerLevel) return x.powerLevel > y.powerLevel ? -1 : 1;
  if (x.originServerTs !== y.originServerTs) return x.originServerTs < y.originServerTs ? -1 : 1;
  return compareEventIds(x.eventId, y.eventId);
}

/** The power level of the event's sender, "when looking at their respective auth_events". */
export async function senderPowerLevel(context: ResolutionContext, event: RoomEvent): Promise<number> {
  const authEvents: RoomEvent[] = [];
  for (const id of event.auth_events) {
    const authEvent = await context.events.get(id);
    if (authEvent) authEvents.push(authEvent);
  }
  const create = await implicitCreateEvent(context, event);
  return userPowerLevel(event.sender, authStateFromEvents(authEvents, create), context.version);
}

/**
 * The reverse topological power ordering: the topological order of `graph` (event -> the events of
 * the set that must come before it, its auth events), ties broken by `comparePowerOrderKeys`.
 * Ordered from earliest to latest.
 */
export function reverseTopologicalPowerOrdering(
  graph: ReadonlyMap<string, readonly string[]>,
  keyOf: (eventId: string) => PowerOrderKey,
  yielder: Yielder,
): Promise<string[]> {
  return topologicalOrder(graph, keyOf, comparePowerOrderKeys, yielder);
}

/**
 * Kahn's algorithm over `graph` (id -> the ids of the set that must come before it; others are
 * ignored), taking at each step the smallest ready id by `compare` of their keys. Only a cycle
 * (forged v1/v2 event ids) leaves ids behind: they are kept, last, in key order, so the result
 * still holds every id.
 */
export async function topologicalOrder<K extends { readonly eventId: string }>(
  graph: ReadonlyMap<string, readonly string[]>,
  keyOf: (eventId: string) => K,
  compare: (x: K, y: K) => number,
  yielder: Yielder,
): Promise<string[]> {
  const waitingOn = new Map<string, number>();
  const followers = new Map<string, string[]>();
  const ready = new BinaryHeap<K>(compare);
  for (const [eventId, preceding] of graph) {
    const inGraph = [...new Set(preceding)].filter((p) => graph.has(p) && p !== eventId);
    waitingOn.set(eventId, inGraph.length);
    for (const p of inGraph) {
      let list = followers.get(p);
      if (!list) followers.set(p, (list = []));
      list.push(eventId);
    }
    if (inGraph.length === 0) ready.push(keyOf(eventId));
  }
  const ordered: string[] = [];
  for (let next = ready.pop(); next !== undefined; next = ready.pop()) {
    ordered.push(next.eventId);
    for (const follower of followers.get(next.eventId) ?? []) {
      const left = waitingOn.get(follower)! - 1;
      waitingOn.set(follower, left);
      if (left === 0) ready.push(keyOf(follower));
    }
    await yielder.step();
  }
  if (ordered.length < graph.size) {
    const placed = new Set(ordered);
    const rest = [...graph.keys()].filter((id) => !placed.has(id)).map(keyOf);
    ordered.push(...rest.sort(compare).map((k) => k.eventId));
  }
  return ordered;
}

/** The `m.room.power_levels` event among the event's auth events, if it cites one. */
async function powerLevelsAuthEvent(events: EventCache, event: RoomEvent): Promise<RoomEvent | undefined> {
  for (const id of event.auth_events) {
    const authEvent = await events.get(id);
    if (authEvent?.type === M_ROOM_POWER_LEVELS && authEvent.state_key === "") return authEvent;
  }
  return undefined;
}

/**
 * The mainline ordering based on the `m.room.power_levels` event `powerLevelsId` (v2-state-res.md
 * "Mainline ordering"). x < y when x's mainline position is the greater (its power levels are
 * based on an earlier mainline event; ∞ when none is on the mainline); then the smaller
 * origin_server_ts; then the smaller event_id.
 */
export async function mainlineOrdering(
  eventIds: Iterable<string>,
  powerLevelsId: string | undefined,
  events: EventCache,
  yielder: Yielder,
): Promise<string[]> {
  // The mainline of P₀: P₀, then the power levels each cites, to the first that cites none.
  const mainlineIndex = new Map<string, number>();
  let p = powerLevelsId === undefined ? undefined : await events.get(powerLevelsId);
  for (let i = 0; p && !mainlineIndex.has(p.event_id); i++) {
    mainlineIndex.set(p.event_id, i);
    p = await powerLevelsAuthEvent(events, p);
    await yielder.step();
  }

  // For a power levels event q: the index of the first of [q, q₁, q₂, ...] on the mainline, or ∞.
  // Memoized: the events of one room share long stretches of their power-levels chains.
  const positionFrom = new Map<string, number>();
  const positionOfChain = async (first: RoomEvent): Promise<number> => {
    const walked: string[] = [];
    const onWalk = new Set<string>();
    let q: RoomEvent | undefined = first;
    let position = Infinity;
    while (q) {
      const known = mainlineIndex.get(q.event_id) ?? positionFrom.get(q.event_id);
      if (known !== undefined) {
        position = known;
        break;
      }
      if (onWalk.has(q.event_id)) break; // a forged cycle: never reaches the mainline
      walked.push(q.event_id);
      onWalk.add(q.event_id);
      q = await powerLevelsAuthEvent(events, q);
      await yielder.step();
    }
    for (const id of walked) positionFrom.set(id, position);
    return position;
  };

  const keyed: { eventId: string; position: number; originServerTs: number }[] = [];
  for (const eventId of eventIds) {
    const event = await events.get(eventId);
    if (!event) continue;
    // e₀ itself is not in its list: the position comes from e₁, its power levels auth event.
    const e1 = await powerLevelsAuthEvent(events, event);
    const position = e1 ? await positionOfChain(e1) : Infinity;
    keyed.push({ eventId, position, originServerTs: event.origin_server_ts });
    await yielder.step();
  }
  keyed.sort((x, y) => {
    if (x.position !== y.position) return x.position > y.position ? -1 : 1;
    if (x.originServerTs !== y.originServerTs) return x.originServerTs < y.originServerTs ? -1 : 1;
    return compareEventIds(x.eventId, y.eventId);
  });
  return keyed.map((k) => k.eventId);
}

/** A binary min-heap under `compare`. */
class BinaryHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly compare: (a: T, b: T) => number) {}

  push(item: T): void {
    const items = this.items;
    items.push(item);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.compare(items[i], items[parent]) >= 0) break;
      [items[i], items[parent]] = [items[parent], items[i]];
      i = parent;
    }
  }

  pop(): T | undefined {
    const items = this.items;
    if (items.length === 0) return undefined;
    const top = items[0];
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let smallest = i;
        if (l < items.length && this.compare(items[l], items[smallest]) < 0) smallest = l;
        if (r < items.length && this.compare(items[r], items[smallest]) < 0) smallest = r;
        if (smallest === i) break;
        [items[i], items[smallest]] = [items[smallest], items[i]];
        i = smallest;
      }
    }
    return top;
  }
}
