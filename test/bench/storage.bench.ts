// Storage engines side by side, in one run: better-sqlite3 and bun:sqlite (WAL, synced at every commit,
// file-backed) and PostgreSQL (a throwaway local server with fsync on, started by the bench).
//   1. The async seam's own cost: the same point read and 100-row range read through better-sqlite3
//      called directly and through the Database seam (await per query).
//   2. Per engine, a real Portier in a process of its own (metrics on), over loopback HTTP:
//      - sequential sends: one user, one room, request to 200, p50/p99;
//      - concurrent senders: 50 users, each in its own room, each sending messages one after another,
//        all 50 at once: events/s, p50/p99, and how many events shared each commit (group commit);
//      - initial /sync of a user in 50 rooms (median of 5, fresh device each).
// Figures only; nothing asserts on time.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { openSqlite } from "../../src/storage/sqlite/driver";
import type { DriverName } from "../../src/storage/database";
import { freshPostgresUrl, postgresAvailable } from "../helpers/postgres";
import { measure, ratio, report, type Measurement } from "./harness";
import { MatrixHttp, median, ms, now, pool, summary } from "./matrix-http";
import { metricValue, startPortierProcess } from "./portier-process";

const SEQUENTIAL = Number(process.env.STORAGE_BENCH_SEQUENTIAL ?? 500);
const SENDERS = Number(process.env.STORAGE_BENCH_SENDERS ?? 50);
const PER_SENDER = Number(process.env.STORAGE_BENCH_PER_SENDER ?? 40);
const SYNC_ROOMS = 50;
/** Initial syncs measured (fresh device each); the first is cold, so the median is a warm one's. */
const SYNC_RUNS = Number(process.env.STORAGE_BENCH_SYNC_RUNS ?? 5);
/** A comma-separated subset of engines to run (better-sqlite3, bun-sqlite, postgres); all by default. */
const ENGINES = process.env.STORAGE_BENCH_ENGINES?.split(",").map((e) => e.trim()).filter(Boolean);
/** STORAGE_BENCH_SEAM=off skips the seam's cost section (when only the engines are compared). */
const SEAM = process.env.STORAGE_BENCH_SEAM !== "off";

/** Measures an async function by awaiting it in a loop. */
async function measureAsync(name: string, fn: () => Promise<unknown>, minSeconds = 0.5, batch = 100): Promise<Measurement> {
  for (let i = 0; i < 50; i++) await fn();
  let ops = 0;
  const start = Bun.nanoseconds();
  let elapsed = 0;
  while (elapsed < minSeconds * 1e9) {
    for (let i = 0; i < batch; i++) await fn();
    ops += batch;
    elapsed = Bun.nanoseconds() - start;
  }
  const seconds = elapsed / 1e9;
  return { name, ops, seconds, opsPerSecond: ops / seconds, microsPerOp: (seconds * 1e6) / ops };
}

async function seamCost(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "portier-bench-"));
  const path = join(dir, "bench.db");
  const setup = new BetterSqlite3(path);
  setup.pragma("journal_mode = WAL");
  setup.exec("CREATE TABLE events (stream INTEGER PRIMARY KEY, room TEXT NOT NULL, json TEXT NOT NULL) STRICT; CREATE INDEX events_room ON events (room, stream)");
  const json = JSON.stringify({ type: "m.room.message", content: { body: "x".repeat(200), msgtype: "m.text" } });
  const insert = setup.prepare("INSERT INTO events (room, json) VALUES (?, ?)");
  setup.transaction(() => {
    for (let i = 0; i < 20000; i++) insert.run(`!room${i % 10}:example.org`, json);
  })();
  const POINT = "SELECT json FROM events WHERE stream = ?";
  const RANGE = "SELECT stream, json FROM events WHERE room = ? AND stream > ? ORDER BY stream LIMIT 100";
  const point = setup.prepare(POINT);
  const range = setup.prepare(RANGE);
  let k = 0;
  const directPoint = measure("better-sqlite3 direct: point read", () => point.get((k++ * 7919) % 20000));
  const directRange = measure("better-sqlite3 direct: 100-row range", () => range.all(`!room${k++ % 10}:example.org`, (k * 37) % 15000));
  setup.close();
  const db = openSqlite(path, "better-sqlite3");
  const seamPoint = await measureAsync("through the async seam: point read", () => db.get(POINT, (k++ * 7919) % 20000));
  const seamRange = await measureAsync("through the async seam: 100-row range", () => db.all(RANGE, `!room${k++ % 10}:example.org`, (k * 37) % 15000));
  await db.close();
  rmSync(dir, { recursive: true, force: true });
  report("The async seam's cost (better-sqlite3, same statements)", [directPoint, seamPoint, directRange, seamRange]);
  ratio("seam / direct, point reads", seamPoint, directPoint);
  ratio("seam / direct, range reads", seamRange, directRange);
}

