// Notifications: recorded as events arrive, by each recipient's push rules; GET /notifications
// (notifications.yaml; sytest 61push/09_notifications_api); and the per-room unread counts /sync
// reads through NotificationService.unreadCounts (sytest 61push/03_unread_count), which a receipt or
// the user's own message resets.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import type { NotificationService } from "../../../src/services/push/notification-service";
import { expectMatchesSpec } from "../../helpers/openapi";
import { testServer } from "../../helpers/server";
import { TestClient, V3, enc } from "../../helpers/rooms";

let server: PortierServer;
let notifications: NotificationService;
beforeAll(async () => {
  server = await testServer({ server_name: "notif.example", registration: { enabled: true } });
  notifications = resolve(server.container, Tokens.Notifications);
});
afterAll(() => server.stop());

let users = 0;
const fresh = () => TestClient.register(server, `n${++users}`);
const counts = (client: TestClient, roomId: string) => notifications.unreadCounts(client.userId, roomId);
/** A room of `owner` that `others` have joined. */
async function roomWith(owner: TestClient, others: TestClient[], body: Record<string, unknown> = {}): Promise<string> {
  const roomId = await owner.createRoom({ preset: "public_chat", ...body });
  for (const other of others) await other.ok("POST", `/join/${enc(roomId)}`, {});
  return roomId;
}
const read = (client: TestClient, roomId: string, eventId: string, type = "m.read") => client.ok("POST", `/rooms/${enc(roomId)}/receipt/${type}/${enc(eventId)}`, {});
const getNotifications = async (client: TestClient, query = "") => {
  const r = await client.call("GET", `/notifications${query}`);
  expect(r.status).toBe(200);
  expectMatchesSpec({ api: "client-server", method: "GET", path: `${V3}/notifications`, status: 200, body: r.body });
  return r.body as { notifications: any[]; next_token?: string };
};

