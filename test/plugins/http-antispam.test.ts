// The bundled http-antispam plugin (issue 9) against a stand-in antispam service: a real Bun.serve on
// 127.0.0.1 (port 0) in this test, answering as the test says. Covers the protocol of
// synapse-http-antispam (POST per callback with its arguments as JSON, the bearer token, 2xx allows,
// another status with {errcode, error} refuses), failures (not JSON, a refused connection, a hang)
// under per-callback fail_open or thrown to the plugin's fail mode, async callbacks, enabled
// callbacks, do_ping, and the plugin deciding for a running Portier over HTTP.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import httpAntispamPlugin, { AntispamUnavailable, STANDARD_CALLBACKS, configSchema, parseConfig, type HttpAntispamConfig } from "../../plugins/http-antispam";
import type { PortierServer } from "../../src/app";
import type { Decision, PluginHost, SpamPolicy } from "../../src/extensions";
import { configErrors } from "../../src/services/plugins/config-schema";
import { PolicySet } from "../../src/services/plugins/policies";
import { TestClient, enc } from "../helpers/rooms";
import { silentLogger, testServer } from "../helpers/server";
import { fakePluginHost } from "../helpers/plugin-host";

interface Received {
  path: string;
  authorization: string | null;
  contentType: string | null;
  body: unknown;
}

/** What the stand-in answers for a callback: a status and body, a raw text, never (a hang), or what a function of the request body says. */
type Reply = { status: number; json?: unknown; text?: string } | "hang";
type Answer = Reply | ((body: any) => Reply);

const received: Received[] = [];
let answers: Record<string, Answer> = {};
let service: ReturnType<typeof Bun.serve>;
let base: string;
const hung: (() => void)[] = [];

beforeAll(() => {
  service = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      const text = await request.text();
      received.push({ path, authorization: request.headers.get("authorization"), contentType: request.headers.get("content-type"), body: text ? JSON.parse(text) : undefined });
      const callback = path.split("/").pop()!;
      const given = answers[callback] ?? { status: 200, json: {} };
      const answer = typeof given === "function" ? given(text ? JSON.parse(text) : undefined) : given;
      if (answer === "hang") return new Promise<Response>((resolve) => hung.push(() => resolve(new Response("{}"))));
      if (answer.text !== undefined) return new Response(answer.text, { status: answer.status });
      return Response.json(answer.json ?? {}, { status: answer.status });
    },
  });
  base = `http://127.0.0.1:${service.port}/api/1/spam_check`;
});
afterAll(() => {
  for (const release of hung) release();
  service.stop(true);
});
beforeEach(() => {
  received.length = 0;
  answers = {};
});


async function policyFor(config: Partial<HttpAntispamConfig> = {}) {
  const full = { base_url: base, ...config } as HttpAntispamConfig;
  expect(configErrors(configSchema, full)).toEqual([]);
  const fake = fakePluginHost();
  await httpAntispamPlugin.register(fake.host, full);
  return { ...fake, policy: fake.spamPolicies[0]! };
}

const ALLOW: Decision = { kind: "allow" };
const ROOM = "!room:home.example";

