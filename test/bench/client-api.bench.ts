// The client-server API end to end: a real Portier listening on an ephemeral loopback port (temporary
// data_dir, registration enabled, file-backed SQLite, its WAL synced at every commit), driven over real HTTP with
// fetch. Figures:
//   - 1,000 sequential sends by one user into one room (PUT /send, a new txnId each): p50/p99/max, messages/s;
//   - 100 concurrent senders (100 users in one public room, each sending 10 messages one after
//     another, all 100 at once): total time, messages/s, p50/p99/max; then the same 1,000 all in
//     flight at once;
//   - the initial /sync of a user in 100 rooms of ~10 messages each: median of 3 (each with a fresh
//     device and token from a password login), and the response size;
//   - /sync wake-up over 100 rounds: a client long-polls /sync?since=…&timeout=30000, another user
//     sends a message; the time from the message's commit (a room-engine listener), from the send's
//     start and from the send's 200 to the long-poll's answer; for a waiter in 1 room and in 100 rooms,
//     with the cost of an incremental sync that finds nothing new for comparison;
//   - the process's resident memory when idle after start and after the run.
//
// The server runs in this process, on the same event loop as the client fetches: every latency
// includes the client's side of HTTP too, the send's 200 and the woken sync's answer arrive in the
// same turn of the loop (so "from the send's 200" reads about 0 or below), and the memory figures are
// the whole process (server, client, the bench's own arrays). Figures only; nothing asserts on time.
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { PortierServer } from "../../src/app";
import { Tokens, resolve } from "../../src/di/tokens";
import { testServer } from "../helpers/server";
import { MatrixHttp, enc, kb, mb, median, ms, now, pool, rss, summary, type User } from "./matrix-http";

const DRIVER = process.env.CLIENT_API_DRIVER ?? "better-sqlite3";
const SEQUENTIAL = Number(process.env.CLIENT_API_SEQUENTIAL ?? 1000);
const SENDERS = Number(process.env.CLIENT_API_SENDERS ?? 100);
const PER_SENDER = Number(process.env.CLIENT_API_PER_SENDER ?? 10);
const SYNC_ROOMS = Number(process.env.CLIENT_API_SYNC_ROOMS ?? 100);
const MESSAGES_PER_ROOM = 10;
const SYNC_RUNS = 3;
const WAKE_ROUNDS = Number(process.env.CLIENT_API_WAKE_ROUNDS ?? 100);
let http: MatrixHttp;
const call = (method: string, path: string, token?: string, body?: unknown) => http.call(method, path, token, body);
const register = (username: string) => http.register(username);
const loginFresh = (user: User) => http.loginFresh(user);
const send = (user: User, roomId: string, body: string) => http.send(user, roomId, body);
const timedSend = (user: User, roomId: string, body: string) => http.timedSend(user, roomId, body);
const createRoom = (user: User, body: Record<string, unknown>) => http.createRoom(user, body);

async function sequentialSends(): Promise<void> {
  console.log(`\n## ${SEQUENTIAL} sequential sends, one user, one room`);
  const alice = await register("alice");
  const roomId = await createRoom(alice, { preset: "private_chat", name: "sequential" });
  for (let i = 0; i < 20; i++) await send(alice, roomId, `warm-up ${i}`); // JIT and connection warm-up, not counted
  const latencies: number[] = [];
  const start = now();
  for (let i = 0; i < SEQUENTIAL; i++) latencies.push(await timedSend(alice, roomId, `sequential message ${i}`));
  const seconds = (now() - start) / 1000;
  console.log(`${SEQUENTIAL} messages in ${seconds.toFixed(2)} s = ${(SEQUENTIAL / seconds).toFixed(0)} messages/s`);
  console.log(`  per send (request to 200): ${summary(latencies)}`);
}

