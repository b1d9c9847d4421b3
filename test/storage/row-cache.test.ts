// The caches of rows that never change (events, room records, snapshot entries, which transaction sent
// an event): committed rows are served from memory, and nothing read inside a transaction is cached,
// so a rolled-back write is never served.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";
import { CommittedCache, ImmutableRowCache } from "../../src/storage/row-cache";
import type { Database } from "../../src/storage/database";
import type { NewEvent } from "../../src/storage/stores";

const ROOM = "!cache:example.org";
const message = (id: string): NewEvent => ({
  eventId: id, roomId: ROOM, type: "m.room.message", stateKey: undefined, sender: "@a:example.org", depth: 1, originServerTs: 1,
  prevEvents: [], authEvents: [], json: JSON.stringify({ type: "m.room.message", content: { body: id } }),
});

/** Counts the queries that reach the engine. */
function countQueries(db: Database): { n: number } {
  const counter = { n: 0 };
  for (const method of ["get", "all"] as const) {
    const original = db[method].bind(db) as (...args: unknown[]) => Promise<unknown>;
    (db as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      counter.n++;
      return original(...args);
    };
  }
  return counter;
}

describe("ImmutableRowCache", () => {
  test("drops the least recently used: what was used within the last capacity/2 insertions stays, and it never holds more than its capacity", () => {
    const cache = new ImmutableRowCache<string, number>(4);
    cache.set("a", 1);
    cache.set("b", 2);
    expect(cache.get("a")).toBe(1); // a is now the most recent
    cache.set("c", 3);
    cache.set("d", 4);
    // b, not used since a was, went first; the two used last are there.
    expect(cache.get("b")).toBeUndefined();
    expect([cache.get("d"), cache.get("c")]).toEqual([4, 3]);
    cache.delete("c");
    expect(cache.get("c")).toBeUndefined();
    for (let i = 0; i < 100; i++) {
      cache.set(`k${i}`, i);
      expect(cache.size).toBeLessThanOrEqual(4);
      // The two newest are always there.
      expect(cache.get(`k${i}`)).toBe(i);
      if (i > 0) expect(cache.get(`k${i - 1}`)).toBe(i - 1);
    }
    cache.clear();
    expect(cache.size).toBe(0);
  });

  test("dropChurned empties the caches that took in a quarter of their capacity since its last call, and only those", () => {
    const busy = new ImmutableRowCache<number, string>(8); // a quarter: 2
    const calm = new ImmutableRowCache<number, string>(40); // a quarter: 10
    for (let i = 0; i < 9; i++) calm.set(i, `c${i}`);
    for (let i = 0; i < 3; i++) busy.set(i, `b${i}`);
    // Other caches of the process may go too; these three entries at least.
    expect(ImmutableRowCache.dropChurned()).toBeGreaterThanOrEqual(3);
    expect(busy.size).toBe(0);
    expect(calm.size).toBe(9);
    // Counted from the last call: one more entry in calm (10 in all, 1 since) keeps it; hits do not count.
    calm.set(9, "c9");
    busy.set(9, "b9");
    for (let i = 0; i < 10; i++) busy.get(9);
    ImmutableRowCache.dropChurned();
    expect([calm.size, busy.get(9)]).toEqual([10, "b9"]);
    busy.set(10, "b10");
    busy.set(11, "b11");
    ImmutableRowCache.dropChurned();
    expect([calm.size, busy.size]).toEqual([10, 0]);
    // New values under keys it holds are not new keys (a busy room's tail replaced at each event).
    for (let i = 0; i < 100; i++) calm.set(i % 3, `again ${i}`);
    ImmutableRowCache.dropChurned();
    expect(calm.size).toBe(10);
  });
});

