// Restart proof over real HTTP: a Portier on a temporary data_dir (127.0.0.1, port 0) gets two users,
// a room and a conversation; a client takes a /sync token; then both users keep sending while the
// server is stopped under them. A new server built on the same data_dir must still know everything
// that was answered 200: the old access tokens, the room, every acknowledged message (/messages), and
// an incremental /sync from the old token returns exactly the messages after it. Password login and
// new messages work, and a send that failed during the shutdown, retried with its txnId, lands once.
//
// The tests run in order and share state. Every request has a bounded timeout; the shutdown is
// triggered by a message's commit (a room-engine listener), never by a sleep.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { buildServer, type PortierServer } from "../../src/app";
import { resolveConfig } from "../../src/config/loader";
import { Tokens, resolve } from "../../src/di/tokens";
import { expectMatchesSpec } from "../helpers/openapi";
import { silentLogger, tempDir } from "../helpers/server";
import { databaseConfig, serverDatabases } from "../helpers/databases";

const SERVER_NAME = "restart.test";
const PASSWORD = "correct horse battery staple";
const REQUEST_TIMEOUT = 10_000;
const TEST_TIMEOUT = 30_000;
const V3 = "/_matrix/client/v3";
const enc = encodeURIComponent;
/** Every message in one timeline, so that "exactly the messages after the token" is checkable. */
const WIDE_FILTER = enc(JSON.stringify({ room: { timeline: { limit: 200 } } }));

let dataDir = "";
/** The engine's database settings, the same for both servers of one run. */
let database: Record<string, unknown> = {};
// No plugins (as testServer): the default rate limit (10 messages at once a user) would meet the
// racing sends and their retries after the restart, which split between the users as the timing falls.
const config = () => resolveConfig({ server_name: SERVER_NAME, bind: "127.0.0.1:0", data_dir: dataDir, registration: { enabled: true }, plugins: [], ...database });

let first: PortierServer | undefined;
let second: PortierServer | undefined;
let base = "";

interface Reply {
  status: number;
  body: any;
}

/** One request over HTTP with a bounded timeout; network failures reject. */
async function call(method: string, path: string, token?: string, body?: unknown, timeout = REQUEST_TIMEOUT): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`${base}${V3}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeout),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text.length ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: response.status, body: parsed };
}

/** Expects a 200 whose body matches the spec, and returns the body. */
async function ok(method: string, path: string, token?: string, body?: unknown, timeout?: number): Promise<any> {
  const r = await call(method, path, token, body, timeout);
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  // The spec writes the empty state key as a trailing slash; Portier also serves it without one.
  const specPath = `${V3}${path}`.replace(/\/state\/([^/?]+)(\?|$)/, "/state/$1/$2");
  expectMatchesSpec({ api: "client-server", method, path: specPath, status: 200, body: r.body });
  return r.body;
}

interface User {
  userId: string;
  deviceId: string;
  token: string;
}

interface Sent {
  body: string;
  sender: User;
  txnId: string;
  /** Set when the server answered 200. */
  eventId?: string;
  /** The status or network error of a send that did not get a 200. */
  failure?: string;
}

let alice: User;
let bob: User;
/** In no room: her long-poll is only ever answered by the shutdown. */
let carol: User;
let roomId: string;
/** Messages answered 200 before the sync token was taken. */
const before: Sent[] = [];
/** Every message attempted after the token (acknowledged or not). */
const after: Sent[] = [];
let token = "";
let txnCounter = 0;

async function send(user: User, body: string, txnId = `restart-${++txnCounter}`): Promise<Sent> {
  const sent: Sent = { body, sender: user, txnId };
  try {
    const r = await call("PUT", `/rooms/${enc(roomId)}/send/m.room.message/${txnId}`, user.token, { msgtype: "m.text", body });
    if (r.status === 200 && typeof r.body?.event_id === "string") sent.eventId = r.body.event_id;
    else sent.failure = `${r.status} ${JSON.stringify(r.body)}`;
  } catch (error) {
    sent.failure = `${(error as Error).name}: ${(error as Error).message}`;
  }
  return sent;
}

/** Every m.room.message of the room in order, oldest first, read backwards through /messages. */
async function allMessages(user: User): Promise<{ event_id: string; body: string; sender: string }[]> {
  const out: { event_id: string; body: string; sender: string }[] = [];
  let from: string | undefined;
  for (let page = 0; page < 50; page++) {
    const r = await ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=100${from ? `&from=${enc(from)}` : ""}`, user.token);
    for (const e of r.chunk) if (e.type === "m.room.message") out.push({ event_id: e.event_id, body: e.content.body, sender: e.sender });
    if (r.end === undefined || r.chunk.length === 0) return out.reverse();
    from = r.end;
  }
  throw new Error("/messages did not end after 50 pages");
}

