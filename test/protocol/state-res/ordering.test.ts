// The orderings of v2 state resolution (v2-state-res.md "Definitions"), alone and as they decide a
// resolution.

import { describe, expect, test } from "bun:test";
import type { RoomEvent } from "../../../src/protocol/events";
import { roomVersion } from "../../../src/protocol/room-versions";
import {
  compareEventIds,
  comparePowerOrderKeys,
  EventCache,
  isPowerEvent,
  mainlineOrdering,
  type PowerOrderKey,
  resolveState,
  reverseTopologicalPowerOrdering,
  Yielder,
} from "../../../src/protocol/state-res";
import { ALICE, BOB, CAROL, key, TestRoom } from "./test-room";

const v10 = roomVersion("10")!;

const event = (fields: Partial<RoomEvent> & { event_id: string }): RoomEvent => ({
  type: "m.room.message",
  sender: ALICE,
  content: {},
  origin_server_ts: 0,
  depth: 1,
  prev_events: [],
  auth_events: [],
  ...fields,
});

describe("power events", () => {
  test("power levels and join rules (state events) are power events", () => {
    expect(isPowerEvent(event({ event_id: "$a", type: "m.room.power_levels", state_key: "" }))).toBe(true);
    expect(isPowerEvent(event({ event_id: "$b", type: "m.room.join_rules", state_key: "" }))).toBe(true);
    expect(isPowerEvent(event({ event_id: "$c", type: "m.room.power_levels" }))).toBe(false); // not a state event
  });

  test("kicks and bans are; leaving, joining and other state are not", () => {
    const member = (sender: string, target: string, membership: string) =>
      event({ event_id: `$${membership}`, type: "m.room.member", sender, state_key: target, content: { membership } });
    expect(isPowerEvent(member(ALICE, BOB, "leave"))).toBe(true);
    expect(isPowerEvent(member(ALICE, BOB, "ban"))).toBe(true);
    expect(isPowerEvent(member(BOB, BOB, "leave"))).toBe(false);
    expect(isPowerEvent(member(BOB, BOB, "join"))).toBe(false);
    expect(isPowerEvent(member(ALICE, BOB, "invite"))).toBe(false);
    expect(isPowerEvent(event({ event_id: "$t", type: "m.room.topic", state_key: "" }))).toBe(false);
    expect(isPowerEvent(event({ event_id: "$c", type: "m.room.create", state_key: "" }))).toBe(false);
  });
});

describe("comparisons", () => {
  test("event ids compare by code point, not by UTF-16 unit", () => {
    expect(compareEventIds("$a", "$b")).toBeLessThan(0);
    expect(compareEventIds("$a", "$ab")).toBeLessThan(0);
    expect(compareEventIds("$B", "$a")).toBeLessThan(0);
    // U+FF21 (one unit, 0xFF21) is below U+1F600 (surrogates 0xD83D 0xDE00) by code point.
    expect(compareEventIds("$\uff21", "$\u{1f600}")).toBeLessThan(0);
    expect("$\uff21" < "$\u{1f600}").toBe(false); // which plain `<` gets wrong
  });

  test("greater power first, then smaller origin_server_ts, then smaller event_id", () => {
    const k = (eventId: string, powerLevel: number, originServerTs: number): PowerOrderKey => ({
      eventId,
      powerLevel,
      originServerTs,
    });
    expect(comparePowerOrderKeys(k("$z", 100, 9), k("$a", 50, 1))).toBeLessThan(0);
    expect(comparePowerOrderKeys(k("$z", 50, 1), k("$a", 50, 2))).toBeLessThan(0);
    expect(comparePowerOrderKeys(k("$a", 50, 1), k("$b", 50, 1))).toBeLessThan(0);
    expect(comparePowerOrderKeys(k("$a", Infinity, 5), k("$b", 100, 1))).toBeLessThan(0);
    expect(comparePowerOrderKeys(k("$b", Infinity, 1), k("$a", Infinity, 2))).toBeLessThan(0); // v12 creators tie
  });
});

describe("reverse topological power ordering", () => {
  const keys: Record<string, PowerOrderKey> = {};
  const add = (eventId: string, powerLevel: number, originServerTs: number) =>
    (keys[eventId] = { eventId, powerLevel, originServerTs });
  add("$root", 0, 50);
  add("$admin", 100, 40);
  add("$mod", 50, 10);
  add("$mod-early", 50, 5);
  add("$user-a", 0, 7);
  add("$user-b", 0, 7);
  const order = (graph: Record<string, string[]>) =>
    reverseTopologicalPowerOrdering(new Map(Object.entries(graph)), (id) => keys[id], new Yielder(2));

  test("auth events come first whatever their sender's power", async () => {
    // Everything cites $root, whose sender has the least power and the latest timestamp.
    expect(await order({ $root: [], $admin: ["$root"], $mod: ["$root"] })).toEqual(["$root", "$admin", "$mod"]);
  });

  test("among ready events: power, then origin_server_ts, then event_id", async () => {
    const graph = { "$user-b": [], "$user-a": [], $mod: [], "$mod-early": [], $admin: [] };
    expect(await order(graph)).toEqual(["$admin", "$mod-early", "$mod", "$user-a", "$user-b"]);
  });

  test("lexicographically smallest: a powerful event waits for its auth event, others go first", async () => {
    // $admin needs $user-b; $mod is ready at once and precedes $user-b, $user-a precedes $user-b.
    const graph = { $admin: ["$user-b"], "$user-b": [], "$user-a": [], $mod: [] };
    expect(await order(graph)).toEqual(["$mod", "$user-a", "$user-b", "$admin"]);
  });

  test("edges to events outside the graph are ignored", async () => {
    expect(await order({ $mod: ["$elsewhere"], $admin: [] })).toEqual(["$admin", "$mod"]);
  });
});