describe("CommittedCache over a database's commit and rollback notices", () => {
  /** A stand-in database: whether a transaction is open, and its commit and rollback listeners. */
  const fakeDatabase = () => {
    const state = { inTransaction: false, commits: [] as (() => void)[], rollbacks: [] as (() => void)[] };
    const db = { inTransaction: () => state.inTransaction, onCommit: (f: () => void) => state.commits.push(f), onRollback: (f: () => void) => state.rollbacks.push(f) } as unknown as Database;
    return { db, state, commit: () => state.commits.forEach((f) => f()), rollback: () => state.rollbacks.forEach((f) => f()) };
  };

  test("a unit's rollback in a batch leaves the key's later extensions unkept, whatever a reader kept meanwhile", async () => {
    const { db, state, commit, rollback } = fakeDatabase();
    const cache = new CommittedCache<string, number[]>(db, 10);
    const extend = (tail: number[], event: number) => [event, ...tail];
    await cache.load("R", async () => [1]);
    state.inTransaction = true;
    await cache.writeExtending("R", async () => 2, extend);
    rollback(); // another unit of the batch failed
    state.inTransaction = false;
    await cache.load("R", async () => [1]); // another connection's committed view, before the commit
    state.inTransaction = true;
    await cache.writeExtending("R", async () => 3, extend);
    state.inTransaction = false;
    commit();
    // Event 2 committed with the batch: a tail without it must not be kept.
    expect(cache.get("R")).toBeUndefined();
  });

  test("what is read while a write of the key is open inside a transaction is not kept, even after the write's own part is done", async () => {
    const { db, state, commit } = fakeDatabase();
    const cache = new CommittedCache<string, string>(db, 10);
    state.inTransaction = true;
    await cache.write("k", async () => undefined);
    state.inTransaction = false;
    // Before the commit, another connection still sees the old row.
    expect(await cache.read("k", async () => "old")).toBe("old");
    expect(cache.get("k")).toBeUndefined();
    commit();
    expect(await cache.read("k", async () => "new")).toBe("new");
    expect(cache.get("k")).toBe("new");
  });
  test("a write of every key (writeAll) forgets all that was kept; inside a transaction nothing read is kept until its commit, a rollback leaving it to the next commit", async () => {
    const { db, state, commit, rollback } = fakeDatabase();
    const cache = new CommittedCache<string, string>(db, 10);
    await cache.load("a", async () => "a1");
    await cache.load("b", async () => "b1");
    // Outside a transaction: forgotten at its start, kept again once it has resolved.
    let during: string | undefined = "unset";
    await cache.writeAll(async () => {
      await cache.load("a", async () => "a-during");
      during = cache.get("a");
    });
    expect(during).toBeUndefined();
    expect([cache.get("a"), cache.get("b")]).toEqual([undefined, undefined]);
    expect(await cache.read("a", async () => "a2")).toBe("a2");
    expect(cache.get("a")).toBe("a2");
    // A read that began before the write and ends after it is not kept.
    let finish!: () => void;
    const slow = cache.load("b", () => new Promise<string>((resolve) => (finish = () => resolve("b-old"))));
    await cache.writeAll(async () => undefined);
    finish();
    expect(await slow).toBe("b-old");
    expect(cache.get("b")).toBeUndefined();
    // Inside a transaction: another connection's committed view is not kept until the commit.
    state.inTransaction = true;
    await cache.writeAll(async () => undefined);
    state.inTransaction = false;
    expect(cache.get("a")).toBeUndefined();
    expect(await cache.read("a", async () => "a-old")).toBe("a-old");
    expect(cache.get("a")).toBeUndefined();
    rollback(); // another unit of the batch failed; this one's write still commits with the batch
    expect(await cache.read("a", async () => "a-old")).toBe("a-old");
    expect(cache.get("a")).toBeUndefined();
    commit();
    expect(await cache.read("a", async () => "a3")).toBe("a3");
    expect(cache.get("a")).toBe("a3");
  });
});

