// A small room DAG for state-resolution tests: unsigned RoomEvents whose auth_events are chosen
// from a given state by the auth events selection, so that forks are easy to write.

import { authEventsForEvent } from "../../../src/protocol/auth";
import { type RoomEvent, type StateMap, stateKey } from "../../../src/protocol/events";
import type { JsonObject } from "../../../src/protocol/json";
import type { RoomVersion } from "../../../src/protocol/room-versions";
import type { StateResolutionLookups } from "../../../src/protocol/state-res";

export const ALICE = "@alice:example.com";
export const BOB = "@bob:example.com";
export const CAROL = "@carol:example.com";

export interface EventSpec {
  id: string;
  type: string;
  sender: string;
  stateKey?: string;
  content?: JsonObject;
  ts?: number;
  depth?: number;
  /** Explicit auth events instead of the selection from the state. */
  authEvents?: string[];
}

export class TestRoom {
  readonly events = new Map<string, RoomEvent>();
  private clock = 0;

  constructor(
    readonly version: RoomVersion,
    readonly roomId = "!room:example.com",
  ) {}

  /** Adds an event sent on top of `state`; returns it and the state after it. */
  send(state: StateMap, spec: EventSpec): { event: RoomEvent; state: StateMap } {
    const draft = {
      type: spec.type,
      sender: spec.sender,
      content: spec.content ?? {},
      ...(spec.stateKey !== undefined ? { state_key: spec.stateKey } : {}),
    };
    const authEvents =
      spec.authEvents ??
      authEventsForEvent(draft, this.version)
        .map(([type, key]) => state.get(stateKey(type, key)))
        .filter((id): id is string => id !== undefined);
    this.clock += 1;
    // v12: the create event has no room_id; the room ID is derived from it.
    const omitRoomId = this.version.roomIdFromCreateEvent && spec.type === "m.room.create";
    const event: RoomEvent = {
      event_id: spec.id,
      ...(omitRoomId ? {} : { room_id: this.roomId }),
      ...draft,
      origin_server_ts: spec.ts ?? this.clock,
      depth: spec.depth ?? this.clock,
      prev_events: [],
      auth_events: authEvents,
    };
    this.events.set(event.event_id, event);
    const after = new Map(state);
    if (event.state_key !== undefined) after.set(stateKey(event.type, event.state_key), event.event_id);
    return { event, state: after };
  }

  /** Sends several events in a row, each on the state after the previous one. */
  sendAll(state: StateMap, specs: EventSpec[]): StateMap {
    for (const spec of specs) state = this.send(state, spec).state;
    return state;
  }

  /** create, the creator's join, power levels and public join rules. */
  bootstrap(powerLevels: JsonObject = { users: { [ALICE]: 100 } }): StateMap {
    return this.sendAll(new Map(), [
      { id: "$create", type: "m.room.create", sender: ALICE, stateKey: "", content: { creator: ALICE, room_version: this.version.id } },
      { id: "$join-alice", type: "m.room.member", sender: ALICE, stateKey: ALICE, content: { membership: "join" } },
      { id: "$pl0", type: "m.room.power_levels", sender: ALICE, stateKey: "", content: powerLevels },
      { id: "$jr-public", type: "m.room.join_rules", sender: ALICE, stateKey: "", content: { join_rule: "public" } },
    ]);
  }

  lookups(): StateResolutionLookups {
    return { fetchEvent: (id) => this.events.get(id) };
  }

  /** The union of the auth chains of `ids`, as a store's auth chain index would answer. */
  authChain(ids: readonly string[]): Set<string> {
    return authChainOf(this.events, ids);
  }
}

export const key = stateKey;

/** The union of the auth chains of `ids` (not the events themselves unless cited). */
export function authChainOf(events: ReadonlyMap<string, RoomEvent>, ids: readonly string[]): Set<string> {
  const chain = new Set<string>();
  const stack = ids.flatMap((id) => events.get(id)?.auth_events ?? []);
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (chain.has(id)) continue;
    chain.add(id);
    stack.push(...(events.get(id)?.auth_events ?? []));
  }
  return chain;
}
