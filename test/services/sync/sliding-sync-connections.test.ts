// Per-connection state of sliding sync: positions, their pruning, the bounds, idle expiry, and the
// room configs a request asks for (required_state parsing and combining).
import { describe, expect, test } from "bun:test";
import { MatrixError } from "../../../src/protocol/errors";
import { SlidingSyncConnections, type ConnectionState } from "../../../src/services/sync/sliding-sync-connections";
import { checkBody, combineConfigs, listRanges, namedKeys, needsWholeState, requiredState, requiredStateKey, roomConfig, stateWanted } from "../../../src/services/sync/sliding-sync-request";

const state = (events: number): ConnectionState => ({ streams: { events, accountData: 0, receipts: 0, typing: 0, e2ee: 0 }, rooms: new Map(), listCounts: new Map() });

function unknownPos(fn: () => unknown): void {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(MatrixError);
    expect({ errcode: String((error as MatrixError).errcode), status: (error as MatrixError).status }).toEqual({ errcode: "M_UNKNOWN_POS", status: 400 });
    return;
  }
  throw new Error("expected M_UNKNOWN_POS");
}

describe("connections", () => {
  test("a pos names its state on its own connection only; a retry with it works until a newer one is used", () => {
    let now = 0;
    const connections = new SlidingSyncConnections({ now: () => now });
    const p1 = connections.save("@a:x", "D", "main", undefined, state(1));
    expect(connections.stateAt("@a:x", "D", "main", p1).streams.events).toBe(1);
    unknownPos(() => connections.stateAt("@a:x", "D", "other", p1));
    unknownPos(() => connections.stateAt("@a:x", "E", "main", p1));
    unknownPos(() => connections.stateAt("@b:x", "D", "main", p1));
    unknownPos(() => connections.stateAt("@a:x", "D", "main", "garbage"));

    const p2 = connections.save("@a:x", "D", "main", p1, state(2));
    // A retry of the request with p1 (its answer was lost): p1 still holds.
    const p2b = connections.save("@a:x", "D", "main", p1, state(3));
    expect(connections.stateAt("@a:x", "D", "main", p1).streams.events).toBe(1);
    expect(connections.stateAt("@a:x", "D", "main", p2b).streams.events).toBe(3);
    // The client goes on from p2b: states before it go.
    connections.save("@a:x", "D", "main", p2b, state(4));
    unknownPos(() => connections.stateAt("@a:x", "D", "main", p1));
    unknownPos(() => connections.stateAt("@a:x", "D", "main", p2));
    expect(connections.stateAt("@a:x", "D", "main", p2b).streams.events).toBe(3);

    // Many retries of one pos keep a bounded number of answers, and the pos itself.
    const retries = Array.from({ length: 20 }, (_, i) => connections.save("@a:x", "D", "main", p2b, state(100 + i)));
    expect(connections.stateAt("@a:x", "D", "main", p2b).streams.events).toBe(3);
    expect(connections.stateAt("@a:x", "D", "main", retries.at(-1)!).streams.events).toBe(119);
    unknownPos(() => connections.stateAt("@a:x", "D", "main", retries[0]!));

    // A request without pos starts the connection again.
    connections.save("@a:x", "D", "main", undefined, state(9));
    unknownPos(() => connections.stateAt("@a:x", "D", "main", p2b));
  });

  test("a position from another process is unknown", () => {
    const clock = { now: () => 0 };
    const pos = new SlidingSyncConnections(clock).save("@a:x", "D", undefined, undefined, state(1));
    unknownPos(() => new SlidingSyncConnections(clock).stateAt("@a:x", "D", undefined, pos));
  });

  test("idle connections expire; the number per device and in all is bounded, least recently used first", () => {
    let now = 0;
    const connections = new SlidingSyncConnections({ now: () => now }, { maxConnections: 3, maxPerDevice: 2, idleMs: 1000 });
    const a = connections.save("@a:x", "D", "1", undefined, state(1));
    now = 10;
    const b = connections.save("@a:x", "D", "2", undefined, state(1));
    now = 20;
    connections.save("@a:x", "D", "3", undefined, state(1));
    // The device's oldest connection went.
    unknownPos(() => connections.stateAt("@a:x", "D", "1", a));
    expect(connections.stateAt("@a:x", "D", "2", b).streams.events).toBe(1);
    expect(connections.size()).toBe(2);
    connections.save("@b:x", "D", "1", undefined, state(1));
    now = 30;
    connections.save("@c:x", "D", "1", undefined, state(1));
    // Three in all: the least recently used (@a's connection 2) went.
    expect(connections.size()).toBe(3);
    unknownPos(() => connections.stateAt("@a:x", "D", "2", b));

    const late = connections.save("@d:x", "D", "1", undefined, state(1));
    now = 2000;
    unknownPos(() => connections.stateAt("@d:x", "D", "1", late));
  });
});

