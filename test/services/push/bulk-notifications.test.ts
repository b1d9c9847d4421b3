// An event that notifies thousands of local members writes their notifications in a database
// transaction of its own (TransactionOptions.alone): in a batch shared with other writes, SQLite
// would hold the original of every index page those rows change until the batch commits.
import { expect, test } from "bun:test";
import { BULK_NOTIFICATIONS } from "../../../src/services/push/notification-service";
import { testStores } from "../../helpers/databases";
import { notificationServiceOver } from "../../helpers/notifications";
import type { JsonObject } from "../../../src/protocol/json";
import type { TransactionOptions } from "../../../src/storage/database";
import type { StoredEvent } from "../../../src/storage/stores";

const R = "!r:here";
const SENDER = "@v:remote";

function message(id: string, ordering: number): { stored: StoredEvent; pdu: JsonObject } {
  const pdu = { type: "m.room.message", sender: SENDER, room_id: R, content: { msgtype: "m.text", body: id } };
  return {
    pdu,
    stored: { eventId: id, roomId: R, json: JSON.stringify(pdu), type: "m.room.message", stateKey: undefined, sender: SENDER, depth: ordering, originServerTs: 0, streamOrdering: ordering, rejectedReason: undefined, outlier: false, softFailed: false, stateSnapshot: 1, prevEvents: [], authEvents: [] },
  };
}

async function notifyRoomOf(localMembers: number): Promise<{ asked: (TransactionOptions | undefined)[]; rows: number }> {
  const stores = await testStores();
  const members = new Map<string, string>([[SENDER, "join"]]);
  for (let i = 0; i < localMembers; i++) members.set(`@u${i}:here`, "join");
  const asked: (TransactionOptions | undefined)[] = [];
  const store = {
    currentStateSnapshot: async () => 1,
    currentMemberships: async () => members,
    maxStreamOrdering: async () => 0,
    atomically: async <T>(fn: () => Promise<T>, options?: TransactionOptions) => (asked.push(options), stores.db.transaction(fn, options)),
  };
  const service = notificationServiceOver(stores, store);
  await service.eventsPersisted(R, [message("$m", 1)]);
  const rows = Number((await stores.db.get<{ n: number }>("SELECT count(*) AS n FROM notifications"))!.n);
  await stores.db.close();
  return { asked, rows };
}

test(`${BULK_NOTIFICATIONS} local members notified by one event: their rows are written alone`, async () => {
  const { asked, rows } = await notifyRoomOf(BULK_NOTIFICATIONS);
  expect(rows).toBe(BULK_NOTIFICATIONS);
  expect(asked).toEqual([{ alone: true }]);
});

test("a room of a few members shares its batch as any write", async () => {
  const { asked, rows } = await notifyRoomOf(3);
  expect(rows).toBe(3);
  expect(asked).toEqual([{ alone: false }]);
});
