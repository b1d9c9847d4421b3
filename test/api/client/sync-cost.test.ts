// What an initial /sync costs the database per room: the timeline window and the event before it in
// one read, event rows without a second query for their edges, every event's redactions in one
// query per section, and no unread-count query for a room where the user has nothing unread. A
// bound on statements per room, and the answer checked against what it must hold.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { TestClient, enc } from "../../helpers/rooms";
import { testServer } from "../../helpers/server";
import { statementsDuring } from "../../helpers/statements";
import { Tokens, resolve } from "../../../src/di/tokens";
import type { RoomAccess } from "../../../src/services/rooms/room-access";

let server: PortierServer;

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
});

afterAll(async () => {
  await server?.stop();
});


test("an initial /sync of 10 rooms with 12 messages each costs at most 9 statements a room", async () => {
  const alice = await TestClient.register(server, "alice");
  const rooms: string[] = [];
  for (let r = 0; r < 10; r++) {
    const roomId = await alice.createRoom({ preset: "public_chat", name: `room ${r}` });
    for (let i = 0; i < 12; i++) await alice.send(roomId, { msgtype: "m.text", body: `room ${r} message ${i}` });
    rooms.push(roomId);
  }
  // The first message of room 0 redacted: redactions are still found.
  const first = (await alice.ok("GET", `/rooms/${enc(rooms[0]!)}/messages?dir=f&limit=50`)).chunk.find((e: { type: string }) => e.type === "m.room.message").event_id;
  await alice.ok("PUT", `/rooms/${enc(rooms[0]!)}/redact/${enc(first)}/r1`, {});
  await alice.send(rooms[0]!, { msgtype: "m.text", body: "after the redaction" });
  const filter = enc(JSON.stringify({ room: { timeline: { limit: 20 } } }));
  // One sync first: the caches of events, snapshots and transaction IDs hold what any busy server's
  // do. A new device's first sync then does the same work as any later one.
  await alice.ok("GET", `/sync?filter=${filter}`);
  const device = await alice.login("SECOND");
  const { value: sync, statements } = await statementsDuring(server, () => device.ok("GET", `/sync?filter=${filter}`));
  for (const roomId of rooms) {
    const room = sync.rooms.join[roomId];
    const bodies = room.timeline.events.filter((e: { type: string }) => e.type === "m.room.message").map((e: { content: { body?: string } }) => e.content.body);
    expect(bodies.length).toBeGreaterThanOrEqual(12);
    expect(room.unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
    // The state at the start of the window: the name, whichever part of the room the window holds.
    const names = [...room.state.events, ...room.timeline.events].filter((e: { type: string }) => e.type === "m.room.name");
    expect(names).toHaveLength(1);
  }
  const redacted = sync.rooms.join[rooms[0]!].timeline.events.find((e: { event_id: string }) => e.event_id === first);
  expect(redacted?.content).toEqual({});
  expect(redacted?.unsigned?.redacted_because?.type).toBe("m.room.redaction");
  // Before: two range reads and an edge read per room, a redaction lookup per event, an unread count: about 31.
  expect(statements / rooms.length).toBeLessThanOrEqual(9);
});

test("the state section is the state just before the window, when the event before it was filtered out of the timeline or lies beyond the window", async () => {
  const bob = await TestClient.register(server, "bob");
  const roomId = await bob.createRoom({ preset: "private_chat", name: "first name" });
  for (let i = 0; i < 3; i++) await bob.send(roomId, { msgtype: "m.text", body: `early ${i}` });
  await bob.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.name`, { name: "second name" });
  // Right before the window: a topic change that the timeline filter leaves out.
  await bob.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: "the topic" });
  for (let i = 0; i < 4; i++) await bob.send(roomId, { msgtype: "m.text", body: `late ${i}` });
  const stateOf = (room: { state: { events: { type: string; content: Record<string, unknown> }[] } }, type: string) => room.state.events.find((e) => e.type === type)?.content;

  const onlyMessages = enc(JSON.stringify({ room: { timeline: { limit: 3, types: ["m.room.message"] } } }));
  const filtered = (await bob.ok("GET", `/sync?filter=${onlyMessages}`)).rooms.join[roomId];
  expect(filtered.timeline.events.map((e: { content: { body: string } }) => e.content.body)).toEqual(["late 1", "late 2", "late 3"]);
  expect(filtered.timeline.limited).toBe(true);
  expect(stateOf(filtered, "m.room.name")).toEqual({ name: "second name" });
  expect(stateOf(filtered, "m.room.topic")).toEqual({ topic: "the topic" });

  // A window that starts before the rename: the first name is the state, the rename in the timeline.
  const wide = enc(JSON.stringify({ room: { timeline: { limit: 7 } } }));
  const unfiltered = (await bob.ok("GET", `/sync?filter=${wide}`)).rooms.join[roomId];
  expect(unfiltered.timeline.events.map((e: { type: string }) => e.type)).toEqual(["m.room.message", "m.room.name", "m.room.topic", "m.room.message", "m.room.message", "m.room.message", "m.room.message"]);
  expect(stateOf(unfiltered, "m.room.name")).toEqual({ name: "first name" });
  expect(stateOf(unfiltered, "m.room.topic")).toBeUndefined();
});

test("an incremental /sync with nothing new costs at most 3 statements, however many rooms the user is in", async () => {
  const carol = await TestClient.register(server, "carol");
  for (let r = 0; r < 20; r++) await carol.send(await carol.createRoom({ preset: "private_chat" }));
  let since = (await carol.ok("GET", "/sync")).next_batch as string;
  const costs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const filter = enc(JSON.stringify({ room: { timeline: { limit: 10 + i } } }));
    const { value, statements } = await statementsDuring(server, () => carol.ok("GET", `/sync?since=${enc(since)}&timeout=0&filter=${filter}`));
    expect(Object.keys(value.rooms?.join ?? {})).toEqual([]);
    since = value.next_batch;
    costs.push(statements);
  }
  // Every stream's head in one read; as none moved, not even the user's rooms are read: the
  // access token, the heads and the device's messages; its key counts are kept in memory once read
  // (the first sync above read them). It was 5, 13, and 17 before that.
  expect(Math.max(...costs)).toBeLessThanOrEqual(3);
});

test("from a token where nothing had moved, each stream moving alone reaches the next incremental /sync", async () => {
  const dave = await TestClient.register(server, "dave");
  const erin = await TestClient.register(server, "erin");
  const roomId = await dave.createRoom({ preset: "public_chat" });
  await erin.ok("POST", `/join/${enc(roomId)}`, {});
  const eventId = await erin.send(roomId, { msgtype: "m.text", body: "hello" });
  let since = (await dave.ok("GET", "/sync")).next_batch as string;
  const next = async () => {
    const idle = await dave.ok("GET", `/sync?since=${enc(since)}&timeout=0`);
    expect(idle.next_batch).toBe(since);
    return idle;
  };
  const after = async (change: () => Promise<unknown>) => {
    await next();
    await change();
    const body = await dave.ok("GET", `/sync?since=${enc(since)}&timeout=0`);
    expect(body.next_batch).not.toBe(since);
    since = body.next_batch;
    return body;
  };

  const global = await after(() => dave.ok("PUT", `/user/${enc(dave.userId)}/account_data/org.example.setting`, { on: true }));
  expect(global.account_data.events).toContainEqual({ type: "org.example.setting", content: { on: true } });
  const tagged = await after(() => dave.ok("PUT", `/user/${enc(dave.userId)}/rooms/${enc(roomId)}/tags/u.work`, {}));
  expect(tagged.rooms.join[roomId].account_data.events.map((e: { type: string }) => e.type)).toContain("m.tag");
  const receipt = await after(() => erin.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {}));
  expect(receipt.rooms.join[roomId].ephemeral.events.map((e: { type: string }) => e.type)).toContain("m.receipt");
  const typing = await after(() => erin.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(erin.userId)}`, { typing: true, timeout: 30_000 }));
  expect(typing.rooms.join[roomId].ephemeral.events.find((e: { type: string }) => e.type === "m.typing")?.content.user_ids).toEqual([erin.userId]);
  const toDevice = await after(() => erin.ok("PUT", `/sendToDevice/org.example.ping/t1`, { messages: { [dave.userId]: { "*": { n: 1 } } } }));
  expect(toDevice.to_device.events).toContainEqual({ type: "org.example.ping", sender: erin.userId, content: { n: 1 } });
  const message = await after(() => erin.send(roomId, { msgtype: "m.text", body: "again" }));
  expect(message.rooms.join[roomId].timeline.events.map((e: { content: { body?: string } }) => e.content.body)).toContain("again");
});