describe("the protocol", () => {
  test("each callback POSTs its arguments as JSON to base_url/callback_name with the bearer token; 200 {} allows", async () => {
    const { policy } = await policyFor({ authorization: "s3cret", enabled_callbacks: [...STANDARD_CALLBACKS, "user_may_knock", "check_registration_for_spam"] });
    expect(await policy.checkEventForSpam!({ roomId: ROOM, sender: "@a:home.example", type: "m.room.message", content: { msgtype: "m.text", body: "hi" }, local: true })).toEqual(ALLOW);
    expect(await policy.checkEventForSpam!({ roomId: ROOM, sender: "@a:home.example", type: "m.room.name", stateKey: "", content: { name: "n" }, local: true })).toEqual(ALLOW);
    expect(await policy.userMayJoinRoom!("@a:home.example", ROOM, true)).toEqual(ALLOW);
    expect(await policy.userMayInvite!("@a:home.example", "@b:home.example", ROOM)).toEqual(ALLOW);
    expect(await policy.userMayCreateRoom!("@a:home.example")).toEqual(ALLOW);
    expect(await policy.userMayCreateAlias!("@a:home.example", "#x:home.example")).toEqual(ALLOW);
    expect(await policy.userMayPublishRoom!("@a:home.example", ROOM)).toEqual(ALLOW);
    expect(await policy.checkUsernameForSpam!({ userId: "@a:home.example", displayName: "A" })).toEqual(ALLOW);
    expect(await policy.userMayKnock!("@a:home.example", ROOM)).toEqual(ALLOW);
    expect(await policy.checkRegistration!({ username: "newbie", address: "10.1.2.3" })).toEqual(ALLOW);
    expect(received.every((r) => r.authorization === "Bearer s3cret" && r.contentType === "application/json")).toBe(true);
    expect(received.map((r) => [r.path, r.body])).toEqual([
      ["/api/1/spam_check/check_event_for_spam", { event: { room_id: ROOM, sender: "@a:home.example", type: "m.room.message", content: { msgtype: "m.text", body: "hi" } } }],
      ["/api/1/spam_check/check_event_for_spam", { event: { room_id: ROOM, sender: "@a:home.example", type: "m.room.name", state_key: "", content: { name: "n" } } }],
      ["/api/1/spam_check/user_may_join_room", { user: "@a:home.example", room: ROOM, is_invited: true }],
      ["/api/1/spam_check/user_may_invite", { inviter: "@a:home.example", invitee: "@b:home.example", room_id: ROOM }],
      ["/api/1/spam_check/user_may_create_room", { user_id: "@a:home.example" }],
      ["/api/1/spam_check/user_may_create_room_alias", { user_id: "@a:home.example", room_alias: "#x:home.example" }],
      ["/api/1/spam_check/user_may_publish_room", { user_id: "@a:home.example", room_id: ROOM }],
      ["/api/1/spam_check/check_username_for_spam", { user_profile: { user_id: "@a:home.example", display_name: "A", avatar_url: null }, requester_id: "@a:home.example" }],
      ["/api/1/spam_check/user_may_knock", { user_id: "@a:home.example", room_id: ROOM }],
      ["/api/1/spam_check/check_registration_for_spam", { email_threepid: null, username: "newbie", request_info: [["", "10.1.2.3"]], auth_provider_id: null }],
    ]);
  });

  test("a refusal carries the service's errcode and error; without a valid errcode it is M_FORBIDDEN", async () => {
    const { policy } = await policyFor({ base_url: `${base}/` });
    answers.user_may_invite = { status: 403, json: { errcode: "M_FORBIDDEN", error: "You are not allowed to invite this user" } };
    expect(await policy.userMayInvite!("@a:home.example", "@b:home.example", ROOM)).toEqual({ kind: "deny", errcode: "M_FORBIDDEN", message: "You are not allowed to invite this user" });
    answers.user_may_join_room = { status: 429, json: { errcode: "M_LIMIT_EXCEEDED", error: "slow down" } };
    expect(await policy.userMayJoinRoom!("@a:home.example", ROOM, false)).toEqual({ kind: "deny", errcode: "M_LIMIT_EXCEEDED", message: "slow down" });
    answers.user_may_create_room = { status: 400, json: { error: "no rooms for you" } };
    expect(await policy.userMayCreateRoom!("@a:home.example")).toEqual({ kind: "deny", errcode: "M_FORBIDDEN", message: "no rooms for you" });
    answers.user_may_publish_room = { status: 403, json: { errcode: "not an errcode" } };
    expect(await policy.userMayPublishRoom!("@a:home.example", ROOM)).toEqual({ kind: "deny", errcode: "M_FORBIDDEN", message: "Refused by this server's antispam service" });
    // Any 2xx allows, whatever its body.
    answers.user_may_create_room_alias = { status: 204, text: "" };
    expect(await policy.userMayCreateAlias!("@a:home.example", "#x:home.example")).toEqual(ALLOW);
    // A trailing slash on base_url makes no double slash.
    expect(received.map((r) => r.path)).toContain("/api/1/spam_check/user_may_invite");
  });

  test("without enabled_callbacks, Synapse's callbacks are on and Portier's own two are off; with it, only those listed", async () => {
    const all = (await policyFor()).policy;
    expect(Object.keys(all).sort()).toEqual(["checkEventForSpam", "checkUsernameForSpam", "userMayCreateAlias", "userMayCreateRoom", "userMayInvite", "userMayJoinRoom", "userMayPublishRoom"]);
    const some = (await policyFor({ enabled_callbacks: ["user_may_invite", "user_may_knock"] })).policy;
    expect(Object.keys(some).sort()).toEqual(["userMayInvite", "userMayKnock"]);
  });
});

