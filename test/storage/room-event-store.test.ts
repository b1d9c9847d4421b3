import { describe, expect, test } from "bun:test";
import { openSqliteStores } from "../../src/storage/sqlite";
import type { NewEvent, StoredEvent } from "../../src/storage/stores";

const ROOM = "!room:example.org";
const key = (type: string, stateKey: string) => `${type}\u0000${stateKey}`;

function event(id: string, fields: Partial<NewEvent> & { content?: Record<string, unknown> } = {}): NewEvent {
  const { content = {}, ...rest } = fields;
  const base = { eventId: id, roomId: ROOM, type: "m.room.message", stateKey: undefined, sender: "@a:example.org", depth: 1, originServerTs: 1, prevEvents: [], authEvents: [], ...rest };
  return { ...base, json: JSON.stringify({ type: base.type, state_key: base.stateKey, content }) };
}

function setup() {
  const stores = openSqliteStores(":memory:", "better-sqlite3");
  const count = (table: string) => stores.db.prepare<{ n: number }>(`SELECT count(*) AS n FROM ${table}`).get()!.n;
  /** Appends an event after `prev` (or the current extremities), with state after = before + itself. */
  const append = (e: NewEvent): StoredEvent => {
    const before = e.prevEvents.length ? stores.roomEvents.getEvent(e.prevEvents[0])?.stateSnapshot : undefined;
    const delta = new Map<string, string | null>();
    if (e.stateKey !== undefined && !e.rejectedReason) delta.set(key(e.type, e.stateKey), e.eventId);
    return stores.roomEvents.persistEvent({ event: e, stateAfter: { parent: before, delta }, updateForwardExtremities: true, updateCurrentState: true });
  };
  return { stores, store: stores.roomEvents, count, append };
}

