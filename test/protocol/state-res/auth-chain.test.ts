// Auth chains, the auth difference and the conflicted state subgraph (v2-state-res.md, v12.md).

import { describe, expect, test } from "bun:test";
import type { RoomEvent } from "../../../src/protocol/events";
import { roomVersion } from "../../../src/protocol/room-versions";
import {
  authDifference,
  conflictedStateSubgraph,
  EventCache,
  resolveState,
  Yielder,
} from "../../../src/protocol/state-res";
import { ALICE, authChainOf, BOB, CAROL, key, TestRoom } from "./test-room";

const v10 = roomVersion("10")!;
const v12 = roomVersion("12")!;

const node = (event_id: string, auth_events: string[] = []): RoomEvent => ({
  event_id,
  type: "m.room.member",
  state_key: event_id,
  sender: ALICE,
  content: {},
  origin_server_ts: 0,
  depth: 1,
  prev_events: [],
  auth_events,
});

describe("auth difference", () => {
  // a <- b <- c, a <- d; e stands alone; f cites c and d.
  const events = [node("a"), node("b", ["a"]), node("c", ["b"]), node("d", ["a"]), node("e"), node("f", ["c", "d"])];
  const withIndex = (events: RoomEvent[]) => {
    const byId = new Map(events.map((e) => [e.event_id, e]));
    return new EventCache({ fetchEvent: (id) => byId.get(id), authChain: (ids) => authChainOf(byId, ids) });
  };
  const sorted = (s: Set<string>) => [...s].sort();

  test("the events some full auth chains hold and others lack; the state events themselves do not count", async () => {
    // C1 = chain(c) = {a, b}; C2 = chain(d) ∪ chain(e) = {a}.
    const stateSets = [["c"], ["d", "e"]];
    expect(sorted(await authDifference(stateSets, EventCache.of(events), new Yielder(2)))).toEqual(["b"]);
    expect(sorted(await authDifference(stateSets, withIndex(events), new Yielder(2)))).toEqual(["b"]);
  });

  test("an event in every chain is not in the difference", async () => {
    // C1 = chain(f) = {a, b, c, d}; C2 = chain(c) = {a, b}; C3 = chain(b) ∪ chain(d) = {a}.
    const stateSets = [["f"], ["c"], ["b", "d"]];
    expect(sorted(await authDifference(stateSets, EventCache.of(events), new Yielder(2)))).toEqual(["b", "c", "d"]);
    expect(sorted(await authDifference(stateSets, withIndex(events), new Yielder(2)))).toEqual(["b", "c", "d"]);
  });

  test("more than 32 state sets (several mask words)", async () => {
    const many = [...events];
    const stateSets: string[][] = [];
    for (let i = 0; i < 70; i++) {
      many.push(node(`s${i}`, i === 69 ? ["c"] : ["a"]));
      stateSets.push([`s${i}`]);
    }
    expect(sorted(await authDifference(stateSets, EventCache.of(many), new Yielder(5)))).toEqual(["b", "c"]);
    expect(sorted(await authDifference(stateSets, withIndex(many), new Yielder(5)))).toEqual(["b", "c"]);
    // With exactly 32 and 64 sets the last word is full.
    for (const k of [32, 64]) {
      const sets = stateSets.slice(0, k - 1).concat([["s69"]]);
      expect(sorted(await authDifference(sets, EventCache.of(many), new Yielder(5)))).toEqual(["b", "c"]);
    }
  });

  test("an event of the auth difference in no state set still takes part", async () => {
    // Fork A: alice raises bob ($pl1), then bob changes the power levels ($pl2). Only $pl2 is in
    // A's state; $pl1 is in A's auth chain alone. Without it bob's $pl2 would fail against $pl0.
    const room = new TestRoom(v10);
    const base = room.sendAll(room.bootstrap(), [
      { id: "$join-bob", type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } },
    ]);
    const forkA = room.sendAll(base, [
      { id: "$pl1", type: "m.room.power_levels", sender: ALICE, stateKey: "", content: { users: { [ALICE]: 100, [BOB]: 100 } } },
      { id: "$pl2", type: "m.room.power_levels", sender: BOB, stateKey: "", content: { users: { [ALICE]: 100, [BOB]: 100 }, ban: 10 } },
    ]);
    const forkB = room.sendAll(base, [
      { id: "$topic", type: "m.room.topic", sender: ALICE, stateKey: "", content: { topic: "t" } },
    ]);
    for (const lookups of [room.lookups(), { ...room.lookups(), authChain: (ids: readonly string[]) => room.authChain(ids) }]) {
      const resolved = await resolveState(v10, [forkA, forkB], lookups);
      expect(resolved.get(key("m.room.power_levels", ""))).toBe("$pl2");
      expect(resolved.get(key("m.room.topic", ""))).toBe("$topic");
    }
  });
});

