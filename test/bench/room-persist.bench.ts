// Persisting local messages through the real RoomEngine.sendEvent (build, sign, authorize, persist)
// into a room of 10,000 members, on a file-backed SQLite database as the server runs it (WAL,
// its WAL synced at every commit): total time, messages/s, p50/p99 per send, database growth, and the state rows
// the messages wrote (a message changes no state, so it must write none).
//
// Setup is the real path too, with nothing shortened: createRoom (public_chat, room version 10),
// then every member joins through engine.sendEvent, one awaited send after another, at
// the WAL synced at every commit. Its time is reported per slice of 2,500 joins, since a join costs more the
// larger the room's state.
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRoom } from "../../src/services/rooms/room-creation";
import { RoomEngine } from "../../src/services/rooms/room-engine";
import type { Database } from "../../src/storage/database";
import type { SqliteDriverName as DriverName } from "../../src/storage/sqlite/driver";
import { openStores } from "../../src/storage/open";
import { testSigner } from "../helpers/room-engine";

const MEMBERS = Number(process.env.ROOM_PERSIST_MEMBERS ?? 10_000);
const MESSAGES = Number(process.env.ROOM_PERSIST_MESSAGES ?? 10_000);
const JOIN_SLICE = 2_500;
const DRIVERS = (process.env.ROOM_PERSIST_DRIVERS ?? "better-sqlite3,bun-sqlite").split(",") as DriverName[];
const SERVER = "example.org";

const count = async (db: Database, sql: string): Promise<number> => (await db.get<{ n: number }>(sql))?.n ?? 0;
const fileSize = (path: string): number => {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
};
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const percentile = (sorted: Float64Array, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

interface Counts {
  snapshots: number;
  entries: number;
  events: number;
}
const counts = async (db: Database): Promise<Counts> => ({
  snapshots: await count(db, "SELECT count(*) AS n FROM state_snapshots"),
  entries: await count(db, "SELECT count(*) AS n FROM state_snapshot_entries"),
  events: await count(db, "SELECT count(*) AS n FROM events"),
});

/** Checkpoints the WAL into the database file and empties it; returns file + wal bytes. */
async function settledSize(db: Database, path: string): Promise<{ file: number; wal: number }> {
  await db.get("PRAGMA wal_checkpoint(TRUNCATE)");
  return { file: fileSize(path), wal: fileSize(`${path}-wal`) };
}

/** The bytes of the biggest tables, where SQLite was built with the dbstat table (better-sqlite3 is). */
async function tableSizes(db: Database): Promise<string> {
  try {
    const rows = await db.all<{ name: string; bytes: number }>("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC LIMIT 3");
    return `, of which ${rows.map((r) => `${r.name} ${mb(r.bytes)}`).join(", ")}`;
  } catch {
    return "";
  }
}

const user = (i: number) => `@user${i}:${SERVER}`;

async function run(driver: DriverName): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "portier-room-persist-"));
  const path = join(dir, "portier.db");
  const { db, roomEvents } = await openStores({ driver, path });
  let now = 1_700_000_000_000;
  const engine = new RoomEngine(roomEvents, testSigner(SERVER), { now: () => now++ });
  console.log(`\n## ${driver}: ${MESSAGES} messages into a room of ${MEMBERS} members (${path})`);

  // --- Setup: the room and its members, all through the engine.
  const setupStart = performance.now();
  const creator = user(0);
  const roomId = await createRoom(engine, { creator, preset: "public_chat", name: "Bench" });
  const afterCreate = await counts(db);

  const joinOne = (i: number) => engine.sendEvent(roomId, { type: "m.room.member", sender: user(i), stateKey: user(i), content: { membership: "join", displayname: `User ${i}` } });
  const slices: string[] = [];
  let sliceStart = performance.now();
  let sliceFirst = 1;
  for (let i = 1; i < MEMBERS; i++) {
    await joinOne(i);
    if ((i + 1) % JOIN_SLICE === 0 || i === MEMBERS - 1) {
      const sliceEnd = performance.now();
      slices.push(`${sliceFirst}-${i}: ${((sliceEnd - sliceStart) / (i + 1 - sliceFirst)).toFixed(2)}`);
      sliceStart = sliceEnd;
      sliceFirst = i + 1;
    }
  }
  const setupMs = performance.now() - setupStart;
  const afterJoins = await counts(db);
  const members = [...(await roomEvents.currentMemberships(roomId)).values()].filter((m) => m === "join").length;
  const snapshotsWhole = await count(db, "SELECT count(*) AS n FROM state_snapshots WHERE parent IS NULL");
  console.log(`setup: ${members} joined members in ${(setupMs / 1000).toFixed(1)} s (createRoom, then ${MEMBERS - 1} joins through sendEvent)`);
  console.log(`  ms per join, by members already joined: ${slices.join(", ")}`);
  console.log(
    `  state rows written by the ${MEMBERS - 1} joins: ${afterJoins.entries - afterCreate.entries} state_snapshot_entries ` +
      `(${((afterJoins.entries - afterCreate.entries) / (MEMBERS - 1)).toFixed(0)} per join) in ${afterJoins.snapshots - afterCreate.snapshots} state_snapshots, ` +
      `${snapshotsWhole} of them written whole`,
  );
  const before = await settledSize(db, path);
  console.log(`  database after the joins (file + wal, after a checkpoint): ${mb(before.file + before.wal)}${await tableSizes(db)}`);

  // --- The measurement: messages from members round-robin, each send awaited before the next.
  const latencies = new Float64Array(MESSAGES);
  const body = "The quick brown fox jumps over the lazy dog. ".repeat(3);
  const start = Bun.nanoseconds();
  for (let i = 0; i < MESSAGES; i++) {
    const t = Bun.nanoseconds();
    await engine.sendEvent(roomId, { type: "m.room.message", sender: user((i * 7919) % MEMBERS), content: { msgtype: "m.text", body: `${body}${i}` } });
    latencies[i] = (Bun.nanoseconds() - t) / 1e6;
  }
  const totalS = (Bun.nanoseconds() - start) / 1e9;
  const afterMessages = await counts(db);
  const after = await settledSize(db, path);
  latencies.sort();

  console.log(`messages: ${MESSAGES} in ${totalS.toFixed(2)} s = ${(MESSAGES / totalS).toFixed(0)} messages/s`);
  console.log(`  per send: p50 ${percentile(latencies, 0.5).toFixed(2)} ms, p99 ${percentile(latencies, 0.99).toFixed(2)} ms, max ${latencies[MESSAGES - 1].toFixed(2)} ms`);
  console.log(
    `  database (file + wal, after a checkpoint): ${mb(before.file + before.wal)} -> ${mb(after.file + after.wal)}, ` +
      `+${mb(after.file + after.wal - (before.file + before.wal))} = ${((after.file + after.wal - (before.file + before.wal)) / MESSAGES).toFixed(0)} bytes/message`,
  );
  console.log(
    `  rows written by the messages: ${afterMessages.events - afterJoins.events} events, ` +
      `${afterMessages.entries - afterJoins.entries} state_snapshot_entries (must be 0), ${afterMessages.snapshots - afterJoins.snapshots} state_snapshots`,
  );
  await db.close();
  rmSync(dir, { recursive: true, force: true });
}

console.log(`\n# Room persistence through RoomEngine.sendEvent (Bun ${Bun.version}, ${navigator.hardwareConcurrency} cores)`);
for (const driver of DRIVERS) await run(driver);
