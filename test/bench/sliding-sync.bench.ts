// Simplified sliding sync (MSC4186) end to end: a real Portier on an ephemeral loopback port
// (temporary data_dir, file-backed SQLite), driven over real HTTP with fetch, for a user in many
// rooms (500 by default, each with a second member and a few messages). Figures:
//   - the first window as Element X asks for it at start: a new connection, one list with range
//     0-19, timeline_limit 1 and its usual required_state (with $LAZY and $ME), the e2ee, to-device,
//     account data, receipts and typing extensions on: p50/p99/max over the runs, and the size;
//   - the same without extensions;
//   - the next step of a connection: the range widened to 0-99 (80 rooms new to it);
//   - an incremental request with nothing new (pos, timeout 0): the cost of a no-op poll;
//   - an incremental request after one message in one room.
// The server runs in this process, on the same event loop as the client fetches: every latency
// includes the client's side of HTTP too. Figures only; nothing asserts on time.
import { rmSync } from "node:fs";
import { testServer } from "../helpers/server";
import { MatrixHttp, kb, ms, now, pool, rss, summary, type User } from "./matrix-http";

const DRIVER = process.env.SLIDING_SYNC_DRIVER ?? "better-sqlite3";
const ROOMS = Number(process.env.SLIDING_SYNC_ROOMS ?? 500);
const MESSAGES_PER_ROOM = Number(process.env.SLIDING_SYNC_MESSAGES ?? 3);
const RUNS = Number(process.env.SLIDING_SYNC_RUNS ?? 50);
const PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

// What Element X asks for in its room list (matrix-rust-sdk's defaults, roughly).
const REQUIRED_STATE = [
  ["m.room.encryption", ""],
  ["m.room.member", "$LAZY"],
  ["m.room.member", "$ME"],
  ["m.room.name", ""],
  ["m.room.topic", ""],
  ["m.room.avatar", ""],
  ["m.room.canonical_alias", ""],
  ["m.room.join_rules", ""],
  ["m.room.power_levels", ""],
  ["m.room.create", ""],
  ["m.room.history_visibility", ""],
];
const EXTENSIONS = { to_device: { enabled: true }, e2ee: { enabled: true }, account_data: { enabled: true }, receipts: { enabled: true }, typing: { enabled: true } };

let http: MatrixHttp;

async function slidingSync(user: User, body: unknown, query = ""): Promise<{ body: any; bytes: number; ms: number }> {
  const t = now();
  const response = await fetch(`${http.base}${PATH}${query}`, { method: "POST", headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const text = await response.text();
  const elapsed = now() - t;
  if (response.status !== 200) throw new Error(`sliding sync: ${response.status} ${text.slice(0, 300)}`);
  return { body: JSON.parse(text), bytes: Buffer.byteLength(text), ms: elapsed };
}

const window = (range: [number, number], extensions: boolean, connId: string) => ({
  conn_id: connId,
  lists: { all: { ranges: [range], timeline_limit: 1, required_state: REQUIRED_STATE } },
  ...(extensions ? { extensions: EXTENSIONS } : {}),
});

console.log(`\n# Sliding sync (MSC4186) over loopback HTTP (Bun ${Bun.version}, ${navigator.hardwareConcurrency} cores, ${DRIVER})`);
const server = await testServer({ server_name: "bench.test", registration: { enabled: true }, database: { driver: DRIVER } });
const { url } = await server.start();
http = new MatrixHttp(url);
try {
  let t = now();
  const user = await http.register("reader");
  const friend = await http.register("friend");
  const rooms = await pool(
    Array.from({ length: ROOMS }, (_, i) => i),
    8,
    async (i) => {
      const roomId = await http.createRoom(user, { preset: "public_chat", name: i % 2 === 0 ? `room ${i}` : undefined });
      await http.call("POST", `/join/${encodeURIComponent(roomId)}`, friend.token, {});
      for (let m = 0; m < MESSAGES_PER_ROOM; m++) await http.send(m % 2 === 0 ? friend : user, roomId, `message ${m} in room ${i}`);
      return roomId;
    },
  );
  console.log(`setup: ${ROOMS} rooms (2 members, ${MESSAGES_PER_ROOM} messages each) in ${((now() - t) / 1000).toFixed(1)} s; ${rss()}`);

  for (let i = 0; i < 5; i++) await slidingSync(user, window([0, 19], true, `warm-${i}`)); // JIT warm-up, not counted

  for (const extensions of [true, false]) {
    const times: number[] = [];
    let bytes = 0;
    let count = 0;
    for (let i = 0; i < RUNS; i++) {
      const r = await slidingSync(user, window([0, 19], extensions, `first-${extensions}-${i}`));
      times.push(r.ms);
      bytes = r.bytes;
      count = Object.keys(r.body.rooms).length;
      if (r.body.lists.all.count !== ROOMS) throw new Error(`count ${r.body.lists.all.count}, expected ${ROOMS}`);
    }
    console.log(`\n## first window, range 0-19, timeline_limit 1, ${extensions ? "with" : "without"} extensions (a new connection each, ${RUNS} runs)`);
    console.log(`  ${summary(times)}; ${count} rooms, ${kb(bytes)}`);
  }

  const widen: number[] = [];
  const noop: number[] = [];
  const oneMessage: number[] = [];
  for (let i = 0; i < Math.min(RUNS, 20); i++) {
    const first = await slidingSync(user, window([0, 19], true, `grow-${i}`));
    const wider = await slidingSync(user, window([0, 99], true, `grow-${i}`), `?pos=${encodeURIComponent(first.body.pos)}`);
    widen.push(wider.ms);
    if (Object.keys(wider.body.rooms).length !== 80) throw new Error(`widened: ${Object.keys(wider.body.rooms).length} rooms`);
    const idle = await slidingSync(user, window([0, 99], true, `grow-${i}`), `?pos=${encodeURIComponent(wider.body.pos)}&timeout=0`);
    noop.push(idle.ms);
    await http.send(friend, rooms[(i * 37) % rooms.length]!, `news ${i}`);
    const news = await slidingSync(user, window([0, 99], true, `grow-${i}`), `?pos=${encodeURIComponent(idle.body.pos)}&timeout=0`);
    oneMessage.push(news.ms);
    if (Object.keys(news.body.rooms).length !== 1) throw new Error(`after one message: ${Object.keys(news.body.rooms).length} rooms`);
  }
  console.log(`\n## the range widened to 0-99 (80 rooms new to the connection)`);
  console.log(`  ${summary(widen)}`);
  console.log(`## incremental, nothing new (pos, timeout 0)`);
  console.log(`  ${summary(noop)}`);
  console.log(`## incremental after one message in one room`);
  console.log(`  ${summary(oneMessage)}`);
  console.log(`\nmemory after the run: ${rss()}`);
} finally {
  const t = now();
  await server.stop();
  console.log(`server.stop(): ${ms(now() - t)}`);
  rmSync(server.config.data_dir, { recursive: true, force: true });
}
