// Loads the state-resolution scenarios of test/fixtures/ruma-state-res (see its README.md) into
// RoomEvents and StateMaps, and replays batches PDU by PDU the way a server receives them.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { authorizeEvent, authStateFromEvents, checkAuthEventsShape } from "../../src/protocol/auth";
import { type RoomEvent, type StateMap, stateKey } from "../../src/protocol/events";
import { isJsonObject, type JsonObject } from "../../src/protocol/json";
import { roomVersion, type RoomVersion } from "../../src/protocol/room-versions";
import {
  resolveState,
  type StateResolutionLookups,
  type StateResolutionOptions,
} from "../../src/protocol/state-res";

export const FIXTURES_DIR = join(import.meta.dir, "../fixtures/ruma-state-res");

/** Batch scenarios: expected/NAME.json from these fixtures/*.json batches, in order. */
export const BATCH_SCENARIOS: Readonly<Record<string, readonly string[]>> = {
  minimal_private_chat: ["bootstrap-private-chat"],
  minimal_public_chat: ["bootstrap-public-chat"],
  origin_server_ts_tiebreak: ["bootstrap-private-chat", "origin-server-ts-tiebreak"],
  ban_vs_power_levels: ["bootstrap-public-chat", "ban-vs-power-levels-alice", "ban-vs-power-levels-bob"],
  topic_vs_power_levels: ["bootstrap-public-chat", "topic-vs-power-levels-alice", "topic-vs-power-levels-bob"],
  power_levels_admin_vs_mod: [
    "bootstrap-public-chat",
    "power-levels-admin-vs-mod-alice",
    "power-levels-admin-vs-mod-bob",
  ],
  topic_vs_ban: ["bootstrap-public-chat", "topic-vs-ban-common", "topic-vs-ban-alice", "topic-vs-ban-bob"],
  join_rules_vs_join: [
    "bootstrap-public-chat",
    "join-rules-vs-join-common",
    "join-rules-vs-join-alice",
    "join-rules-vs-join-ella",
  ],
  concurrent_joins: ["bootstrap-public-chat", "concurrent-joins-charlie", "concurrent-joins-ella"],
};

/** State-map scenarios: resolve the listed state maps with the listed PDUs available. */
export const STATE_MAP_SCENARIOS: Readonly<Record<string, { stateMaps: readonly string[]; pdus: string }>> = {
  msc4297_problem_a_state_res_v2_0: {
    stateMaps: ["MSC4297-problem-A/state-bob", "MSC4297-problem-A/state-charlie"],
    pdus: "MSC4297-problem-A/pdus-v11",
  },
  msc4297_problem_a_state_res_v2_1: {
    stateMaps: ["MSC4297-problem-A/state-bob", "MSC4297-problem-A/state-charlie"],
    pdus: "MSC4297-problem-A/pdus-v12",
  },
  msc4297_problem_b_state_res_v2_0: {
    stateMaps: ["MSC4297-problem-B/state-eve", "MSC4297-problem-B/state-zara"],
    pdus: "MSC4297-problem-B/pdus-v11",
  },
  msc4297_problem_b_state_res_v2_1: {
    stateMaps: ["MSC4297-problem-B/state-eve", "MSC4297-problem-B/state-zara"],
    pdus: "MSC4297-problem-B/pdus-v12",
  },
};

const readJson = (relativePath: string): unknown => JSON.parse(readFileSync(join(FIXTURES_DIR, relativePath), "utf8"));

function stringList(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) throw new Error(`${what} is not a list of strings`);
  return value;
}

/**
 * A fixture PDU as a RoomEvent. The fixtures carry no depth; it is computed as the spec's event
 * format defines it (one more than the deepest prev_event), from the depths in `known`.
 */
export function toRoomEvent(pdu: unknown, known: ReadonlyMap<string, RoomEvent>): RoomEvent {
  if (!isJsonObject(pdu)) throw new Error("a fixture PDU is not an object");
  const { event_id, room_id, type, state_key, sender, content, origin_server_ts } = pdu;
  if (typeof event_id !== "string" || typeof type !== "string" || typeof sender !== "string") {
    throw new Error(`fixture PDU ${JSON.stringify(event_id)} lacks event_id, type or sender`);
  }
  if (!isJsonObject(content) || typeof origin_server_ts !== "number") throw new Error(`${event_id}: bad content or ts`);
  const prev_events = stringList(pdu.prev_events, `${event_id} prev_events`);
  const auth_events = stringList(pdu.auth_events, `${event_id} auth_events`);
  let depth = 1;
  for (const prev of prev_events) {
    const prevEvent = known.get(prev);
    if (!prevEvent) throw new Error(`${event_id}: prev_event ${prev} is not in an earlier batch`);
    depth = Math.max(depth, prevEvent.depth + 1);
  }
  return {
    event_id,
    ...(typeof room_id === "string" ? { room_id } : {}),
    type,
    ...(typeof state_key === "string" ? { state_key } : {}),
    sender,
    content: content as JsonObject,
    origin_server_ts,
    depth,
    prev_events,
    auth_events,
  };
}

/** The PDUs of fixtures/NAME.json for each name, in order, with depths across all of them. */
export function loadBatches(names: readonly string[]): RoomEvent[][] {
  const known = new Map<string, RoomEvent>();
  return names.map((name) => {
    const pdus = readJson(`fixtures/${name}.json`);
    if (!Array.isArray(pdus)) throw new Error(`fixtures/${name}.json is not an array`);
    return pdus.map((pdu) => {
      const event = toRoomEvent(pdu, known);
      known.set(event.event_id, event);
      return event;
    });
  });
}

