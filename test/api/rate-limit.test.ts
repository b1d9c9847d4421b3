// Rate limiting through HTTP, with the bundled rate-limit plugin and a clock the test moves by hand:
// 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After past a bucket's burst, refills, password
// guessing slowed per account and per address, registration per address, knock floods (per user, per
// room, the re-knock cooldown), admins and exempt users, and nothing stored for a refused request.
//
// In-process requests have no socket, so no client address; here a stand-in for Bun's server answers
// requestIP() from an x-test-client header, so that tests can speak from several addresses. The last
// test runs on a real port and sees the real address.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../src/app";
import { Tokens, resolve } from "../../src/di/tokens";
import { Elysia } from "elysia";
import { RATE_LIMITED, addressKey, rateLimitStep } from "../../src/api/middleware/rate-limit";
import { createHttpApp } from "../../src/api/middleware/http";
import { CLIENT_PREFIXES } from "../../src/api/client/paths";
import type { RateLimitCheck } from "../../src/extensions";
import { request, silentLogger, testServer } from "../helpers/server";
import { R0, TestClient, V3, enc } from "../helpers/rooms";

const SERVER_NAME = "rl.test";
const clock = { t: 1_700_000_000_000, now() { return this.t; } };
let server: PortierServer;
let n = 0;
let addressCounter = 0;
const freshAddress = () => `10.0.${Math.floor(++addressCounter / 250)}.${addressCounter % 250}`;

beforeAll(async () => {
  server = await testServer(
    {
      server_name: SERVER_NAME,
      registration: { enabled: true },
      plugins: [{ name: "rate-limit", config: { exempt_users: [`@exempt:${SERVER_NAME}`], "knock.room": { burst: 3 }, join: { burst: 3 } } }],
    },
    { clock },
  );
  // A stand-in for Bun's server (Elysia hands it to hooks): the client's address from a header.
  (server.app as { server: unknown }).server = {
    requestIP: (r: Request) => {
      const address = r.headers.get("x-test-client");
      return address ? { address, family: "IPv4", port: 40000 } : null;
    },
  };
});
afterAll(() => server.stop());

interface CallOptions {
  token?: string;
  from?: string;
}
function call(method: string, path: string, body?: unknown, options: CallOptions = {}) {
  const headers: Record<string, string> = {};
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  if (options.from) headers["x-test-client"] = options.from;
  return request(server, method, path.startsWith("/_matrix") ? path : `${V3}${path}`, body, headers);
}

