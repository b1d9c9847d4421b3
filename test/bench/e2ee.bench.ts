// End-to-end encryption plumbing over loopback HTTP: a real Portier (file-backed SQLite, its WAL
// synced at every commit) driven with fetch. Figures:
//   - an incremental /sync that finds nothing new (the e2ee section included: key counts, fallback
//     types, the device list query, the to-device read), as the baseline;
//   - the cost of to-device delivery in /sync: one message sent then a sync that delivers it (and the
//     next that acknowledges and deletes it); a sync delivering 100 waiting messages, and its size;
//   - PUT /sendToDevice: one message to one device, and one to "*" of a user with 10 devices;
//   - a long-poll woken by a to-device message: from the send's start to the answer;
//   - /keys/upload of 50 one-time keys, /keys/claim of one key, /keys/query of 100 users' devices.
// Figures only; nothing asserts on time.
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { testServer } from "../helpers/server";
import { MatrixHttp, enc, kb, median, now, pool, summary, type User } from "./matrix-http";
import { deviceKeys, keyPair, oneTimeKeys } from "../helpers/e2ee";

const ROUNDS = Number(process.env.E2EE_BENCH_ROUNDS ?? 200);
let http: MatrixHttp;
let txn = 0;

interface Device extends User {
  deviceId: string;
}

async function login(user: User, deviceId: string): Promise<Device> {
  const r = await http.call("POST", "/login", undefined, { type: "m.login.password", identifier: { type: "m.id.user", user: user.userId }, password: "bench password", device_id: deviceId });
  return { userId: r.body.user_id, token: r.body.access_token, deviceId };
}

const sync = (d: Device, since?: string, timeout = 0) => http.call("GET", `/sync?timeout=${timeout}${since ? `&since=${enc(since)}` : ""}`, d.token);
const sendToDevice = (from: Device, to: string, deviceId: string, content: Record<string, unknown>) =>
  http.call("PUT", `/sendToDevice/m.bench/b${++txn}`, from.token, { messages: { [to]: { [deviceId]: content } } });

async function timed<T>(fn: () => Promise<T>): Promise<number> {
  const t = now();
  await fn();
  return now() - t;
}

console.log(`\n# End-to-end encryption plumbing over loopback HTTP (Bun ${Bun.version}, ${navigator.hardwareConcurrency} cores, better-sqlite3, WAL synced at every commit)`);
const server = await testServer({ server_name: "bench.test", registration: { enabled: true } });
const { url } = await server.start();
http = new MatrixHttp(url);
try {
  const alice = await login(await http.register("alice"), "ALICE");
  const bobUser = await http.register("bob");
  const bob = await login(bobUser, "BOB");
  const payload = { algorithm: "m.olm.v1.curve25519-aes-sha2", sender_key: randomBytes(32).toString("base64"), ciphertext: { x: { type: 0, body: randomBytes(600).toString("base64") } } };

  console.log(`\n## /sync and to-device delivery (${ROUNDS} rounds each)`);
  let since = (await sync(bob)).body.next_batch as string;
  const empty: number[] = [];
  for (let i = 0; i < ROUNDS; i++) empty.push(await timed(async () => (since = (await sync(bob, since)).body.next_batch)));
  console.log(`incremental sync, nothing new: ${summary(empty)}`);
  const deliver: number[] = [];
  const ack: number[] = [];
  const sends: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    sends.push(await timed(() => sendToDevice(alice, bob.userId, bob.deviceId, payload)));
    deliver.push(await timed(async () => {
      const r = await sync(bob, since);
      if (r.body.to_device.events.length !== 1) throw new Error("the message was not delivered");
      since = r.body.next_batch;
    }));
    ack.push(await timed(async () => (since = (await sync(bob, since)).body.next_batch)));
  }
  console.log(`PUT /sendToDevice, one ~1 KB message to one device: ${summary(sends)}`);
  console.log(`sync delivering that one message: ${summary(deliver)}`);
  console.log(`the next sync (acknowledges and deletes it): ${summary(ack)}`);

  const hundred: number[] = [];
  let bytes = 0;
  for (let run = 0; run < 10; run++) {
    for (let i = 0; i < 100; i++) await sendToDevice(alice, bob.userId, bob.deviceId, payload);
    hundred.push(await timed(async () => {
      const r = await sync(bob, since);
      if (r.body.to_device.events.length !== 100) throw new Error(`expected 100 messages, got ${r.body.to_device.events.length}`);
      bytes = r.bytes;
      since = r.body.next_batch;
    }));
  }
  console.log(`sync delivering 100 waiting messages: median ${median(hundred).toFixed(2)} ms (10 runs), response ${kb(bytes)}`);

  const many = await pool(Array.from({ length: 10 }, (_, i) => `BOBDEV${i}`), 4, (id) => login(bobUser, id));
  const fanOut: number[] = [];
  for (let i = 0; i < 50; i++) fanOut.push(await timed(() => http.call("PUT", `/sendToDevice/m.bench/f${++txn}`, alice.token, { messages: { [bob.userId]: { "*": payload } } })));
  console.log(`PUT /sendToDevice to "*" of a user with ${many.length + 1} devices: ${summary(fanOut)}`);
  for (const d of [bob, ...many]) await sync(d, since); // deliver the fan-out

  const wake: number[] = [];
  for (let i = 0; i < 50; i++) {
    const before = (await sync(bob, since)).body.next_batch as string;
    const polling = sync(bob, before, 30_000);
    await Bun.sleep(5);
    const t = now();
    await sendToDevice(alice, bob.userId, bob.deviceId, { n: i });
    const r = await polling;
    wake.push(now() - t);
    since = r.body.next_batch;
  }
  console.log(`long-poll woken by a to-device message, from the send's start to the answer: ${summary(wake)}`);

  console.log("\n## keys");
  const key = keyPair();
  const uploads: number[] = [];
  for (let i = 0; i < 20; i++) {
    const body = { one_time_keys: oneTimeKeys(bob.userId, bob.deviceId, key, 50, `U${i}_`), ...(i === 0 ? { device_keys: deviceKeys(bob.userId, bob.deviceId, key).keys } : {}) };
    uploads.push(await timed(() => http.call("POST", "/keys/upload", bob.token, body)));
  }
  console.log(`POST /keys/upload of 50 signed one-time keys: ${summary(uploads)}`);
  const claims: number[] = [];
  for (let i = 0; i < 200; i++) claims.push(await timed(() => http.call("POST", "/keys/claim", alice.token, { one_time_keys: { [bob.userId]: { [bob.deviceId]: "signed_curve25519" } } })));
  console.log(`POST /keys/claim of one key: ${summary(claims)}`);
  const users = await pool(Array.from({ length: 100 }, (_, i) => `keyed${i}`), 4, async (name) => {
    const u = await login(await http.register(name), "DEV");
    await http.call("POST", "/keys/upload", u.token, { device_keys: deviceKeys(u.userId, u.deviceId).keys });
    return u.userId;
  });
  const queries: number[] = [];
  for (let i = 0; i < 20; i++) queries.push(await timed(() => http.call("POST", "/keys/query", alice.token, { device_keys: Object.fromEntries(users.map((u) => [u, []])) })));
  console.log(`POST /keys/query for ${users.length} users with one device each: ${summary(queries)}`);
} finally {
  await server.stop();
  rmSync(server.config.data_dir, { recursive: true, force: true });
}
