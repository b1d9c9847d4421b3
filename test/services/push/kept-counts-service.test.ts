// The unread counts the notification service keeps in memory agree with what the database counts,
// in the orders of events that could make them drift: a receipt between a kept count and a batch
// that notifies a user twice, a receipt stored while a batch is being recorded, and a user notified
// and then reading within one batch.
import { expect, test } from "bun:test";
import { testStores } from "../../helpers/databases";
import { notificationServiceOver } from "../../helpers/notifications";
import type { JsonObject } from "../../../src/protocol/json";
import type { Stores } from "../../../src/storage/open";
import type { StoredEvent } from "../../../src/storage/stores";

const R = "!r:here";
const U = "@u:here";
const V = "@v:remote";

function message(id: string, sender: string, ordering: number): { stored: StoredEvent; pdu: JsonObject } {
  const pdu = { type: "m.room.message", sender, room_id: R, content: { msgtype: "m.text", body: id } };
  return {
    pdu,
    stored: { eventId: id, roomId: R, json: JSON.stringify(pdu), type: "m.room.message", stateKey: undefined, sender, depth: ordering, originServerTs: 0, streamOrdering: ordering, rejectedReason: undefined, outlier: false, softFailed: false, stateSnapshot: 1, prevEvents: [], authEvents: [] },
  };
}

/** A service over real stores, with the room's members and auth state given; `beforeWrite` runs before its next write. */
function service(stores: Stores) {
  const hooks: { beforeWrite?: () => Promise<void> } = {};
  const store = {
    currentStateSnapshot: async () => 1,
    currentMemberships: async () => new Map([[U, "join"], [V, "join"]]),
    maxStreamOrdering: async () => 0,
    atomically: async <T>(fn: () => Promise<T>) => {
      const hook = hooks.beforeWrite;
      hooks.beforeWrite = undefined;
      if (hook) await hook();
      return stores.db.transaction(fn);
    },
  };
  const notifications = notificationServiceOver(stores, store);
  const agree = async () => expect((await notifications.unreadCounts(U, R)).notification_count).toBe((await stores.notifications.unreadCounts(U, R)).notifications);
  return { notifications, hooks, agree };
}

test("a receipt in the room, then a batch that notifies a user twice: both counted", async () => {
  const stores = await testStores();
  const { notifications, agree } = service(stores);
  await notifications.eventsPersisted(R, [message("$e0", U, 1)]); // nothing unread: counted, kept
  notifications.receiptsChanged(R);
  await notifications.eventsPersisted(R, [message("$e1", V, 2), message("$e2", V, 3)]);
  expect((await notifications.unreadCounts(U, R)).notification_count).toBe(2);
  await agree();
  await stores.db.close();
});

test("a receipt stored while a batch is being recorded is not missed by a count from zero", async () => {
  const stores = await testStores();
  const { notifications, hooks, agree } = service(stores);
  await notifications.eventsPersisted(R, [message("$a", V, 1)]); // one unread
  await notifications.eventsPersisted(R, [message("$b", U, 2)]); // U's own message: nothing unread
  // V's message $c; while its notification is being written, U's client reads it.
  hooks.beforeWrite = async () => {
    await stores.db.run("INSERT INTO events (event_id, room_id, type, sender, depth, origin_server_ts, stream_ordering, json) VALUES ('$c', ?, 'm.room.message', ?, 3, 0, 3, '{}')", R, V);
    await stores.db.run("INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream_id) VALUES (?, ?, 'm.read', '', '$c', 0, 1)", R, U);
    notifications.receiptsChanged(R);
  };
  await notifications.eventsPersisted(R, [message("$c", V, 3)]);
  expect((await notifications.unreadCounts(U, R)).notification_count).toBe(0);
  await agree();
  await stores.db.close();
});

test("a user notified and then leaving in one batch: the notification before the leave is read, not lost", async () => {
  const stores = await testStores();
  const { notifications, agree } = service(stores);
  await notifications.eventsPersisted(R, [message("$a", U, 1)]); // nothing unread
  const leavePdu = { type: "m.room.member", state_key: U, sender: V, room_id: R, content: { membership: "leave" } };
  const leave = { pdu: leavePdu, stored: { ...message("$k", V, 3).stored, eventId: "$k", type: "m.room.member", stateKey: U, json: JSON.stringify(leavePdu) } };
  await notifications.eventsPersisted(R, [message("$m", V, 2), leave]);
  await agree();
  // And a message after that, in a later batch, counts from there.
  await notifications.eventsPersisted(R, [message("$n", V, 4)]);
  await agree();
  await stores.db.close();
});