/** A new user, registered from an address of its own (registration is limited per address). */
async function user(name = "u"): Promise<TestClient> {
  const username = `${name}${++n}`;
  const r = await call("POST", "/register", { username, password: "pw", auth: { type: "m.login.dummy" } }, { from: freshAddress() });
  if (r.status !== 200) throw new Error(`registering ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  return new TestClient(server, r.body.user_id, r.body.device_id, r.body.access_token);
}

const login = (user: string, password: string, from: string) => call("POST", "/login", { type: "m.login.password", identifier: { type: "m.id.user", user }, password }, { from });

const send = (c: TestClient, roomId: string, body: string, txnId: string = crypto.randomUUID(), prefix = V3) =>
  c.call("PUT", `${prefix}/rooms/${enc(roomId)}/send/m.room.message/${txnId}`, { msgtype: "m.text", body });

const knockableRoom = (owner: TestClient, extra: Record<string, unknown> = {}) =>
  owner.createRoom({ initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }], ...extra });

const membership = async (viewer: TestClient, roomId: string, userId: string) => {
  const r = await viewer.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);
  return r.status === 200 ? r.body.membership : undefined;
};

function expectLimited(r: { status: number; body: any; headers: Headers }, retryAfterMs?: number) {
  expect({ status: r.status, errcode: r.body?.errcode }).toEqual({ status: 429, errcode: "M_LIMIT_EXCEEDED" });
  expect(r.body.retry_after_ms).toBeGreaterThan(0);
  expect(Number.isInteger(r.body.retry_after_ms)).toBe(true);
  if (retryAfterMs !== undefined) expect(r.body.retry_after_ms).toBe(retryAfterMs);
  // The header in whole seconds, rounded up.
  expect(r.headers.get("retry-after")).toBe(String(Math.ceil(r.body.retry_after_ms / 1000)));
  return r.body.retry_after_ms as number;
}

describe("the pipeline step", () => {
  test("every endpoint in the table is a route the server serves, under v3 and r0", () => {
    const served = new Set(server.app.routes.map((r) => `${r.method} ${r.path}`));
    for (const prefix of CLIENT_PREFIXES) for (const rule of RATE_LIMITED) expect(served.has(`${rule.method} ${prefix}${rule.path}`)).toBe(true);
  });

  test("a missing or unknown token on a limited endpoint is 401, as without limits", async () => {
    const owner = await user();
    const roomId = await owner.createRoom();
    const missing = await call("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: "m.text", body: "x" });
    expect({ status: missing.status, errcode: missing.body.errcode }).toEqual({ status: 401, errcode: "M_MISSING_TOKEN" });
    const unknown = await call("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: "m.text", body: "x" }, { token: "pt_nope" });
    expect({ status: unknown.status, errcode: unknown.body.errcode }).toEqual({ status: 401, errcode: "M_UNKNOWN_TOKEN" });
  });
});

describe("messages (0.2/s, burst 10, per user)", () => {
  test("one user's flood gets 429 past the burst while another user sends fine; the refused message is not stored", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    for (let i = 0; i < 10; i++) expect((await send(alice, roomId, `m${i}`)).status).toBe(200);
    expectLimited(await send(alice, roomId, "refused", "txn-refused"), 5000);
    // The same bucket under r0.
    expectLimited(await send(alice, roomId, "refused too", undefined, R0));
    // State events cost the same bucket.
    expectLimited(await alice.call("PUT", `/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: "refused" }));
    // Bob is not affected.
    for (let i = 0; i < 5; i++) expect((await send(bob, roomId, `b${i}`)).status).toBe(200);

    const bodies = async () => ((await bob.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=100`)).chunk as { type: string; content: { body?: string; topic?: string } }[]).map((e) => e.content.body ?? e.content.topic);
    expect(await bodies()).not.toContain("refused");
    expect(await bodies()).not.toContain("refused too");

    // One token every 5 s: the same transaction, retried when told, goes through once.
    clock.t += 4999;
    expectLimited(await send(alice, roomId, "refused", "txn-refused"), 1);
    clock.t += 1;
    expect((await send(alice, roomId, "refused", "txn-refused")).status).toBe(200);
    expectLimited(await send(alice, roomId, "next"), 5000);
    expect((await bodies()).filter((b) => b === "refused")).toHaveLength(1);

    // A minute refills the bucket, but never beyond its burst.
    clock.t += 60_000;
    for (let i = 0; i < 10; i++) expect((await send(alice, roomId, `again${i}`)).status).toBe(200);
    expectLimited(await send(alice, roomId, "over"));
  });
});

describe("login", () => {
  test("password guessing on one account is slowed per account, before the password is checked", async () => {
    const carol = await user("carol");
    const dave = await user("dave");
    const accounts = resolve(server.container, Tokens.Accounts);
    const original = accounts.checkPassword;
    let passwordChecks = 0;
    accounts.checkPassword = (...args) => {
      passwordChecks++;
      return original.apply(accounts, args);
    };
    try {
      // Each guess from another address, so that only the per-account bucket (0.17/s, burst 3) applies.
      for (let i = 0; i < 3; i++) expect((await login(carol.userId, `guess${i}`, freshAddress())).status).toBe(403);
      expect(passwordChecks).toBe(3);
      // Now even the right password is refused, and argon2 is not run.
      const retry = expectLimited(await login(carol.userId, "pw", freshAddress()));
      expect(retry).toBeLessThanOrEqual(Math.ceil(1000 / 0.17));
      expectLimited(await login(carol.userId.slice(1, carol.userId.indexOf(":")).toUpperCase(), "pw", freshAddress())); // the localpart, any case: the same account
      expect(passwordChecks).toBe(3);
      // Another account is not affected.
      expect((await login(dave.userId, "pw", freshAddress())).status).toBe(200);

      clock.t += retry;
      // A right password costs no failed-login token: it is taken for the check and given back.
      expect((await login(carol.userId, "pw", freshAddress())).status).toBe(200);
      expect((await login(carol.userId, "pw", freshAddress())).status).toBe(200);
      expect((await login(carol.userId, "wrong", freshAddress())).status).toBe(403);
      expectLimited(await login(carol.userId, "wrong", freshAddress()));
    } finally {
      accounts.checkPassword = original;
    }
  });

  test("unknown accounts are limited like known ones", async () => {
    for (let i = 0; i < 3; i++) expect((await login(`@nobody${n}:${SERVER_NAME}`, "x", freshAddress())).status).toBe(403);
    expectLimited(await login(`@nobody${n}:${SERVER_NAME}`, "x", freshAddress()));
  });

  test("password guessing from one address is slowed per address (0.003/s, burst 5)", async () => {
    const victims = await Promise.all([1, 2, 3, 4, 5, 6, 7].map(() => user("victim")));
    const from = freshAddress();
    for (let i = 0; i < 5; i++) expect((await login(victims[i].userId, "guess", from)).status).toBe(403);
    expectLimited(await login(victims[5].userId, "guess", from), Math.ceil(1000 / 0.003));
    expectLimited(await login(victims[5].userId, "pw", from));
    // Another address is not affected.
    expect((await login(victims[6].userId, "pw", freshAddress())).status).toBe(200);
  });

  test("one account's successful logins are limited too, before a device is made (burst 5)", async () => {
    const erin = await user("erin");
    for (let i = 0; i < 5; i++) expect((await login(erin.userId, "pw", freshAddress())).status).toBe(200);
    expectLimited(await login(erin.userId, "pw", freshAddress()));
    expect((await erin.ok("GET", "/devices")).devices).toHaveLength(6); // registration's and five logins'
  });
});

describe("registration (0.17/s, burst 3, per address)", () => {
  const register = (username: string, from: string, auth = true) => call("POST", "/register", { username, password: "pw", ...(auth ? { auth: { type: "m.login.dummy" } } : {}) }, { from });

  test("a flood from one address gets 429 and creates nothing; another address registers fine", async () => {
    const from = freshAddress();
    // Fetching the auth flows costs nothing.
    for (let i = 0; i < 5; i++) expect((await register(`flows${n}x${i}`, from, false)).status).toBe(401);
    for (let i = 0; i < 3; i++) expect((await register(`flood${++n}`, from)).status).toBe(200);
    const refused = `flood${++n}`;
    expectLimited(await register(refused, from));
    expectLimited(await register(refused, from, false)); // now the first round is refused too
    expect((await call("GET", `/register/available?username=${refused}`)).body).toEqual({ available: true });
    expect((await register(refused, freshAddress())).status).toBe(200);
  });
});

describe("knocks", () => {
  test("one user's knock flood gets 429 past the burst (5, then one per 20 s) while another user knocks fine", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const carol = await user("carol");
    const rooms: string[] = [];
    for (let i = 0; i < 6; i++) rooms.push(await knockableRoom(alice));
    for (let i = 0; i < 5; i++) await bob.ok("POST", `/knock/${enc(rooms[i])}`, { reason: "please" });
    const retry = expectLimited(await bob.call("POST", `/knock/${enc(rooms[5])}`, { reason: "please" }));
    expect(retry).toBe(20_000);
    expectLimited(await bob.call("POST", `${R0}/rooms/${enc(rooms[5])}/knock`, {}));
    expect(await membership(alice, rooms[5], bob.userId)).toBeUndefined();
    await carol.ok("POST", `/knock/${enc(rooms[5])}`, {});
    clock.t += retry;
    await bob.ok("POST", `/knock/${enc(rooms[5])}`, {});
  });

  test("re-knocking on the same room waits a minute; other users and rooms are not affected", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const carol = await user("carol");
    const [roomA, roomB] = [await knockableRoom(alice), await knockableRoom(alice)];
    await bob.ok("POST", `/knock/${enc(roomA)}`, { reason: "first" });
    const retry = expectLimited(await bob.call("POST", `/knock/${enc(roomA)}`, { reason: "again" }));
    expect(retry).toBe(60_000);
    await bob.ok("POST", `/knock/${enc(roomB)}`, {});
    await carol.ok("POST", `/knock/${enc(roomA)}`, {});
    // The refused re-knock changed nothing: the knock's reason is still the first one.
    expect((await alice.ok("GET", `/rooms/${enc(roomA)}/state/m.room.member/${enc(bob.userId)}`)).reason).toBe("first");
    clock.t += 59_999;
    expectLimited(await bob.call("POST", `/rooms/${enc(roomA)}/knock`, { reason: "again" }), 1);
    clock.t += 1;
    expect((await bob.call("POST", `/rooms/${enc(roomA)}/knock`, { reason: "again" })).status).toBe(200); // MSC2403's form, not in the spec's OpenAPI
  });

  test("a room's knocks are limited across users (configured burst 3), by room id or alias; a refused knock costs the knocker nothing", async () => {
    const alice = await user("alice");
    const knockers = await Promise.all([1, 2, 3, 4].map(() => user("k")));
    const alias = `#knockme${n}:${SERVER_NAME}`;
    const room = await knockableRoom(alice, { room_alias_name: alias.slice(1, alias.indexOf(":")) });
    await knockers[0].ok("POST", `/knock/${enc(room)}`, {});
    expect((await knockers[1].call("POST", `/rooms/${enc(room)}/knock`, {})).status).toBe(200);
    await knockers[2].ok("POST", `/knock/${enc(alias)}`, {});
    expectLimited(await knockers[3].call("POST", `/knock/${enc(alias)}`, {}), 5000);
    expectLimited(await knockers[3].call("POST", `/knock/${enc(room)}`, {}));
    expect(await membership(alice, room, knockers[3].userId)).toBeUndefined();
    // The refusals gave back what they took from knockers[3]: five knocks elsewhere still go through.
    for (let i = 0; i < 5; i++) await knockers[3].ok("POST", `/knock/${enc(await knockableRoom(alice))}`, {});
    expectLimited(await knockers[3].call("POST", `/knock/${enc(await knockableRoom(alice))}`, {}));
  });
});