test("an incremental /sync after one new message in each of 10 rooms costs at most 4 statements a room", async () => {
  const frank = await TestClient.register(server, "frank");
  const gina = await TestClient.register(server, "gina");
  const rooms: string[] = [];
  for (let r = 0; r < 10; r++) {
    const roomId = await frank.createRoom({ preset: "public_chat" });
    await gina.ok("POST", `/join/${enc(roomId)}`, {});
    rooms.push(roomId);
  }
  const since = (await frank.ok("GET", "/sync")).next_batch as string;
  for (const [i, roomId] of rooms.entries()) await gina.send(roomId, { msgtype: "m.text", body: `news ${i}` });
  const { value, statements } = await statementsDuring(server, () => frank.ok("GET", `/sync?since=${enc(since)}&timeout=0`));
  for (const [i, roomId] of rooms.entries()) {
    const room = value.rooms.join[roomId];
    expect(room.timeline.events.map((e: { content: { body?: string } }) => e.content.body)).toEqual([`news ${i}`]);
    expect(room.timeline.limited).toBe(false);
    expect(room.state.events).toEqual([]);
    expect(room.unread_notifications.notification_count).toBe(1);
  }
  // The timeline window and its redactions per room, and a dozen for the whole answer. Not read
  // per room (it was 7): the state before the window (the timeline holds every event since the
  // token), the user's member event (its position comes with the room list), the window's events
  // again by id (the window's rows are cached), receipts (their stream did not move), the
  // transaction ids of other users' events.
  expect(statements / rooms.length).toBeLessThanOrEqual(4);
});

