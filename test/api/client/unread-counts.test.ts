// Unread notification counts in /sync are counted once and kept: a new notification is added to
// them, a read receipt or the user's own message (which marks the room read) has them counted
// again. The kept counts are checked against every such change, and a sync where only new
// notifications came asks the database for none.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { TestClient, enc } from "../../helpers/rooms";
import { testServer } from "../../helpers/server";
import { statementsDuring } from "../../helpers/statements";

/** How many queries containing `text` (by default: unread counts) run while `fn` runs. */
const countQueries = async <T>(fn: () => Promise<T>, text = "AS notifications") => {
  const { value, statements } = await statementsDuring(server, fn, text);
  return { value, queries: statements };
};

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
});
afterAll(async () => {
  await server?.stop();
});

test("counts follow new messages, receipts and the user's own message, and an unchanged room costs no count query", async () => {
  const alice = await TestClient.register(server, "alice");
  const bob = await TestClient.register(server, "bob");
  const roomId = await alice.createRoom({ preset: "public_chat" });
  await bob.ok("POST", `/join/${enc(roomId)}`, {});
  const sent: string[] = [];
  for (let i = 0; i < 3; i++) sent.push(await bob.send(roomId, { msgtype: "m.text", body: `hello ${i}` }));
  let since = "";
  const unread = async () => {
    const body = await alice.ok("GET", `/sync?timeout=0${since ? `&since=${enc(since)}&full_state=true` : ""}`);
    since = body.next_batch;
    return body.rooms.join[roomId].unread_notifications;
  };
  expect(await unread()).toEqual({ notification_count: 3, highlight_count: 0 });
  // Nothing changed: the counts are the ones kept.
  const again = await countQueries(unread);
  expect(again.value).toEqual({ notification_count: 3, highlight_count: 0 });
  expect(again.queries).toBe(0);

  await alice.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(sent[1]!)}`, {});
  expect(await unread()).toEqual({ notification_count: 1, highlight_count: 0 });
  // The room's members are read once per change of its state, not for every message pushed.
  const pushed = await countQueries(async () => {
    await bob.send(roomId, { msgtype: "m.text", body: "alice, look" });
    await bob.send(roomId, { msgtype: "m.text", body: "and this" });
  }, "membership FROM current_state WHERE room_id = ? AND type = 'm.room.member'");
  expect(pushed.queries).toBe(0);
  // New notifications are added to the kept counts: still no count query.
  const added = await countQueries(unread);
  expect(added.value).toEqual({ notification_count: 3, highlight_count: 0 });
  expect(added.queries).toBe(0);
  // A message of one's own marks the room read.
  await alice.send(roomId, { msgtype: "m.text", body: "read it all" });
  expect(await unread()).toEqual({ notification_count: 0, highlight_count: 0 });
  await bob.send(roomId, { msgtype: "m.text", body: "one more" });
  expect(await unread()).toEqual({ notification_count: 1, highlight_count: 0 });
});

/** Counts the transactions the server's database begins while `fn` runs (not those nested in another). */
async function transactionsDuring<T>(fn: () => Promise<T>): Promise<{ value: T; transactions: number }> {
  const { Tokens, resolve } = await import("../../../src/di/tokens");
  const db = resolve(server.container, Tokens.Database);
  const transaction = db.transaction;
  let transactions = 0;
  db.transaction = function (this: typeof db, fn, options) {
    if (!db.inTransaction()) transactions++;
    return transaction.call(this, fn, options) as never;
  };
  try {
    return { value: await fn(), transactions };
  } finally {
    db.transaction = transaction;
  }
}

test("a message's notifications are written in the message's own transaction: a send that notifies commits once", async () => {
  const alice = await TestClient.register(server, "once-alice");
  const bob = await TestClient.register(server, "once-bob");
  const carol = await TestClient.register(server, "once-carol");
  const roomId = await alice.createRoom({ preset: "public_chat" });
  await bob.ok("POST", `/join/${enc(roomId)}`, {});
  await carol.ok("POST", `/join/${enc(roomId)}`, {});
  await bob.send(roomId, { msgtype: "m.text", body: "first" });
  // Alice and Carol are notified; Bob's read mark moves past what he had unread (nothing, then one).
  await alice.send(roomId, { msgtype: "m.text", body: "answer" });
  const { transactions } = await transactionsDuring(() => bob.send(roomId, { msgtype: "m.text", body: "hello both" }));
  expect(transactions).toBe(1);
  const counts = async (user: TestClient) => (await user.ok("GET", "/sync?timeout=0")).rooms.join[roomId].unread_notifications;
  expect(await counts(alice)).toEqual({ notification_count: 1, highlight_count: 0 });
  expect(await counts(carol)).toEqual({ notification_count: 3, highlight_count: 0 });
  expect(await counts(bob)).toEqual({ notification_count: 0, highlight_count: 0 });
  const listed = await alice.ok("GET", "/notifications");
  expect(listed.notifications.map((n: { event: { content: { body: string } } }) => n.event.content.body)).toEqual(["hello both", "first"]);
});

type RulesetOf = (userId: string) => Promise<unknown>;

/** Has the notification service read push rules through `wrap` (given the real lookup) until `restore()`. */
async function wrapPushRules(wrap: (ruleset: RulesetOf) => RulesetOf): Promise<{ restore(): void }> {
  const { Tokens, resolve } = await import("../../../src/di/tokens");
  const notifications = resolve(server.container, Tokens.Notifications) as unknown as { deps: { pushRules: { ruleset: RulesetOf } } };
  const rules = notifications.deps.pushRules;
  notifications.deps.pushRules = { ruleset: wrap(rules.ruleset.bind(rules)) };
  return { restore: () => void (notifications.deps.pushRules = rules) };
}

test("a message whose notifications cannot be worked out before its commit is still sent, and they are worked out after it", async () => {
  const alice = await TestClient.register(server, "late-alice");
  const bob = await TestClient.register(server, "late-bob");
  const roomId = await alice.createRoom({ preset: "public_chat" });
  await bob.ok("POST", `/join/${enc(roomId)}`, {});
  let failures = 1;
  const rules = await wrapPushRules((ruleset) => async (userId) => {
    if (failures > 0 && userId === alice.userId) {
      failures--;
      throw new Error("push rules unreadable for the test");
    }
    return ruleset(userId);
  });
  try {
    await bob.send(roomId, { msgtype: "m.text", body: "still sent" });
    expect(failures).toBe(0);
  } finally {
    rules.restore();
  }
  expect((await alice.ok("GET", "/sync?timeout=0")).rooms.join[roomId].unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
});

test("a notification listener that throws changes nothing for the send: the other listeners hear of the message, and the notification counts", async () => {
  const { Tokens, resolve } = await import("../../../src/di/tokens");
  const own = await testServer({ registration: { enabled: true } });
  try {
    const alice = await TestClient.register(own, "alice");
    const bob = await TestClient.register(own, "bob");
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const heard: string[] = [];
    resolve(own.container, Tokens.RoomEngine).onEvent((_room, stored) => void heard.push(stored.eventId));
    resolve(own.container, Tokens.Notifications).onNotified(() => {
      throw new Error("a listener's bug");
    });
    const eventId = await bob.send(roomId, { msgtype: "m.text", body: "heard anyway" });
    expect(heard).toContain(eventId);
    const room = (await alice.ok("GET", "/sync?timeout=0")).rooms.join[roomId];
    expect(room.unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
    const next = await bob.send(roomId, { msgtype: "m.text", body: "and the next" });
    expect(heard).toContain(next);
  } finally {
    await own.stop();
  }
});

test("a send whose transaction fails after its notifications were written leaves no notification, in the database or in the kept counts", async () => {
  const { Tokens, resolve } = await import("../../../src/di/tokens");
  const { failNextWrites } = await import("../../helpers/faults");
  const alice = await TestClient.register(server, "failed-alice");
  const bob = await TestClient.register(server, "failed-bob");
  const roomId = await alice.createRoom({ preset: "public_chat" });
  await bob.ok("POST", `/join/${enc(roomId)}`, {});
  await bob.send(roomId, { msgtype: "m.text", body: "kept" });
  const counts = async () => (await alice.ok("GET", "/sync?timeout=0")).rooms.join[roomId].unread_notifications;
  expect(await counts()).toEqual({ notification_count: 1, highlight_count: 0 }); // counted, and kept
  // The transaction id's record fails beside the message's rows and notifications: all roll back.
  const fault = failNextWrites(resolve(server.container, Tokens.Database), "INSERT INTO client_transactions");
  try {
    const r = await bob.call("PUT", `/rooms/${enc(roomId)}/send/m.room.message/lost`, { msgtype: "m.text", body: "lost" });
    expect(r.status).toBe(500);
    expect(fault.left()).toBe(0);
  } finally {
    fault.restore();
  }
  expect(await counts()).toEqual({ notification_count: 1, highlight_count: 0 });
  const listed = async () => (await alice.ok("GET", "/notifications")).notifications.map((n: { event: { content: { body: string } } }) => n.event.content.body);
  expect(await listed()).toEqual(["kept"]);
  // The failed event's stream position goes to another room's event, so that the next one here
  // comes after it (a count that had taken in the lost notification would show it then).
  const elsewhere = await bob.createRoom({ preset: "public_chat" });
  await bob.send(elsewhere, { msgtype: "m.text", body: "elsewhere" });
  await bob.send(roomId, { msgtype: "m.text", body: "after" });
  expect(await counts()).toEqual({ notification_count: 2, highlight_count: 0 });
  expect(await listed()).toEqual(["after", "kept"]);
});

test("a /sync that shows an event whose notifications are still being worked out waits for them: its counts include that event", async () => {
  const { Tokens, resolve } = await import("../../../src/di/tokens");
  const alice = await TestClient.register(server, "gated-alice");
  const bob = await TestClient.register(server, "gated-bob");
  // A state event's notifications are worked out after its commit (a message's go in with it):
  // Alice asks to be notified of new topics, and Bob, whose room it is, sets one.
  const roomId = await bob.createRoom({ preset: "public_chat" });
  await alice.ok("POST", `/join/${enc(roomId)}`, {});
  await alice.ok("PUT", "/pushrules/global/override/topics", { conditions: [{ kind: "event_match", key: "type", pattern: "m.room.topic" }], actions: ["notify"] });
  const since = (await alice.ok("GET", "/sync?timeout=0")).next_batch as string;
  const store = resolve(server.container, Tokens.RoomEventStore);
  const before = await store.maxStreamOrdering();
  // Hold the working out of the next event's notifications: the event is committed by then.
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const rules = await wrapPushRules((ruleset) => async (userId) => (await gate, ruleset(userId)));
  try {
    const sending = bob.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: "held" });
    while ((await store.maxStreamOrdering()) === before) await Bun.sleep(1);
    let answered = false;
    const syncing = alice.ok("GET", `/sync?timeout=0&since=${enc(since)}`).then((body) => ((answered = true), body));
    await Bun.sleep(50);
    // Shown now, the message would come without its notification.
    expect(answered).toBe(false);
    release();
    const body = await syncing;
    await sending;
    const room = body.rooms.join[roomId];
    expect(room.timeline.events.map((e: { content: { topic?: string } }) => e.content.topic)).toContain("held");
    expect(room.unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
  } finally {
    release();
    rules.restore();
  }
});

test("after a restart, a /sync showing events written before it does not wait for the room's running write: their notifications were worked out then", async () => {
  const { Tokens, resolve } = await import("../../../src/di/tokens");
  const { tempDir } = await import("../../helpers/server");
  const dataDir = tempDir();
  const first = await testServer({ data_dir: dataDir, registration: { enabled: true } });
  const alice = await TestClient.register(first, "restart-alice");
  const bob = await TestClient.register(first, "restart-bob");
  const roomId = await alice.createRoom({ preset: "public_chat" });
  await bob.ok("POST", `/join/${enc(roomId)}`, {});
  await bob.send(roomId, { msgtype: "m.text", body: "before the restart" });
  await first.stop();

  const second = await testServer({ data_dir: dataDir, registration: { enabled: true } });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  // A long write of the room that writes nothing the /sync shows (a send waiting on a policy server, say).
  const held = resolve(second.container, Tokens.RoomEngine).queue.run(roomId, () => gate);
  try {
    const again = new TestClient(second, alice.userId, alice.deviceId, alice.token);
    let answered = false;
    const syncing = again.ok("GET", "/sync?timeout=0").then((body) => ((answered = true), body));
    const deadline = Date.now() + 2000;
    while (!answered && Date.now() < deadline) await Bun.sleep(10);
    expect(answered).toBe(true);
    expect((await syncing).rooms.join[roomId].unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
  } finally {
    release();
    await held;
    await second.stop();
  }
});