async function concurrentSenders(): Promise<void> {
  console.log(`\n## ${SENDERS} concurrent senders, one public room, ${PER_SENDER} messages each (each sender's sends one after another)`);
  let t = now();
  const users = await pool(
    Array.from({ length: SENDERS }, (_, i) => `sender${i}`),
    4,
    register,
  );
  const registerS = (now() - t) / 1000;
  console.log(`setup: ${SENDERS} registrations in ${registerS.toFixed(2)} s (${((registerS * 1000) / SENDERS).toFixed(1)} ms each, argon2id, 4 at a time)`);
  const roomId = await createRoom(users[0]!, { preset: "public_chat", name: "crowd" });
  t = now();
  await Promise.all(users.slice(1).map((u) => call("POST", `/rooms/${enc(roomId)}/join`, u.token, {})));
  const joinS = (now() - t) / 1000;
  console.log(`setup: ${SENDERS - 1} joins, all at once, in ${joinS.toFixed(2)} s (${((joinS * 1000) / (SENDERS - 1)).toFixed(2)} ms per join)`);

  const latencies: number[] = [];
  t = now();
  await Promise.all(
    users.map(async (u, s) => {
      for (let i = 0; i < PER_SENDER; i++) latencies.push(await timedSend(u, roomId, `from sender ${s}, message ${i}`));
    }),
  );
  const seconds = (now() - t) / 1000;
  const total = SENDERS * PER_SENDER;
  console.log(`${total} messages in ${seconds.toFixed(2)} s = ${(total / seconds).toFixed(0)} messages/s`);
  console.log(`  per send (request to 200): ${summary(latencies)}`);

  // The same 1,000 messages fired all at once (every sender's 10 sends in flight together).
  const burst: number[] = [];
  t = now();
  await Promise.all(users.flatMap((u, s) => Array.from({ length: PER_SENDER }, async (_, i) => burst.push(await timedSend(u, roomId, `burst ${s}/${i}`)))));
  const burstS = (now() - t) / 1000;
  console.log(`burst: all ${total} sends in flight at once: ${burstS.toFixed(2)} s = ${(total / burstS).toFixed(0)} messages/s, ${summary(burst)}`);
}

async function initialSync(): Promise<{ many: User; rooms: string[] }> {
  console.log(`\n## initial /sync of a user in ${SYNC_ROOMS} rooms, ~${MESSAGES_PER_ROOM} messages each`);
  const many = await register("many");
  let t = now();
  const rooms = await pool(
    Array.from({ length: SYNC_ROOMS }, (_, i) => i),
    4,
    (i) => createRoom(many, { preset: "public_chat", name: `room ${i}`, topic: `the topic of room ${i}` }),
  );
  const createS = (now() - t) / 1000;
  t = now();
  await pool(rooms, 10, async (roomId, r) => {
    for (let i = 0; i < MESSAGES_PER_ROOM; i++) await send(many, roomId, `room ${r}, message ${i}: the quick brown fox jumps over the lazy dog`);
  });
  const fillS = (now() - t) / 1000;
  console.log(`setup: ${SYNC_ROOMS} createRoom in ${createS.toFixed(2)} s (${((createS * 1000) / SYNC_ROOMS).toFixed(1)} ms each, 4 at a time); ` +
    `${SYNC_ROOMS * MESSAGES_PER_ROOM} messages in ${fillS.toFixed(2)} s (10 rooms at a time)`);

  const times: number[] = [];
  const sizes: number[] = [];
  let events = 0;
  for (let run = 0; run < SYNC_RUNS; run++) {
    const device = await loginFresh(many);
    const start = now();
    const r = await call("GET", "/sync", device.token);
    times.push(now() - start);
    sizes.push(r.bytes);
    const joined = Object.values(r.body.rooms.join) as { timeline: { events: unknown[] }; state: { events: unknown[] } }[];
    if (joined.length !== SYNC_ROOMS) throw new Error(`initial sync has ${joined.length} joined rooms, expected ${SYNC_ROOMS}`);
    events = joined.reduce((n, room) => n + room.timeline.events.length + room.state.events.length, 0);
  }
  console.log(`initial sync: median ${ms(median(times))} of ${SYNC_RUNS} (${times.map(ms).join(", ")}), fresh device each`);
  console.log(`  response: ${kb(median(sizes))} of JSON, ${events} events (timeline + state) in ${SYNC_ROOMS} rooms`);
  return { many, rooms };
}

/** Resolves once the server holds at least `n` waiting long-polls (checked between event-loop turns; bounded). */
async function untilWaiting(server: PortierServer, n: number): Promise<void> {
  const notifier = resolve(server.container, Tokens.SyncNotifier);
  const deadline = now() + 5000;
  while (notifier.waitingCount() < n) {
    if (now() > deadline) throw new Error("the /sync long-poll never started waiting");
    await new Promise((r) => setImmediate(r));
  }
}

