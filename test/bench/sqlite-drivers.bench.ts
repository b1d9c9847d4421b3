// better-sqlite3 vs bun:sqlite behind Portier's driver seam: single-row commits (synchronous=FULL,
// WAL, as the server runs) and range reads of 100 rows.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase, type DriverName } from "../../src/storage/sqlite/driver";
import { measure, ratio, report, type Measurement } from "./harness";

function run(driver: DriverName): { commit: Measurement; range: Measurement; point: Measurement } {
  const dir = mkdtempSync(join(tmpdir(), "portier-bench-"));
  const db = openDatabase(join(dir, "bench.db"), driver);
  db.exec("CREATE TABLE events (stream INTEGER PRIMARY KEY, room TEXT NOT NULL, json TEXT NOT NULL) STRICT");
  db.exec("CREATE INDEX events_room ON events (room, stream)");
  const insert = db.prepare("INSERT INTO events (room, json) VALUES (?, ?)");
  const json = JSON.stringify({ type: "m.room.message", content: { body: "x".repeat(200), msgtype: "m.text" } });
  let n = 0;
  const commit = measure(`${driver}: commit one row`, () => insert.run(`!room${n++ % 10}:example.org`, json), 0.5, 20);
  db.transaction(() => {
    for (let i = 0; i < 20000; i++) insert.run(`!room${i % 10}:example.org`, json);
  });
  const rangeQuery = db.prepare("SELECT stream, json FROM events WHERE room = ? AND stream > ? ORDER BY stream LIMIT 100");
  const pointQuery = db.prepare("SELECT json FROM events WHERE stream = ?");
  let k = 0;
  const range = measure(`${driver}: read 100 rows in a range`, () => rangeQuery.all(`!room${k++ % 10}:example.org`, (k * 37) % 15000));
  const point = measure(`${driver}: read one row by key`, () => pointQuery.get((k++ * 7919) % 20000));
  db.close();
  rmSync(dir, { recursive: true, force: true });
  return { commit, range, point };
}

const better = run("better-sqlite3");
const bun = run("bun-sqlite");
report("SQLite drivers (WAL, synchronous=FULL)", [better.commit, bun.commit, better.range, bun.range, better.point, bun.point]);
ratio("bun:sqlite / better-sqlite3, commits", bun.commit, better.commit);
ratio("bun:sqlite / better-sqlite3, range reads", bun.range, better.range);
ratio("bun:sqlite / better-sqlite3, point reads", bun.point, better.point);
