// The events table carries only the indexes its queries use: each one costs every event's insert a
// page write (in SQLite's WAL, a frame per room in each commit).
import { describe, expect, test } from "bun:test";
import { testDatabases } from "../helpers/databases";

describe.each(testDatabases.map((d) => [d.name, d] as const))("indexes of the events table on %s", (name, database) => {
  test("no (room_id, depth) index: nothing reads events in depth order", async () => {
    const db = await database.open();
    const rows =
      name === "postgres"
        ? await db.all<{ name: string }>("SELECT indexname AS name FROM pg_indexes WHERE tablename = 'events' AND indexname NOT LIKE '%pkey' AND indexname NOT LIKE '%_key' ORDER BY indexname")
        : await db.all<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL ORDER BY name");
    expect(rows.map((r) => r.name)).toEqual(["events_member_changes", "events_room_stream"]);
    await db.close();
  });
});