describe("failures", () => {
  test("without fail_open, not JSON, a refused connection and a timeout are thrown (so the plugin's fail mode applies)", async () => {
    const { policy, logs } = await policyFor({ timeout_ms: 100 });
    answers.user_may_invite = { status: 500, text: "<html>oops</html>" };
    await expect(policy.userMayInvite!("@a:home.example", "@b:home.example", ROOM) as Promise<Decision>).rejects.toThrow(new AntispamUnavailable("POST user_may_invite: status 500 with a body that is not JSON"));
    answers.user_may_join_room = "hang";
    await expect(policy.userMayJoinRoom!("@a:home.example", ROOM, false) as Promise<Decision>).rejects.toThrow("POST user_may_join_room: no answer within 100 ms");
    answers.user_may_create_room = { status: 403, json: ["not", "an", "object"] };
    await expect(policy.userMayCreateRoom!("@a:home.example") as Promise<Decision>).rejects.toThrow("not a JSON object");
    // Nothing listens on this port once the probe server has stopped.
    const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const closed = `http://127.0.0.1:${probe.port}`;
    probe.stop(true);
    const offline = (await policyFor({ base_url: closed })).policy;
    await expect(offline.userMayCreateRoom!("@a:home.example") as Promise<Decision>).rejects.toThrow(/^POST user_may_create_room: /);
    expect(logs).toEqual([]);
  });

  test("per-callback fail_open decides a failure itself: true allows, false refuses with M_UNKNOWN; both are logged", async () => {
    const { policy, logs } = await policyFor({ timeout_ms: 100, fail_open: { user_may_join_room: true, user_may_invite: false } });
    answers.user_may_join_room = "hang";
    expect(await policy.userMayJoinRoom!("@a:home.example", ROOM, false)).toEqual(ALLOW);
    answers.user_may_invite = { status: 502, text: "bad gateway" };
    expect(await policy.userMayInvite!("@a:home.example", "@b:home.example", ROOM)).toEqual({ kind: "deny", errcode: "M_UNKNOWN", message: "This server's antispam service could not be reached; try again later" });
    expect(logs.map((l) => [l.level, l.fields?.callback, l.fields?.fail_open])).toEqual([
      ["error", "user_may_join_room", true],
      ["error", "user_may_invite", false],
    ]);
    // A refusal the service did give is not a failure: fail_open does not turn it into an allow.
    answers.user_may_join_room = { status: 403, json: { errcode: "M_FORBIDDEN", error: "banned" } };
    expect(await policy.userMayJoinRoom!("@a:home.example", ROOM, false)).toEqual({ kind: "deny", errcode: "M_FORBIDDEN", message: "banned" });
  });

  test("through a PolicySet: a thrown failure meets the plugin's fail mode (open allows, closed refuses), never an exception", async () => {
    answers.user_may_create_room = { status: 500, text: "down" };
    for (const [failMode, expected] of [
      ["open", ALLOW],
      ["closed", { kind: "deny", errcode: "M_FORBIDDEN", message: "This request cannot be checked right now; try again later" }],
    ] as const) {
      const { policy } = await policyFor();
      const policies = new PolicySet(silentLogger);
      policies.addSpamPolicy(policy, { name: "http-antispam", failMode, timeoutMs: 1000 });
      expect(await policies.spamCheck((p) => p.userMayCreateRoom?.("@a:home.example"))).toEqual(expected);
      expect(policies.stats.get("http-antispam")?.errors).toBe(1);
    }
  });

  test("async callbacks are sent in the background and always allow", async () => {
    const { policy } = await policyFor({ async: { check_event_for_spam: true } });
    answers.check_event_for_spam = { status: 403, json: { errcode: "M_FORBIDDEN", error: "spam" } };
    expect(await policy.checkEventForSpam!({ roomId: ROOM, sender: "@a:home.example", type: "m.room.message", content: { body: "x" }, local: true })).toEqual(ALLOW);
    for (let i = 0; i < 100 && received.length === 0; i++) await Bun.sleep(5);
    expect(received.map((r) => r.path)).toEqual(["/api/1/spam_check/check_event_for_spam"]);
  });
});

