// Push end to end over real HTTP: a Portier on 127.0.0.1 and a push gateway of the test's own on
// 127.0.0.1. Alice sets an HTTP pusher; Bob's messages reach the gateway as push gateway API
// requests with Alice's unread count; her read receipt sends the count down to zero; a failing
// gateway is retried; an invite is pushed; a gateway rejecting the pushkey removes the pusher.
// (sytest 61push/01message-pushed and 08_rejected_pushers, as Portier's own tests.)
//
// The tests run in order and share the server, the users and the room.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../src/app";
import { expectMatchesSpec } from "../helpers/openapi";
import { testServer } from "../helpers/server";
import { expectValidNotifyRequest, testGateway, type TestGateway } from "../helpers/push-gateway";

const V3 = "/_matrix/client/v3";
const enc = encodeURIComponent;
const PUSHKEY = "alice-phone-token";

let server: PortierServer;
let gateway: TestGateway;
let base = "";
let alice: { userId: string; token: string };
let bob: { userId: string; token: string };
let roomId = "";

async function call(token: string | undefined, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${base}${V3}${path}`, {
    method,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, body: await response.json() };
}
async function ok(token: string, method: string, path: string, body?: unknown): Promise<any> {
  const r = await call(token, method, path, body);
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}
async function register(username: string) {
  const r = await call(undefined, "POST", "/register", { username, password: "pw", auth: { type: "m.login.dummy" } });
  expect(r.status).toBe(200);
  return { userId: r.body.user_id as string, token: r.body.access_token as string };
}
const send = async (user: { token: string }, body: string) => (await ok(user.token, "PUT", `/rooms/${enc(roomId)}/send/m.room.message/${crypto.randomUUID()}`, { msgtype: "m.text", body })).event_id as string;
/** The gateway's requests about events of a type, in order. */
const pushesOf = (type: string) => gateway.requests.filter((r) => r.notification.type === type);
/** Waits until the gateway's requests satisfy `check` (fails after `timeoutMs`). */
async function until(what: string, check: (requests: any[]) => boolean, timeoutMs = 10_000): Promise<any[]> {
  const deadline = Date.now() + timeoutMs;
  while (!check(gateway.requests)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(gateway.requests)}`);
    await Bun.sleep(20);
  }
  return gateway.requests;
}

