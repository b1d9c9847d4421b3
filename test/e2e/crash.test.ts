// kill -9 during 1,000 concurrent sends, on every engine: the server runs as its own process (`portier
// serve` from source), 20 users each send 50 messages into their own room, all at once (group commit
// shares commits between rooms); the process is killed with SIGKILL once a third of the sends have been
// answered. A new process on the same data must hold every event that was answered 200, and a send
// retried with its txnId after the crash lands at most once.
import { afterAll, describe, expect, test } from "bun:test";
import { spawn, type Subprocess } from "bun";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "../helpers/server";
import { freePort } from "../helpers/net";
import { databaseConfig, serverDatabases } from "../helpers/databases";

const USERS = 20;
const PER_USER = 50;
const V3 = "/_matrix/client/v3";
const enc = encodeURIComponent;
const TEST_TIMEOUT = 120_000;


const started: Subprocess[] = [];
afterAll(() => {
  for (const p of started) p.kill("SIGKILL");
});

/** `portier serve` from source in its own process, with the config in PORTIER_* variables. */
async function startProcess(dataDir: string, database: Record<string, unknown>): Promise<{ proc: Subprocess; base: string }> {
  const port = await freePort();
  // Only this test's PORTIER_ settings: any others in the environment would be config keys too.
  const inherited = Object.entries(process.env).filter(([k, v]) => !k.startsWith("PORTIER_") && v !== undefined) as [string, string][];
  const env: Record<string, string> = {
    ...Object.fromEntries(inherited),
    PORTIER_SERVER_NAME: "crash.test",
    PORTIER_BIND: `127.0.0.1:${port}`,
    PORTIER_DATA_DIR: dataDir,
    PORTIER_REGISTRATION__ENABLED: "true",
    PORTIER_LOG_LEVEL: "error",
    // 20 registrations and 1,000 sends from one address in a second: no rate limits for this load.
    PORTIER_PLUGINS: "[]",
  };
  for (const [key, value] of Object.entries((database.database ?? {}) as Record<string, string>)) env[`PORTIER_DATABASE__${key.toUpperCase()}`] = value;
  const proc = spawn([process.execPath, join(import.meta.dir, "../../src/main.ts"), "serve"], { env, stdout: "ignore", stderr: "pipe" });
  started.push(proc);
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`the server exited with ${proc.exitCode}: ${await new Response(proc.stderr as ReadableStream).text()}`);
    try {
      if ((await fetch(`${base}/_matrix/client/versions`, { signal: AbortSignal.timeout(1000) })).ok) return { proc, base };
    } catch {
      /* not listening yet */
    }
    await Bun.sleep(50);
  }
  throw new Error("the server did not answer within 10 s");
}

async function call(base: string, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(`${base}${V3}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

describe.each(serverDatabases.map((d) => [d.name] as const))("kill -9 during concurrent sends on %s", (engine) => {
  test(
    "every event answered 200 before the kill is there after a restart",
    async () => {
      const dataDir = tempDir("portier-crash-");
      const database = await databaseConfig(engine);
      let { proc, base } = await startProcess(dataDir, database);
      const users: { token: string; roomId: string }[] = [];
      for (let i = 0; i < USERS; i++) {
        const r = await call(base, "POST", "/register", undefined, { username: `user${i}`, password: "crash test password", auth: { type: "m.login.dummy" } });
        expect(r.status).toBe(200);
        const room = await call(base, "POST", "/createRoom", r.body.access_token, { preset: "private_chat" });
        expect(room.status).toBe(200);
        users.push({ token: r.body.access_token, roomId: room.body.room_id });
      }

      const acked: { user: number; txnId: string; eventId: string }[] = [];
      const unanswered: { user: number; txnId: string }[] = [];
      let killed = false;
      const total = USERS * PER_USER;
      const sends = users.flatMap((u, i) =>
        Array.from({ length: PER_USER }, async (_, k) => {
          const txnId = `crash-${i}-${k}`;
          try {
            const r = await call(base, "PUT", `/rooms/${enc(u.roomId)}/send/m.room.message/${txnId}`, u.token, { msgtype: "m.text", body: `${i}/${k}` });
            if (r.status === 200 && !killed) acked.push({ user: i, txnId, eventId: r.body.event_id });
            else unanswered.push({ user: i, txnId });
          } catch {
            unanswered.push({ user: i, txnId });
          }
          if (!killed && acked.length >= total / 3) {
            killed = true;
            proc.kill("SIGKILL");
          }
        }),
      );
      await Promise.all(sends);
      await proc.exited;
      expect(killed).toBe(true);
      expect(acked.length).toBeGreaterThanOrEqual(total / 3);

      ({ proc, base } = await startProcess(dataDir, database));
      // Every acknowledged event is there, in its room, with its body.
      for (const a of acked) {
        const r = await call(base, "GET", `/rooms/${enc(users[a.user]!.roomId)}/event/${enc(a.eventId)}`, users[a.user]!.token);
        expect(r.status).toBe(200);
        expect(r.body.content.body).toBe(`${a.user}/${a.txnId.split("-")[2]}`);
      }
      // A retry with the same txnId gives the same event for acknowledged sends, and any other lands once.
      for (const a of acked.slice(0, 20)) {
        const r = await call(base, "PUT", `/rooms/${enc(users[a.user]!.roomId)}/send/m.room.message/${a.txnId}`, users[a.user]!.token, { msgtype: "m.text", body: "retry" });
        expect(r.body.event_id).toBe(a.eventId);
      }
      const retriedUser = unanswered[0]!.user;
      for (const u of unanswered.filter((x) => x.user === retriedUser)) {
        const r = await call(base, "PUT", `/rooms/${enc(users[u.user]!.roomId)}/send/m.room.message/${u.txnId}`, users[u.user]!.token, { msgtype: "m.text", body: `${u.user}/${u.txnId.split("-")[2]}` });
        expect(r.status).toBe(200);
      }
      const messages = await call(base, "GET", `/rooms/${enc(users[retriedUser]!.roomId)}/messages?dir=b&limit=1000`, users[retriedUser]!.token);
      const bodies = messages.body.chunk.filter((e: any) => e.type === "m.room.message").map((e: any) => e.content.body);
      expect(bodies.length).toBe(PER_USER);
      expect(new Set(bodies).size).toBe(PER_USER);
      proc.kill("SIGTERM");
      await proc.exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
    TEST_TIMEOUT,
  );
});