async function engine(driver: DriverName): Promise<string[]> {
  const env: Record<string, string> = { PORTIER_DATABASE__DRIVER: driver };
  if (driver === "postgres") env.PORTIER_DATABASE__URL = await freshPostgresUrl();
  const server = await startPortierProcess({ env, metrics: true, profileDir: process.env.STORAGE_BENCH_PROFILE });
  const http = new MatrixHttp(server.url);
  // Group commit, read from the server's metrics: database commits and the events they persisted.
  const commitStats = async () => {
    const text = await server.metrics();
    return { commits: metricValue(text, "portier_db_commit_seconds_count"), events: metricValue(text, "portier_events_persisted_total") };
  };
  const lines: string[] = [];
  try {
    // Sequential sends.
    const alice = await http.register("alice");
    const roomId = await http.createRoom(alice, { preset: "private_chat", name: "sequential" });
    for (let i = 0; i < 20; i++) await http.send(alice, roomId, `warm-up ${i}`);
    const sequential: number[] = [];
    let t = now();
    for (let i = 0; i < SEQUENTIAL; i++) sequential.push(await http.timedSend(alice, roomId, `sequential ${i}`));
    let seconds = (now() - t) / 1000;
    lines.push(`sequential sends: ${(SEQUENTIAL / seconds).toFixed(0)} events/s, ${summary(sequential)}`);

    // Concurrent senders, a room each.
    const users = await pool(Array.from({ length: SENDERS }, (_, i) => `sender${i}`), 4, (name) => http.register(name));
    const rooms = await pool(users, 4, (u, i) => http.createRoom(u, { preset: "private_chat", name: `room ${i}` }));
    const concurrent: number[] = [];
    const before = await commitStats();
    t = now();
    await Promise.all(users.map(async (u, s) => {
      for (let i = 0; i < PER_SENDER; i++) concurrent.push(await http.timedSend(u, rooms[s]!, `from ${s}, message ${i}`));
    }));
    seconds = (now() - t) / 1000;
    const after = await commitStats();
    const perCommit = (after.events - before.events) / Math.max(1, after.commits - before.commits);
    lines.push(`${SENDERS} concurrent senders over ${SENDERS} rooms: ${((SENDERS * PER_SENDER) / seconds).toFixed(0)} events/s, ${summary(concurrent)}; ${perCommit.toFixed(1)} events per commit`);

    // Initial sync over 50 rooms: one user joined to 50 rooms of ~10 messages.
    const many = await http.register("many");
    const syncRooms = await pool(Array.from({ length: SYNC_ROOMS }, (_, i) => i), 4, (i) => http.createRoom(many, { preset: "public_chat", name: `sync room ${i}` }));
    await pool(syncRooms, 10, async (r) => {
      for (let i = 0; i < 10; i++) await http.send(many, r, `message ${i}`);
    });
    const times: number[] = [];
    for (let run = 0; run < SYNC_RUNS; run++) {
      const device = await http.loginFresh(many);
      const start = now();
      await http.call("GET", "/sync", device.token);
      times.push(now() - start);
    }
    lines.push(`initial /sync over ${SYNC_ROOMS} rooms: median ${ms(median(times))} (${times.map(ms).join(", ")})`);
  } finally {
    await server.stop();
  }
  return lines;
}

process.env.TEST_POSTGRES_FSYNC = "on";
console.log(`\n# Storage engines (Bun ${Bun.version}, ${navigator.hardwareConcurrency} cores)`);
if (SEAM) await seamCost();
const engines = (["better-sqlite3", "bun-sqlite", "postgres"] as DriverName[]).filter((d) => !ENGINES || ENGINES.includes(d));
if (engines.includes("postgres") && !(await postgresAvailable())) engines.pop();
for (const driver of engines) {
  console.log(`\n## ${driver}${driver === "postgres" ? " (local server, fsync on, synchronous_commit on)" : " (WAL, the WAL fdatasynced at every commit)"}`);
  for (const line of await engine(driver)) console.log(line);
}