async function wakeUp(server: PortierServer, label: string, waiter: User, sender: User, roomId: string): Promise<void> {
  // When the server persisted each round's message (the engine notifies right after the commit).
  const persistedAt = new Map<string, number>();
  resolve(server.container, Tokens.RoomEngine).onEvent((_roomId, stored, pdu) => {
    const body = (pdu.content as { body?: unknown } | undefined)?.body;
    if (stored.type === "m.room.message" && typeof body === "string" && body.startsWith("wake-up ")) persistedAt.set(body, now());
  });
  let since = (await call("GET", "/sync?filter=" + enc(JSON.stringify({ room: { timeline: { limit: 1 } } })), waiter.token)).body.next_batch as string;

  // The cost of an incremental sync with nothing new (timeout=0): the floor under every wake-up.
  const empty: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t = now();
    await call("GET", `/sync?since=${enc(since)}&timeout=0`, waiter.token);
    empty.push(now() - t);
  }

  const fromPersist: number[] = [];
  const fromStart: number[] = [];
  const fromOk: number[] = [];
  const sendLatency: number[] = [];
  let early = 0;
  for (let round = 0; round < WAKE_ROUNDS; round++) {
    const polling = call("GET", `/sync?since=${enc(since)}&timeout=30000`, waiter.token).then((r) => ({ r, at: now() }));
    await untilWaiting(server, 1);
    const body = `wake-up ${label} ${round}`;
    const sentAt = now();
    await send(sender, roomId, body);
    const okAt = now();
    const { r, at } = await polling;
    const timeline = r.body.rooms?.join?.[roomId]?.timeline?.events ?? [];
    if (!timeline.some((e: { content?: { body?: string } }) => e.content?.body === body)) throw new Error(`round ${round}: the woken sync does not hold the message`);
    since = r.body.next_batch;
    fromPersist.push(at - persistedAt.get(body)!);
    fromStart.push(at - sentAt);
    fromOk.push(at - okAt);
    sendLatency.push(okAt - sentAt);
    if (at < okAt) early++;
  }
  console.log(`${label}: an incremental sync with nothing new (timeout=0) takes ${summary(empty)} (20 calls)`);
  console.log(`  from the message's commit on the server to the long-poll's answer at the client: ${summary(fromPersist)}`);
  console.log(`  from the send's request start to the long-poll's answer: ${summary(fromStart)} (the send's own 200: ${summary(sendLatency)})`);
  console.log(`  from the send's 200 to the long-poll's answer: ${summary(fromOk)}; the long-poll answered first in ${early} of ${WAKE_ROUNDS} rounds`);
}

async function wakeUps(server: PortierServer, many: User, manyRooms: string[]): Promise<void> {
  console.log(`\n## /sync wake-up: long-poll with timeout=30000, another user sends (${WAKE_ROUNDS} rounds each)`);
  const waiter = await register("waiter");
  const poker = await register("poker");
  const roomId = await createRoom(waiter, { preset: "private_chat", name: "wake-up", invite: [poker.userId] });
  await call("POST", `/rooms/${enc(roomId)}/join`, poker.token, {});
  await wakeUp(server, "waiter in 1 room", waiter, poker, roomId);
  await call("POST", `/rooms/${enc(manyRooms[0]!)}/join`, poker.token, {});
  await wakeUp(server, `waiter in ${manyRooms.length} rooms`, many, poker, manyRooms[0]!);
}

function dirSize(dir: string): number {
  let total = 0;
  for (const f of ["portier.db", "portier.db-wal", "portier.db-shm"]) {
    try {
      total += statSync(join(dir, f)).size;
    } catch {
      /* absent */
    }
  }
  return total;
}

console.log(`\n# Client-server API over loopback HTTP (Bun ${Bun.version}, ${navigator.hardwareConcurrency} cores, ${DRIVER}, WAL synced at every commit)`);
const benchStart = now();
const server = await testServer({ server_name: "bench.test", registration: { enabled: true }, database: { driver: DRIVER } });
const { url } = await server.start();
http = new MatrixHttp(url);
console.log(`server ${url}, data_dir ${server.config.data_dir}; the server runs in this process, so memory is the whole process`);
console.log(`memory, idle after start: ${rss()}`);
try {
  await sequentialSends();
  await concurrentSenders();
  const { many, rooms } = await initialSync();
  await wakeUps(server, many, rooms);
  console.log(`\nmemory after the run: ${rss()}; database ${mb(dirSize(server.config.data_dir))} (file + wal)`);
} finally {
  const t = now();
  await server.stop();
  console.log(`server.stop(): ${ms(now() - t)}; whole bench ${((now() - benchStart) / 1000).toFixed(1)} s`);
  rmSync(server.config.data_dir, { recursive: true, force: true });
}