describe("joins and invites", () => {
  test("joins per user (configured burst 3)", async () => {
    const alice = await user("alice");
    const dana = await user("dana");
    const rooms: string[] = [];
    for (let i = 0; i < 4; i++) rooms.push(await alice.createRoom({ preset: "public_chat" }));
    await dana.ok("POST", `/join/${enc(rooms[0])}`, {});
    await dana.ok("POST", `/rooms/${enc(rooms[1])}/join`, {});
    await dana.ok("POST", `${R0}/join/${enc(rooms[2])}`, {});
    expectLimited(await dana.call("POST", `/join/${enc(rooms[3])}`, {}), 10_000);
    expect(await membership(alice, rooms[3], dana.userId)).toBeUndefined();
  });

  test("invites per invitee (0.003/s, burst 5), keyed by the body's user_id", async () => {
    const alice = await user("alice");
    const frank = await user("frank");
    const rooms: string[] = [];
    for (let i = 0; i < 6; i++) rooms.push(await alice.createRoom());
    for (let i = 0; i < 5; i++) await alice.ok("POST", `/rooms/${enc(rooms[i])}/invite`, { user_id: frank.userId });
    expectLimited(await alice.call("POST", `/rooms/${enc(rooms[5])}/invite`, { user_id: frank.userId }));
    await alice.ok("POST", `/rooms/${enc(rooms[5])}/invite`, { user_id: (await user("grace")).userId });
  });
});

