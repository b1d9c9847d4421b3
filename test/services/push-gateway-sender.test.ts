// The HTTP pusher's delivery, with a scripted fetch and a timer the test fires: the request body
// (push gateway API), order, retries with a doubling delay, giving up, `rejected`, counts-only
// updates, and picking up after a restart from the position stored on disk.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { generateSelfSignedCertificate } from "../../src/services/federation/tls-certificate";
import { PushGatewaySender, type PushGatewaySenderOptions } from "../../src/services/push/push-gateway-sender";
import { PusherService } from "../../src/services/push/pusher-service";
import type { RoomAccess } from "../../src/services/rooms/room-access";
import type { Stores } from "../../src/storage/open";
import type { NewNotification } from "../../src/storage/stores";
import { testStores } from "../helpers/databases";
import { expectValidNotifyRequest } from "../helpers/push-gateway";
import { silentLogger, tempDir } from "../helpers/server";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";
const ROOM = "!room:example.org";
const URL = "https://gateway.example/_matrix/push/v1/notify";

/** Timers the test fires itself. */
class ManualTimer {
  scheduled: { delayMs: number; fire: () => void; cancelled: boolean }[] = [];
  schedule(delayMs: number, fire: () => void) {
    const entry = { delayMs, fire, cancelled: false };
    this.scheduled.push(entry);
    return { cancel: () => void (entry.cancelled = true) };
  }
  pending() {
    return this.scheduled.filter((t) => !t.cancelled);
  }
  fireNext(): number {
    const next = this.pending()[0];
    if (!next) throw new Error("no timer scheduled");
    next.cancelled = true;
    next.fire();
    return next.delayMs;
  }
}

type Answer = { status: number; body?: unknown } | "network-error";

let stores: Stores;
let timer: ManualTimer;
let requests: { url: string; body: any }[];
let answers: Answer[];
let pushers: PusherService;
let sender: PushGatewaySender;
let events: Map<string, { type: string; stateKey?: string; sender: string; content: Record<string, unknown> }>;
let now: number;
let serial = 0;

const fakeFetch = (async (url: string, init: RequestInit) => {
  requests.push({ url, body: JSON.parse(String(init.body)) });
  const answer = answers.shift() ?? { status: 200, body: { rejected: [] } };
  if (answer === "network-error") throw new TypeError("connection refused");
  return Response.json(answer.body ?? {}, { status: answer.status });
}) as unknown as typeof fetch;

/** A stand-in for the room access the sender reads events and room state through. */
const access = {
  load: async (eventId: string) => {
    const e = events.get(eventId);
    return e && { stored: { eventId, roomId: ROOM, type: e.type, stateKey: e.stateKey, sender: e.sender }, pdu: { type: e.type, sender: e.sender, content: e.content } };
  },
  engine: {
    currentStateEvent: async (_roomId: string, type: string, stateKey: string) => {
      if (type === "m.room.name") return { content: { name: "Mission Control" } };
      if (type === "m.room.canonical_alias") return { content: { alias: "#mission:example.org" } };
      if (type === "m.room.member" && stateKey === BOB) return { content: { membership: "join", displayname: "Major Tom" } };
      return undefined;
    },
  },
} as unknown as RoomAccess;

function build(options: Partial<PushGatewaySenderOptions> = {}): PushGatewaySender {
  const built = new PushGatewaySender({
    pushers,
    notifications: stores.notifications,
    access,
    memberships: async () => new Map([[ALICE, "join"]]),
    clock: { now: () => now },
    timer,
    logger: silentLogger,
    fetch: fakeFetch,
    initialBackoffMs: 1000,
    maxBackoffMs: 4000,
    ...options,
  });
  pushers.onChange((userId) => built.pushersChanged(userId));
  return built;
}

/** Records an event and a notification of it for alice; returns the event id. */
async function notification(content: Record<string, unknown> = { msgtype: "m.text", body: "I'm floating" }, over: Partial<NewNotification> = {}, type = "m.room.message"): Promise<string> {
  const eventId = `$ev${++serial}`;
  events.set(eventId, { type, sender: BOB, content, stateKey: type === "m.room.member" ? ALICE : undefined });
  await stores.notifications.addNotifications([{ userId: ALICE, roomId: ROOM, eventId, eventStreamOrdering: serial, ts: now, actions: ["notify", { set_tweak: "sound", value: "bing" }], highlight: false, ...over }]);
  sender.notified(ALICE);
  return eventId;
}

/** Waits until the fake fetch has seen `count` requests and the sender is idle. */
async function requestsReach(count: number): Promise<void> {
  for (let i = 0; i < 500 && requests.length < count; i++) await Bun.sleep(2);
  expect(requests.length).toBe(count);
  await Bun.sleep(5);
}

const setPusher = (over: Record<string, unknown> = {}) =>
  pushers.setPusher(ALICE, { accessToken: "alice-token", deviceId: "PHONE" }, { kind: "http", app_id: "org.example.app", pushkey: "pk1", app_display_name: "App", device_display_name: "Phone", lang: "en", data: { url: URL, custom: "kept" }, ...over });

