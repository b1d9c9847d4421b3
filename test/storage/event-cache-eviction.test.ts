// getEvents returns every stored event asked for, even when the event cache evicts some of its hits
// while the misses load (one call for more events than the cache holds, or other requests meanwhile):
// /sync asks for a room's whole state in one call.
import { describe, expect, test } from "bun:test";
import { sqliteDatabases } from "../helpers/databases";
import { SqlRoomEventStore } from "../../src/storage/room-event-store";
import type { Database } from "../../src/storage/database";

const ROOM = "!big:example.org";
const EVENT_CACHE = 20_000; // room-event-store.ts

async function insertEvents(db: Database, ids: readonly string[]): Promise<void> {
  await db.transaction(async () => {
    for (let i = 0; i < ids.length; i += 200) {
      const chunk = ids.slice(i, i + 200);
      await db.run(
        `INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_server_ts, json) VALUES ${chunk.map(() => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")}`,
        ...chunk.flatMap((id, j) => [id, ROOM, "m.room.member", `@u${i + j}:example.org`, "@u0:example.org", 1, 1, "{}"]),
      );
    }
  });
}

describe("getEvents and cache eviction", () => {
  test("one call for more events than the cache holds returns every stored event", async () => {
    const db = await sqliteDatabases[0].open();
    const store = new SqlRoomEventStore(db);
    const ids = Array.from({ length: EVENT_CACHE + 10_000 }, (_, i) => `$e${i}`);
    await insertEvents(db, ids);
    // A previous /sync cached the second half.
    expect((await store.getEvents(ids.slice(15_000))).size).toBe(15_000);
    // Now the whole state: 15,000 misses first, then the 15,000 hits.
    const found = await store.getEvents(ids);
    expect(found.size).toBe(ids.length);
    await db.close();
  }, 60_000);

  test("hits evicted by another request during the await for the misses are not dropped", async () => {
    const inner = await sqliteDatabases[0].open();
    // The engine answers the query for the miss only when let through (a slow PostgreSQL round trip).
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const db = Object.create(inner) as Database;
    db.all = (async (sql: string, ...params: never[]) => {
      if (params.includes("$miss" as never)) await gate;
      return inner.all(sql, ...params);
    }) as Database["all"];
    const store = new SqlRoomEventStore(db);
    const others = Array.from({ length: EVENT_CACHE }, (_, i) => `$o${i}`);
    await insertEvents(inner, ["$hit", "$miss", ...others]);
    expect(await store.getEvent("$hit")).toBeDefined(); // cached
    const asked = store.getEvents(["$hit", "$miss"]);
    await new Promise((r) => setTimeout(r, 10)); // now waiting for $miss
    await store.getEvents(others); // another /sync fills the cache meanwhile
    release();
    expect([...(await asked).keys()]).toEqual(["$hit", "$miss"]);
    await inner.close();
  }, 60_000);
});