test("unread counts in a busy room are kept in memory: neither the recipient's /sync nor the next send of a member who just read counts notifications again", async () => {
  const hana = await TestClient.register(server, "hana");
  const ivan = await TestClient.register(server, "ivan");
  const roomId = await hana.createRoom({ preset: "public_chat" });
  await ivan.ok("POST", `/join/${enc(roomId)}`, {});
  let since = (await hana.ok("GET", "/sync")).next_batch as string;
  // The statements that count a user's notifications in a room.
  const COUNT = "count(*) AS notifications";
  const syncCounting = async (expected: { notification_count: number; highlight_count: number }) => {
    const { value, statements } = await statementsDuring(server, () => hana.ok("GET", `/sync?since=${enc(since)}&timeout=0`), COUNT);
    since = value.next_batch;
    expect(value.rooms.join[roomId].unread_notifications).toEqual(expected);
    return statements;
  };
  // Her first message: what she has unread is counted once.
  await hana.send(roomId, { msgtype: "m.text", body: "hello" });
  for (let round = 0; round < 3; round++) {
    // Ivan writes twice, once mentioning her: counted up from the zero her own send left, one
    // notification at a time (it was a count query at each sync).
    await ivan.send(roomId, { msgtype: "m.text", body: `ivan ${round}` });
    await ivan.send(roomId, { msgtype: "m.text", body: `hana: look ${round}`, "m.mentions": { user_ids: [hana.userId] } });
    expect(await syncCounting({ notification_count: 2, highlight_count: 1 })).toBe(0);
    // She answers: her read position moves to her message without counting what it passes, and
    // she has nothing unread without a count either.
    const { statements } = await statementsDuring(server, () => hana.send(roomId, { msgtype: "m.text", body: `hana ${round}` }), COUNT);
    expect(statements).toBe(0);
    expect(await syncCounting({ notification_count: 0, highlight_count: 0 })).toBe(0);
  }
});