/** The room version named by the create event's `content.room_version` (default "1"). */
export function roomVersionOf(events: readonly RoomEvent[]): RoomVersion {
  const create = events.find((e) => e.type === "m.room.create" && e.state_key === "");
  if (!create) throw new Error("no m.room.create event among the PDUs");
  const id = typeof create.content.room_version === "string" ? create.content.room_version : "1";
  const version = roomVersion(id);
  if (!version) throw new Error(`unknown room version ${id}`);
  return version;
}

/** fixtures/NAME.json, a list of event ids, as a state map over the given events. */
export function loadStateMap(name: string, events: ReadonlyMap<string, RoomEvent>): StateMap {
  const state: StateMap = new Map();
  for (const id of stringList(readJson(`fixtures/${name}.json`), name)) {
    const event = events.get(id);
    if (event?.state_key === undefined) throw new Error(`${name}: ${id} is not a known state event`);
    state.set(stateKey(event.type, event.state_key), id);
  }
  return state;
}

export interface ExpectedStateEntry {
  type: string;
  state_key: string;
  event_id: string;
  content: JsonObject;
}

/** expected/NAME.json as its entries and as a state map. */
export function loadExpected(name: string): { entries: ExpectedStateEntry[]; state: StateMap } {
  const entries = readJson(`expected/${name}.json`) as ExpectedStateEntry[];
  return { entries, state: new Map(entries.map((e) => [stateKey(e.type, e.state_key), e.event_id])) };
}

/** Lookups over events held in memory, with an optional set of rejected event ids. */
export function inMemoryLookups(
  events: ReadonlyMap<string, RoomEvent>,
  rejected: ReadonlySet<string> = new Set(),
): StateResolutionLookups {
  return { fetchEvent: (id) => events.get(id), isRejected: (id) => rejected.has(id) };
}

/** A state map in a stable, readable form for assertions: "type|state_key" -> event id. */
export function readableState(state: StateMap): Record<string, string> {
  return Object.fromEntries(
    [...state.entries()].map(([k, v]) => [k.replace("\u0000", "|"), v] as const).sort(([a], [b]) => (a < b ? -1 : 1)),
  );
}

export interface Replay {
  readonly events: Map<string, RoomEvent>;
  readonly stateAfter: Map<string, StateMap>;
  readonly rejected: Set<string>;
  /** The events no other event names as a prev_event. */
  readonly forwardExtremities: string[];
  /** The state at the forward extremities: the resolution of the states after them. */
  readonly finalState: StateMap;
}

/**
 * Replays PDUs in order as a server receives them (content/server-server-api.md "Checks performed
 * on receipt of a PDU", steps 4-5): an event is rejected unless the auth rules allow it against
 * its auth events and against the state before it, which is the resolution of the states after
 * its prev_events. The state after a state event that is not rejected holds it.
 */
export async function replayPduByPdu(
  pdus: readonly RoomEvent[],
  version: RoomVersion,
  options: StateResolutionOptions = {},
): Promise<Replay> {
  const events = new Map<string, RoomEvent>();
  const stateAfter = new Map<string, StateMap>();
  const rejected = new Set<string>();
  const lookups = inMemoryLookups(events, rejected);
  const createOf = (event: RoomEvent) =>
    version.roomIdFromCreateEvent && event.room_id ? events.get(`$${event.room_id.slice(1)}`) : undefined;

  for (const event of pdus) {
    events.set(event.event_id, event);
    const stateBefore = await resolveState(
      version,
      event.prev_events.map((id) => {
        const state = stateAfter.get(id);
        if (!state) throw new Error(`${event.event_id}: no state after prev_event ${id}`);
        return state;
      }),
      lookups,
      options,
    );
    const authEvents = event.auth_events.map((id) => {
      const authEvent = events.get(id);
      if (!authEvent) throw new Error(`${event.event_id}: auth event ${id} is not known`);
      return authEvent;
    });
    const byAuthEvents = checkAuthEventsShape(event, authEvents, version, (id) => rejected.has(id)).allowed
      ? authorizeEvent(event, authStateFromEvents(authEvents, createOf(event)), version)
      : { allowed: false as const, reason: "auth_events" };
    const byStateBefore = authorizeEvent(
      event,
      (type, key) => {
        const id = stateBefore.get(stateKey(type, key));
        return id === undefined ? (type === "m.room.create" && key === "" ? createOf(event) : undefined) : events.get(id);
      },
      version,
    );
    const after = new Map(stateBefore);
    if (byAuthEvents.allowed && byStateBefore.allowed) {
      if (event.state_key !== undefined) after.set(stateKey(event.type, event.state_key), event.event_id);
    } else {
      rejected.add(event.event_id);
    }
    stateAfter.set(event.event_id, after);
  }

  const cited = new Set(pdus.flatMap((e) => e.prev_events));
  const forwardExtremities = pdus.map((e) => e.event_id).filter((id) => !cited.has(id));
  const finalState = await resolveState(
    version,
    forwardExtremities.map((id) => stateAfter.get(id)!),
    lookups,
    options,
  );
  return { events, stateAfter, rejected, forwardExtremities, finalState };
}
