// Knock latency: the time from a knock (POST /knock) to its arrival in a moderator's long-poll /sync,
// over real HTTP to a Portier on an ephemeral loopback port. Each round a fresh user knocks on one
// room while the moderator holds /sync?timeout=30000; figures are from the knock request's start
// and from the knock's commit (a room-engine listener) to the moderator's answer. The server runs in
// this process, so the latencies include the client side of HTTP too. Figures only.
import type { PortierServer } from "../../src/app";
import { Tokens, resolve } from "../../src/di/tokens";
import { testServer } from "../helpers/server";

const ROUNDS = Number(process.env.KNOCK_ROUNDS ?? 100);
const V3 = "/_matrix/client/v3";
const enc = encodeURIComponent;
const now = () => performance.now();
let base = "";

async function call(method: string, path: string, token?: string, body?: unknown): Promise<any> {
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(`${base}${V3}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 200)}`);
  return text.length ? JSON.parse(text) : undefined;
}

const register = async (name: string) => {
  const r = await call("POST", "/register", undefined, { username: name, password: "pw", auth: { type: "m.login.dummy" } });
  return { userId: r.user_id as string, token: r.access_token as string };
};

function stats(label: string, values: number[]): void {
  const s = [...values].sort((a, b) => a - b);
  const p = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(2);
  console.log(`${label.padEnd(44)} p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${s[s.length - 1]!.toFixed(2)} ms (${s.length} rounds)`);
}

async function untilWaiting(server: PortierServer): Promise<void> {
  const notifier = resolve(server.container, Tokens.SyncNotifier);
  const deadline = now() + 5000;
  while (notifier.waitingCount() < 1) {
    if (now() > deadline) throw new Error("the moderator's long-poll never started waiting");
    await new Promise((r) => setImmediate(r));
  }
}

const server = await testServer({ server_name: "knock.bench", registration: { enabled: true } });
try {
  base = (await server.start()).url;
  const moderator = await register("moderator");
  const roomId = (await call("POST", "/createRoom", moderator.token, { room_version: "10", initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }] })).room_id as string;
  const knockers = [];
  for (let i = 0; i < ROUNDS; i++) knockers.push(await register(`knocker${i}`));

  const committedAt = new Map<string, number>();
  resolve(server.container, Tokens.RoomEngine).onEvent((_room, stored) => {
    if (stored.type === "m.room.member" && stored.stateKey) committedAt.set(stored.stateKey, now());
  });
  let since = (await call("GET", "/sync?timeout=0", moderator.token)).next_batch as string;
  const fromRequest: number[] = [];
  const fromCommit: number[] = [];
  for (const knocker of knockers) {
    const poll = call("GET", `/sync?since=${enc(since)}&timeout=30000`, moderator.token);
    await untilWaiting(server);
    const start = now();
    const knock = call("POST", `/knock/${enc(roomId)}`, knocker.token, { reason: "bench" });
    const answer = await poll;
    const arrived = now();
    await knock;
    const events = answer.rooms?.join?.[roomId]?.timeline?.events ?? [];
    if (!events.some((e: { state_key?: string; content?: { membership?: string } }) => e.state_key === knocker.userId && e.content?.membership === "knock")) {
      throw new Error("the moderator's sync did not carry the knock");
    }
    fromRequest.push(arrived - start);
    fromCommit.push(arrived - committedAt.get(knocker.userId)!);
    since = answer.next_batch;
  }
  console.log(`# Knock -> moderator long-poll (Bun ${Bun.version}, loopback HTTP, in-process server)`);
  stats("from the knock request's start", fromRequest);
  stats("from the knock's commit", fromCommit);
} finally {
  await server.stop();
}
