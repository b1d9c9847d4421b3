// /sync at scale (issue 14), each server in a process of its own, driven over loopback HTTP:
//   - initial and incremental /sync (nothing new) of a user in 1, 50 and 500 rooms (20 messages
//     each; 5 in the 500-room case), every request with a different inline filter so that no
//     response cache answers it: median of SYNC_RUNS / p50 of 50;
//   - long-poll wake-up with 500 rooms: the user long-polls, another member sends into one of the
//     rooms; from the send's start to the poll's answer, p50/p99 of WAKE_ROUNDS;
//   - simplified sliding sync (MSC4186), the first window (range 0-19, timeline_limit 1) of the user
//     in 500 rooms, a new connection each time (where the server serves it);
//   - mixed load: MIX_USERS users in MIX_USERS shared rooms, each looping a send and an incremental
//     /sync for MIX_SECONDS; pairs/s;
//   - the server's resident memory (VmRSS of its process) idle after start and 2 s after the run.
// Portier is started here (bun src/main.ts serve, its own data folder, no plugins). With
// SYNAPSE_URL (and SYNAPSE_PID for its memory) the same runs against that Synapse too, e.g. the
// peer of ../shared/peers/synapse (open registration, rate limits raised); ratios are printed.
// SYNC_BENCH_PROFILE=DIR writes the Portier process's CPU profile there. Figures only; nothing
// asserts on time.
import { readFileSync } from "node:fs";
import { MatrixHttp, enc, median, ms, now, percentile, pool, type User } from "./matrix-http";
import { startPortierProcess } from "./portier-process";

const SYNC_RUNS = Number(process.env.SYNC_RUNS ?? 5);
const WAKE_ROUNDS = Number(process.env.SYNC_WAKE_ROUNDS ?? 50);
const MIX_USERS = Number(process.env.MIX_USERS ?? 20);
const MIX_SECONDS = Number(process.env.MIX_SECONDS ?? 90);
const SIZES = (process.env.SYNC_SIZES ?? "1,50,500").split(",").map(Number);
/** How long after the mixed load the resident memory is read. */
const AFTER_RUN_SETTLE_MS = 2_000;
const PASSWORD = "bench password";
const RUN = Date.now().toString(36);

interface Target {
  name: string;
  url: string;
  pid?: number;
  slidingSync: boolean;
}

const results = new Map<string, Map<string, number>>();
function record(target: Target, what: string, value: number): void {
  let m = results.get(what);
  if (!m) results.set(what, (m = new Map()));
  m.set(target.name, value);
}

function rssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Registers with m.login.dummy, answering a 401 with its session when the server asks for one. */
async function register(http: MatrixHttp, username: string): Promise<User> {
  const attempt = async (auth: Record<string, unknown>) =>
    fetch(`${http.base}/_matrix/client/v3/register`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ username, password: PASSWORD, auth }) });
  let response = await attempt({ type: "m.login.dummy" });
  if (response.status === 401) {
    const session = ((await response.json()) as { session?: string }).session;
    response = await attempt({ type: "m.login.dummy", session });
  }
  const body = (await response.json()) as { user_id?: string; access_token?: string };
  if (response.status !== 200) throw new Error(`register ${username}: ${response.status} ${JSON.stringify(body)}`);
  return { userId: body.user_id!, token: body.access_token! };
}

const syncPath = (limit: number, since?: string, timeout = 0) =>
  `/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit } } }))}${since ? `&since=${enc(since)}` : ""}&timeout=${timeout}`;

async function roomsWithMessages(http: MatrixHttp, user: User, rooms: number, messages: number, label: string): Promise<string[]> {
  const t = now();
  const ids = await pool(Array.from({ length: rooms }, (_, i) => i), 4, (i) => http.createRoom(user, { preset: "public_chat", name: `${label} ${i}` }));
  await pool(ids, 8, async (roomId, r) => {
    for (let i = 0; i < messages; i++) await http.send(user, roomId, `${label} room ${r}, message ${i}: the quick brown fox jumps over the lazy dog`);
  });
  console.log(`  setup: ${rooms} rooms with ${messages} messages each in ${((now() - t) / 1000).toFixed(1)} s`);
  return ids;
}