describe("room DAG store", () => {
  test("events keep their JSON, edges, and get increasing stream orderings", () => {
    const { store, append } = setup();
    const a = append(event("$a", { type: "m.room.create", stateKey: "", content: { creator: "@a:example.org" } }));
    const b = append(event("$b", { prevEvents: ["$a"], authEvents: ["$a"], depth: 2 }));
    expect(a.streamOrdering).toBe(1);
    expect(b.streamOrdering).toBe(2);
    expect(store.getEvent("$b")?.prevEvents).toEqual(["$a"]);
    expect(store.getEvent("$b")?.authEvents).toEqual(["$a"]);
    expect(JSON.parse(store.getEvent("$a")!.json).content.creator).toBe("@a:example.org");
    expect(store.maxStreamOrdering()).toBe(2);
    expect(store.roomEventsBetween(ROOM, 0, 2, 10).map((e) => e.eventId)).toEqual(["$a", "$b"]);
    expect(store.roomEventsBetween(ROOM, 1, 2, 10).map((e) => e.eventId)).toEqual(["$b"]);
  });

  test("forward extremities follow the DAG, forks included", () => {
    const { store, append } = setup();
    append(event("$a", { type: "m.room.create", stateKey: "" }));
    expect(store.forwardExtremities(ROOM)).toEqual(["$a"]);
    append(event("$b", { prevEvents: ["$a"] }));
    append(event("$c", { prevEvents: ["$a"] }));
    expect(store.forwardExtremities(ROOM)).toEqual(["$b", "$c"]);
    append(event("$d", { prevEvents: ["$b", "$c"] }));
    expect(store.forwardExtremities(ROOM)).toEqual(["$d"]);
  });

  test("outliers and rejected events are stored but stay out of the timeline and the extremities", () => {
    const { store, append } = setup();
    append(event("$a", { type: "m.room.create", stateKey: "" }));
    const rejected = append(event("$r", { prevEvents: ["$a"], type: "m.room.name", stateKey: "", rejectedReason: "auth_error" }));
    expect(rejected.streamOrdering).toBeUndefined();
    expect(rejected.rejectedReason).toBe("auth_error");
    const outlier = store.persistEvent({ event: event("$o", { outlier: true }), updateForwardExtremities: true, updateCurrentState: false });
    expect(outlier.outlier).toBe(true);
    expect(outlier.streamOrdering).toBeUndefined();
    expect(store.forwardExtremities(ROOM)).toEqual(["$a"]);
    expect(store.currentStateEvent(ROOM, "m.room.name", "")).toBeUndefined();
  });

  test("a message writes no state rows; a state event writes one", () => {
    const { store, append, count } = setup();
    append(event("$a", { type: "m.room.create", stateKey: "" }));
    const rowsAfterCreate = count("state_snapshot_entries");
    const msg = append(event("$m", { prevEvents: ["$a"] }));
    expect(count("state_snapshot_entries")).toBe(rowsAfterCreate);
    expect(msg.stateSnapshot).toBe(store.getEvent("$a")!.stateSnapshot);
    append(event("$t", { prevEvents: ["$m"], type: "m.room.topic", stateKey: "" }));
    expect(count("state_snapshot_entries")).toBe(rowsAfterCreate + 1);
    expect(store.stateAt(store.getEvent("$t")!.stateSnapshot!)).toEqual(
      new Map([
        [key("m.room.create", ""), "$a"],
        [key("m.room.topic", ""), "$t"],
      ]),
    );
  });

  test("state rows grow linearly with members, and every snapshot reads back the folded state", () => {
    const { store, append, stores, count } = setup();
    append(event("$0", { type: "m.room.create", stateKey: "" }));
    const members = 1500;
    const expected = new Map([[key("m.room.create", ""), "$0"]]);
    const snapshots: [number, Map<string, string>][] = [];
    for (let i = 1; i <= members; i++) {
      const stateKey = `@u${i}:example.org`;
      append(event(`$${i}`, { prevEvents: [`$${i - 1}`], type: "m.room.member", stateKey, content: { membership: "join" } }));
      expected.set(key("m.room.member", stateKey), `$${i}`);
      if (i % 250 === 0 || i === 77) snapshots.push([store.getEvent(`$${i}`)!.stateSnapshot!, new Map(expected)]);
    }
    // Whole snapshots are written only when a chain's deltas reach a quarter of the state: about
    // 5 rows per state event in all, where writing whole every 32 events would be ~members/64 each.
    expect(count("state_snapshot_entries")).toBeLessThan(members * 6);
    const reopened = new (store.constructor as any)(stores.db);
    for (const [snapshot, state] of snapshots) {
      expect(reopened.stateAt(snapshot)).toEqual(state);
      expect(reopened.stateEntryAt(snapshot, "m.room.member", "@u77:example.org")).toBe("$77");
      expect(reopened.stateEntryAt(snapshot, "m.room.member", "@nobody:example.org")).toBeUndefined();
    }
    expect(store.currentState(ROOM)).toEqual(expected);
    expect(store.currentMemberships(ROOM).size).toBe(members);
  });

  test("a key removed in a delta stays removed along the chain", () => {
    const { store, append } = setup();
    append(event("$a", { type: "m.room.create", stateKey: "" }));
    append(event("$n", { prevEvents: ["$a"], type: "m.room.name", stateKey: "" }));
    const parent = store.getEvent("$n")!.stateSnapshot;
    const removed = store.persistEvent({
      event: event("$x", { prevEvents: ["$n"] }),
      stateAfter: { parent, delta: new Map([[key("m.room.name", ""), null]]) },
      updateForwardExtremities: true,
      updateCurrentState: true,
    });
    append(event("$t", { prevEvents: ["$x"], type: "m.room.topic", stateKey: "" }));
    const fresh = new (store.constructor as any)((store as any).db);
    expect(fresh.stateAt(store.getEvent("$t")!.stateSnapshot!)).toEqual(new Map([[key("m.room.create", ""), "$a"], [key("m.room.topic", ""), "$t"]]));
    expect(fresh.stateEntryAt(removed.stateSnapshot!, "m.room.name", "")).toBeUndefined();
  });

  test("a resolved state that drops a key removes it from current state", () => {
    const { store, append } = setup();
    append(event("$a", { type: "m.room.create", stateKey: "" }));
    append(event("$n", { prevEvents: ["$a"], type: "m.room.name", stateKey: "" }));
    const parent = store.getEvent("$n")!.stateSnapshot;
    store.persistEvent({
      event: event("$x", { prevEvents: ["$n"] }),
      stateAfter: { parent, delta: new Map([[key("m.room.name", ""), null]]) },
      updateForwardExtremities: true,
      updateCurrentState: true,
    });
    expect(store.currentStateEvent(ROOM, "m.room.name", "")).toBeUndefined();
    expect(store.currentState(ROOM)).toEqual(new Map([[key("m.room.create", ""), "$a"]]));
  });

  test("current state tracks memberships", () => {
    const { store, append } = setup();
    append(event("$a", { type: "m.room.create", stateKey: "" }));
    append(event("$j", { prevEvents: ["$a"], type: "m.room.member", stateKey: "@a:example.org", content: { membership: "join" } }));
    append(event("$k", { prevEvents: ["$j"], type: "m.room.member", stateKey: "@k:example.org", content: { membership: "knock" } }));
    expect(store.currentMemberships(ROOM)).toEqual(new Map([["@a:example.org", "join"], ["@k:example.org", "knock"]]));
    expect(store.roomsWithMembership("@k:example.org", "knock")).toEqual([ROOM]);
    append(event("$l", { prevEvents: ["$k"], type: "m.room.member", stateKey: "@k:example.org", content: { membership: "leave" } }));
    expect(store.roomsWithMembership("@k:example.org", "knock")).toEqual([]);
    expect(store.currentMemberships(ROOM).get("@k:example.org")).toBe("leave");
  });

  test("auth chains follow auth_events transitively", () => {
    const { store, append } = setup();
    append(event("$c", { type: "m.room.create", stateKey: "" }));
    append(event("$j", { prevEvents: ["$c"], authEvents: ["$c"], type: "m.room.member", stateKey: "@a:example.org" }));
    append(event("$p", { prevEvents: ["$j"], authEvents: ["$c", "$j"], type: "m.room.power_levels", stateKey: "" }));
    append(event("$m", { prevEvents: ["$p"], authEvents: ["$c", "$j", "$p"] }));
    expect(store.authChain(["$m"])).toEqual(new Set(["$c", "$j", "$p"]));
    expect(store.authChain(["$j"])).toEqual(new Set(["$c"]));
    expect(store.authChain([])).toEqual(new Set());
  });

  test("a failed persist leaves nothing behind", () => {
    const { store, append, count } = setup();
    append(event("$a", { type: "m.room.create", stateKey: "" }));
    const before = [count("events"), count("state_snapshots"), count("state_snapshot_entries"), count("event_edges")];
    // A duplicate event id violates the UNIQUE constraint after the snapshot was written.
    expect(() => append(event("$a", { type: "m.room.topic", stateKey: "", prevEvents: ["$a"] }))).toThrow();
    expect([count("events"), count("state_snapshots"), count("state_snapshot_entries"), count("event_edges")]).toEqual(before);
    expect(store.currentStateEvent(ROOM, "m.room.topic", "")).toBeUndefined();
  });
});