beforeAll(async () => {
  gateway = testGateway();
  server = await testServer({ server_name: "push-e2e.test", registration: { enabled: true } });
  base = (await server.start()).url;
  alice = await register("alice");
  bob = await register("bob");
  await ok(bob.token, "PUT", `/profile/${enc(bob.userId)}/displayname`, { displayname: "Major Tom" });
  roomId = (await ok(alice.token, "POST", "/createRoom", { preset: "private_chat", name: "Mission Control" })).room_id;
  await ok(alice.token, "POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
  await ok(bob.token, "POST", `/join/${enc(roomId)}`, {});
});
afterAll(async () => {
  await server?.stop();
  await gateway?.stop();
});

describe("push to a gateway", () => {
  test("Alice sets an HTTP pusher pointing at the gateway", async () => {
    const r = await call(alice.token, "POST", "/pushers/set", {
      kind: "http",
      app_id: "org.example.phone",
      pushkey: PUSHKEY,
      app_display_name: "Phone app",
      device_display_name: "Alice's phone",
      lang: "en",
      data: { url: gateway.url, custom: "passed on" },
    });
    expect(r.status).toBe(200);
    const list = await ok(alice.token, "GET", "/pushers");
    expectMatchesSpec({ api: "client-server", method: "GET", path: `${V3}/pushers`, status: 200, body: list });
    expect(list.pushers).toHaveLength(1);
    // Nothing from before the pusher is sent.
    await Bun.sleep(100);
    expect(gateway.requests).toEqual([]);
  });

  test("Bob's message reaches the gateway with Alice's unread count; a second one counts two", async () => {
    const first = await send(bob, "Room message for push");
    await gateway.waitFor(1);
    const body = gateway.requests[0];
    expectValidNotifyRequest(body);
    expect(body.notification).toMatchObject({
      event_id: first,
      room_id: roomId,
      type: "m.room.message",
      sender: bob.userId,
      sender_display_name: "Major Tom",
      room_name: "Mission Control",
      content: { msgtype: "m.text", body: "Room message for push" },
      counts: { unread: 1 },
      // A two-member room: .m.rule.room_one_to_one, with a sound, so high priority.
      prio: "high",
    });
    expect(body.notification.devices).toEqual([{ app_id: "org.example.phone", pushkey: PUSHKEY, pushkey_ts: expect.any(Number), data: { custom: "passed on" }, tweaks: { sound: "default" } }]);
    expect(Math.abs(body.notification.devices[0].pushkey_ts - Date.now() / 1000)).toBeLessThan(60);

    const second = await send(bob, "another");
    await gateway.waitFor(2);
    expectValidNotifyRequest(gateway.requests[1]);
    expect(gateway.requests[1].notification).toMatchObject({ event_id: second, counts: { unread: 2 } });
  });

  test("read receipts send the count down, to zero at the latest message", async () => {
    const [first, second] = pushesOf("m.room.message").map((r) => r.notification.event_id);
    const before = gateway.requests.length;
    await ok(alice.token, "POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(first)}`, {});
    await until("a count of 1", (requests) => requests.length > before && requests.at(-1).notification.counts?.unread === 1);
    await ok(alice.token, "POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(second)}`, {});
    const requests = await until("a count of 0", (r) => r.at(-1).notification.counts?.unread === 0);
    const updates = requests.slice(before);
    expect(updates).toHaveLength(2);
    for (const update of updates) {
      expectValidNotifyRequest(update);
      expect(update.notification.event_id).toBeUndefined();
      expect(update.notification.devices[0].pushkey).toBe(PUSHKEY);
    }
    expect(updates.map((u) => u.notification.counts)).toEqual([{ unread: 1 }, { unread: 0 }]);
  });

  test("Alice's own message is not pushed to her", async () => {
    const before = gateway.requests.length;
    await send(alice, "my own words");
    const marker = await send(bob, "marker");
    await until("the marker", (requests) => requests.some((r) => r.notification.event_id === marker));
    expect(gateway.requests.slice(before).map((r) => r.notification.content?.body)).toEqual(["marker"]);
    // Her message read up to itself, so the marker is her only unread one.
    expect(gateway.requests.at(-1).notification.counts).toEqual({ unread: 1 });
  });

  test("a gateway failing with 500 is asked again with the same notification", async () => {
    gateway.answerNext({ status: 500, body: { error: "down" } });
    const eventId = await send(bob, "retried");
    const requests = await until("the retry", (r) => r.filter((x) => x.notification.event_id === eventId).length >= 2, 15_000);
    const forEvent = requests.filter((r) => r.notification.event_id === eventId);
    expect(forEvent).toHaveLength(2);
    expect(forEvent[1]).toEqual(forEvent[0]);
    expect(forEvent[1].notification.counts).toEqual({ unread: 2 });
  });

  test("an invite is pushed to the invitee, with membership and user_is_target", async () => {
    const carol = await register("carol");
    await call(carol.token, "POST", "/pushers/set", {
      kind: "http",
      app_id: "org.example.phone",
      pushkey: "carol-phone",
      app_display_name: "Phone app",
      device_display_name: "Carol's phone",
      lang: "en",
      data: { url: gateway.url },
      append: true,
    });
    const other = (await ok(bob.token, "POST", "/createRoom", { preset: "private_chat", name: "Secret" })).room_id;
    await ok(bob.token, "POST", `/rooms/${enc(other)}/invite`, { user_id: carol.userId });
    await until("the invite", () => pushesOf("m.room.member").length > 0);
    const [invite] = pushesOf("m.room.member");
    expectValidNotifyRequest(invite);
    expect(invite.notification).toMatchObject({ room_id: other, sender: bob.userId, membership: "invite", user_is_target: true, room_name: "Secret", counts: { unread: 1 } });
    expect(invite.notification.devices[0].pushkey).toBe("carol-phone");
  });

  test("a gateway rejecting the pushkey removes the pusher, and nothing more is sent to it", async () => {
    gateway.answerNext({ status: 200, body: { rejected: [PUSHKEY] } });
    const rejectedFor = await send(bob, "rejected");
    await until("the rejected push", (requests) => requests.some((r) => r.notification.event_id === rejectedFor));
    for (let i = 0; i < 100 && (await ok(alice.token, "GET", "/pushers")).pushers.length > 0; i++) await Bun.sleep(20);
    expect((await ok(alice.token, "GET", "/pushers")).pushers).toEqual([]);
    const count = gateway.requests.length;
    await send(bob, "after the rejection");
    await Bun.sleep(200);
    expect(gateway.requests.slice(count).filter((r) => r.notification.devices[0].pushkey === PUSHKEY)).toEqual([]);
    expect(gateway.requests.some((r) => r.notification.event_id === rejectedFor)).toBe(true);
  });
});