describe("exemptions", () => {
  test("server admins are not limited; others in the same place are", async () => {
    const accounts = resolve(server.container, Tokens.Accounts);
    const { session } = await accounts.register({ username: `root${++n}`, password: "pw", admin: true });
    const root = new TestClient(server, session!.userId, session!.deviceId, session!.accessToken);
    const alice = await user("alice");
    const bob = await user("bob");
    const roomId = await root.createRoom({ preset: "public_chat" });
    for (let i = 0; i < 30; i++) expect((await send(root, roomId, `admin ${i}`)).status).toBe(200);
    const knockable = await knockableRoom(alice);
    for (let i = 0; i < 3; i++) await root.ok("POST", `/knock/${enc(knockable)}`, {});
    await bob.ok("POST", `/knock/${enc(knockable)}`, {});
    expectLimited(await bob.call("POST", `/knock/${enc(knockable)}`, {}));
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    for (let i = 0; i < 10; i++) expect((await send(bob, roomId, `bob ${i}`)).status).toBe(200);
    expectLimited(await send(bob, roomId, "over"));
  });

  test("configured exempt users are not limited in what they do; others still are", async () => {
    const r = await call("POST", "/register", { username: "exempt", password: "pw", auth: { type: "m.login.dummy" } }, { from: freshAddress() });
    const exempt = new TestClient(server, r.body.user_id, r.body.device_id, r.body.access_token);
    const alice = await user("alice");
    const roomId = await exempt.createRoom({ preset: "public_chat" });
    for (let i = 0; i < 30; i++) expect((await send(exempt, roomId, `bot ${i}`)).status).toBe(200);
    const knockable = await knockableRoom(alice);
    await exempt.ok("POST", `/knock/${enc(knockable)}`, {});
    await exempt.ok("POST", `/knock/${enc(knockable)}`, {}); // no re-knock cooldown
    await alice.ok("POST", `/join/${enc(roomId)}`, {});
    for (let i = 0; i < 10; i++) expect((await send(alice, roomId, `alice ${i}`)).status).toBe(200);
    expectLimited(await send(alice, roomId, "over"));
  });
});