function timelineMessages(sync: any): { event_id: string; body: string }[] {
  const events = sync.rooms?.join?.[roomId]?.timeline?.events ?? [];
  return events.filter((e: any) => e.type === "m.room.message").map((e: any) => ({ event_id: e.event_id, body: e.content.body }));
}

/** Rejects when `promise` takes longer than `ms`. */
function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)));
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/** Resolves once `server` holds at least `n` waiting /sync long-polls (polled, bounded). */
async function untilWaiting(server: PortierServer, n: number): Promise<void> {
  const notifier = resolve(server.container, Tokens.SyncNotifier);
  const deadline = Date.now() + REQUEST_TIMEOUT;
  while (notifier.waitingCount() < n) {
    if (Date.now() > deadline) throw new Error(`no /sync long-poll started waiting within ${REQUEST_TIMEOUT} ms`);
    await Bun.sleep(5);
  }
}

describe.each(serverDatabases.map((d) => [d.name] as const))("a restart on the same data_dir loses nothing that was answered 200, on %s", (engine) => {
  beforeAll(async () => {
    dataDir = tempDir("portier-restart-");
    database = await databaseConfig(engine);
    before.length = 0;
    after.length = 0;
    first = await buildServer(config(), { logger: silentLogger });
    base = (await first.start()).url;
    expect(base).toStartWith("http://127.0.0.1:");
  });

  afterAll(async () => {
    await first?.stop().catch(() => {});
    await second?.stop().catch(() => {});
    first = second = undefined;
    rmSync(dataDir, { recursive: true, force: true });
  });

  test(
    "before: two users register, share a room, talk, and a client takes a sync token",
    async () => {
      const register = async (username: string): Promise<User> => {
        const r = await ok("POST", "/register", undefined, { username, password: PASSWORD, auth: { type: "m.login.dummy" } });
        return { userId: r.user_id, deviceId: r.device_id, token: r.access_token };
      };
      alice = await register("alice");
      bob = await register("bob");
      carol = await register("carol");
      roomId = (await ok("POST", "/createRoom", alice.token, { preset: "private_chat", name: "Survives restarts", invite: [bob.userId] })).room_id;
      await ok("POST", `/rooms/${enc(roomId)}/join`, bob.token, {});
      for (let i = 0; i < 3; i++) {
        for (const user of [alice, bob]) {
          const sent = await send(user, `before ${user === alice ? "alice" : "bob"} ${i}`);
          expect(sent.failure).toBeUndefined();
          before.push(sent);
        }
      }
      const sync = await ok("GET", `/sync?filter=${WIDE_FILTER}`, alice.token);
      expect(timelineMessages(sync).map((m) => m.event_id)).toEqual(before.map((s) => s.eventId!));
      token = sync.next_batch;
      expect(typeof token).toBe("string");
    },
    TEST_TIMEOUT,
  );

  test(
    "during: both users keep sending while server.stop() runs; a waiting /sync is answered at once",
    async () => {
      const server = first!;
      // Two messages after the token that are certainly on disk before the shutdown begins.
      for (const user of [bob, alice]) {
        const sent = await send(user, `after, settled, from ${user === alice ? "alice" : "bob"}`);
        expect(sent.failure).toBeUndefined();
        after.push(sent);
      }
      // Carol, in no room, long-polls: nothing will wake her, so the shutdown itself must answer her.
      const carolSince = (await ok("GET", "/sync", carol.token)).next_batch;
      const carolPoll = call("GET", `/sync?since=${enc(carolSince)}&timeout=20000`, carol.token, undefined, 25_000).then(
        (r) => r.status,
        (e: Error) => `${e.name}: ${e.message}`,
      );
      await untilWaiting(server, 1);

      // The shutdown starts the moment the first racing message commits: its request has not been
      // answered yet (the commit listener runs inside the write), so stop() must let it finish.
      let trigger: string | undefined;
      let commitSeen!: () => void;
      const firstCommit = new Promise<void>((r) => (commitSeen = r));
      resolve(server.container, Tokens.RoomEngine).onEvent((_room, stored, pdu) => {
        const body = (pdu.content as { body?: unknown } | undefined)?.body;
        if (trigger === undefined && stored.type === "m.room.message" && typeof body === "string" && /^after, (racing|burst),/.test(body)) {
          trigger = body;
          commitSeen();
        }
      });

      // Each user sends 10 messages one after another (as a client does), plus 4 at once each.
      const racing: Promise<Sent[]>[] = [alice, bob].map(async (user) => {
        const name = user === alice ? "alice" : "bob";
        const out: Sent[] = [];
        for (let i = 0; i < 10; i++) out.push(await send(user, `after, racing, ${name} ${i}`));
        return out;
      });
      racing.push(Promise.all([alice, bob].flatMap((user) => [0, 1, 2, 3].map((i) => send(user, `after, burst, ${user === alice ? "alice" : "bob"} ${i}`)))));

      await within("the first racing commit", REQUEST_TIMEOUT, firstCommit);
      const stopStart = performance.now();
      await within("server.stop()", 15_000, server.stop());
      const stopMs = performance.now() - stopStart;
      first = undefined;

      const results = (await within("the racing sends", REQUEST_TIMEOUT * 2, Promise.all(racing))).flat();
      after.push(...results);
      const acked = results.filter((s) => s.eventId !== undefined);
      const failed = results.filter((s) => s.failure !== undefined);
      console.log(
        `restart: server.stop() took ${stopMs.toFixed(0)} ms; of ${results.length} racing sends ${acked.length} got a 200 and ${failed.length} failed` +
          (failed.length ? ` (${[...new Set(failed.map((s) => s.failure!.replace(/\d+/g, "N")))].join("; ")})` : ""),
      );
      // The request whose write was committing when stop() was called got its answer.
      expect(acked.map((s) => s.body)).toContain(trigger!);
      // A shutdown refuses connections; it never answers a request with a server error.
      for (const s of failed) expect(s.failure).not.toMatch(/^5\d\d /);
      expect(await within("carol's waiting /sync", REQUEST_TIMEOUT, carolPoll)).toBe(200);
    },
    TEST_TIMEOUT,
  );

  test(
    "after: a new server on the same data_dir accepts the old access tokens",
    async () => {
      second = await buildServer(config(), { logger: silentLogger });
      base = (await second.start()).url;
      for (const user of [alice, bob]) {
        const me = await ok("GET", "/account/whoami", user.token);
        expect(me.user_id).toBe(user.userId);
        expect(me.device_id).toBe(user.deviceId);
        expect((await ok("GET", "/joined_rooms", user.token)).joined_rooms).toEqual([roomId]);
      }
      expect((await ok("GET", `/rooms/${enc(roomId)}/state/m.room.name`, bob.token)).name).toBe("Survives restarts");
    },
    TEST_TIMEOUT,
  );

  test(
    "after: every message that got a 200 is in /messages, in the order it was acknowledged per sender",
    async () => {
      const stored = await allMessages(bob);
      const byId = new Map(stored.map((m) => [m.event_id, m]));
      for (const s of [...before, ...after].filter((s) => s.eventId !== undefined)) {
        expect(byId.get(s.eventId!)).toEqual({ event_id: s.eventId!, body: s.body, sender: s.sender.userId });
      }
      // Nothing appears that nobody sent, and nothing twice.
      const attempted = new Set([...before, ...after].map((s) => s.body));
      for (const m of stored) expect(attempted.has(m.body)).toBe(true);
      expect(new Set(stored.map((m) => m.body)).size).toBe(stored.length);
      // Each sender's sequential messages keep their order.
      for (const name of ["alice", "bob"]) {
        const mine = stored.map((m) => m.body).filter((b) => b.startsWith(`after, racing, ${name} `));
        expect(mine).toEqual(mine.map((_, i) => `after, racing, ${name} ${i}`));
      }
    },
    TEST_TIMEOUT,
  );

  test(
    "after: an incremental /sync from the old next_batch returns exactly the messages sent after it",
    async () => {
      const stored = await allMessages(alice);
      const afterBodies = new Set(after.map((s) => s.body));
      // What is on disk after the token: every acknowledged send, plus any that committed without
      // the client hearing back.
      const expected = stored.filter((m) => afterBodies.has(m.body));
      for (const s of after.filter((s) => s.eventId !== undefined)) expect(expected.map((m) => m.event_id)).toContain(s.eventId!);

      const sync = await ok("GET", `/sync?since=${enc(token)}&timeout=0&filter=${WIDE_FILTER}`, alice.token);
      const room = sync.rooms.join[roomId];
      expect(room).toBeDefined();
      expect(room.timeline.limited).toBe(false);
      expect(timelineMessages(sync)).toEqual(expected.map((m) => ({ event_id: m.event_id, body: m.body })));
      const beforeIds = new Set(before.map((s) => s.eventId));
      for (const e of [...room.timeline.events, ...room.state.events]) expect(beforeIds.has(e.event_id)).toBe(false);
      expect(sync.next_batch).not.toBe(token);
    },
    TEST_TIMEOUT,
  );

  test(
    "after: a send that failed during the shutdown, retried with its txnId, is stored once",
    async () => {
      const failed = after.filter((s) => s.failure !== undefined);
      const retried = await Promise.all(failed.map((s) => send(s.sender, s.body, s.txnId)));
      for (const r of retried) expect(r.failure).toBeUndefined();
      const stored = await allMessages(bob);
      for (const s of retried) expect(stored.filter((m) => m.body === s.body).map((m) => m.event_id)).toEqual([s.eventId!]);
      // A retry of an acknowledged send answers with the same event.
      const acked = after.find((s) => s.eventId !== undefined)!;
      expect((await send(acked.sender, acked.body, acked.txnId)).eventId).toBe(acked.eventId!);
    },
    TEST_TIMEOUT,
  );

  test(
    "after: password login works and new messages reach a waiting /sync",
    async () => {
      const login = await ok("POST", "/login", undefined, { type: "m.login.password", identifier: { type: "m.id.user", user: "alice" }, password: PASSWORD });
      expect(login.user_id).toBe(alice.userId);
      expect(login.device_id).not.toBe(alice.deviceId);
      const fresh: User = { userId: login.user_id, deviceId: login.device_id, token: login.access_token };
      expect((await ok("GET", "/account/whoami", fresh.token)).device_id).toBe(fresh.deviceId);

      const since = (await ok("GET", "/sync", bob.token)).next_batch;
      const poll = ok("GET", `/sync?since=${enc(since)}&timeout=20000`, bob.token, undefined, 25_000);
      await untilWaiting(second!, 1);
      const sent = await send(fresh, "after the restart");
      expect(sent.failure).toBeUndefined();
      const woken = await within("bob's /sync to wake", REQUEST_TIMEOUT, poll);
      expect(timelineMessages(woken)).toEqual([{ event_id: sent.eventId!, body: "after the restart" }]);
    },
    TEST_TIMEOUT,
  );
});