describe("unread counts", () => {
  test("a message from another user counts once the send returns; a receipt on it resets the count (sytest 03)", async () => {
    const [alice, bob, carol] = [await fresh(), await fresh(), await fresh()];
    const roomId = await roomWith(alice, [bob, carol]);
    expect(await counts(alice, roomId)).toEqual({ notification_count: 0, highlight_count: 0 });
    const first = await bob.send(roomId, { msgtype: "m.text", body: "Test message 1" });
    expect(await counts(alice, roomId)).toEqual({ notification_count: 1, highlight_count: 0 });
    await read(alice, roomId, first);
    expect(await counts(alice, roomId)).toEqual({ notification_count: 0, highlight_count: 0 });
    await bob.send(roomId, { msgtype: "m.text", body: "Test message 2" });
    expect(await counts(alice, roomId)).toEqual({ notification_count: 1, highlight_count: 0 });
    // The sender is never notified of their own events; carol got both.
    expect(await counts(bob, roomId)).toEqual({ notification_count: 0, highlight_count: 0 });
    expect(await counts(carol, roomId)).toEqual({ notification_count: 2, highlight_count: 0 });
  });

  test("highlights: a mention by m.mentions counts in highlight_count; a content rule with a highlight tweak too (sytest 03)", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    const roomId = await roomWith(alice, [bob]);
    await bob.send(roomId, { msgtype: "m.text", body: "hey", "m.mentions": { user_ids: [alice.userId] } });
    expect(await counts(alice, roomId)).toEqual({ notification_count: 1, highlight_count: 1 });
    await alice.ok("PUT", "/pushrules/global/content/anything", { pattern: "*", actions: ["notify", { set_tweak: "highlight", value: true }] });
    await bob.send(roomId, { msgtype: "m.text", body: "Test message 2" });
    expect(await counts(alice, roomId)).toEqual({ notification_count: 2, highlight_count: 2 });
  });

  test("the user's own message moves their read position: the count goes to zero", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    const roomId = await roomWith(alice, [bob]);
    await bob.send(roomId);
    await bob.send(roomId);
    expect((await counts(alice, roomId)).notification_count).toBe(2);
    await alice.send(roomId, { msgtype: "m.text", body: "I read it all" });
    expect((await counts(alice, roomId)).notification_count).toBe(0);
    await bob.send(roomId);
    expect((await counts(alice, roomId)).notification_count).toBe(1);
  });

  test("an m.read.private receipt clears as well; a receipt on an older event leaves later ones unread", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    const roomId = await roomWith(alice, [bob]);
    const first = await bob.send(roomId);
    const second = await bob.send(roomId);
    await bob.send(roomId);
    await read(alice, roomId, first, "m.read.private");
    expect((await counts(alice, roomId)).notification_count).toBe(2);
    await read(alice, roomId, second);
    expect((await counts(alice, roomId)).notification_count).toBe(1);
  });

  test("what the rules say not to notify does not count: notices, member events, a muted room, a muted sender", async () => {
    const [alice, bob, carol] = [await fresh(), await fresh(), await fresh()];
    const roomId = await roomWith(alice, [bob]);
    await bob.send(roomId, { msgtype: "m.notice", body: "a bot speaks" });
    await carol.ok("POST", `/join/${enc(roomId)}`, {});
    expect((await counts(alice, roomId)).notification_count).toBe(0);
    // sytest "Don't get pushed for rooms you've muted": a room rule with dont_notify.
    await alice.ok("PUT", `/pushrules/global/room/${enc(roomId)}`, { actions: ["dont_notify"] });
    await bob.send(roomId, { msgtype: "m.text", body: "First message (Should not be pushed)" });
    expect((await counts(alice, roomId)).notification_count).toBe(0);
    // ...but mentions still come through: is_user_mention is an override rule.
    await bob.send(roomId, { msgtype: "m.text", body: "Second message", "m.mentions": { user_ids: [alice.userId] } });
    expect(await counts(alice, roomId)).toEqual({ notification_count: 1, highlight_count: 1 });
    await alice.ok("DELETE", `/pushrules/global/room/${enc(roomId)}`);
    await alice.ok("PUT", `/pushrules/global/sender/${enc(carol.userId)}`, { actions: [] });
    await carol.send(roomId);
    expect((await counts(alice, roomId)).notification_count).toBe(1);
    await bob.send(roomId);
    expect((await counts(alice, roomId)).notification_count).toBe(2);
  });

  test("@room highlights when the sender has the power for it (the creator), not from a user at level 0", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    const roomId = await roomWith(bob, [alice]);
    await alice.send(roomId, { msgtype: "m.text", body: "@room hi", "m.mentions": { room: true } });
    expect(await counts(bob, roomId)).toEqual({ notification_count: 1, highlight_count: 0 });
    await bob.send(roomId, { msgtype: "m.text", body: "@room hi", "m.mentions": { room: true } });
    expect(await counts(alice, roomId)).toEqual({ notification_count: 1, highlight_count: 1 });
  });

  test("a one-to-one room and a larger one: room_member_count counts joined members", async () => {
    const [alice, bob, carol] = [await fresh(), await fresh(), await fresh()];
    const roomId = await roomWith(alice, [bob]);
    await bob.send(roomId);
    const [entry] = (await getNotifications(alice)).notifications;
    // .m.rule.room_one_to_one carries a sound; .m.rule.message does not.
    expect(entry.actions).toEqual(["notify", { set_tweak: "sound", value: "default" }]);
    await carol.ok("POST", `/join/${enc(roomId)}`, {});
    await bob.send(roomId);
    expect((await getNotifications(alice)).notifications[0].actions).toEqual(["notify"]);
  });

  test("contains_display_name in a user rule reads the user's display name in the room", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    await alice.ok("PUT", `/profile/${enc(alice.userId)}/displayname`, { displayname: "Wonder Alice" });
    const roomId = await roomWith(bob, [alice]);
    await alice.ok("PUT", "/pushrules/global/override/my-name", { conditions: [{ kind: "contains_display_name" }], actions: ["notify", { set_tweak: "highlight" }] });
    await bob.send(roomId, { msgtype: "m.text", body: "is wonder alice here?" });
    expect(await counts(alice, roomId)).toEqual({ notification_count: 1, highlight_count: 1 });
    await bob.send(roomId, { msgtype: "m.text", body: "wonderalice" });
    expect(await counts(alice, roomId)).toEqual({ notification_count: 2, highlight_count: 1 });
  });

  test("rejected and soft-failed events notify nobody; the same event accepted does (sytest 61push/01 'Rejected events are not pushed')", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    const roomId = await roomWith(alice, [bob]);
    const sent = await bob.send(roomId, { msgtype: "m.text", body: "counted" });
    await read(alice, roomId, sent);
    const store = resolve(server.container, Tokens.RoomEventStore);
    const stored = (await store.getEvent(sent))!;
    const pdu = JSON.parse(stored.json);
    let next = (await store.maxStreamOrdering()) + 1;
    // As the federation ingest hands them over: the event as stored, flagged.
    const as = (flags: { rejectedReason?: string; softFailed?: boolean }) => ({ stored: { ...stored, eventId: `$copy${next}`, streamOrdering: next++, rejectedReason: flags.rejectedReason, softFailed: flags.softFailed ?? false }, pdu });
    await notifications.eventsPersisted(roomId, [as({ rejectedReason: "auth" }), as({ softFailed: true })]);
    expect(await counts(alice, roomId)).toEqual({ notification_count: 0, highlight_count: 0 });
    await notifications.eventsPersisted(roomId, [as({})]);
    expect(await counts(alice, roomId)).toEqual({ notification_count: 1, highlight_count: 0 });
  });

  test("leaving a room clears its count", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    const roomId = await roomWith(bob, [alice]);
    await bob.send(roomId);
    expect(await notifications.unreadTotal(alice.userId)).toBe(1);
    await alice.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    expect(await notifications.unreadTotal(alice.userId)).toBe(0);
  });

  test("the count is stored before /sync's notifier wakes the recipient", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    const roomId = await roomWith(alice, [bob]);
    for (let i = 1; i <= 5; i++) {
      const waiter = resolve(server.container, Tokens.SyncNotifier).waitFor(alice.userId, 5000);
      const sent = bob.send(roomId);
      expect(await waiter.promise).toBe("woken");
      expect((await counts(alice, roomId)).notification_count).toBe(i);
      await sent;
    }
  });
});

