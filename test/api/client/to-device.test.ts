// PUT /sendToDevice (to_device.yaml) and /sync's to_device section through the real HTTP app:
// delivery to one device or all of a user's ("*"), acknowledgement by the next sync (the messages
// are deleted), idempotent transaction IDs per sending device, the per-sync limit, long-poll
// wake-ups, bad input, and a deleted device's queue.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { parseSyncToken } from "../../../src/services/sync/sync-token";
import { TO_DEVICE_SYNC_LIMIT } from "../../../src/services/e2ee/to-device";
import { testServer } from "../../helpers/server";
import { R0, TestClient, enc } from "../../helpers/rooms";
import { failNextWrites } from "../../helpers/faults";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let bobLaptop: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "todevice.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice", "ALICE1");
  bob = await TestClient.register(server, "bob", "BOBPHONE");
  bobLaptop = await bob.login("BOBLAPTOP");
});
afterAll(() => server.stop());

const sync = (client: TestClient, since?: string, timeout?: number) =>
  client.ok("GET", `/sync?${since ? `since=${enc(since)}&` : ""}${timeout !== undefined ? `timeout=${timeout}` : ""}`);
const pending = async (deviceId: string) =>
  Number((await resolve(server.container, Tokens.Database).get<{ n: number }>("SELECT count(*) AS n FROM to_device_messages WHERE device_id = ?", deviceId))!.n);
let txn = 0;
const send = (from: TestClient, type: string, messages: unknown, txnId = `t${++txn}`) => from.ok("PUT", `/sendToDevice/${enc(type)}/${txnId}`, { messages });

describe("send-to-device", () => {
  test("a message for one device reaches that device only, once; the next sync acknowledges and deletes it", async () => {
    const phoneStart = (await sync(bob)).next_batch;
    const laptopStart = (await sync(bobLaptop)).next_batch;
    await send(alice, "m.test", { [bob.userId]: { [bob.deviceId]: { n: 1 } } });
    const got = await sync(bob, phoneStart);
    expect(got.to_device.events).toEqual([{ sender: alice.userId, type: "m.test", content: { n: 1 } }]);
    expect((await sync(bobLaptop, laptopStart)).to_device.events).toEqual([]);
    // Until a sync with a later token, it stays (a sync from the same token gets it again).
    expect(await pending(bob.deviceId)).toBe(1);
    expect((await sync(bob, phoneStart)).to_device.events).toHaveLength(1);
    const next = await sync(bob, got.next_batch);
    expect(next.to_device.events).toEqual([]);
    expect(await pending(bob.deviceId)).toBe(0);
  });

  test('"*" reaches every device of the user; a named device gets its own message; unknown devices and users are skipped', async () => {
    const phoneStart = (await sync(bob)).next_batch;
    const laptopStart = (await sync(bobLaptop)).next_batch;
    await send(alice, "m.test", { [bob.userId]: { "*": { to: "all" }, [bobLaptop.deviceId]: { to: "laptop" }, NOSUCH: { to: "nobody" } }, "@ghost:todevice.example": { X: {} } });
    expect((await sync(bob, phoneStart)).to_device.events.map((e: any) => e.content)).toEqual([{ to: "all" }]);
    expect((await sync(bobLaptop, laptopStart)).to_device.events.map((e: any) => e.content)).toEqual([{ to: "laptop" }]);
  });

  test("a retried transaction sends nothing again; the same ID from another device is another transaction", async () => {
    const start = (await sync(bob)).next_batch;
    const aliceTablet = await alice.login("ALICETABLET");
    await send(alice, "m.test", { [bob.userId]: { [bob.deviceId]: { try: 1 } } }, "same");
    await send(alice, "m.test", { [bob.userId]: { [bob.deviceId]: { try: 2 } } }, "same");
    await send(aliceTablet, "m.test", { [bob.userId]: { [bob.deviceId]: { try: 3 } } }, "same");
    // Under r0 too.
    await aliceTablet.ok("PUT", `${R0}/sendToDevice/m.test/other`, { messages: { [bob.userId]: { [bob.deviceId]: { try: 4 } } } });
    expect((await sync(bob, start)).to_device.events.map((e: any) => e.content.try)).toEqual([1, 3, 4]);
  });

  test(`at most ${TO_DEVICE_SYNC_LIMIT} per sync: the token stops at the last one given and the next sync brings the rest`, async () => {
    const start = (await sync(bobLaptop)).next_batch;
    const many = TO_DEVICE_SYNC_LIMIT + 20;
    for (let i = 0; i < many; i++) await send(alice, "m.count", { [bob.userId]: { [bobLaptop.deviceId]: { i } } });
    const first = await sync(bobLaptop, start);
    expect(first.to_device.events.map((e: any) => e.content.i)).toEqual([...Array(TO_DEVICE_SYNC_LIMIT).keys()]);
    const second = await sync(bobLaptop, first.next_batch);
    expect(second.to_device.events.map((e: any) => e.content.i)).toEqual([...Array(20).keys()].map((i) => i + TO_DEVICE_SYNC_LIMIT));
    expect(parseSyncToken(second.next_batch).e2ee).toBeGreaterThan(parseSyncToken(first.next_batch).e2ee!);
    await sync(bobLaptop, second.next_batch);
    expect(await pending(bobLaptop.deviceId)).toBe(0);
  });

  test("a waiting sync wakes for a to-device message", async () => {
    const since = (await sync(bob)).next_batch;
    const started = performance.now();
    const waiting = sync(bob, since, 10_000);
    await Bun.sleep(50);
    await send(alice, "m.wake", { [bob.userId]: { [bob.deviceId]: {} } });
    expect((await waiting).to_device.events.map((e: any) => e.type)).toEqual(["m.wake"]);
    expect(performance.now() - started).toBeLessThan(5000);
  });

  test("bad input is a Matrix error and sends nothing", async () => {
    const start = (await sync(bob)).next_batch;
    for (const [messages, errcode] of [
      [{ "not-a-user": { D: {} } }, "M_INVALID_PARAM"],
      [{ [bob.userId]: { [bob.deviceId]: "text" } }, "M_BAD_JSON"],
      [{ [bob.userId]: [] }, "M_BAD_JSON"],
    ] as const) {
      const r = await alice.call("PUT", `/sendToDevice/m.test/bad${++txn}`, { messages });
      expect({ status: r.status, errcode: r.body.errcode }).toEqual({ status: 400, errcode });
    }
    const missing = await alice.call("PUT", `/sendToDevice/m.test/bad${++txn}`, {});
    expect({ status: missing.status, errcode: missing.body.errcode }).toEqual({ status: 400, errcode: "M_MISSING_PARAM" });
    expect((await sync(bob, start)).to_device.events).toEqual([]);
  });

  test("a deleted device's waiting messages are deleted with it", async () => {
    const tablet = await bob.login("BOBTABLET");
    await send(alice, "m.test", { [bob.userId]: { [tablet.deviceId]: { for: "tablet" } } });
    expect(await pending(tablet.deviceId)).toBe(1);
    await tablet.ok("POST", "/logout", {});
    expect(await pending(tablet.deviceId)).toBe(0);
  });
});