describe("room configs", () => {
  test("required_state: named keys, $ME, $LAZY, a type's every key, and any '*' type as all state", () => {
    const rs = requiredState(
      [
        ["m.room.name", ""],
        ["m.room.member", "$ME"],
        ["m.room.member", "$LAZY"],
        ["m.space.child", "*"],
      ],
      "@me:x",
    );
    expect(rs.all).toBe(false);
    expect(rs.lazyMembers).toBe(true);
    expect(stateWanted(rs, "m.room.name", "")).toBe(true);
    expect(stateWanted(rs, "m.room.member", "@me:x")).toBe(true);
    expect(stateWanted(rs, "m.room.member", "@other:x")).toBe(false);
    expect(stateWanted(rs, "m.space.child", "!any:x")).toBe(true);
    expect(stateWanted(rs, "m.room.topic", "")).toBe(false);
    expect(needsWholeState(rs)).toBe(true);
    expect(namedKeys(rs).sort()).toEqual([
      ["m.room.member", "@me:x"],
      ["m.room.name", ""],
    ]);
    const all = requiredState([["*", "*"]], "@me:x");
    expect(all.all && stateWanted(all, "anything", "at all")).toBe(true);
    expect(needsWholeState(requiredState([["m.room.name", ""]], "@me:x"))).toBe(false);
  });

  test("combined configs are the superset: the larger timeline, the union of state, lazy if any", () => {
    const a = roomConfig({ timeline_limit: 1, required_state: [["m.room.name", ""]] }, "@me:x");
    const b = roomConfig({ timeline_limit: 10, required_state: [["m.room.topic", ""], ["m.room.member", "$LAZY"]] }, "@me:x");
    const c = combineConfigs(a, b);
    expect(c.timelineLimit).toBe(10);
    expect(c.requiredState.lazyMembers).toBe(true);
    expect(stateWanted(c.requiredState, "m.room.name", "") && stateWanted(c.requiredState, "m.room.topic", "")).toBe(true);
    const wild = combineConfigs(c, roomConfig({ timeline_limit: 0, required_state: [["m.room.name", "*"]] }, "@me:x"));
    expect(stateWanted(wild.requiredState, "m.room.name", "other")).toBe(true);
    // The same config in another order has the same key; a different one another.
    expect(requiredStateKey(combineConfigs(b, a).requiredState)).toBe(requiredStateKey(c.requiredState));
    expect(requiredStateKey(a.requiredState)).not.toBe(requiredStateKey(c.requiredState));
  });

  test("ranges and the number of lists are checked", () => {
    expect(listRanges({ ranges: [[0, 9]], range: [20, 29], required_state: [], timeline_limit: 1 })).toEqual([
      [0, 9],
      [20, 29],
    ]);
    expect(() => listRanges({ ranges: [[5, 4]], required_state: [], timeline_limit: 1 })).toThrow(MatrixError);
    const lists = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`l${i}`, { ranges: [[0, 1]] as [number, number][], required_state: [], timeline_limit: 1 }]));
    expect(() => checkBody({ lists })).toThrow(MatrixError);
    expect(() => checkBody({ lists: { one: lists.l0! } })).not.toThrow();
  });
});