async function syncSizes(target: Target, http: MatrixHttp): Promise<{ user: User; rooms: string[] } | undefined> {
  let largest: { user: User; rooms: string[] } | undefined;
  for (const size of SIZES) {
    const user = await register(http, `sync${size}-${RUN}`);
    const rooms = await roomsWithMessages(http, user, size, size >= 500 ? 5 : 20, `s${size}`);
    const initial: number[] = [];
    let since = "";
    for (let run = 0; run < SYNC_RUNS; run++) {
      const t = now();
      const r = await http.call("GET", syncPath(10 + run), user.token);
      initial.push(now() - t);
      const joined = Object.keys(r.body.rooms?.join ?? {}).length;
      if (joined !== size) throw new Error(`${target.name}: initial sync has ${joined} rooms, expected ${size}`);
      since = r.body.next_batch;
    }
    const incremental: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t = now();
      const r = await http.call("GET", syncPath(10 + (i % 40), since), user.token);
      incremental.push(now() - t);
      since = r.body.next_batch;
    }
    const inc = [...incremental].sort((a, b) => a - b);
    console.log(`  ${size} rooms: initial /sync median ${ms(median(initial))} (${SYNC_RUNS} runs); incremental, nothing new, p50 ${ms(percentile(inc, 0.5))}, p99 ${ms(percentile(inc, 0.99))}`);
    record(target, `initial /sync, ${size} rooms (ms)`, median(initial));
    record(target, `incremental /sync nothing new, ${size} rooms, p50 (ms)`, percentile(inc, 0.5));
    largest = { user, rooms };
  }
  return largest;
}

async function wakeUps(target: Target, http: MatrixHttp, waiter: User, rooms: string[]): Promise<void> {
  const sender = await register(http, `waker-${RUN}`);
  const roomId = rooms[Math.floor(rooms.length / 2)]!;
  await http.call("POST", `/join/${enc(roomId)}`, sender.token, {});
  let since = (await http.call("GET", syncPath(1), waiter.token)).body.next_batch as string;
  const times: number[] = [];
  for (let round = 0; round < WAKE_ROUNDS; round++) {
    const polling = http.call("GET", syncPath(1, since, 30_000), waiter.token).then((r) => ({ r, at: now() }));
    // Let the poll reach the server and start waiting.
    await new Promise((resolve) => setTimeout(resolve, 20));
    const start = now();
    await http.send(sender, roomId, `wake ${round}`);
    const { r, at } = await polling;
    since = r.body.next_batch;
    if (!r.body.rooms?.join?.[roomId]) {
      round--;
      continue;
    }
    times.push(at - start);
  }
  const s = [...times].sort((a, b) => a - b);
  console.log(`  long-poll wake-up with ${rooms.length} rooms: p50 ${ms(percentile(s, 0.5))}, p99 ${ms(percentile(s, 0.99))} (${WAKE_ROUNDS} rounds, from the send's start)`);
  record(target, `long-poll wake-up, ${rooms.length} rooms, p50 (ms)`, percentile(s, 0.5));
  record(target, `long-poll wake-up, ${rooms.length} rooms, p99 (ms)`, percentile(s, 0.99));
}

async function slidingSyncWindow(target: Target, http: MatrixHttp, user: User, rooms: number): Promise<void> {
  if (!target.slidingSync) {
    console.log("  sliding sync: not served");
    return;
  }
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t = now();
    const response = await fetch(`${http.base}/_matrix/client/unstable/org.matrix.simplified_msc3575/sync`, {
      method: "POST",
      headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ conn_id: `bench-${i}`, lists: { all: { ranges: [[0, 19]], timeline_limit: 1, required_state: [["m.room.name", ""], ["m.room.avatar", ""], ["m.room.encryption", ""], ["m.room.member", "$LAZY"]] } } }),
    });
    const body = (await response.json()) as { lists?: { all?: { count?: number } } };
    times.push(now() - t);
    if (response.status !== 200 || body.lists?.all?.count !== rooms) throw new Error(`sliding sync: ${response.status} ${JSON.stringify(body).slice(0, 200)}`);
  }
  const s = [...times].sort((a, b) => a - b);
  console.log(`  sliding sync first window (0-19 of ${rooms}): p50 ${ms(percentile(s, 0.5))}, p99 ${ms(percentile(s, 0.99))}`);
  record(target, `sliding sync first window, ${rooms} rooms, p50 (ms)`, percentile(s, 0.5));
}