describe("step 1: power events and their auth chains within the full conflicted set", () => {
  test("a non-power event a power event depends on is checked before it, not left to step 3", async () => {
    // Fork A: alice kicks bob, bob rejoins, bob (level 50) changes the join rules. Fork B still
    // has bob's first join. Bob's rejoin is in the auth chain of his join-rules change and in the
    // full conflicted set; sorted between the kick and the change, it lets the change through.
    const room = new TestRoom(v10);
    const base = room.sendAll(room.bootstrap({ users: { [ALICE]: 100, [BOB]: 50 }, events: { "m.room.join_rules": 50 } }), [
      { id: "$join-bob", type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } },
    ]);
    const forkA = room.sendAll(base, [
      { id: "$kick-bob", type: "m.room.member", sender: ALICE, stateKey: BOB, content: { membership: "leave" } },
      { id: "$rejoin-bob", type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } },
      { id: "$jr-bob", type: "m.room.join_rules", sender: BOB, stateKey: "", content: { join_rule: "knock" } },
    ]);
    const forkB = room.sendAll(base, [
      { id: "$topic", type: "m.room.topic", sender: ALICE, stateKey: "", content: { topic: "t" } },
    ]);
    const resolved = await resolveState(v10, [forkA, forkB], room.lookups());
    expect(resolved.get(key("m.room.member", BOB))).toBe("$rejoin-bob");
    expect(resolved.get(key("m.room.join_rules", ""))).toBe("$jr-bob");
  });
});

describe("conflicted state subgraph", () => {
  test("every event on a path between two conflicted events, and nothing else", async () => {
    // c2 -> x -> y -> c1 -> root; z -> y; c2 -> w -> root; c3 isolated above root.
    const events = [
      node("root"),
      node("c1", ["root"]),
      node("y", ["c1"]),
      node("x", ["y"]),
      node("w", ["root"]),
      node("c2", ["x", "w"]),
      node("z", ["y"]),
      node("c3", ["root"]),
    ];
    const subgraph = await conflictedStateSubgraph(new Set(["c1", "c2", "c3"]), EventCache.of(events), new Yielder(2));
    expect([...subgraph].sort()).toEqual(["c1", "c2", "x", "y"]);
  });

  test("a chain of three conflicted events includes the middle paths once", async () => {
    const events = [node("a"), node("m1", ["a"]), node("b", ["m1"]), node("m2", ["b"]), node("c", ["m2"])];
    const subgraph = await conflictedStateSubgraph(new Set(["a", "c"]), EventCache.of(events), new Yielder(1));
    expect([...subgraph].sort()).toEqual(["a", "b", "c", "m1", "m2"]);
  });

  test("v2.1 brings an unconflicted power levels event between two conflicted ones into the checks", async () => {
    // MSC4297 problem B in miniature: $pl1 lies on the path $pl2 -> $pl1 -> $pl0. Both state sets'
    // auth chains hold $pl1, so it is not in the auth difference; only the subgraph brings it in.
    const room = new TestRoom(v12, "!create12");
    const base = room.sendAll(new Map(), [
      { id: "$create12", type: "m.room.create", sender: ALICE, stateKey: "", content: { room_version: "12" } },
      { id: "$join-alice", type: "m.room.member", sender: ALICE, stateKey: ALICE, content: { membership: "join" } },
      { id: "$pl0", type: "m.room.power_levels", sender: ALICE, stateKey: "", content: {} },
      { id: "$jr", type: "m.room.join_rules", sender: ALICE, stateKey: "", content: { join_rule: "public" } },
      { id: "$join-bob", type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } },
    ]);
    const current = room.sendAll(base, [
      { id: "$pl1", type: "m.room.power_levels", sender: ALICE, stateKey: "", content: { users: { [BOB]: 50 } } },
      { id: "$pl2", type: "m.room.power_levels", sender: BOB, stateKey: "", content: { users: { [BOB]: 50 }, ban: 40 } },
    ]);
    // A stale state set: still $pl0, plus carol's join, which was authorised by $pl2.
    const stale = room.send(base, {
      id: "$join-carol",
      type: "m.room.member",
      sender: CAROL,
      stateKey: CAROL,
      content: { membership: "join" },
      authEvents: ["$pl2", "$jr"],
    }).state;
    expect(room.events.get("$create12")!.room_id).toBeUndefined();
    expect((await resolveState(v12, [stale, current], room.lookups())).get(key("m.room.power_levels", ""))).toBe("$pl2");
    // The v2 algorithm on the same events (v12 auth rules otherwise) resets to $pl0.
    const v12WithV2 = { ...v12, stateResolution: "v2" as const };
    expect((await resolveState(v12WithV2, [stale, current], room.lookups())).get(key("m.room.power_levels", ""))).toBe("$pl0");
  });
});
