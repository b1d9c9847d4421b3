// Which client transaction sent an event lives in the event's row (migration 102), so that a send
// writes no leaf of an index on client_transactions.event_id. A database from before keeps the
// transaction ids of the events it holds.
import { describe, expect, test } from "bun:test";
import type { Database } from "../../src/storage/database";
import { MIGRATIONS, storesOver } from "../../src/storage/open";
import { runMigrations } from "../../src/storage/migrations";
import { openSqlite } from "../../src/storage/sqlite/driver";
import { openPostgres } from "../../src/storage/postgres/driver";
import { freshPostgresUrl } from "../helpers/postgres";
import { hasPostgres } from "../helpers/databases";

const ROOM = "!room:example.org";
const ALICE = "@alice:example.org";
const BEFORE = MIGRATIONS.filter((m) => m.version < 102);

const engines: [string, () => Promise<Database>][] = [
  ["better-sqlite3", async () => openSqlite(":memory:", "better-sqlite3")],
  ["bun-sqlite", async () => openSqlite(":memory:", "bun-sqlite")],
  ...(hasPostgres ? [["postgres", async () => openPostgres({ url: await freshPostgresUrl(), poolSize: 2 })] as [string, () => Promise<Database>]] : []),
];

async function indexesOf(db: Database, table: string): Promise<string[]> {
  const rows =
    db.dialect === "postgres"
      ? await db.all<{ name: string }>("SELECT indexname AS name FROM pg_indexes WHERE tablename = ? AND indexname NOT LIKE '%pkey' ORDER BY indexname", table)
      : await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL ORDER BY name", table);
  return rows.map((r) => r.name);
}

describe.each(engines)("client transactions in the events' rows on %s", (_name, open) => {
  test("migration 102 copies the transaction ids of the last day's events and drops the index by event_id", async () => {
    const db = await open();
    try {
      await runMigrations(db, BEFORE);
      expect(await indexesOf(db, "client_transactions")).toContain("client_transactions_event");
      const insertEvent = (nid: number, eventId: string, sender: string) =>
        db.run(
          "INSERT INTO events (event_nid, event_id, room_id, type, sender, depth, origin_server_ts, stream_ordering, json) VALUES (?, ?, ?, 'm.room.message', ?, 1, 1, ?, '{}')",
          nid,
          eventId,
          ROOM,
          sender,
          nid,
        );
      await insertEvent(1, "$sent", ALICE);
      await insertEvent(2, "$plain", ALICE);
      await insertEvent(3, "$other", "@bob:example.org");
      await insertEvent(4, "$old", ALICE);
      const record = (txnId: string, eventId: string, ts: number) =>
        db.run("INSERT INTO client_transactions (user_id, device_id, txn_id, room_id, event_id, created_ts) VALUES (?, 'DEV', ?, ?, ?, ?)", ALICE, txnId, ROOM, eventId, ts);
      await record("txn1", "$sent", Date.now() - 60_000);
      // A shadow-banned send records a transaction id for an event that was never stored.
      await record("txn2", "$never", Date.now());
      // Sent two days ago: its id is not copied (a client matches its echo by it right after sending).
      await record("txn3", "$old", Date.now() - 2 * 86_400_000);

      expect(await runMigrations(db, MIGRATIONS)).toEqual([102]);
      expect(await indexesOf(db, "client_transactions")).not.toContain("client_transactions_event");
      const { roomClient } = storesOver(db);
      expect(await roomClient.transactionOf("$sent")).toEqual({ userId: ALICE, deviceId: "DEV", txnId: "txn1" });
      expect(await roomClient.transactionOf("$plain")).toBeUndefined();
      expect(await roomClient.transactionOf("$other")).toBeUndefined();
      expect(await roomClient.transactionOf("$never")).toBeUndefined();
      expect(await roomClient.transactionOf("$old")).toBeUndefined();
      // A retry is still answered from client_transactions.
      expect(await roomClient.transactionEvent(ALICE, "DEV", "txn1")).toBe("$sent");
      expect(await roomClient.transactionEvent(ALICE, "DEV", "txn2")).toBe("$never");
      expect(await roomClient.transactionEvent(ALICE, "DEV", "txn3")).toBe("$old");
    } finally {
      await db.close();
    }
  });

  test("an event asked about before it is stored is answered once it is", async () => {
    const db = await open();
    try {
      await runMigrations(db, MIGRATIONS);
      const { roomClient, roomEvents } = storesOver(db);
      await roomEvents.createRoom({ roomId: ROOM, roomVersion: "10", creator: ALICE, createdTs: 1 });
      expect(await roomClient.transactionOf("$late")).toBeUndefined();
      await roomEvents.persistEvent({
        event: { eventId: "$late", roomId: ROOM, type: "m.room.message", stateKey: undefined, sender: ALICE, depth: 1, originServerTs: 1, prevEvents: [], authEvents: [], json: "{}", transaction: { deviceId: "DEV", txnId: "t" } },
        updateForwardExtremities: false,
        updateCurrentState: false,
      });
      expect(await roomClient.transactionOf("$late")).toEqual({ userId: ALICE, deviceId: "DEV", txnId: "t" });
    } finally {
      await db.close();
    }
  });
});