describe("GET /notifications", () => {
  test("sytest 09: a notification after a receipt, unread; then read once the receipt passes it", async () => {
    const [user1, user2] = [await fresh(), await fresh()];
    await user1.ok("PUT", "/pushrules/global/content/anything", { pattern: "*", actions: ["notify"] });
    const roomId = await roomWith(user1, [user2]);
    const first = await user2.send(roomId, { msgtype: "m.text", body: "Test message 1" });
    await read(user1, roomId, first);
    const second = await user2.send(roomId, { msgtype: "m.text", body: "Test message 2" });
    const body = await getNotifications(user1);
    const latest = body.notifications[0];
    expect(Object.keys(latest).sort()).toEqual(["actions", "event", "profile_tag", "read", "room_id", "ts"]);
    expect(latest).toMatchObject({ room_id: roomId, read: false, actions: ["notify"] });
    expect(latest.event).toMatchObject({ event_id: second, type: "m.room.message", sender: user2.userId, content: { body: "Test message 2" } });
    expect(typeof latest.ts).toBe("number");
    expect(body.notifications[1]).toMatchObject({ read: true, event: { event_id: first } });
    const third = await user2.send(roomId, { msgtype: "m.text", body: "Test message 3" });
    await read(user1, roomId, third);
    expect((await getNotifications(user1)).notifications.map((n) => n.read)).toEqual([true, true, true]);
  });

  test("an invite notifies the invitee, who is not in the room yet", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    const roomId = await bob.createRoom({ preset: "private_chat" });
    await bob.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: alice.userId });
    const [invite] = (await getNotifications(alice)).notifications;
    expect(invite).toMatchObject({ room_id: roomId, read: false, event: { type: "m.room.member", state_key: alice.userId, content: { membership: "invite" } } });
    expect(invite.actions).toEqual(["notify", { set_tweak: "sound", value: "default" }]);
  });

  test("pages with limit, from and next_token, newest first; only=highlight", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    const roomId = await roomWith(alice, [bob]);
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) sent.push(await bob.send(roomId, { msgtype: "m.text", body: `m${i}`, ...(i % 2 === 0 ? { "m.mentions": { user_ids: [alice.userId] } } : {}) }));
    const seen: string[] = [];
    let from: string | undefined;
    for (let page = 0; page < 3; page++) {
      const body = await getNotifications(alice, `?limit=2${from ? `&from=${from}` : ""}`);
      seen.push(...body.notifications.map((n) => n.event.event_id));
      from = body.next_token;
      if (page < 2) expect(typeof from).toBe("string");
    }
    expect(from).toBeUndefined();
    expect(seen).toEqual([...sent].reverse());
    const highlights = await getNotifications(alice, "?only=highlight");
    expect(highlights.notifications.map((n) => n.event.event_id)).toEqual([sent[4], sent[2], sent[0]]);
    expect(highlights.next_token).toBeUndefined();
    expect((await getNotifications(alice, "?only=something_else")).notifications).toHaveLength(5);
  });

  test("bad parameters are 400 M_INVALID_PARAM; no token is 401", async () => {
    const alice = await fresh();
    for (const query of ["?limit=abc", "?limit=-1", "?limit=0", "?limit=1.5", "?from=abc", "?from=-3"]) {
      await alice.fails("GET", `/notifications${query}`, undefined, 400, "M_INVALID_PARAM");
    }
    expect((await getNotifications(alice, "?from=999999")).notifications).toEqual([]);
    const anonymous = new TestClient(server, "", "", "");
    expect((await anonymous.call("GET", "/notifications")).status).toBe(401);
  });
});

describe("unread counts in /sync", () => {
  test("a joined room's unread_notifications count what the push rules notified, up to the sync's position; a receipt resets them", async () => {
    const [alice, bob] = [await fresh(), await fresh()];
    const roomId = await roomWith(alice, [bob]);
    const since = (await alice.ok("GET", "/sync?timeout=0")).next_batch;
    await bob.send(roomId, { msgtype: "m.text", body: "hello" });
    const last = await bob.send(roomId, { msgtype: "m.text", body: "hey alice", "m.mentions": { user_ids: [alice.userId] } });
    const r = await alice.ok("GET", `/sync?timeout=0&since=${enc(since)}`);
    expect(r.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 2, highlight_count: 1 });
    await read(alice, roomId, last);
    const after = await alice.ok("GET", `/sync?timeout=0&since=${enc(r.next_batch)}`);
    expect(after.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
  });
});
