// The client's transaction id is stored in the same database transaction as its event: if recording
// it fails, the event is not kept either, so a retry with the same txnId stores the event once.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { PortierServer } from "../../src/app";
import { Tokens, resolve } from "../../src/di/tokens";
import { silentLogger, testServer } from "../helpers/server";
import { TestClient, enc } from "../helpers/rooms";

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ server_name: "txn.example", registration: { enabled: true } }, { logger: silentLogger });
});
afterAll(() => server.stop());

test("an event and its txnId are stored together or not at all", async () => {
  const alice = await TestClient.register(server, "alice");
  const roomId = await alice.createRoom();
  const store = resolve(server.container, Tokens.RoomEventStore);
  const clientStore = (resolve(server.container, Tokens.Rooms) as unknown as { clientStore: { recordTransaction: (...a: unknown[]) => Promise<void> } }).clientStore;
  const original = clientStore.recordTransaction.bind(clientStore);
  clientStore.recordTransaction = async () => {
    throw new Error("disk full");
  };
  const before = await store.maxStreamOrdering();
  const failed = await alice.call("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t-1`, { msgtype: "m.text", body: "once" });
  expect(failed.status).toBe(500);
  expect(await store.maxStreamOrdering()).toBe(before);
  expect(await store.forwardExtremities(roomId)).toHaveLength(1);

  clientStore.recordTransaction = original;
  const first = await alice.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t-1`, { msgtype: "m.text", body: "once" });
  const again = await alice.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t-1`, { msgtype: "m.text", body: "once" });
  expect(again.event_id).toBe(first.event_id);
  const bodies = (await store.roomEventsBetween(roomId, before, Number.MAX_SAFE_INTEGER, 100)).map((e) => JSON.parse(e.json).content.body);
  expect(bodies).toEqual(["once"]);
  // The engine's parsed-event cache must not serve the rolled-back event either.
  const engine = resolve(server.container, Tokens.RoomEngine);
  expect(await store.forwardExtremities(roomId)).toEqual([first.event_id]);
  expect(await engine.parsedEvent(first.event_id)).toBeDefined();
});

test("the transaction id is recorded without waiting for the event's writes; a taken id still rolls the event back", async () => {
  const bob = await TestClient.register(server, "bob");
  const roomId = await bob.createRoom();
  const store = resolve(server.container, Tokens.RoomEventStore) as unknown as { persistEvent: (...a: unknown[]) => Promise<unknown> };
  const clientStore = (resolve(server.container, Tokens.Rooms) as unknown as { clientStore: { recordTransaction: (...a: unknown[]) => Promise<boolean> } }).clientStore;
  const persist = store.persistEvent.bind(store);
  const record = clientStore.recordTransaction.bind(clientStore);
  let persisted = 0;
  const seen: number[] = [];
  store.persistEvent = async (...a: unknown[]) => {
    const row = await persist(...a);
    persisted++;
    return row;
  };
  clientStore.recordTransaction = async (...a: unknown[]) => {
    seen.push(persisted);
    return record(...a);
  };
  try {
    const sent = await bob.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t-2`, { msgtype: "m.text", body: "together" });
    expect([persisted, seen]).toEqual([1, [0]]); // recorded before the event's persist had finished
    // A taken id (recorded by a send that raced this one) makes the record fail: the event goes.
    const before = await resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering();
    clientStore.recordTransaction = async () => false;
    const again = await bob.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t-2`, { msgtype: "m.text", body: "together" });
    expect(again.event_id).toBe(sent.event_id);
    expect(await resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering()).toBe(before);
  } finally {
    store.persistEvent = persist;
    clientStore.recordTransaction = record;
  }
});