describe.each(testDatabases.map((d) => [d.name, d] as const))("row caches on %s", (_name, database) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("an access token is read from the engine once, until a write that can end it: deleting it, or every token of its user", async () => {
    const { accounts, db } = stores;
    await accounts.createUser({ userId: "@t:example.org", passwordHash: undefined, createdTs: 1, isAdmin: false });
    await accounts.addAccessToken("h1", "@t:example.org", "D1", 1);
    await accounts.addAccessToken("h2", "@t:example.org", "D2", 1);
    const queries = countQueries(db);
    expect(await accounts.findAccessToken("h1")).toEqual({ userId: "@t:example.org", deviceId: "D1" });
    expect(await accounts.findAccessToken("h1")).toEqual({ userId: "@t:example.org", deviceId: "D1" });
    expect(await accounts.findAccessToken("nope")).toBeUndefined();
    expect(await accounts.findAccessToken("nope")).toBeUndefined();
    expect(queries.n).toBe(2);
    await accounts.deleteAccessToken("h1");
    expect(await accounts.findAccessToken("h1")).toBeUndefined();
    expect(await accounts.findAccessToken("h2")).toEqual({ userId: "@t:example.org", deviceId: "D2" });
    await accounts.deleteAccessTokens("@t:example.org");
    expect(await accounts.findAccessToken("h2")).toBeUndefined();
    // A token added under a hash that was looked up before is found.
    await accounts.addAccessToken("nope", "@t:example.org", "D3", 1);
    expect(await accounts.findAccessToken("nope")).toEqual({ userId: "@t:example.org", deviceId: "D3" });
  });

  test("a read-through value is kept when only other keys were written while it was read, not when its own was", async () => {
    const { db } = stores;
    await db.exec("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)");
    const cache = new CommittedCache<string, string>(db, 100);
    const put = (k: string, v: string) => cache.write(k, async () => void (await db.run("INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v", k, v)));
    const value = async (k: string) => (await db.get<{ v: string }>("SELECT v FROM kv WHERE k = ?", k))?.v ?? "";
    await put("a", "1");
    // A committed write of another key (and its commit) while "a" is read: "a" is kept.
    expect(await cache.load("a", async () => {
      const v = await value("a");
      await put("b", "2");
      return v;
    })).toBe("1");
    expect(cache.get("a")).toBe("1");
    // A write of "a" itself while it is read: the value read may be the old one, so it is not kept.
    expect(await cache.load("a", async () => {
      const v = await value("a");
      await put("a", "3");
      return v;
    })).toBe("1");
    expect(cache.get("a")).toBeUndefined();
    expect(await cache.read("a", () => value("a"))).toBe("3");
    expect(cache.get("a")).toBe("3");
  });

  test("readers of a key being read share that read, outside transactions; one after a write of the key reads again", async () => {
    const { db } = stores;
    const cache = new CommittedCache<string, string>(db, 100);
    let reads = 0;
    let release!: () => void;
    const slow = (value: string) => async () => {
      reads++;
      await new Promise<void>((resolve) => (release = resolve));
      return value;
    };
    const first = cache.read("k", slow("old"));
    const second = cache.read("k", slow("unused"));
    const many = cache.readMany(["k"], async () => new Map([["k", "unused"]]), "absent");
    release();
    expect([await first, await second, (await many).get("k")]).toEqual(["old", "old", "old"]);
    expect(reads).toBe(1);
    // A write of the key while it is read: a reader that comes after it does not get the older read.
    await cache.write("j", async () => undefined);
    const before = cache.read("x", slow("x-old"));
    await cache.write("x", async () => undefined);
    const after = cache.read("x", async () => "x-new");
    expect(await after).toBe("x-new");
    release();
    expect(await before).toBe("x-old");
    // Inside a transaction a read never shares one from outside (which cannot see the transaction's writes).
    const outside = cache.read("y", slow("y-outside"));
    await db.transaction(async () => {
      expect(await cache.read("y", async () => "y-inside")).toBe("y-inside");
      expect(Object.fromEntries(await cache.readMany(["y"], async () => new Map([["y", "y-inside-many"]]), "absent"))).toEqual({ y: "y-inside-many" });
    });
    release();
    expect(await outside).toBe("y-outside");
  });

  test("a committed event, its room and its transaction are read from the engine once", async () => {
    const { roomEvents, roomClient, db } = stores;
    await roomEvents.createRoom({ roomId: ROOM, roomVersion: "10", creator: "@a:example.org", createdTs: 1 });
    await roomEvents.atomically(async () => {
      await roomEvents.persistEvent({ event: { ...message("$m"), transaction: { deviceId: "DEV", txnId: "t1" } }, updateForwardExtremities: false, updateCurrentState: false });
      await roomClient.recordTransaction("@a:example.org", "DEV", "t1", ROOM, "$m", 1);
    });
    const queries = countQueries(db);
    for (let i = 0; i < 3; i++) {
      expect((await roomEvents.getEvent("$m"))?.json).toContain('"$m"');
      expect((await roomEvents.getEvents(["$m", "$nothing"])).size).toBe(1);
      expect((await roomEvents.getRoom(ROOM))?.roomVersion).toBe("10");
      expect(await roomClient.transactionOf("$m")).toEqual({ userId: "@a:example.org", deviceId: "DEV", txnId: "t1" });
    }
    // One query each the first time (getEvent may read its edges too); none after.
    const firstRound = queries.n;
    await roomEvents.getEvent("$m");
    await roomEvents.getRoom(ROOM);
    await roomClient.transactionOf("$m");
    expect(queries.n).toBe(firstRound);
    // An unknown event is asked for every time: it may yet arrive.
    await roomEvents.getEvent("$nothing");
    await roomEvents.getEvent("$nothing");
    expect(queries.n).toBeGreaterThan(firstRound);
  });

  test("what a rolled-back transaction wrote and read is never served afterwards", async () => {
    const { roomEvents, roomClient } = stores;
    await expect(
      roomEvents.atomically(async () => {
        await roomEvents.createRoom({ roomId: ROOM, roomVersion: "10", creator: "@a:example.org", createdTs: 1 });
        await roomEvents.persistEvent({ event: { ...message("$gone"), transaction: { deviceId: "DEV", txnId: "t1" } }, updateForwardExtremities: false, updateCurrentState: false });
        await roomClient.recordTransaction("@a:example.org", "DEV", "t1", ROOM, "$gone", 1);
        // Read inside the transaction: these must not be cached.
        expect(await roomEvents.getEvent("$gone")).toBeDefined();
        expect(await roomEvents.getRoom(ROOM)).toBeDefined();
        expect(await roomClient.transactionOf("$gone")).toBeDefined();
        throw new Error("roll back");
      }),
    ).rejects.toThrow("roll back");
    expect(await roomEvents.getEvent("$gone")).toBeUndefined();
    expect((await roomEvents.getEvents(["$gone"])).size).toBe(0);
    expect(await roomEvents.getRoom(ROOM)).toBeUndefined();
    expect(await roomClient.transactionOf("$gone")).toBeUndefined();
  });
});
