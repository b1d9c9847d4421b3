// A room's heads (its current snapshot and forward extremities) while a write of them is open: the
// write keeps them up to date until its commit, while on PostgreSQL a reader outside it reads the
// pool, which sees the state before the write. The memory trimmer may empty the cache at any moment
// between two awaits, also then; readers outside must still not keep the heads from before the write
// (the room's next event would be built on them, losing the write's state change and forking the
// extremities), nor take the write's own before its commit.
import { afterAll, describe, expect, test } from "bun:test";
import { testDatabases } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";
import { SqlRoomEventStore } from "../../src/storage/room-event-store";
import type { NewEvent, StoredEvent } from "../../src/storage/stores";
import { trimMemory } from "../../src/services/metrics/memory-trimmer";

const ROOM = "!room:example.org";
const key = (type: string, stateKey: string) => `${type}\u0000${stateKey}`;
function event(id: string, fields: Partial<NewEvent> = {}): NewEvent {
  const base = { eventId: id, roomId: ROOM, type: "m.room.message", stateKey: undefined, sender: "@a:example.org", depth: 1, originServerTs: 1, prevEvents: [], authEvents: [], ...fields };
  return { ...base, json: JSON.stringify({ type: base.type, state_key: base.stateKey, content: {}, prev_events: base.prevEvents, auth_events: base.authEvents }) };
}

/** A store over a fresh database, and `send` as the room engine persists a local event (its parent: the current snapshot the store reports). */
async function roomStore(database: (typeof testDatabases)[number]) {
  const stores = storesOver(await database.open());
  opened.push(stores);
  const store = stores.roomEvents;
  const send = async (e: NewEvent) => {
    const delta = new Map<string, string | null>();
    if (e.stateKey !== undefined) delta.set(key(e.type, e.stateKey), e.eventId);
    return store.persistEvent({ event: e, stateAfter: { parent: await store.currentStateSnapshot(ROOM), delta }, updateForwardExtremities: true, updateCurrentState: true, createdHere: true });
  };
  return { stores, store, send };
}

/**
 * A room write left open after its event is persisted (as a send's transaction id and the COMMIT
 * still to come): resolves once it is there, with how to let it finish and its result.
 */
async function openWrite(store: Stores["roomEvents"], persist: () => Promise<StoredEvent>): Promise<{ release: () => void; write: Promise<StoredEvent> }> {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let persisted!: () => void;
  const reached = new Promise<void>((r) => (persisted = r));
  const write = store.atomically(async () => {
    const stored = await persist();
    persisted();
    await gate;
    return stored;
  });
  await reached;
  return { release, write };
}

const opened: Stores[] = [];
afterAll(async () => {
  for (const s of opened) await s.db.close();
});

describe.each(testDatabases.map((d) => [d.name, d] as const))("a quiet trim during a room write on %s", (_name, database) => {
  test("readers outside the write do not keep the heads from before it; the next event builds on the write", async () => {
    const { stores, store, send } = await roomStore(database);
    await send(event("$create", { type: "m.room.create", stateKey: "" }));
    await send(event("$alice", { type: "m.room.member", stateKey: "@a:example.org", prevEvents: ["$create"], depth: 2 }));
    // A load: the heads take in a quarter of their capacity of other rooms (what makes a cache churned).
    for (let i = 0; i < 2_600; i++) await store.currentStateSnapshot(`!other${i}:example.org`);
    expect(await store.forwardExtremities(ROOM)).toEqual(["$alice"]);

    const { release, write } = await openWrite(store, () => send(event("$bob", { type: "m.room.member", stateKey: "@b:example.org", prevEvents: ["$alice"], depth: 3 })));
    trimMemory()(true); // what the trimmer runs in a quiet moment
    // Readers outside the write meanwhile (room access, push rules, make_join).
    const outside = Promise.all([store.currentStateSnapshot(ROOM), store.forwardExtremities(ROOM)]);
    await Bun.sleep(50);
    release();
    const bob = await write;
    await outside;

    const uncached = new SqlRoomEventStore(stores.db); // nothing kept yet
    const seen = { snapshot: await store.currentStateSnapshot(ROOM), extremities: await store.forwardExtremities(ROOM) };
    expect(seen).toEqual({ snapshot: await uncached.currentStateSnapshot(ROOM), extremities: await uncached.forwardExtremities(ROOM) });
    expect(seen).toEqual({ snapshot: bob.stateSnapshot, extremities: ["$bob"] });
    const carol = await send(event("$carol", { type: "m.room.member", stateKey: "@c:example.org", prevEvents: seen.extremities, depth: 4 }));
    const after = new SqlRoomEventStore(stores.db); // nothing kept yet
    expect((await after.stateAt(carol.stateSnapshot!)).get(key("m.room.member", "@b:example.org"))).toBe("$bob");
    expect(await after.forwardExtremities(ROOM)).toEqual(["$carol"]);
  });
});

describe.each(testDatabases.map((d) => [d.name, d] as const))("a room's heads during an open write on %s", (_name, database) => {
  test("a reader outside the write never takes its uncommitted snapshot: state entries read for what it took stay right after the commit", async () => {
    const { store, send } = await roomStore(database);
    const create = await send(event("$create", { type: "m.room.create", stateKey: "" }));
    expect(await store.forwardExtremities(ROOM)).toEqual(["$create"]);
    const { release, write } = await openWrite(store, () => send(event("$bob", { type: "m.room.member", stateKey: "@b:example.org", prevEvents: ["$create"], depth: 2 })));
    // Outside the write (SQLite makes such reads wait for the open batch; PostgreSQL answers from the pool).
    const outside = (async () => {
      const snapshot = (await store.currentStateSnapshot(ROOM))!;
      return { snapshot, bob: await store.stateEntryAt(snapshot, "m.room.member", "@b:example.org"), extremities: await store.forwardExtremities(ROOM) };
    })();
    await Bun.sleep(50);
    release();
    const bob = await write;
    const seen = await outside;
    // Either what was committed before the write, or after it (the reads may straddle the commit):
    // never the write's own before its commit, and entries read for the snapshot taken are its own.
    expect([create.stateSnapshot, bob.stateSnapshot]).toContain(seen.snapshot);
    expect(seen.bob).toBe(seen.snapshot === bob.stateSnapshot ? "$bob" : undefined);
    expect([["$create"], ["$bob"]]).toContainEqual(seen.extremities);
    // And nothing wrong was kept: after the commit, the write's snapshot and its entries.
    expect(await store.currentStateSnapshot(ROOM)).toBe(bob.stateSnapshot);
    expect(await store.stateEntryAt(bob.stateSnapshot!, "m.room.member", "@b:example.org")).toBe("$bob");
    expect(await store.forwardExtremities(ROOM)).toEqual(["$bob"]);
  });
});