async function mixedLoad(target: Target, http: MatrixHttp): Promise<void> {
  const users = await Promise.all(Array.from({ length: MIX_USERS }, (_, i) => register(http, `mix${i}-${RUN}`)));
  const rooms = await pool(Array.from({ length: MIX_USERS }, (_, i) => i), 4, (i) => http.createRoom(users[i]!, { preset: "public_chat", name: `mix ${i}` }));
  await pool(users, 4, async (user) => {
    for (const roomId of rooms) await http.call("POST", `/join/${enc(roomId)}`, user.token, {});
  });
  const sinces = await Promise.all(users.map(async (u) => (await http.call("GET", syncPath(5), u.token)).body.next_batch as string));
  let pairs = 0;
  const end = now() + MIX_SECONDS * 1000;
  const cpuBefore = target.pid === undefined ? undefined : cpuSeconds(target.pid);
  await Promise.all(
    users.map(async (user, u) => {
      let since = sinces[u]!;
      for (let i = 0; now() < end; i++) {
        await http.send(user, rooms[(u + i) % rooms.length]!, `mixed ${u}/${i}`);
        since = (await http.call("GET", syncPath(5, since), user.token)).body.next_batch;
        pairs++;
      }
    }),
  );
  const cpu = cpuBefore === undefined ? undefined : cpuSeconds(target.pid!)! - cpuBefore;
  console.log(`  mixed load, ${MIX_USERS} users in ${MIX_USERS} shared rooms, send + incremental /sync each, ${MIX_SECONDS} s: ${(pairs / MIX_SECONDS).toFixed(1)} pairs/s` +
    (cpu === undefined ? "" : `; server CPU ${((cpu / MIX_SECONDS) * 100).toFixed(0)}% of a core, ${((cpu * 1000) / pairs).toFixed(1)} ms a pair`));
  record(target, "mixed load (pairs/s)", pairs / MIX_SECONDS);
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

async function run(target: Target): Promise<void> {
  console.log(`\n## ${target.name} (${target.url})`);
  const http = new MatrixHttp(target.url);
  const idle = rssMiB(target.pid);
  if (idle !== undefined) record(target, "RSS idle (MiB)", idle);
  const largest = await syncSizes(target, http);
  if (largest) {
    await wakeUps(target, http, largest.user, largest.rooms);
    await slidingSyncWindow(target, http, largest.user, largest.rooms.length);
  }
  await mixedLoad(target, http);
  // Read after the load has been over for a moment (the same wait for every server): Portier trims
  // its memory in the first quiet second after load, not while requests still come.
  await new Promise((resolve) => setTimeout(resolve, AFTER_RUN_SETTLE_MS));
  const after = rssMiB(target.pid);
  if (after !== undefined) record(target, "RSS after the run (MiB)", after);
  console.log(`  RSS: idle ${idle?.toFixed(0) ?? "?"} MiB, after the run ${after?.toFixed(0) ?? "?"} MiB`);
}

async function startPortier(): Promise<{ target: Target; stop: () => Promise<void> }> {
  // SYNC_BENCH_PROFILE=DIR: the server writes a CPU profile there when it stops (bun --cpu-prof).
  // SYNC_BENCH_BUN_ARGS="--smol ...": runtime flags for the server process (memory experiments).
  const portier = await startPortierProcess({
    profileDir: process.env.SYNC_BENCH_PROFILE,
    runtimeArgs: (process.env.SYNC_BENCH_BUN_ARGS ?? "").split(" ").filter(Boolean),
  });
  return { target: { name: "Portier", url: portier.url, pid: portier.pid, slidingSync: true }, stop: portier.stop };
}

const commit = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: import.meta.dir }).stdout.toString().trim();
console.log(`\n# /sync at scale (Bun ${Bun.version}, ${navigator.hardwareConcurrency} cores, commit ${commit}; servers in processes of their own, loopback HTTP)`);
const portier = await startPortier();
const targets: Target[] = [portier.target];
if (process.env.SYNAPSE_URL) targets.push({ name: "Synapse", url: process.env.SYNAPSE_URL, pid: process.env.SYNAPSE_PID ? Number(process.env.SYNAPSE_PID) : undefined, slidingSync: false });
try {
  for (const target of targets) await run(target);
} finally {
  await portier.stop();
}
if (targets.length > 1) {
  console.log("\n| what | Portier | Synapse | ratio |\n|---|---:|---:|---:|");
  for (const [what, values] of results) {
    const p = values.get("Portier");
    const s = values.get("Synapse");
    const ratio = p !== undefined && s !== undefined && p > 0 ? (what.includes("pairs/s") ? p / s : s / p) : undefined;
    console.log(`| ${what} | ${p?.toFixed(1) ?? "-"} | ${s?.toFixed(1) ?? "-"} | ${ratio === undefined ? "-" : `${ratio.toFixed(1)}x`} |`);
  }
}