describe("mainline ordering", () => {
  // Power levels P0 <- P1 <- P2 (the mainline of P2), and Q, a side branch citing P1.
  const pl = (id: string, authEvents: string[]) =>
    event({ event_id: id, type: "m.room.power_levels", state_key: "", auth_events: authEvents });
  const topic = (id: string, ts: number, authEvents: string[]) =>
    event({ event_id: id, type: "m.room.topic", state_key: "", origin_server_ts: ts, auth_events: authEvents });
  const events = [
    event({ event_id: "$create", type: "m.room.create", state_key: "" }),
    pl("$P0", ["$create"]),
    pl("$P1", ["$create", "$P0"]),
    pl("$P2", ["$create", "$P1"]),
    pl("$Q", ["$create", "$P1"]),
    topic("$on-P0", 1, ["$create", "$P0"]),
    topic("$on-P2", 1, ["$create", "$P2"]),
    topic("$no-pl", 9, ["$create"]),
    topic("$on-Q", 1, ["$create", "$Q"]),
    topic("$on-P1-late", 3, ["$P1", "$create"]),
    topic("$on-P1-b", 2, ["$create", "$P1"]),
    topic("$on-P1-a", 2, ["$create", "$P1"]),
  ];
  const ids = events.filter((e) => e.type === "m.room.topic").map((e) => e.event_id);

  test("earlier mainline position first (∞ for none), then origin_server_ts, then event_id", async () => {
    const ordered = await mainlineOrdering(ids, "$P2", EventCache.of(events), new Yielder(3));
    expect(ordered).toEqual([
      "$no-pl", // no power levels at all: position ∞
      "$on-P0", // P0 is mainline index 2
      "$on-Q", // P1 (index 1), through Q; ties by ts (Q's is 1), then id
      "$on-P1-a",
      "$on-P1-b",
      "$on-P1-late",
      "$on-P2", // index 0
    ]);
  });

  test("a mainline based on P1 puts P2's events with those not on it", async () => {
    const ordered = await mainlineOrdering(ids, "$P1", EventCache.of(events), new Yielder(3));
    // $on-P2 cites P2, not on the mainline of P1; P2 cites P1: position 0, like P1's own.
    expect(ordered).toEqual(["$no-pl", "$on-P0", "$on-P2", "$on-Q", "$on-P1-a", "$on-P1-b", "$on-P1-late"]);
  });

  test("without resolved power levels every position is ∞", async () => {
    const ordered = await mainlineOrdering(ids, undefined, EventCache.of(events), new Yielder(3));
    // By origin_server_ts alone (1, 1, 1, 2, 2, 3, 9), then event_id.
    expect(ordered).toEqual(["$on-P0", "$on-P2", "$on-Q", "$on-P1-a", "$on-P1-b", "$on-P1-late", "$no-pl"]);
  });
});

describe("the orderings deciding a resolution", () => {
  test("the more powerful sender's power event is applied first, so the other one's wins", async () => {
    // Bob may change the join rules (50); alice's change is later in time but sorts first.
    const room = new TestRoom(v10);
    const base = room.sendAll(room.bootstrap({ users: { [ALICE]: 100, [BOB]: 50 }, events: { "m.room.join_rules": 50 } }), [
      { id: "$join-bob", type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } },
    ]);
    const byAlice = room.send(base, {
      id: "$jr-alice",
      type: "m.room.join_rules",
      sender: ALICE,
      stateKey: "",
      content: { join_rule: "invite" },
      ts: 200,
    });
    const byBob = room.send(base, {
      id: "$jr-bob",
      type: "m.room.join_rules",
      sender: BOB,
      stateKey: "",
      content: { join_rule: "knock" },
      ts: 100,
    });
    const resolved = await resolveState(v10, [byAlice.state, byBob.state], room.lookups());
    expect(resolved.get(key("m.room.join_rules", ""))).toBe("$jr-bob");
  });

  test("non-power events are applied in mainline order: the one on the later power levels wins", async () => {
    const room = new TestRoom(v10);
    const base = room.sendAll(room.bootstrap({ users: { [ALICE]: 100, [BOB]: 50 } }), [
      { id: "$join-bob", type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } },
      { id: "$join-carol", type: "m.room.member", sender: CAROL, stateKey: CAROL, content: { membership: "join" } },
    ]);
    // Fork A: alice raises carol, carol sets the topic (early ts) on those power levels.
    const forkA = room.sendAll(base, [
      { id: "$pl1", type: "m.room.power_levels", sender: ALICE, stateKey: "", content: { users: { [ALICE]: 100, [BOB]: 50, [CAROL]: 50 } } },
      { id: "$topic-carol", type: "m.room.topic", sender: CAROL, stateKey: "", content: { topic: "carol" }, ts: 1 },
    ]);
    // Fork B: bob sets the topic later, on the original power levels.
    const forkB = room.sendAll(base, [
      { id: "$topic-bob", type: "m.room.topic", sender: BOB, stateKey: "", content: { topic: "bob" }, ts: 1000 },
    ]);
    const resolved = await resolveState(v10, [forkA, forkB], room.lookups());
    expect(resolved.get(key("m.room.power_levels", ""))).toBe("$pl1");
    // $topic-bob is based on $pl0 (mainline position 1), $topic-carol on $pl1 (position 0).
    expect(resolved.get(key("m.room.topic", ""))).toBe("$topic-carol");
  });
});