beforeEach(async () => {
  stores = await testStores();
  timer = new ManualTimer();
  requests = [];
  answers = [];
  events = new Map();
  now = 1_700_000_000_123;
  pushers = new PusherService(stores.pushers, stores.notifications, { now: () => now });
  sender = build();
  await sender.start();
});
afterEach(async () => {
  await sender.stop();
  await stores.db.close();
});

describe("the push gateway sender", () => {
  test("sends a notification in the push gateway API's format: event fields, room and sender names, counts and the device", async () => {
    await setPusher();
    const eventId = await notification();
    await requestsReach(1);
    const [{ url, body }] = requests;
    expect(url).toBe(URL);
    expectValidNotifyRequest(body);
    expect(body).toEqual({
      notification: {
        event_id: eventId,
        id: eventId,
        room_id: ROOM,
        type: "m.room.message",
        sender: BOB,
        sender_display_name: "Major Tom",
        room_name: "Mission Control",
        room_alias: "#mission:example.org",
        prio: "high",
        content: { msgtype: "m.text", body: "I'm floating" },
        counts: { unread: 1 },
        devices: [{ app_id: "org.example.app", pushkey: "pk1", pushkey_ts: 1_700_000_000, data: { custom: "kept" }, tweaks: { sound: "bing" } }],
      },
    });
    // The position is on disk.
    expect((await stores.pushers.pushersOf(ALICE))[0].lastNotification).toBe(1);
  });

  test("a notification without sound or highlight is low priority; an invite carries membership and user_is_target", async () => {
    await setPusher();
    await notification({ msgtype: "m.text", body: "quiet" }, { actions: ["notify"] });
    await notification({ membership: "invite" }, { actions: ["notify", { set_tweak: "highlight" }] }, "m.room.member");
    await requestsReach(2);
    expect(requests[0].body.notification.prio).toBe("low");
    expect(requests[0].body.notification.devices[0].tweaks).toEqual({});
    expect(requests[1].body.notification).toMatchObject({ type: "m.room.member", membership: "invite", user_is_target: true, prio: "high", counts: { unread: 2 } });
    expect(requests[1].body.notification.devices[0].tweaks).toEqual({ highlight: true });
    expectValidNotifyRequest(requests[1].body);
  });

  test("format event_id_only sends the event id, room, counts and devices only", async () => {
    await setPusher({ data: { url: URL, format: "event_id_only" } });
    const eventId = await notification();
    await requestsReach(1);
    expectValidNotifyRequest(requests[0].body);
    expect(requests[0].body).toEqual({
      notification: { event_id: eventId, room_id: ROOM, prio: "high", counts: { unread: 1 }, devices: [{ app_id: "org.example.app", pushkey: "pk1", pushkey_ts: 1_700_000_000, data: { format: "event_id_only" }, tweaks: { sound: "bing" } }] },
    });
  });

  test("notifications go out in order, one request each, and only those after the pusher was set", async () => {
    await notification({ body: "before the pusher" });
    await setPusher();
    const ids = [await notification({ body: "1" }), await notification({ body: "2" }), await notification({ body: "3" })];
    await requestsReach(3);
    expect(requests.map((r) => r.body.notification.event_id)).toEqual(ids);
  });

  test("a failing gateway (5xx, 429, network error) is retried after 1 s, 2 s, ...; later notifications wait their turn", async () => {
    await setPusher();
    answers.push({ status: 500 }, { status: 429 }, "network-error");
    const first = await notification({ body: "1" });
    const second = await notification({ body: "2" });
    await requestsReach(1);
    expect(timer.fireNext()).toBe(1000);
    await requestsReach(2);
    expect(timer.fireNext()).toBe(2000);
    await requestsReach(3);
    expect((await stores.pushers.pushersOf(ALICE))[0].lastNotification).toBe(0);
    expect(timer.fireNext()).toBe(4000);
    await requestsReach(5);
    expect(requests.map((r) => r.body.notification.event_id)).toEqual([first, first, first, first, second]);
    expect((await stores.pushers.pushersOf(ALICE))[0].lastNotification).toBe(2);
    expect(timer.pending()).toEqual([]);
  });

  test("once the next delay would pass the maximum, the notification is given up and the next one sent", async () => {
    await setPusher();
    answers.push({ status: 502 }, { status: 502 }, { status: 502 }, { status: 502 });
    const first = await notification({ body: "lost" });
    const second = await notification({ body: "next" });
    await requestsReach(1);
    expect(timer.fireNext()).toBe(1000);
    await requestsReach(2);
    expect(timer.fireNext()).toBe(2000);
    await requestsReach(3);
    expect(timer.fireNext()).toBe(4000);
    // The fourth failure would wait 8 s > 4 s: given up, and the next notification goes at once.
    await requestsReach(5);
    expect(requests.map((r) => r.body.notification.event_id)).toEqual([first, first, first, first, second]);
    expect(timer.pending()).toEqual([]);
  });

  test("a gateway that refuses the request (4xx) is not asked again with it", async () => {
    await setPusher();
    answers.push({ status: 400, body: { errcode: "M_BAD_JSON" } });
    const first = await notification({ body: "refused" });
    const second = await notification({ body: "fine" });
    await requestsReach(2);
    expect(requests.map((r) => r.body.notification.event_id)).toEqual([first, second]);
    expect(timer.pending()).toEqual([]);
  });

  test("a pushkey the gateway lists in `rejected` loses its pusher; another pushkey in the list does not count", async () => {
    await setPusher();
    answers.push({ status: 200, body: { rejected: ["someone-else"] } }, { status: 200, body: { rejected: ["pk1"] } });
    await notification();
    await notification();
    await requestsReach(2);
    expect(await stores.pushers.pushersOf(ALICE)).toEqual([]);
    await notification();
    await Bun.sleep(20);
    expect(requests).toHaveLength(2);
    expect(sender.pusherCount).toBe(0);
  });

  test("counts-only updates when the count changes: zero is sent (the badge clears), an unchanged count is not", async () => {
    await setPusher();
    await notification();
    await requestsReach(1);
    await stores.notifications.markRead(ALICE, ROOM, serial);
    sender.readMoved(ALICE);
    await requestsReach(2);
    expectValidNotifyRequest(requests[1].body);
    expect(requests[1].body).toEqual({ notification: { counts: { unread: 0 }, devices: [{ app_id: "org.example.app", pushkey: "pk1", pushkey_ts: 1_700_000_000, data: { custom: "kept" }, tweaks: {} }] } });
    sender.readMoved(ALICE);
    sender.receiptsChanged(ROOM);
    await Bun.sleep(20);
    expect(requests).toHaveLength(2);
  });

  test("a receipt in a room tells the gateways of the room's members with pushers", async () => {
    await setPusher();
    await notification();
    await requestsReach(1);
    await stores.notifications.markRead(ALICE, ROOM, serial);
    sender.receiptsChanged(ROOM);
    await requestsReach(2);
    expect(requests[1].body.notification.counts).toEqual({ unread: 0 });
  });

  test("after a restart, what was due is sent from the position on disk", async () => {
    await setPusher();
    await notification({ body: "sent" });
    await requestsReach(1);
    await sender.stop();
    // Notifications recorded while the sender is down.
    const missed = [await notification({ body: "a" }), await notification({ body: "b" })];
    sender = build();
    await sender.start();
    await requestsReach(3);
    expect(requests.slice(1).map((r) => r.body.notification.event_id)).toEqual(missed);
  });

  test("stop() cancels a scheduled retry and leaves the notification due", async () => {
    await setPusher();
    answers.push({ status: 503 });
    await notification();
    await requestsReach(1);
    expect(timer.pending()).toHaveLength(1);
    await sender.stop();
    expect(timer.pending()).toEqual([]);
    expect((await stores.pushers.pushersOf(ALICE))[0].lastNotification).toBe(0);
  });

  test("a removed pusher stops at once; a new one starts from the newest notification", async () => {
    await setPusher();
    await notification();
    await requestsReach(1);
    await pushers.setPusher(ALICE, { accessToken: "alice-token", deviceId: "PHONE" }, { kind: null, app_id: "org.example.app", pushkey: "pk1" });
    await Bun.sleep(5);
    await notification();
    await Bun.sleep(20);
    expect(requests).toHaveLength(1);
    await setPusher({ pushkey: "pk2" });
    await Bun.sleep(5);
    await notification();
    await requestsReach(2);
    expect(requests[1].body.notification.devices[0].pushkey).toBe("pk2");
  });

  test("a gateway's TLS certificate is verified unless verify_tls is off (for test gateways with their own certificates)", async () => {
    const cert = generateSelfSignedCertificate(tempDir(), "gateway", { ipAddresses: ["127.0.0.1"] });
    const received: unknown[] = [];
    const gateway = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: readFileSync(cert.certificatePath, "utf8"), key: readFileSync(cert.privateKeyPath, "utf8") },
      fetch: async (request) => {
        received.push(await request.json());
        return Response.json({ rejected: [] });
      },
    });
    try {
      const url = `https://127.0.0.1:${gateway.port}/_matrix/push/v1/notify`;
      await sender.stop();
      sender = build({ fetch: undefined });
      await sender.start();
      await setPusher({ data: { url } });
      await notification();
      for (let i = 0; i < 500 && timer.pending().length === 0; i++) await Bun.sleep(2);
      expect(timer.pending()).toHaveLength(1);
      expect(received).toEqual([]);

      await sender.stop();
      sender = build({ fetch: undefined, verifyTls: false });
      await sender.start();
      for (let i = 0; i < 500 && received.length === 0; i++) await Bun.sleep(2);
      expect(received).toHaveLength(1);
    } finally {
      gateway.stop(true);
    }
  });
});
