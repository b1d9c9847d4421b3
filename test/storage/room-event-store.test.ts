// The room DAG store on every engine of this run (both SQLite drivers, and PostgreSQL where a server
// can be started): events and edges, extremities, state snapshots and their cache, current state.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";
import { SqlRoomEventStore } from "../../src/storage/room-event-store";
import type { NewEvent, RoomEventStore, StoredEvent } from "../../src/storage/stores";

const ROOM = "!room:example.org";
const key = (type: string, stateKey: string) => `${type}\u0000${stateKey}`;

function event(id: string, fields: Partial<NewEvent> & { content?: Record<string, unknown> } = {}): NewEvent {
  const { content = {}, ...rest } = fields;
  const base = { eventId: id, roomId: ROOM, type: "m.room.message", stateKey: undefined, sender: "@a:example.org", depth: 1, originServerTs: 1, prevEvents: [], authEvents: [], ...rest };
  // The edges are read back from the JSON, as a real event carries them.
  return { ...base, json: JSON.stringify({ type: base.type, state_key: base.stateKey, content, prev_events: base.prevEvents, auth_events: base.authEvents }) };
}

describe.each(testDatabases.map((d) => [d.name, d] as const))("room DAG store on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  let store: RoomEventStore;
  beforeEach(async () => {
    stores = storesOver(await database.open());
    store = stores.roomEvents;
  });
  afterEach(async () => {
    await stores.db.close();
  });
  const count = async (table: string) => (await stores.db.get<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))!.n;
  const counts = () => Promise.all(["events", "state_snapshots", "state_snapshot_entries", "event_edges", "event_auth_edges", "current_state"].map(count));
  /** Appends an event after `prev` (or the current extremities), with state after = before + itself. */
  const append = async (e: NewEvent, on: RoomEventStore = store): Promise<StoredEvent> => {
    const before = e.prevEvents.length ? (await on.getEvent(e.prevEvents[0]))?.stateSnapshot : undefined;
    const delta = new Map<string, string | null>();
    if (e.stateKey !== undefined && !e.rejectedReason) delta.set(key(e.type, e.stateKey), e.eventId);
    return on.persistEvent({ event: e, stateAfter: { parent: before, delta }, updateForwardExtremities: true, updateCurrentState: true });
  };
  /** Counts the range reads (db.all) whose SQL contains `match`, until stop(). */
  const countReads = (match: string) => {
    const all = stores.db.all.bind(stores.db);
    const counter = { count: 0, stop: () => void (stores.db.all = all) };
    stores.db.all = (async (sql: string, ...params: never[]) => {
      if (sql.includes(match)) counter.count++;
      return all(sql, ...params);
    }) as typeof stores.db.all;
    return counter;
  };
  /** A store over the same database with an empty snapshot cache. */
  const uncached = () => new SqlRoomEventStore(stores.db);

  test("events keep their JSON, edges, and get increasing stream orderings", async () => {
    const a = await append(event("$a", { type: "m.room.create", stateKey: "", content: { creator: "@a:example.org" } }));
    const b = await append(event("$b", { prevEvents: ["$a"], authEvents: ["$a"], depth: 2 }));
    expect(a.streamOrdering).toBe(1);
    expect(b.streamOrdering).toBe(2);
    expect(b).toEqual((await store.getEvent("$b"))!);
    expect((await store.getEvent("$b"))?.prevEvents).toEqual(["$a"]);
    expect((await store.getEvent("$b"))?.authEvents).toEqual(["$a"]);
    expect(JSON.parse((await store.getEvent("$a"))!.json).content.creator).toBe("@a:example.org");
    expect(await store.maxStreamOrdering()).toBe(2);
    expect((await store.roomEventsBetween(ROOM, 0, 2, 10)).map((e) => e.eventId)).toEqual(["$a", "$b"]);
    expect((await store.roomEventsBetween(ROOM, 1, 2, 10)).map((e) => e.eventId)).toEqual(["$b"]);
    expect((await store.roomEventsBackwards(ROOM, 2, 0, 10)).map((e) => e.eventId)).toEqual(["$b", "$a"]);
  });

  test("getEvents reads many events with their own edges, in key order, and skips unknown ids", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    await append(event("$b", { prevEvents: ["$a"], authEvents: ["$a"] }));
    // Edges come back sorted and without duplicates, whatever order they were given in.
    const c = await append(event("$c", { prevEvents: ["$b", "$a", "$b"], authEvents: ["$b", "$a"], softFailed: true, depth: 2 ** 40, originServerTs: 1_700_000_000_123, content: { body: "caf\u00e9 \u{1F600}" } }));
    const ids = ["$c", "$nope", "$a", "$b"];
    for (let i = 0; i < 600; i++) ids.push(`$missing${i}`);
    const found = await store.getEvents(ids);
    expect([...found.keys()]).toEqual(["$c", "$a", "$b"]);
    expect(found.get("$a")).toMatchObject({ prevEvents: [], authEvents: [], type: "m.room.create", stateKey: "" });
    expect(found.get("$b")).toMatchObject({ prevEvents: ["$a"], authEvents: ["$a"] });
    expect(found.get("$c")).toMatchObject({ prevEvents: ["$a", "$b"], authEvents: ["$a", "$b"] });
    // persistEvent returns the event as getEvent reads it back.
    expect(found.get("$c")).toEqual((await store.getEvent("$c"))!);
    expect(c).toEqual(found.get("$c")!);
    expect(c).toMatchObject({ softFailed: true, outlier: false, streamOrdering: undefined, depth: 2 ** 40, originServerTs: 1_700_000_000_123 });
    expect(JSON.parse(c.json).content.body).toBe("caf\u00e9 \u{1F600}");
    expect(await store.getEvents([])).toEqual(new Map());
  });

  test("v1/v2 references ([id, hashes] pairs in the JSON) read back as IDs in key order, from every read", async () => {
    await append(event("$a:x", { type: "m.room.create", stateKey: "" }));
    await append(event("$b:x", { prevEvents: ["$a:x"], authEvents: ["$a:x"] }));
    const pairs = (ids: string[]) => ids.map((id) => [id, { sha256: "abc" }]);
    const c: NewEvent = {
      ...event("$c:x", { prevEvents: ["$b:x", "$a:x"], authEvents: ["$b:x", "$a:x"], depth: 3 }),
      json: JSON.stringify({ type: "m.room.message", content: {}, prev_events: pairs(["$b:x", "$a:x", "$b:x"]), auth_events: pairs(["$b:x", "$a:x"]) }),
    };
    await append(c);
    const reads = [await uncached().getEvent("$c:x"), (await uncached().getEvents(["$c:x"])).get("$c:x"), (await store.roomEventsBackwards(ROOM, 100, 0, 1))[0], (await store.roomEventsBetween(ROOM, 2, 100, 1))[0]];
    for (const read of reads) {
      expect(read?.eventId).toBe("$c:x");
      expect(read?.prevEvents).toEqual(["$a:x", "$b:x"]);
      expect(read?.authEvents).toEqual(["$a:x", "$b:x"]);
    }
  });

  test("references are in the order of their UTF-8 bytes, astral characters after the rest of the BMP", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    const ids = ["$\u{10000}", "$\uffff", "$a", "$\u00e9"];
    const stored = await append(event("$odd", { prevEvents: ids, authEvents: ids, depth: 2 }));
    const byBytes = [...ids].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    expect(byBytes).toEqual(["$a", "$\u00e9", "$\uffff", "$\u{10000}"]);
    for (const read of [stored, await uncached().getEvent("$odd")]) {
      expect(read?.prevEvents).toEqual(byBytes);
      expect(read?.authEvents).toEqual(byBytes);
    }
  });

  test("forward extremities follow the DAG, forks included", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    expect(await store.forwardExtremities(ROOM)).toEqual(["$a"]);
    await append(event("$b", { prevEvents: ["$a"] }));
    await append(event("$c", { prevEvents: ["$a"] }));
    expect(await store.forwardExtremities(ROOM)).toEqual(["$b", "$c"]);
    await append(event("$d", { prevEvents: ["$b", "$c"] }));
    expect(await store.forwardExtremities(ROOM)).toEqual(["$d"]);
  });

  test("an event created here becomes an extremity in place of its prev_events without the check for a child, which only a received event needs", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    // A child stored before its parent: a received parent is no extremity ...
    await append(event("$y", { prevEvents: ["$x"] }));
    await append(event("$x", { prevEvents: ["$a"] }));
    expect(await store.forwardExtremities(ROOM)).toEqual(["$y"]);
    expect(await uncached().forwardExtremities(ROOM)).toEqual(["$y"]);
    // ... while one created here is taken as new: nothing stored can list it yet, so nothing is asked.
    const reads: string[] = [];
    const run = stores.db.run.bind(stores.db);
    stores.db.run = ((sql: string, ...params: never[]) => {
      reads.push(sql);
      return run(sql, ...params);
    }) as typeof stores.db.run;
    const e = event("$n", { prevEvents: ["$y"] });
    await store.persistEvent({ event: e, stateAfter: { parent: (await store.getEvent("$y"))!.stateSnapshot, delta: new Map() }, updateForwardExtremities: true, createdHere: true, updateCurrentState: true });
    stores.db.run = run;
    expect(reads.filter((sql) => sql.includes("forward_extremities")).some((sql) => sql.includes("NOT EXISTS"))).toBe(false);
    expect(await store.forwardExtremities(ROOM)).toEqual(["$n"]);
    expect(await uncached().forwardExtremities(ROOM)).toEqual(["$n"]);
    // Nor is it written down for that check: no event arriving later can be among its prev_events.
    const edgesOf = async (id: string) =>
      (await stores.db.get<{ n: number }>("SELECT count(*) AS n FROM event_edges WHERE event_nid = (SELECT event_nid FROM events WHERE event_id = ?)", id))!.n;
    expect(await edgesOf("$n")).toBe(0);
    expect(await edgesOf("$x")).toBe(1);
    expect((await store.getEvent("$n"))!.prevEvents).toEqual(["$y"]);
    // An event received later that builds on it replaces it as the extremity.
    await append(event("$r", { prevEvents: ["$n"] }));
    expect(await store.forwardExtremities(ROOM)).toEqual(["$r"]);
    expect(await uncached().forwardExtremities(ROOM)).toEqual(["$r"]);
  });

  test("extremities and the current snapshot kept in memory follow every write, and a rollback forgets them", async () => {
    const fresh = () => uncached();
    const same = async () => {
      expect(await store.forwardExtremities(ROOM)).toEqual(await fresh().forwardExtremities(ROOM));
      expect(await store.currentStateSnapshot(ROOM)).toBe((await fresh().currentStateSnapshot(ROOM))!);
    };
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    await same();
    await append(event("$c", { prevEvents: ["$a"] }));
    await append(event("$b", { prevEvents: ["$a"] }));
    expect(await store.forwardExtremities(ROOM)).toEqual(["$b", "$c"]);
    await same();
    // A child that arrived before its parent: the parent, once stored, is no extremity.
    await append(event("$y", { prevEvents: ["$x"] }));
    await append(event("$x", { prevEvents: ["$b", "$c"] }));
    expect(await store.forwardExtremities(ROOM)).toEqual(["$y"]);
    await same();
    // The copy handed out is the caller's own.
    (await store.forwardExtremities(ROOM)).push("$mine");
    await same();
    const snapshot = await store.currentStateSnapshot(ROOM);
    await expect(
      store.atomically(async () => {
        await append(event("$t", { type: "m.room.topic", stateKey: "", prevEvents: ["$y"] }));
        expect(await store.forwardExtremities(ROOM)).toEqual(["$t"]);
        expect(await store.currentStateSnapshot(ROOM)).not.toBe(snapshot);
        // Written earlier in this transaction: readable here before it commits.
        expect((await store.getEvent("$t"))?.eventId).toBe("$t");
        expect([...(await store.getEvents(["$t", "$a"])).keys()]).toEqual(["$t", "$a"]);
        throw new Error("changed my mind");
      }),
    ).rejects.toThrow("changed my mind");
    expect(await store.forwardExtremities(ROOM)).toEqual(["$y"]);
    expect(await store.currentStateSnapshot(ROOM)).toBe(snapshot!);
    await stores.db.transaction(async () => {
      expect(await store.getEvent("$t")).toBeUndefined();
    });
    await same();
  });

  test("outliers and rejected events are stored but stay out of the timeline and the extremities", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    const rejected = await append(event("$r", { prevEvents: ["$a"], type: "m.room.name", stateKey: "", rejectedReason: "auth_error" }));
    expect(rejected.streamOrdering).toBeUndefined();
    expect(rejected.rejectedReason).toBe("auth_error");
    const outlier = await store.persistEvent({ event: event("$o", { outlier: true }), updateForwardExtremities: true, updateCurrentState: false });
    expect(outlier.outlier).toBe(true);
    expect(outlier.streamOrdering).toBeUndefined();
    expect(await store.forwardExtremities(ROOM)).toEqual(["$a"]);
    expect(await store.currentStateEvent(ROOM, "m.room.name", "")).toBeUndefined();
  });

  test("an accepted outlier that backfill reaches moves into the timeline below everything held, once; read back fresh", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    const outlier = await store.persistEvent({ event: event("$o", { outlier: true, prevEvents: ["$a"], authEvents: ["$a"] }), updateForwardExtremities: false, updateCurrentState: false });
    expect(outlier.outlier).toBe(true);
    expect((await store.getEvent("$o"))?.outlier).toBe(true); // now in the read cache
    const edges = await counts();
    const promoted = await store.persistEvent({
      event: event("$o", { prevEvents: ["$a"], authEvents: ["$a"], promoteOutlier: true }),
      stateAfter: { parent: (await store.getEvent("$a"))!.stateSnapshot, delta: new Map() },
      updateForwardExtremities: false,
      updateCurrentState: false,
      historicalOrdering: -5,
    });
    expect(promoted).toMatchObject({ eventId: "$o", outlier: false, streamOrdering: -5 });
    expect(await store.getEvent("$o")).toMatchObject({ outlier: false, streamOrdering: -5, prevEvents: ["$a"] });
    expect(await uncached().getEvent("$o")).toMatchObject({ outlier: false, streamOrdering: -5 });
    // The same row: no second event, no new edges; the extremities and current state untouched.
    expect((await counts())[0]).toBe(edges[0]);
    expect((await counts())[3]).toBe(edges[3]);
    expect(await store.forwardExtremities(ROOM)).toEqual(["$a"]);
    expect((await store.roomEventsBackwards(ROOM, 0, Number.MIN_SAFE_INTEGER, 10)).map((e) => e.eventId)).toEqual(["$o"]);
    // Only an outlier moves, and only once.
    const again = store.persistEvent({ event: event("$o", { promoteOutlier: true }), stateAfter: { parent: undefined, delta: new Map() }, updateForwardExtremities: false, updateCurrentState: false, historicalOrdering: -6 });
    await expect(again).rejects.toThrow();
  });

  test("a room's newest events are read once for every reader after a position, until the room is written to", async () => {
    await append(event("$c", { type: "m.room.create", stateKey: "" }));
    let prev = "$c";
    for (let i = 0; i < 5; i++) prev = (await append(event(`$m${i}`, { prevEvents: [prev] }))).eventId;
    const since = (await store.getEvent("$m2"))!.streamOrdering!;
    const head = (await store.getEvent("$m4"))!.streamOrdering!;
    const reads = countReads("ORDER BY stream_ordering DESC");
    const ids = async (after: number, limit = 10) => (await store.roomEventsBackwards(ROOM, head + 100, after, limit)).map((e) => e.eventId);
    expect(await ids(since)).toEqual(["$m4", "$m3"]);
    const afterFirst = reads.count;
    expect(await ids(since)).toEqual(["$m4", "$m3"]);
    expect(await ids(since, 1)).toEqual(["$m4"]);
    expect(await ids((await store.getEvent("$m3"))!.streamOrdering!)).toEqual(["$m4"]);
    expect(reads.count).toBe(afterFirst); // served from the room's tail
    // Further back than the tail holds: the table answers.
    expect(await store.roomEventsBackwards(ROOM, (await store.getEvent("$m3"))!.streamOrdering!, 0, 10)).toHaveLength(5);
    expect(reads.count).toBe(afterFirst + 1);
    // A write drops it: the next read sees the new event.
    await append(event("$m5", { prevEvents: ["$m4"] }));
    expect(await ids(since)).toEqual(["$m5", "$m4", "$m3"]);
    // Below what the tail holds, the table answers (here, history below zero).
    expect((await store.roomEventsBackwards(ROOM, head + 100, Number.MIN_SAFE_INTEGER, 100)).map((e) => e.eventId)).toEqual(["$m5", "$m4", "$m3", "$m2", "$m1", "$m0", "$c"]);
    reads.stop();

    // A tail filled while a write to the room is open (but not committed) is dropped at its commit.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let written!: () => void;
    const inside = new Promise<void>((resolve) => (written = resolve));
    const writing = stores.db.transaction(async () => {
      await append(event("$m6", { prevEvents: ["$m5"] }));
      written();
      await gate;
    });
    await inside;
    // Outside the transaction: fills the tail with what a reader sees meanwhile (on PostgreSQL, the
    // room before the write; SQLite's one connection answers it after the commit).
    const meanwhile = ids(since);
    await Bun.sleep(50);
    release();
    await writing;
    await meanwhile;
    expect(await ids(since)).toEqual(["$m6", "$m5", "$m4", "$m3"]);
  });

  test("a room's tail takes each new event in once it is durable, instead of being read again; a rolled-back one never", async () => {
    await append(event("$c", { type: "m.room.create", stateKey: "" }));
    let prev = "$c";
    for (let i = 0; i < 3; i++) prev = (await append(event(`$m${i}`, { prevEvents: [prev] }))).eventId;
    const since = (await store.getEvent("$m0"))!.streamOrdering!;
    const reads = countReads("ORDER BY stream_ordering DESC");
    const ids = async () => (await store.roomEventsBackwards(ROOM, Number.MAX_SAFE_INTEGER, since, 10)).map((e) => e.eventId);
    expect(await ids()).toEqual(["$m2", "$m1"]);
    expect(reads.count).toBe(1);
    // Written on its own, then two in one transaction: served from memory, new events first.
    await append(event("$m3", { prevEvents: ["$m2"] }));
    expect(await ids()).toEqual(["$m3", "$m2", "$m1"]);
    await stores.db.transaction(async () => {
      await append(event("$m4", { prevEvents: ["$m3"] }));
      await append(event("$m5", { prevEvents: ["$m4"] }));
    });
    expect(await ids()).toEqual(["$m5", "$m4", "$m3", "$m2", "$m1"]);
    // An outlier is not in the timeline: the tail stays as it is.
    await store.persistEvent({ event: event("$out", { outlier: true }), updateForwardExtremities: false, updateCurrentState: false });
    expect(await ids()).toEqual(["$m5", "$m4", "$m3", "$m2", "$m1"]);
    expect(reads.count).toBe(1);
    // A savepoint rolled back inside a transaction that commits: what it wrote is not in the tail.
    await stores.db.transaction(async () => {
      await append(event("$m6", { prevEvents: ["$m5"] }));
      await expect(store.atomically(async () => {
        await append(event("$gone", { prevEvents: ["$m6"] }));
        throw new Error("undone");
      })).rejects.toThrow("undone");
    });
    expect(await ids()).toEqual(["$m6", "$m5", "$m4", "$m3", "$m2", "$m1"]);
    expect(await store.getEvent("$gone")).toBeUndefined();
    reads.stop();
  });

  test("a user's rooms are read once and follow every write of their member events: a delta, a resolved state, a rollback, an open write", async () => {
    const A = "@a:example.org";
    const reads = countReads("c.membership IN");
    const rooms = async () => (await store.roomsOfMember(A)).map((m) => [m.roomId, m.membership, m.eventId]);
    await append(event("$c", { type: "m.room.create", stateKey: "" }));
    expect(await rooms()).toEqual([]);
    await append(event("$j", { prevEvents: ["$c"], type: "m.room.member", stateKey: A, content: { membership: "join" } }));
    expect(await rooms()).toEqual([[ROOM, "join", "$j"]]);
    const afterJoin = reads.count;
    // Messages and other members' events leave it where it is.
    await append(event("$m", { prevEvents: ["$j"] }));
    await append(event("$b", { prevEvents: ["$m"], type: "m.room.member", stateKey: "@b:example.org", content: { membership: "join" } }));
    expect(await rooms()).toEqual([[ROOM, "join", "$j"]]);
    expect(await rooms()).toEqual([[ROOM, "join", "$j"]]);
    expect(reads.count).toBe(afterJoin);
    // A rolled-back leave is not seen; a committed one is.
    await expect(stores.db.transaction(async () => {
      await append(event("$l0", { prevEvents: ["$b"], type: "m.room.member", stateKey: A, content: { membership: "leave" } }));
      expect(await rooms()).toEqual([[ROOM, "leave", "$l0"]]);
      throw new Error("undone");
    })).rejects.toThrow("undone");
    expect(await rooms()).toEqual([[ROOM, "join", "$j"]]);
    await append(event("$l", { prevEvents: ["$b"], type: "m.room.member", stateKey: A, content: { membership: "leave" } }));
    expect(await rooms()).toEqual([[ROOM, "leave", "$l"]]);
    // A resolved state that puts the join back (current state replaced, not a delta).
    const parent = (await store.getEvent("$b"))!.stateSnapshot;
    await store.persistEvent({
      event: event("$r", { prevEvents: ["$l"] }),
      stateAfter: { parent, delta: new Map() },
      updateForwardExtremities: true,
      updateCurrentState: { parent, delta: new Map() },
    });
    expect(await rooms()).toEqual([[ROOM, "join", "$j"]]);
    // Read while a write of a member event is open: not kept past its commit.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let written!: () => void;
    const inside = new Promise<void>((resolve) => (written = resolve));
    const writing = stores.db.transaction(async () => {
      await append(event("$l2", { prevEvents: ["$r"], type: "m.room.member", stateKey: A, content: { membership: "leave" } }));
      written();
      await gate;
    });
    await inside;
    const meanwhile = rooms();
    await Bun.sleep(50);
    release();
    await writing;
    await meanwhile;
    expect(await rooms()).toEqual([[ROOM, "leave", "$l2"]]);
    reads.stop();
  });

  test("several current state entries in one call, only those present", async () => {
    await append(event("$c", { type: "m.room.create", stateKey: "" }));
    await append(event("$m", { prevEvents: ["$c"], type: "m.room.member", stateKey: "@a:example.org" }));
    await append(event("$n", { prevEvents: ["$m"], type: "m.room.name", stateKey: "" }));
    const found = await store.currentStateEvents(ROOM, [["m.room.create", ""], ["m.room.member", "@a:example.org"], ["m.room.member", "@b:example.org"], ["m.room.power_levels", ""]]);
    expect(found).toEqual(new Map([[key("m.room.create", ""), "$c"], [key("m.room.member", "@a:example.org"), "$m"]]));
    expect(await store.currentStateEvents(ROOM, [])).toEqual(new Map());
    expect(await store.currentStateEvents("!other:example.org", [["m.room.create", ""]])).toEqual(new Map());
  });

  test("the room record is written with the create event", async () => {
    const room = { roomId: ROOM, roomVersion: "12", creator: "@a:example.org", createdTs: 1_700_000_000_000 };
    await store.persistEvent({ event: event("$a", { type: "m.room.create", stateKey: "" }), stateAfter: { parent: undefined, delta: new Map([[key("m.room.create", ""), "$a"]]) }, updateForwardExtremities: true, updateCurrentState: true, createRoom: room });
    expect(await store.getRoom(ROOM)).toEqual(room);
    expect(await store.getRoom("!other:example.org")).toBeUndefined();
  });

  test("a message writes no state rows; a state event writes one", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    const rowsAfterCreate = await count("state_snapshot_entries");
    const msg = await append(event("$m", { prevEvents: ["$a"] }));
    expect(await count("state_snapshot_entries")).toBe(rowsAfterCreate);
    expect(msg.stateSnapshot).toBe((await store.getEvent("$a"))!.stateSnapshot);
    await append(event("$t", { prevEvents: ["$m"], type: "m.room.topic", stateKey: "" }));
    expect(await count("state_snapshot_entries")).toBe(rowsAfterCreate + 1);
    expect(await store.stateAt((await store.getEvent("$t"))!.stateSnapshot!)).toEqual(
      new Map([
        [key("m.room.create", ""), "$a"],
        [key("m.room.topic", ""), "$t"],
      ]),
    );
  });

  test(
    "state rows grow linearly with members, and every snapshot reads back the folded state",
    async () => {
      await append(event("$0", { type: "m.room.create", stateKey: "" }));
      const members = 1500;
      const expected = new Map([[key("m.room.create", ""), "$0"]]);
      const snapshots: [number, Map<string, string>][] = [];
      for (let i = 1; i <= members; i++) {
        const stateKey = `@u${i}:example.org`;
        const stored = await append(event(`$${i}`, { prevEvents: [`$${i - 1}`], type: "m.room.member", stateKey, content: { membership: "join" } }));
        expected.set(key("m.room.member", stateKey), `$${i}`);
        if (i % 250 === 0 || i === 77) snapshots.push([stored.stateSnapshot!, new Map(expected)]);
      }
      // Whole snapshots are written only when a chain's deltas reach a quarter of the state: about
      // 5 rows per state event in all, where writing whole every 32 events would be ~members/64 each.
      expect(await count("state_snapshot_entries")).toBeLessThan(members * 6);
      const reopened = uncached();
      for (const [snapshot, state] of snapshots) {
        expect(await reopened.stateAt(snapshot)).toEqual(state);
        expect(await reopened.stateEntryAt(snapshot, "m.room.member", "@u77:example.org")).toBe("$77");
        expect(await reopened.stateEntryAt(snapshot, "m.room.member", "@nobody:example.org")).toBeUndefined();
      }
      expect(await store.currentState(ROOM)).toEqual(expected);
      expect((await store.currentMemberships(ROOM)).size).toBe(members);
    },
    60_000,
  );

  test("a key removed in a delta stays removed along the chain", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    await append(event("$n", { prevEvents: ["$a"], type: "m.room.name", stateKey: "" }));
    const parent = (await store.getEvent("$n"))!.stateSnapshot;
    const removed = await store.persistEvent({
      event: event("$x", { prevEvents: ["$n"] }),
      stateAfter: { parent, delta: new Map([[key("m.room.name", ""), null]]) },
      updateForwardExtremities: true,
      updateCurrentState: true,
    });
    await append(event("$t", { prevEvents: ["$x"], type: "m.room.topic", stateKey: "" }));
    const fresh = uncached();
    expect(await fresh.stateAt((await store.getEvent("$t"))!.stateSnapshot!)).toEqual(new Map([[key("m.room.create", ""), "$a"], [key("m.room.topic", ""), "$t"]]));
    expect(await fresh.stateEntryAt(removed.stateSnapshot!, "m.room.name", "")).toBeUndefined();
  });

  test("state keys with any characters read back exactly (PostgreSQL stores the separator escaped)", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    const odd = ["100%", "%00", "a%25b", "%", "\u00e9\u{1F600}"];
    let prev = "$a";
    const expected = new Map([[key("m.room.create", ""), "$a"]]);
    for (const [i, stateKey] of odd.entries()) {
      await append(event(`$s${i}`, { prevEvents: [prev], type: "org.example.%", stateKey }));
      expected.set(key("org.example.%", stateKey), `$s${i}`);
      prev = `$s${i}`;
    }
    const snapshot = (await store.getEvent(prev))!.stateSnapshot!;
    const fresh = uncached();
    expect(await fresh.stateAt(snapshot)).toEqual(expected);
    for (const [i, stateKey] of odd.entries()) expect(await fresh.stateEntryAt(snapshot, "org.example.%", stateKey)).toBe(`$s${i}`);
    expect(await fresh.stateEntryAt(snapshot, "org.example.%", "%2500")).toBeUndefined();
    expect(await store.currentState(ROOM)).toEqual(expected);
  });

  test("a resolved state that drops a key removes it from current state", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    await append(event("$n", { prevEvents: ["$a"], type: "m.room.name", stateKey: "" }));
    const parent = (await store.getEvent("$n"))!.stateSnapshot;
    await store.persistEvent({
      event: event("$x", { prevEvents: ["$n"] }),
      stateAfter: { parent, delta: new Map([[key("m.room.name", ""), null]]) },
      updateForwardExtremities: true,
      updateCurrentState: true,
    });
    expect(await store.currentStateEvent(ROOM, "m.room.name", "")).toBeUndefined();
    expect(await store.currentState(ROOM)).toEqual(new Map([[key("m.room.create", ""), "$a"]]));
  });

  test("current state moves to a resolved state given as parent + delta, memberships included", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    await append(event("$j", { prevEvents: ["$a"], type: "m.room.member", stateKey: "@a:example.org", content: { membership: "join" } }));
    await append(event("$i", { prevEvents: ["$a"], type: "m.room.member", stateKey: "@b:example.org", content: { membership: "invite" } }));
    const parent = (await store.getEvent("$j"))!.stateSnapshot;
    await store.persistEvent({
      event: event("$m", { prevEvents: ["$j", "$i"] }),
      stateAfter: { parent, delta: new Map([[key("m.room.member", "@b:example.org"), "$i"]]) },
      updateForwardExtremities: true,
      updateCurrentState: { parent, delta: new Map([[key("m.room.member", "@b:example.org"), "$i"]]) },
    });
    expect(await store.currentMemberships(ROOM)).toEqual(new Map([["@a:example.org", "join"], ["@b:example.org", "invite"]]));
    // The resolved state is written as a snapshot of its own, and current state points at it.
    expect(await store.stateAt((await store.currentStateSnapshot(ROOM))!)).toEqual(await store.currentState(ROOM));
  });

  test("current state tracks memberships", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    await append(event("$j", { prevEvents: ["$a"], type: "m.room.member", stateKey: "@a:example.org", content: { membership: "join" } }));
    await append(event("$k", { prevEvents: ["$j"], type: "m.room.member", stateKey: "@k:example.org", content: { membership: "knock" } }));
    expect(await store.currentMemberships(ROOM)).toEqual(new Map([["@a:example.org", "join"], ["@k:example.org", "knock"]]));
    expect(await store.roomsWithMembership("@k:example.org", "knock")).toEqual([ROOM]);
    await append(event("$l", { prevEvents: ["$k"], type: "m.room.member", stateKey: "@k:example.org", content: { membership: "leave" } }));
    expect(await store.roomsWithMembership("@k:example.org", "knock")).toEqual([]);
    expect((await store.currentMemberships(ROOM)).get("@k:example.org")).toBe("leave");
  });

  test("a room's current memberships are read from the engine once, until a member event of it changes current state", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    await append(event("$j", { prevEvents: ["$a"], type: "m.room.member", stateKey: "@a:example.org", content: { membership: "join" } }));
    let queries = 0;
    const all = stores.db.all.bind(stores.db);
    stores.db.all = ((...args: Parameters<typeof all>) => {
      queries++;
      return all(...args);
    }) as typeof all;
    expect(await store.currentMemberships(ROOM)).toEqual(new Map([["@a:example.org", "join"]]));
    expect(await store.currentMemberships(ROOM)).toEqual(new Map([["@a:example.org", "join"]]));
    expect(queries).toBe(1);
    // Other state and messages leave them kept.
    await append(event("$t", { prevEvents: ["$j"], type: "m.room.topic", stateKey: "" }));
    await append(event("$m", { prevEvents: ["$t"] }));
    queries = 0;
    expect(await store.currentMemberships(ROOM)).toEqual(new Map([["@a:example.org", "join"]]));
    expect(queries).toBe(0);
    await append(event("$b", { prevEvents: ["$m"], type: "m.room.member", stateKey: "@b:example.org", content: { membership: "invite" } }));
    expect(await store.currentMemberships(ROOM)).toEqual(new Map([["@a:example.org", "join"], ["@b:example.org", "invite"]]));
  });

  test("auth chains follow auth_events transitively", async () => {
    await append(event("$c", { type: "m.room.create", stateKey: "" }));
    await append(event("$j", { prevEvents: ["$c"], authEvents: ["$c"], type: "m.room.member", stateKey: "@a:example.org" }));
    await append(event("$p", { prevEvents: ["$j"], authEvents: ["$c", "$j"], type: "m.room.power_levels", stateKey: "" }));
    await append(event("$m", { prevEvents: ["$p"], authEvents: ["$c", "$j", "$p"] }));
    expect(await store.authChain(["$m"])).toEqual(new Set(["$c", "$j", "$p"]));
    expect(await store.authChain(["$j"])).toEqual(new Set(["$c"]));
    expect(await store.authChain(["$j", "$unknown", "$p"])).toEqual(new Set(["$c", "$j"]));
    expect(await store.authChain([])).toEqual(new Set());
  });

  test("edges are stored by the event's id, sent with its row: several prev and auth events (lists padded to a power of two), and a duplicate event id writes none", async () => {
    await append(event("$c", { type: "m.room.create", stateKey: "" }));
    for (const id of ["$x1", "$x2", "$x3", "$x4"]) await append(event(id, { prevEvents: ["$c"], authEvents: ["$c"] }));
    await append(event("$m", { prevEvents: ["$x3", "$x1", "$x2"], authEvents: ["$x4", "$c", "$x1", "$x3", "$x2"] }));
    const stored = await store.getEvent("$m");
    expect(stored?.prevEvents).toEqual(["$x1", "$x2", "$x3"]);
    expect(stored?.authEvents).toEqual(["$c", "$x1", "$x2", "$x3", "$x4"]);
    expect(await store.authChain(["$m"])).toEqual(new Set(["$c", "$x1", "$x2", "$x3", "$x4"]));
    // A second event with $m's id fails as a whole: its edges do not join $m's.
    await expect(append(event("$m", { prevEvents: ["$x4"], authEvents: ["$x4"] }))).rejects.toThrow();
    const again = await store.getEvent("$m");
    expect([again?.prevEvents, again?.authEvents]).toEqual([["$x1", "$x2", "$x3"], ["$c", "$x1", "$x2", "$x3", "$x4"]]);
  });

  test("a failed persist leaves nothing behind", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    const before = await counts();
    // A duplicate event id violates the UNIQUE constraint after the snapshot was written.
    await expect(append(event("$a", { type: "m.room.topic", stateKey: "", prevEvents: ["$a"] }))).rejects.toThrow();
    expect(await counts()).toEqual(before);
    expect(await store.currentStateEvent(ROOM, "m.room.topic", "")).toBeUndefined();
  });

  test("a rollback inside atomically leaves no event, snapshot or cached state behind", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    const before = await counts();
    let written: number | undefined;
    await expect(
      store.atomically(async () => {
        const t = await append(event("$t", { type: "m.room.topic", stateKey: "", prevEvents: ["$a"] }));
        written = t.stateSnapshot;
        // Read inside the transaction: this caches the uncommitted snapshot.
        expect(await store.stateAt(written!)).toEqual(new Map([[key("m.room.create", ""), "$a"], [key("m.room.topic", ""), "$t"]]));
        throw new Error("changed my mind");
      }),
    ).rejects.toThrow("changed my mind");
    expect(await counts()).toEqual(before);
    expect(await store.getEvent("$t")).toBeUndefined();
    expect(await store.currentStateEvent(ROOM, "m.room.topic", "")).toBeUndefined();
    expect(await store.forwardExtremities(ROOM)).toEqual(["$a"]);
    // Served from a stale cache, the rolled-back snapshot would still read back.
    await expect(store.stateAt(written!)).rejects.toThrow("does not exist");
    expect(await store.stateEntryAt(written!, "m.room.topic", "")).toBeUndefined();
    // Where the engine reuses the number (SQLite rowids), it now holds the new state only.
    const n = await append(event("$n", { type: "m.room.name", stateKey: "", prevEvents: ["$a"] }));
    expect(await store.stateAt(n.stateSnapshot!)).toEqual(new Map([[key("m.room.create", ""), "$a"], [key("m.room.name", ""), "$n"]]));
    if (n.stateSnapshot === written) expect(await store.stateEntryAt(written!, "m.room.topic", "")).toBeUndefined();
  });

  test("a savepoint rolled back inside a transaction that commits publishes nothing it cached", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    // Snapshots are written whole when their parent is undefined: the write itself caches the map.
    let written: number | undefined;
    await store.atomically(async () => {
      await expect(
        store.atomically(async () => {
          const t = await store.persistEvent({ event: event("$t", { type: "m.room.topic", stateKey: "" }), stateAfter: { parent: undefined, delta: new Map([[key("m.room.topic", ""), "$t"]]) }, updateForwardExtremities: false, updateCurrentState: false });
          written = t.stateSnapshot;
          throw new Error("inner");
        }),
      ).rejects.toThrow("inner");
      await store.persistEvent({ event: event("$m", { prevEvents: ["$a"] }), stateAfter: { parent: (await store.getEvent("$a"))!.stateSnapshot, delta: new Map() }, updateForwardExtremities: true, updateCurrentState: true });
    });
    expect(await store.getEvent("$m")).toBeDefined();
    expect(await store.getEvent("$t")).toBeUndefined();
    await expect(store.stateAt(written!)).rejects.toThrow("does not exist");
  });

  test("a reader outside an open transaction never sees the snapshots cached inside it", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let written!: (nid: number) => void;
    const snapshot = new Promise<number>((resolve) => (written = resolve));
    const transaction = store.atomically(async () => {
      const t = await store.persistEvent({ event: event("$t", { type: "m.room.topic", stateKey: "" }), stateAfter: { parent: undefined, delta: new Map([[key("m.room.topic", ""), "$t"]]) }, updateForwardExtremities: false, updateCurrentState: false });
      written(t.stateSnapshot!);
      await gate;
      throw new Error("rolled back");
    });
    const nid = await snapshot;
    // Outside the transaction: this must not be answered from the open transaction's cache.
    const outside = store.stateAt(nid).then(
      (state) => state,
      (error: Error) => error,
    );
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    await expect(transaction).rejects.toThrow("rolled back");
    const seen = await outside;
    expect(seen).toBeInstanceOf(Error);
    expect((seen as Error).message).toContain("does not exist");
  });

  test("a snapshot cached inside a transaction is served from the cache once it committed", async () => {
    await append(event("$a", { type: "m.room.create", stateKey: "" }));
    const t = await store.atomically(() =>
      store.persistEvent({ event: event("$t", { type: "m.room.topic", stateKey: "" }), stateAfter: { parent: undefined, delta: new Map([[key("m.room.topic", ""), "$t"]]) }, updateForwardExtremities: false, updateCurrentState: false }),
    );
    // Gone from the database, still served: it came from the cache the commit published to.
    await stores.db.transaction(async () => {
      await stores.db.run("DELETE FROM state_snapshot_entries WHERE snapshot_nid = ?", t.stateSnapshot!);
    });
    expect(await store.stateAt(t.stateSnapshot!)).toEqual(new Map([[key("m.room.topic", ""), "$t"]]));
    expect(await uncached().stateAt(t.stateSnapshot!)).toEqual(new Map());
  });

  test("events of two rooms persisted concurrently get gap-free, increasing stream orderings and all read back", async () => {
    const rooms = ["!one:example.org", "!two:example.org"];
    const perRoom = 25;
    // Writes to one room are queued (one persist at a time); different rooms run concurrently.
    const persistRoom = async (room: string): Promise<StoredEvent[]> => {
      const stored: StoredEvent[] = [];
      let prev: string | undefined;
      for (let i = 0; i < perRoom; i++) {
        const id = `$${room.slice(1, 4)}${i}`;
        const e = { ...event(id, i === 0 ? { type: "m.room.create", stateKey: "" } : { type: "m.room.member", stateKey: `@u${i}:example.org`, prevEvents: [prev!], content: { membership: "join" } }), roomId: room };
        stored.push(await append(e));
        prev = id;
      }
      return stored;
    };
    const [one, two] = await Promise.all(rooms.map(persistRoom));
    const orderings = [...one, ...two].map((e) => e.streamOrdering!).sort((a, b) => a - b);
    expect(orderings).toEqual(Array.from({ length: 2 * perRoom }, (_, i) => i + 1));
    for (const list of [one, two]) {
      for (let i = 1; i < list.length; i++) expect(list[i].streamOrdering!).toBeGreaterThan(list[i - 1].streamOrdering!);
    }
    // Both rooms interleaved rather than one after the other: the writes really were concurrent.
    expect(one.some((e) => e.streamOrdering! > two[0].streamOrdering!) && two.some((e) => e.streamOrdering! > one[0].streamOrdering!)).toBe(true);
    expect(await store.maxStreamOrdering()).toBe(2 * perRoom);
    for (const [room, list] of [[rooms[0], one], [rooms[1], two]] as const) {
      expect((await store.roomEventsBetween(room, 0, 2 * perRoom, 100)).map((e) => e.eventId)).toEqual(list.map((e) => e.eventId));
      expect((await store.currentMemberships(room)).size).toBe(perRoom - 1);
      expect(await store.forwardExtremities(room)).toEqual([list[list.length - 1].eventId]);
    }
  });

  test("lists every pending knock across rooms, through the membership index", async () => {
    let i = 0;
    for (const room of ["!a:example.org", "!b:example.org"]) {
      const create = `$c${i++}`;
      await store.persistEvent({ event: { ...event(create, { type: "m.room.create", stateKey: "" }), roomId: room }, stateAfter: { parent: undefined, delta: new Map([[key("m.room.create", ""), create]]) }, updateForwardExtremities: true, updateCurrentState: true });
      let prev = create;
      for (const [user, membership] of [["@k1:example.org", "knock"], ["@j:example.org", "join"], ["@k2:example.org", "knock"]]) {
        const id = `$m${i++}`;
        const parent = (await store.getEvent(prev))!.stateSnapshot;
        await store.persistEvent({
          event: { ...event(id, { type: "m.room.member", stateKey: user, prevEvents: [prev], content: { membership } }), roomId: room },
          stateAfter: { parent, delta: new Map([[key("m.room.member", user), id]]) },
          updateForwardExtremities: true,
          updateCurrentState: true,
        });
        prev = id;
      }
    }
    const knocks = (await store.membersWithMembership("knock")).map((k) => `${k.roomId} ${k.userId}`);
    expect(knocks).toEqual(["!a:example.org @k1:example.org", "!a:example.org @k2:example.org", "!b:example.org @k1:example.org", "!b:example.org @k2:example.org"]);
    const query = "SELECT room_id, state_key, event_id FROM current_state WHERE type = 'm.room.member' AND membership = 'knock' ORDER BY room_id, state_key";
    let plan: string;
    if (stores.db.dialect === "sqlite") {
      plan = (await stores.db.all<{ detail: string }>(`EXPLAIN QUERY PLAN ${query}`)).map((p) => p.detail).join(" ");
    } else {
      // A handful of rows would be scanned whole: ask the planner what it would use for many.
      plan = await stores.db.transaction(async () => {
        await stores.db.exec("SET LOCAL enable_seqscan = off");
        return (await stores.db.all<{ "QUERY PLAN": string }>(`EXPLAIN ${query}`)).map((p) => p["QUERY PLAN"]).join(" ");
      });
    }
    expect(plan).toContain("current_state_by_membership");
  });
});