describe("config", () => {
  test("base_url is required and must be http(s); unknown callbacks and keys are named", () => {
    expect(configErrors(configSchema, {})).toEqual(["key 'base_url': required"]);
    expect(configErrors(configSchema, { base_url: "ftp://x" })).toEqual(["key 'base_url': must match ^https?://[^\\s]+$"]);
    expect(configErrors(configSchema, { base_url: "http://x", enabled_callbacks: ["user_may_fly"] })[0]).toStartWith("key 'enabled_callbacks[0]': must be one of");
    expect(configErrors(configSchema, { base_url: "http://x", fail_open: { user_may_fly: true } })).toEqual(["key 'fail_open.user_may_fly': unknown"]);
    expect(configErrors(configSchema, { base_url: "http://x", async: { user_may_invite: "yes" } })).toEqual(["key 'async.user_may_invite': expected boolean, got string"]);
  });

  test("authorization_path: the token is read from a file (trimmed); a missing file or both keys are refused by name", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portier-antispam-"));
    writeFileSync(join(dir, "token"), "from-a-file\n");
    const { policy } = await policyFor({ authorization_path: join(dir, "token") });
    await policy.userMayCreateRoom!("@a:home.example");
    expect(received[0]!.authorization).toBe("Bearer from-a-file");
    await expect(parseConfig({ base_url: base, authorization_path: join(dir, "missing") })).rejects.toThrow(/^config key 'authorization_path': cannot read /);
    await expect(parseConfig({ base_url: base, authorization: "a", authorization_path: join(dir, "token") })).rejects.toThrow("give one of them, not both");
  });

  test("do_ping: one ping with an id at start, and whether the service answered it is logged", async () => {
    const logsOf = async (answer: Answer) => {
      answers.ping = answer;
      const { logs } = await policyFor({ do_ping: true });
      for (let i = 0; i < 100 && logs.length === 0; i++) await Bun.sleep(5);
      return logs.map((l) => [l.level, l.message]);
    };
    expect(await logsOf((body) => ({ status: 200, json: { id: body.id, status: "ok" } }))).toEqual([["info", "antispam service answered the ping"]]);
    expect(await logsOf({ status: 200, json: { id: "another", status: "ok" } })).toEqual([["error", "antispam service gave an unexpected answer to the ping"]]);
    expect(received.map((r) => r.path)).toEqual(["/api/1/spam_check/ping", "/api/1/spam_check/ping"]);
    expect(received[0]!.body).toEqual({ id: expect.any(String) });
  });
});

describe("deciding for a running Portier", () => {
  let server: PortierServer;
  beforeAll(async () => {
    server = await testServer({
      server_name: "as.example",
      registration: { enabled: true },
      plugins: [{ name: "http-antispam", config: { base_url: base, authorization: "tok", timeout_ms: 100, fail_open: { user_may_join_room: true } }, fail_mode: "closed", timeout_ms: 1000 }],
    });
  });
  afterAll(() => server.stop());

  test("the service's refusal of a message reaches the client with its errcode, and nothing is stored", async () => {
    const alice = await TestClient.register(server, "alice");
    const roomId = await alice.createRoom({ preset: "public_chat" });
    answers.check_event_for_spam = { status: 403, json: { errcode: "M_FORBIDDEN", error: "Your message looks like spam" } };
    const body = await alice.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: "m.text", body: "spam" }, 403, "M_FORBIDDEN");
    expect(body.error).toBe("Your message looks like spam");
    const sent = received.find((r) => r.path.endsWith("/check_event_for_spam") && (r.body as { event: { content: { body?: string } } }).event.content.body === "spam");
    expect(sent).toMatchObject({ authorization: "Bearer tok", body: { event: { room_id: roomId, sender: alice.userId, type: "m.room.message" } } });
    const messages = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    expect(messages.chunk.filter((e: { type: string }) => e.type === "m.room.message")).toEqual([]);
  });

  test("a service that hangs: a callback with fail_open true lets the join through; others meet fail_mode closed", async () => {
    const alice = await TestClient.register(server, "alice2");
    const bob = await TestClient.register(server, "bob2");
    const roomId = await alice.createRoom({ preset: "public_chat" });
    answers.user_may_join_room = "hang";
    await bob.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    answers.check_event_for_spam = "hang";
    const body = await bob.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t2`, { msgtype: "m.text", body: "hello" }, 403, "M_FORBIDDEN");
    expect(body.error).toBe("This request cannot be checked right now; try again later");
  });
});
