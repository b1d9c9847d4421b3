// The pusher and notification stores on every engine of this run (both SQLite drivers, and
// PostgreSQL where a server can be started): pushers and their delivery positions, notifications,
// read positions from receipts and read marks, unread counts.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { MIGRATIONS, storesOver, type Stores } from "../../src/storage/open";
import { runMigrations } from "../../src/storage/migrations";
import { openSqlite, type SqliteDriverName } from "../../src/storage/sqlite/driver";
import { openPostgres } from "../../src/storage/postgres/driver";
import { freshPostgresUrl } from "../helpers/postgres";
import type { NewEvent, NewNotification, PusherRecord } from "../../src/storage/stores";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";
const ROOM = "!room:example.org";
const OTHER = "!other:example.org";

const pusher = (over: Partial<PusherRecord> = {}): PusherRecord => ({
  userId: ALICE,
  appId: "org.example.app",
  pushkey: "key1",
  kind: "http",
  appDisplayName: "App",
  deviceDisplayName: "Phone",
  profileTag: undefined,
  lang: "en",
  data: { url: "https://push.example/_matrix/push/v1/notify", format: "event_id_only" },
  accessTokenHash: "token-a",
  deviceId: "DEV1",
  pushkeyTs: 1000,
  lastNotification: 0,
  ...over,
});

