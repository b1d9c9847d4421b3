// On PostgreSQL a batch of transactions runs one statement chain on one connection, so its time is
// its number of round trips. Statements that need no answer from each other go out together: the
// edges and extremities of a persisted event, and the savepoints around transactions.
import { describe, expect, test } from "bun:test";
import { hasPostgres, openPostgresDatabase } from "../helpers/databases";
import { storesOver } from "../../src/storage/open";
import type { NewEvent } from "../../src/storage/stores";

const ROOM = "!room:example.org";

function event(id: string, fields: Partial<NewEvent> = {}): NewEvent {
  const base = { eventId: id, roomId: ROOM, type: "m.room.message", stateKey: undefined, sender: "@a:example.org", depth: 1, originServerTs: 1, prevEvents: [], authEvents: [], ...fields };
  return { ...base, json: JSON.stringify({ type: base.type, state_key: base.stateKey, content: {}, prev_events: base.prevEvents, auth_events: base.authEvents }) };
}

describe.skipIf(!hasPostgres)("round trips of the PostgreSQL writer", () => {
  test("a message persisted with its edges and extremities: the event and the writes that need no answer share one round trip", async () => {
    // No transaction begun ahead (counted below): every batch sends its BEGIN.
    const db = await openPostgresDatabase({ beginAheadMs: 0 });
    const stats = (db as unknown as { writerStats: { statements: number; roundTrips: number } }).writerStats;
    const stores = storesOver(db);
    const store = stores.roomEvents;
    const create = await store.persistEvent({ event: event("$create", { type: "m.room.create", stateKey: "" }), stateAfter: { parent: undefined, delta: new Map([["m.room.create\u0000", "$create"]]) }, updateForwardExtremities: true, updateCurrentState: true });
    const before = { ...stats };
    await store.persistEvent({ event: event("$m", { prevEvents: ["$create"], authEvents: ["$create"], depth: 2 }), stateAfter: { parent: create.stateSnapshot, delta: new Map() }, updateForwardExtremities: true, updateCurrentState: true });
    const statements = stats.statements - before.statements;
    const roundTrips = stats.roundTrips - before.roundTrips;
    // BEGIN; the event with its prev edge, auth edge, and the extremity delete and insert (the edges
    // find the event's row by its id, so they need not wait for its insert's answer); COMMIT.
    expect(statements).toBe(7);
    expect(roundTrips).toBe(3);
    expect(await store.forwardExtremities(ROOM)).toEqual(["$m"]);
    const stored = await store.getEvent("$m");
    expect([stored?.prevEvents, stored?.authEvents, stored?.streamOrdering]).toEqual([["$create"], ["$create"], create.streamOrdering! + 1]);
    await db.close();
  });

  test("transactions of one batch: each one's SAVEPOINT travels with its first statement, its RELEASE with the next one's, the last with COMMIT", async () => {
    const db = await openPostgresDatabase({ beginAheadMs: 0 });
    const stats = (db as unknown as { writerStats: { statements: number; roundTrips: number } }).writerStats;
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    const before = { ...stats };
    await Promise.all(["a", "b", "c"].map((k) => db.transaction(async () => void (await db.run("INSERT INTO t (k) VALUES (?)", k)))));
    // BEGIN, then per transaction SAVEPOINT + INSERT + RELEASE, then COMMIT: 11 statements.
    expect(stats.statements - before.statements).toBe(11);
    // BEGIN; [SAVEPOINT, INSERT a]; [RELEASE, SAVEPOINT, INSERT b]; [RELEASE, SAVEPOINT, INSERT c];
    // [RELEASE, COMMIT] (a failed RELEASE would make the COMMIT answer ROLLBACK).
    expect(stats.roundTrips - before.roundTrips).toBe(5);
    expect((await db.all<{ k: string }>("SELECT k FROM t ORDER BY k")).map((r) => r.k)).toEqual(["a", "b", "c"]);
    await db.close();
  });

  test("a batch right after a commit finds its transaction begun; after a pause it is rolled back and the connection pooled again", async () => {
    const AHEAD_MS = 600;
    const db = await openPostgresDatabase({ beginAheadMs: AHEAD_MS });
    const stats = (db as unknown as { writerStats: { statements: number; roundTrips: number } }).writerStats;
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    const sentBeforeFirstStatement = async (k: string, fail = false) => {
      const before = stats.statements;
      let sent = -1;
      await db.transaction(async () => {
        sent = stats.statements - before;
        await db.run("INSERT INTO t (k) VALUES (?)", k);
        if (fail) throw new Error("rolled back");
      }).catch(() => undefined);
      return sent;
    };
    // Sessions idle in a transaction, once the count is `expected` (the BEGIN sent ahead answers on its own time), or after 2 s.
    const idleInTransaction = async (expected: number) => {
      for (let waited = 0; ; waited += 10) {
        const n = Number((await db.get<{ n: number }>("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'"))!.n);
        if (n === expected || waited >= 2000) return n;
        await Bun.sleep(10);
      }
    };
    await sentBeforeFirstStatement("a");
    // Right after a commit: no BEGIN to wait for, and still a transaction (a failure rolls it back).
    expect(await sentBeforeFirstStatement("b")).toBe(0);
    expect(await sentBeforeFirstStatement("c", true)).toBe(0);
    // Nothing is begun ahead after a rollback: the next batch sends BEGIN, and the one after it need not.
    expect(await sentBeforeFirstStatement("d")).toBe(1);
    expect(await idleInTransaction(1)).toBe(1);
    await Bun.sleep(AHEAD_MS);
    expect(await idleInTransaction(0)).toBe(0);
    // After the pause, BEGIN again on a pooled connection.
    expect(await sentBeforeFirstStatement("e")).toBe(1);
    expect((await db.all<{ k: string }>("SELECT k FROM t ORDER BY k")).map((r) => r.k)).toEqual(["a", "b", "d", "e"]);
    await db.close();
    // Closing rolled back the one begun after "e".
  });
});
