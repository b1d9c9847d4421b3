// Remote knock latency (issue 11): from a knock by a user of B (POST /knock/{roomId}?via=A, real
// HTTPS to B) to its arrival in the long-poll /sync of a moderator on A (real HTTPS to A), over two
// Portier servers federating over TLS on loopback, both in this process. Each round a fresh user of
// B knocks on one knock room (v10) of A while the moderator holds /sync?timeout=30000. Also: the
// knock request's own duration (make_knock + send_knock round trips included), and the time from
// the knock's commit on A (a room-engine listener) to the moderator's answer. Figures only.
import type { PortierServer } from "../../src/app";
import { Tokens, resolve } from "../../src/di/tokens";
import { federatedServer, type FederatedServer } from "../helpers/federation";

const ROUNDS = Number(process.env.KNOCK_ROUNDS ?? 100);
const V3 = "/_matrix/client/v3";
const enc = encodeURIComponent;
const now = () => performance.now();

async function call(base: string, method: string, path: string, token?: string, body?: unknown): Promise<any> {
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  // Loopback only: the servers' certificates come from the helpers' test CA, not checked here.
  const response = await fetch(`${base}${V3}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), tls: { rejectUnauthorized: false } } as RequestInit);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 200)}`);
  return text.length ? JSON.parse(text) : undefined;
}

const register = async (base: string, name: string) => {
  const r = await call(base, "POST", "/register", undefined, { username: name, password: "pw", auth: { type: "m.login.dummy" } });
  return { userId: r.user_id as string, token: r.access_token as string };
};

function stats(label: string, values: number[]): void {
  const s = [...values].sort((a, b) => a - b);
  const p = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(2);
  const mean = (s.reduce((x, y) => x + y, 0) / s.length).toFixed(2);
  console.log(`${label.padEnd(44)} p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, mean ${mean} ms, max ${s[s.length - 1]!.toFixed(2)} ms (${s.length} rounds)`);
}

async function untilWaiting(server: PortierServer): Promise<void> {
  const notifier = resolve(server.container, Tokens.SyncNotifier);
  const deadline = now() + 5000;
  while (notifier.waitingCount() < 1) {
    if (now() > deadline) throw new Error("the moderator's long-poll never started waiting");
    await new Promise((r) => setImmediate(r));
  }
}

let a: FederatedServer | undefined;
let b: FederatedServer | undefined;
try {
  a = await federatedServer({ registration: { enabled: true } });
  b = await federatedServer({ registration: { enabled: true } });
  const moderator = await register(a.url, "moderator");
  const roomId = (await call(a.url, "POST", "/createRoom", moderator.token, { room_version: "10", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] })).room_id as string;
  const regStart = now();
  const knockers = [];
  for (let i = 0; i < ROUNDS; i++) knockers.push(await register(b.url, `knocker${i}`));
  const regSeconds = (now() - regStart) / 1000;

  const committedAt = new Map<string, number>();
  resolve(a.server.container, Tokens.RoomEngine).onEvent((_room, stored) => {
    if (stored.type === "m.room.member" && stored.stateKey) committedAt.set(stored.stateKey, now());
  });
  let since = (await call(a.url, "GET", "/sync?timeout=0", moderator.token)).next_batch as string;
  const fromRequest: number[] = [];
  const fromCommit: number[] = [];
  const knockRequest: number[] = [];
  let extraSyncs = 0;
  for (const knocker of knockers) {
    let start = 0;
    let knockDone = 0;
    let knock: Promise<unknown> | undefined;
    for (;;) {
      const poll = call(a.url, "GET", `/sync?since=${enc(since)}&timeout=30000`, moderator.token);
      await untilWaiting(a.server);
      if (!knock) start = now();
      knock ??= call(b.url, "POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, knocker.token, { reason: "bench" }).then(() => (knockDone = now()));
      const answer = await poll;
      since = answer.next_batch;
      const events = answer.rooms?.join?.[roomId]?.timeline?.events ?? [];
      if (events.some((e: { state_key?: string; content?: { membership?: string } }) => e.state_key === knocker.userId && e.content?.membership === "knock")) break;
      extraSyncs++; // woken by something else (a presence or device-list change...): poll again
    }
    const arrived = now();
    await knock;
    fromRequest.push(arrived - start);
    fromCommit.push(arrived - committedAt.get(knocker.userId)!);
    knockRequest.push(knockDone - start);
  }
  console.log(`\n## Remote knock -> moderator long-poll (Bun ${Bun.version}, two servers over TLS on loopback, in-process; HTTPS clients)`);
  stats("from the knock request's start", fromRequest);
  stats("from the knock's commit on A", fromCommit);
  stats("the knock request itself (B's answer)", knockRequest);
  console.log(`(${ROUNDS} knockers registered on B in ${regSeconds.toFixed(1)} s; moderator /sync answers without the knock: ${extraSyncs})`);
} finally {
  await a?.server.stop().catch(() => {});
  await b?.server.stop().catch(() => {});
}
