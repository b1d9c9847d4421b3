// Messages sent at once into different rooms share one batch of the writer; on PostgreSQL their
// writes run side by side (TransactionOptions.concurrent), and a failure among them (a transaction
// id taken already) has them all run again one by one: every other send still commits, in order,
// with its notifications.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import type { GroupCommit } from "../../../src/storage/group-commit";
import { databaseConfig, serverDatabases } from "../../helpers/databases";
import { TestClient, enc } from "../../helpers/rooms";
import { testServer } from "../../helpers/server";

const ROOMS = 4;
const PER_ROOM = 3;

describe.each(serverDatabases.map((d) => [d.name] as const))("sends side by side on %s", (engine) => {
  let server: PortierServer;
  beforeAll(async () => {
    server = await testServer({ registration: { enabled: true }, ...(await databaseConfig(engine)) });
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("one batch of messages into several rooms, with a state event and a taken transaction id among them", async () => {
    const alice = await TestClient.register(server, "alice");
    const bob = await TestClient.register(server, "bob");
    // ROOMS rooms for messages, one for the retry, one for the topic: one write of a room queues at a time.
    const rooms: string[] = [];
    for (let i = 0; i < ROOMS + 2; i++) {
      const roomId = await alice.createRoom({ preset: "public_chat" });
      await bob.ok("POST", `/join/${enc(roomId)}`, {});
      rooms.push(roomId);
    }
    const db = resolve(server.container, Tokens.Database);
    const writer = (db as unknown as { writer: GroupCommit<unknown> }).writer;
    // Messages queued (a background write, such as a device's last seen time, does not count), and everything queued.
    const pending = () => (writer as unknown as { pending: { concurrent: boolean }[] }).pending;
    const queued = () => (pending().filter((u) => u.concurrent).length >= ROOMS + 1 ? pending().length : 0);
    // A transaction id recorded already (as after a crash between the record and the answer): its
    // send fails to record it again, and answers with the event recorded for it.
    const [retryRoom, topicRoom] = rooms.slice(ROOMS);
    await db.run("INSERT INTO client_transactions (user_id, device_id, txn_id, room_id, event_id, created_ts) VALUES (?, ?, ?, ?, ?, ?)", bob.userId, bob.deviceId, "taken", retryRoom!, "$recorded", 1);

    // On PostgreSQL, the writer is held so that a message of each room, the retry and the topic queue
    // for the same batch. (SQLite's reads wait for a transaction open on its one connection.)
    let open = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    const holding = engine === "postgres" ? db.transaction(() => gate) : undefined;
    const before = { ...writer.sideBySide };
    const sends = rooms.slice(0, ROOMS).map((roomId, r) => Promise.all(Array.from({ length: PER_ROOM }, (_, i) => bob.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/m${r}-${i}`, { msgtype: "m.text", body: `message ${i} in room ${r}` }))));
    const taken = bob.ok("PUT", `/rooms/${enc(retryRoom!)}/send/m.room.message/taken`, { msgtype: "m.text", body: "a retry" });
    const topic = alice.ok("PUT", `/rooms/${enc(topicRoom!)}/state/m.room.topic/`, { topic: "set meanwhile" });
    for (let waited = 0; holding && queued() < ROOMS + 2; waited++) {
      if (waited > 2000) throw new Error(`only ${queued()} transactions queued`);
      await Bun.sleep(1);
    }
    open();
    await holding;
    const sent = await Promise.all(sends);
    expect((await taken).event_id).toBe("$recorded");
    await topic;

    if (engine === "postgres") {
      // The first batch after the gate: the messages and the retry side by side (the topic, a state
      // event, one by one), all of them again after the retry's failure.
      expect(writer.sideBySide.ran - before.ran).toBeGreaterThanOrEqual(ROOMS + 1);
      expect(writer.sideBySide.again - before.again).toBeGreaterThanOrEqual(ROOMS + 1);
    } else {
      expect(writer.sideBySide).toEqual(before);
    }

    // Every message is in its room, in the order sent, and notified alice; the retry stored nothing.
    const sync = await alice.ok("GET", `/sync?timeout=0&filter=${enc(JSON.stringify({ room: { timeline: { limit: 20 } } }))}`);
    for (const [r, roomId] of rooms.slice(0, ROOMS).entries()) {
      const room = sync.rooms.join[roomId];
      const messages = room.timeline.events.filter((e: any) => e.type === "m.room.message");
      expect(messages.map((e: any) => e.event_id)).toEqual(sent[r]!.map((s: any) => s.event_id));
      expect(messages.map((e: any) => e.content.body)).toEqual(Array.from({ length: PER_ROOM }, (_, i) => `message ${i} in room ${r}`));
      expect(room.unread_notifications.notification_count).toBe(PER_ROOM);
    }
    expect(sync.rooms.join[retryRoom!].timeline.events.filter((e: any) => e.type === "m.room.message")).toEqual([]);
    expect(sync.rooms.join[topicRoom!].timeline.events.some((e: any) => e.type === "m.room.topic" && e.content.topic === "set meanwhile")).toBe(true);
  });
});