describe("to-device messages and other servers", () => {
  const REMOTE = "@remote:elsewhere.example";

  test("messages for other servers are queued with the request: if queuing fails, the request fails and stores nothing, and its retry sends everything once", async () => {
    const queued: { server: string; content: any }[] = [];
    let failing = true;
    resolve(server.container, Tokens.ToDevice).onRemote(async (destination, content) => {
      if (!content.messages[REMOTE]) return;
      if (failing) throw new Error("the outbox cannot be written");
      queued.push({ server: destination, content });
    });
    const start = (await sync(bob)).next_batch;
    const messages = { [bob.userId]: { [bob.deviceId]: { n: "local" } }, [REMOTE]: { DEV: { n: "remote" } } };
    const failed = await alice.call("PUT", "/sendToDevice/m.test/remote1", { messages });
    expect(failed.status).toBe(500);
    expect((await sync(bob, start)).to_device.events).toEqual([]);
    failing = false;
    await alice.ok("PUT", "/sendToDevice/m.test/remote1", { messages });
    await alice.ok("PUT", "/sendToDevice/m.test/remote1", { messages });
    expect((await sync(bob, start)).to_device.events.map((e: any) => e.content)).toEqual([{ n: "local" }]);
    expect(queued).toEqual([{ server: "elsewhere.example", content: { sender: alice.userId, type: "m.test", message_id: expect.any(String), messages: { [REMOTE]: { DEV: { n: "remote" } } } } }]);
  });

  const edu = (messageId: string, content: unknown) => ({ edu_type: "m.direct_to_device", content: { sender: "@carl:remote.example", type: "m.room_key", message_id: messageId, messages: { [bob.userId]: { [bob.deviceId]: content } } } });

  test("an m.direct_to_device EDU is delivered once per sender and message_id, however often it is sent", async () => {
    const receiver = resolve(server.container, Tokens.TransactionReceiver);
    const start = (await sync(bob)).next_batch;
    await receiver.receive("remote.example", "txn1", { edus: [edu("m1", { k: 1 })] });
    // Sent again in another transaction (the origin lost our answer, or restarted): not delivered again.
    await receiver.receive("remote.example", "txn2", { edus: [edu("m1", { k: 1 }), edu("m2", { k: 2 })] });
    const got = await sync(bob, start);
    expect(got.to_device.events).toEqual([
      { sender: "@carl:remote.example", type: "m.room_key", content: { k: 1 } },
      { sender: "@carl:remote.example", type: "m.room_key", content: { k: 2 } },
    ]);
    await sync(bob, got.next_batch);
    // Remembered in the database, not only until delivery.
    await receiver.receive("remote.example", "txn3", { edus: [edu("m1", { k: 1 })] });
    expect((await sync(bob, got.next_batch)).to_device.events).toEqual([]);
  });

  test("an m.direct_to_device EDU that cannot be stored fails the transaction, so the origin sends it again; bad input does not", async () => {
    const receiver = resolve(server.container, Tokens.TransactionReceiver);
    const db = resolve(server.container, Tokens.Database);
    const start = (await sync(bob)).next_batch;
    const fault = failNextWrites(db, "INSERT INTO to_device_messages");
    try {
      await expect(receiver.receive("remote.example", "txn4", { edus: [edu("m3", { k: 3 })] })).rejects.toThrow("disk I/O error");
    } finally {
      fault.restore();
    }
    expect(fault.left()).toBe(0);
    expect((await sync(bob, start)).to_device.events).toEqual([]);
    // The origin retries the same transaction: this time it is stored, once.
    expect(await receiver.receive("remote.example", "txn4", { edus: [edu("m3", { k: 3 })] })).toEqual({ pdus: {} });
    expect((await sync(bob, start)).to_device.events.map((e: any) => e.content)).toEqual([{ k: 3 }]);
    // A malformed EDU is dropped and the transaction answered.
    expect(await receiver.receive("remote.example", "txn5", { edus: [{ edu_type: "m.direct_to_device", content: { sender: "@carl:remote.example", type: "m.x", messages: {} } }] })).toEqual({ pdus: {} });
  });
});