describe.each(testDatabases.map((d) => [d.name, d] as const))("push stores on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  describe("pushers", () => {
    test("setPusher creates, then replaces the settings but keeps the delivery position", async () => {
      const { pushers } = stores;
      await pushers.setPusher(pusher({ profileTag: "tag", lastNotification: 5 }));
      expect(await pushers.pushersOf(ALICE)).toEqual([pusher({ profileTag: "tag", lastNotification: 5 })]);
      await pushers.setPusher(pusher({ lang: "fr", data: { url: "https://other/_matrix/push/v1/notify" }, accessTokenHash: undefined, deviceId: undefined, lastNotification: 0 }));
      expect(await pushers.pushersOf(ALICE)).toEqual([pusher({ lang: "fr", data: { url: "https://other/_matrix/push/v1/notify" }, accessTokenHash: undefined, deviceId: undefined, lastNotification: 5 })]);
      await pushers.setPusher(pusher({ pushkey: "key2" }));
      await pushers.setPusher(pusher({ userId: BOB }));
      expect((await pushers.pushersOf(ALICE)).map((p) => p.pushkey)).toEqual(["key1", "key2"]);
      expect((await pushers.allPushers()).map((p) => [p.userId, p.pushkey])).toEqual([[ALICE, "key1"], [ALICE, "key2"], [BOB, "key1"]]);
    });

    test("deletePusher removes one pusher and says whether it existed", async () => {
      const { pushers } = stores;
      await pushers.setPusher(pusher());
      await pushers.setPusher(pusher({ pushkey: "key2" }));
      expect(await pushers.deletePusher(ALICE, "org.example.app", "key1")).toBe(true);
      expect(await pushers.deletePusher(ALICE, "org.example.app", "key1")).toBe(false);
      expect((await pushers.pushersOf(ALICE)).map((p) => p.pushkey)).toEqual(["key2"]);
    });

    test("deleteOtherUsersPushers removes the same app id and pushkey of other users only", async () => {
      const { pushers } = stores;
      await pushers.setPusher(pusher());
      await pushers.setPusher(pusher({ userId: BOB }));
      await pushers.setPusher(pusher({ userId: BOB, pushkey: "key2" }));
      await pushers.setPusher(pusher({ userId: BOB, appId: "other.app" }));
      const removed = await pushers.deleteOtherUsersPushers("org.example.app", "key1", ALICE);
      expect(removed.map((p) => [p.userId, p.appId, p.pushkey])).toEqual([[BOB, "org.example.app", "key1"]]);
      expect((await pushers.allPushers()).map((p) => [p.userId, p.appId, p.pushkey])).toEqual([[ALICE, "org.example.app", "key1"], [BOB, "org.example.app", "key2"], [BOB, "other.app", "key1"]]);
    });

    test("deletePushersExceptToken keeps the token's pushers (and other users'); without a token it removes all the user's", async () => {
      const { pushers } = stores;
      await pushers.setPusher(pusher({ pushkey: "mine", accessTokenHash: "keep" }));
      await pushers.setPusher(pusher({ pushkey: "other", accessTokenHash: "other" }));
      await pushers.setPusher(pusher({ pushkey: "none", accessTokenHash: undefined }));
      await pushers.setPusher(pusher({ userId: BOB, accessTokenHash: "other" }));
      const removed = await pushers.deletePushersExceptToken(ALICE, "keep");
      expect(removed.map((p) => p.pushkey).sort()).toEqual(["none", "other"]);
      expect((await pushers.pushersOf(ALICE)).map((p) => p.pushkey)).toEqual(["mine"]);
      expect((await pushers.deletePushersExceptToken(ALICE, undefined)).map((p) => p.pushkey)).toEqual(["mine"]);
      expect(await pushers.pushersOf(ALICE)).toEqual([]);
      expect(await pushers.pushersOf(BOB)).toHaveLength(1);
    });

    test("deletePushersOfDevice removes what that device's sessions set, of that user only", async () => {
      const { pushers } = stores;
      await pushers.setPusher(pusher({ pushkey: "phone", deviceId: "PHONE" }));
      await pushers.setPusher(pusher({ pushkey: "phone2", deviceId: "PHONE" }));
      await pushers.setPusher(pusher({ pushkey: "tablet", deviceId: "TABLET" }));
      await pushers.setPusher(pusher({ userId: BOB, deviceId: "PHONE" }));
      expect((await pushers.deletePushersOfDevice(ALICE, "PHONE")).map((p) => p.pushkey).sort()).toEqual(["phone", "phone2"]);
      expect((await pushers.pushersOf(ALICE)).map((p) => p.pushkey)).toEqual(["tablet"]);
      expect(await pushers.pushersOf(BOB)).toHaveLength(1);
      expect(await pushers.deletePushersOfDevice(ALICE, "PHONE")).toEqual([]);
    });

    test("setLastNotification only moves forward", async () => {
      const { pushers } = stores;
      await pushers.setPusher(pusher());
      await pushers.setLastNotification(ALICE, "org.example.app", "key1", 7);
      await pushers.setLastNotification(ALICE, "org.example.app", "key1", 3);
      expect((await pushers.pushersOf(ALICE))[0].lastNotification).toBe(7);
    });
  });

  describe("notifications", () => {
    /** Persists a message event in `room` and returns its stream ordering. */
    let n = 0;
    const event = async (room = ROOM, sender = BOB): Promise<{ eventId: string; ordering: number }> => {
      const eventId = `$e${++n}`;
      const e: NewEvent = { eventId, roomId: room, json: JSON.stringify({ type: "m.room.message", content: {} }), type: "m.room.message", stateKey: undefined, sender, depth: n, originServerTs: n, prevEvents: [], authEvents: [] };
      const stored = await stores.roomEvents.persistEvent({ event: e, stateAfter: { parent: undefined, delta: new Map() }, updateForwardExtremities: true, updateCurrentState: true });
      return { eventId, ordering: stored.streamOrdering! };
    };
    const notify = (e: { eventId: string; ordering: number }, over: Partial<NewNotification> = {}): NewNotification => ({
      userId: ALICE,
      roomId: ROOM,
      eventId: e.eventId,
      eventStreamOrdering: e.ordering,
      ts: 100 + e.ordering,
      actions: ["notify"],
      highlight: false,
      ...over,
    });
    const receipt = (eventId: string, receiptType = "m.read", threadId?: string, room = ROOM) => stores.roomClient.putReceipt({ roomId: room, userId: ALICE, receiptType, threadId, eventId, ts: 1 });

    test("addNotifications takes increasing stream ids, ignores a repeat of (user, event), and lists after a position", async () => {
      const { notifications } = stores;
      const [a, b] = [await event(), await event()];
      expect(await notifications.maxNotificationStreamId()).toBe(0);
      await notifications.addNotifications([notify(a, { actions: ["notify", { set_tweak: "highlight" }], highlight: true }), notify(a, { userId: BOB })]);
      await notifications.addNotifications([notify(b), notify(a)]);
      expect(await notifications.maxNotificationStreamId()).toBe(3);
      const all = await notifications.notificationsAfter(ALICE, 0, 10);
      expect(all).toEqual([
        { streamId: 1, userId: ALICE, roomId: ROOM, eventId: a.eventId, eventStreamOrdering: a.ordering, ts: 100 + a.ordering, actions: ["notify", { set_tweak: "highlight" }], highlight: true },
        { streamId: 3, userId: ALICE, roomId: ROOM, eventId: b.eventId, eventStreamOrdering: b.ordering, ts: 100 + b.ordering, actions: ["notify"], highlight: false },
      ]);
      expect((await notifications.notificationsAfter(ALICE, 1, 10)).map((x) => x.streamId)).toEqual([3]);
      expect((await notifications.notificationsAfter(ALICE, 0, 1)).map((x) => x.streamId)).toEqual([1]);
      expect((await notifications.notificationsAfter(BOB, 0, 10)).map((x) => x.streamId)).toEqual([2]);
    });

    test("notifications recorded before migration 100 (unique per user and event) are kept by it; a repeat is still ignored", async () => {
      const db = database.name === "postgres" ? await openPostgres({ url: await freshPostgresUrl(), poolSize: 2 }) : openSqlite(":memory:", database.name as SqliteDriverName);
      try {
        await runMigrations(db, MIGRATIONS.filter((m) => m.version < 100));
        const insert = "INSERT INTO notifications (stream_id, user_id, room_id, event_id, event_stream_ordering, ts, actions_json, highlight) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
        await db.run(insert, 1, ALICE, ROOM, "$old1", 7, 1000, '["notify"]', 0);
        await db.run(insert, 2, ALICE, ROOM, "$old2", 9, 1001, '["notify",{"set_tweak":"highlight"}]', 1);
        await db.run(insert, 3, BOB, ROOM, "$old2", 9, 1001, '["notify"]', 0);
        await runMigrations(db, MIGRATIONS);
        const { notifications } = storesOver(db);
        expect((await notifications.notificationsAfter(ALICE, 0, 10)).map((x) => [x.streamId, x.eventId, x.highlight])).toEqual([[1, "$old1", false], [2, "$old2", true]]);
        expect(await notifications.unreadCounts(ALICE, ROOM)).toEqual({ notifications: 2, highlights: 1, newest: 9 });
        await notifications.addNotifications([{ userId: ALICE, roomId: ROOM, eventId: "$old2", eventStreamOrdering: 9, ts: 2000, actions: ["notify"], highlight: false }]);
        expect((await notifications.notificationsAfter(ALICE, 0, 10)).map((x) => x.streamId)).toEqual([1, 2]);
        expect(await notifications.maxNotificationStreamId()).toBe(3);
      } finally {
        await db.close();
      }
    });

    test("unread counts: after the later of m.read and m.read.private (unthreaded or main), and of the read mark", async () => {
      const { notifications } = stores;
      const counts = async (...args: Parameters<typeof notifications.unreadCounts>) => {
        const { notifications: n, highlights } = await notifications.unreadCounts(...args);
        return { notifications: n, highlights };
      };
      const events = [await event(), await event(), await event(), await event()];
      await notifications.addNotifications(events.map((e, i) => notify(e, { highlight: i % 2 === 1 })));
      expect(await notifications.unreadCounts(ALICE, ROOM)).toEqual({ notifications: 4, highlights: 2, newest: events[3].ordering });
      // Up to an event position (a sync's), later events do not count yet.
      expect(await notifications.unreadCounts(ALICE, ROOM, events[1].ordering)).toEqual({ notifications: 2, highlights: 1, newest: events[1].ordering });
      await receipt(events[0].eventId, "m.read.private");
      expect(await counts(ALICE, ROOM)).toEqual({ notifications: 3, highlights: 2 });
      await receipt(events[1].eventId, "m.read");
      expect(await counts(ALICE, ROOM)).toEqual({ notifications: 2, highlights: 1 });
      // A receipt in one thread does not count for the room; one on the main timeline does.
      await receipt(events[3].eventId, "m.read", "$thread");
      expect(await counts(ALICE, ROOM)).toEqual({ notifications: 2, highlights: 1 });
      await receipt(events[2].eventId, "m.read", "main");
      expect(await counts(ALICE, ROOM)).toEqual({ notifications: 1, highlights: 1 });
      // m.fully_read is not a read receipt.
      await receipt(events[3].eventId, "m.fully_read");
      expect(await counts(ALICE, ROOM)).toEqual({ notifications: 1, highlights: 1 });
      await notifications.markRead(ALICE, ROOM, events[3].ordering);
      expect(await counts(ALICE, ROOM)).toEqual({ notifications: 0, highlights: 0 });
      // Other users and rooms are apart.
      expect(await counts(BOB, ROOM)).toEqual({ notifications: 0, highlights: 0 });
      expect(await counts(ALICE, OTHER)).toEqual({ notifications: 0, highlights: 0 });
    });

    test("markRead only moves forward", async () => {
      const { notifications } = stores;
      const [a, b] = [await event(), await event()];
      await notifications.addNotifications([notify(a), notify(b)]);
      await notifications.markRead(ALICE, ROOM, a.ordering);
      await notifications.markRead(ALICE, ROOM, 0);
      expect((await notifications.unreadCounts(ALICE, ROOM)).notifications).toBe(1);
    });

    test("unreadTotal counts every room against its own read position", async () => {
      const { notifications } = stores;
      const [a1, a2, b1] = [await event(ROOM), await event(ROOM), await event(OTHER)];
      await notifications.addNotifications([notify(a1), notify(a2), notify(b1, { roomId: OTHER })]);
      expect(await notifications.unreadTotal(ALICE)).toBe(3);
      await receipt(a1.eventId);
      expect(await notifications.unreadTotal(ALICE)).toBe(2);
      await notifications.markRead(ALICE, OTHER, b1.ordering);
      expect(await notifications.unreadTotal(ALICE)).toBe(1);
      expect(await notifications.unreadTotal(BOB)).toBe(0);
    });

    test("notificationsBefore: newest first, with read flags, paged by stream id, optionally only highlights", async () => {
      const { notifications } = stores;
      const events = [await event(), await event(), await event()];
      await notifications.addNotifications(events.map((e, i) => notify(e, { highlight: i !== 1 })));
      await receipt(events[0].eventId);
      const page = await notifications.notificationsBefore(ALICE, undefined, 2, false);
      expect(page.map((x) => [x.streamId, x.read])).toEqual([[3, false], [2, false]]);
      expect((await notifications.notificationsBefore(ALICE, 2, 2, false)).map((x) => [x.streamId, x.read])).toEqual([[1, true]]);
      expect((await notifications.notificationsBefore(ALICE, undefined, 10, true)).map((x) => x.streamId)).toEqual([3, 1]);
      expect(await notifications.notificationsBefore(BOB, undefined, 10, false)).toEqual([]);
    });

    test("deleteReadNotificationsBefore deletes old read notifications only", async () => {
      const { notifications } = stores;
      const [a, b, c] = [await event(), await event(), await event()];
      await notifications.addNotifications([notify(a, { ts: 10 }), notify(b, { ts: 10 }), notify(c, { ts: 1000 })]);
      // a and b are old and read; c is read but recent.
      await receipt(c.eventId);
      await notifications.addNotifications([notify(await event(), { ts: 10, userId: BOB })]);
      expect(await notifications.deleteReadNotificationsBefore(500)).toBe(2);
      expect((await notifications.notificationsAfter(ALICE, 0, 10)).map((x) => x.eventId)).toEqual([c.eventId]);
      // Bob's old notification is unread: it stays.
      expect(await notifications.notificationsAfter(BOB, 0, 10)).toHaveLength(1);
    });

    test("deleteReadNotificationsBefore runs in a database transaction of its own (after a long pause it may delete many rows)", async () => {
      const { notifications } = stores;
      // Both engines' databases are group-commit writers (SingleWriterDatabase), which count their commits.
      const db = stores.db as typeof stores.db & { commitStats: { commits: number; units: number } };
      const before = { ...db.commitStats };
      // Queued in the same turn as another write, the prune still commits by itself.
      await Promise.all([db.run("INSERT INTO notification_read_marks (user_id, room_id, stream_ordering) VALUES (?, ?, ?)", BOB, "!prune:here", 1), notifications.deleteReadNotificationsBefore(500)]);
      expect(db.commitStats.commits - before.commits).toBe(2);
      expect(db.commitStats.units - before.units).toBe(2);
    });
  });
});