test("device list changes of an incremental /sync read member events only in the rooms where something moved", async () => {
  const jack = await TestClient.register(server, "jack");
  const kate = await TestClient.register(server, "kate");
  const rooms: string[] = [];
  for (let r = 0; r < 5; r++) {
    const roomId = await jack.createRoom({ preset: "public_chat" });
    await kate.ok("POST", `/join/${enc(roomId)}`, {});
    rooms.push(roomId);
  }
  let since = (await jack.ok("GET", "/sync")).next_batch as string;
  const MEMBER_CHANGES = "type = 'm.room.member' AND state_key IS NOT NULL";
  // Events only in a room Jack is not in, and his account data: none of his rooms to look at.
  const elsewhere = await kate.createRoom({ preset: "private_chat" });
  await kate.send(elsewhere, { msgtype: "m.text", body: "not for jack" });
  await jack.ok("PUT", `/user/${enc(jack.userId)}/account_data/org.example.x`, { n: 1 });
  let { value, statements } = await statementsDuring(server, () => jack.ok("GET", `/sync?since=${enc(since)}&timeout=0`), MEMBER_CHANGES);
  expect(value.account_data.events.map((e: { type: string }) => e.type)).toContain("org.example.x");
  expect(statements).toBe(0);
  since = value.next_batch;
  // A new member in one room: found there, and their devices reported.
  const leo = await TestClient.register(server, "leo");
  await leo.ok("POST", `/join/${enc(rooms[2]!)}`, {});
  ({ value, statements } = await statementsDuring(server, () => jack.ok("GET", `/sync?since=${enc(since)}&timeout=0`), MEMBER_CHANGES));
  expect(value.device_lists.changed).toContain(leo.userId);
  expect(statements).toBe(1);
});

test("history visibility is looked up once per state snapshot of a timeline, not once per event", async () => {
  const mona = await TestClient.register(server, "mona");
  const ned = await TestClient.register(server, "ned");
  const roomId = await mona.createRoom({ preset: "public_chat" });
  await ned.ok("POST", `/join/${enc(roomId)}`, {});
  const since = (await mona.ok("GET", "/sync")).next_batch as string;
  for (let i = 0; i < 12; i++) await ned.send(roomId, { msgtype: "m.text", body: `message ${i}` });
  const access = resolve(server.container, Tokens.RoomAccess) as RoomAccess;
  const store = access.store as { stateEntryAt: (snapshot: number, type: string, key: string) => Promise<string | undefined> };
  const original = store.stateEntryAt;
  let lookups = 0;
  store.stateEntryAt = function (this: unknown, snapshot: number, type: string, key: string) {
    lookups++;
    return original.call(this, snapshot, type, key);
  };
  try {
    const filter = enc(JSON.stringify({ room: { timeline: { limit: 20 } } }));
    const sync = await mona.ok("GET", `/sync?since=${enc(since)}&timeout=0&filter=${filter}`);
    expect(sync.rooms.join[roomId].timeline.events.map((e: { content: { body?: string } }) => e.content.body)).toEqual(Array.from({ length: 12 }, (_, i) => `message ${i}`));
  } finally {
    store.stateEntryAt = original;
  }
  // The 12 messages share one snapshot: its history visibility and Mona's membership, once each (it was 24).
  expect(lookups).toBeLessThanOrEqual(2);
});