describe("members by membership across rooms", () => {
  test("lists every pending knock, through the membership index", () => {
    const stores = openSqliteStores(":memory:", "better-sqlite3");
    const store = stores.roomEvents;
    let i = 0;
    for (const room of ["!a:example.org", "!b:example.org"]) {
      const create = `$c${i++}`;
      store.persistEvent({ event: { ...event(create, { type: "m.room.create", stateKey: "" }), roomId: room }, stateAfter: { parent: undefined, delta: new Map([[key("m.room.create", ""), create]]) }, updateForwardExtremities: true, updateCurrentState: true });
      let prev = create;
      for (const [user, membership] of [["@k1:example.org", "knock"], ["@j:example.org", "join"], ["@k2:example.org", "knock"]]) {
        const id = `$m${i++}`;
        const parent = store.getEvent(prev)!.stateSnapshot;
        store.persistEvent({
          event: { ...event(id, { type: "m.room.member", stateKey: user, prevEvents: [prev], content: { membership } }), roomId: room },
          stateAfter: { parent, delta: new Map([[key("m.room.member", user), id]]) },
          updateForwardExtremities: true,
          updateCurrentState: true,
        });
        prev = id;
      }
    }
    const knocks = store.membersWithMembership("knock").map((k) => `${k.roomId} ${k.userId}`);
    expect(knocks).toEqual(["!a:example.org @k1:example.org", "!a:example.org @k2:example.org", "!b:example.org @k1:example.org", "!b:example.org @k2:example.org"]);
    const plan = stores.db.prepare<{ detail: string }>("EXPLAIN QUERY PLAN SELECT room_id, state_key, event_id FROM current_state WHERE type = 'm.room.member' AND membership = ? ORDER BY room_id, state_key").all("knock");
    expect(plan.map((p) => p.detail).join(" ")).toContain("current_state_by_membership");
  });
});