describe("client addresses", () => {
  test.each([
    ["203.0.113.7", "203.0.113.7"],
    ["::ffff:203.0.113.7", "203.0.113.7"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"],
    ["2001:0db8:0001:0002:ffff::1", "2001:db8:1:2::/64"],
    ["2001:db8::1", "2001:db8:0:0::/64"],
    ["fe80::1%eth0", "fe80:0:0:0::/64"],
    ["not an address", "not an address"],
  ])("%s is keyed as %s", (address, key) => {
    expect(addressKey(address)).toBe(key);
  });

  /** The step alone on a bare app, with a limiter that records what it is asked and a stand-in for Bun's server. */
  function bareApp(peer: string, trustedProxies?: string[]) {
    const seen: RateLimitCheck[] = [];
    const app = createHttpApp({ maxBodyBytes: 65536, logger: silentLogger })
      .use(
        rateLimitStep({
          policies: { takeRateLimit: (check) => (seen.push(check), { allowed: true }), refundRateLimit: () => {} },
          accounts: { authenticate: async () => ({ userId: "@u:x", deviceId: "D" }) },
          isExempt: () => false,
          trustedProxies,
        }),
      )
      .use(new Elysia().post(`${V3}/login`, () => ({})));
    (app as { server: unknown }).server = { requestIP: () => ({ address: peer }) };
    const login = async (headers: Record<string, string> = {}) => {
      await app.handle(new Request(`http://localhost${V3}/login`, { method: "POST", headers, body: "{}" }));
      return seen.pop()?.key;
    };
    return login;
  }

  test("the peer's address, and X-Forwarded-For only from a trusted proxy", async () => {
    expect(await bareApp("2001:db8:7:7::9")()).toBe("2001:db8:7:7::/64");
    // Not trusted: the header is anyone's to forge.
    expect(await bareApp("198.51.100.1")({ "X-Forwarded-For": "203.0.113.7" })).toBe("198.51.100.1");
    const behindProxies = bareApp("10.0.0.1", ["10.0.0.1", "10.0.0.2"]);
    expect(await behindProxies({ "X-Forwarded-For": "203.0.113.7" })).toBe("203.0.113.7");
    // The rightmost address that is not a trusted proxy: what a client puts first is not believed.
    expect(await behindProxies({ "X-Forwarded-For": "1.1.1.1, 203.0.113.7, 10.0.0.2" })).toBe("203.0.113.7");
    expect(await behindProxies({ "X-Forwarded-For": "::ffff:203.0.113.9" })).toBe("203.0.113.9");
    expect(await behindProxies()).toBe("10.0.0.1");
  });

  test("through the server: one IPv6 /64 shares the per-address login bucket; another /64 does not", async () => {
    const nobody = (i: number) => `@nobody-v6-${n}-${i}:${SERVER_NAME}`;
    for (let i = 0; i < 5; i++) expect((await login(nobody(i), "x", `2001:db8:aa:1::${i + 1}`)).status).toBe(403);
    expectLimited(await login(nobody(5), "x", "2001:db8:aa:1:ffff:ffff:ffff:ffff"));
    expect((await login(nobody(6), "x", "2001:db8:aa:2::1")).status).toBe(403);
  });
});

describe("on a real port", () => {
  test("the bucket key is the client's address from Bun's server, and a refusal carries Retry-After", async () => {
    const real = await testServer({ server_name: "rl-real.test", registration: { enabled: true }, plugins: [] });
    const seen: RateLimitCheck[] = [];
    resolve(real.container, Tokens.Policies).setRateLimiter(
      {
        take(check) {
          if (check.bucket !== "login.address") return { allowed: true };
          seen.push(check);
          return seen.length > 1 ? { allowed: false, retryAfterMs: 1500 } : { allowed: true };
        },
      },
      { name: "capture", failMode: "open", timeoutMs: 1000 },
    );
    try {
      const { url } = await real.start();
      const attempt = () => fetch(`${url}${V3}/login`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: "nobody" }, password: "x" }) });
      expect((await attempt()).status).toBe(403);
      const refused = await attempt();
      expect(refused.status).toBe(429);
      expect(refused.headers.get("retry-after")).toBe("2");
      expect(await refused.json()).toMatchObject({ errcode: "M_LIMIT_EXCEEDED", retry_after_ms: 1500 });
      expect(seen[0]).toEqual({ bucket: "login.address", key: "127.0.0.1" });
    } finally {
      await real.stop();
    }
  });
});
