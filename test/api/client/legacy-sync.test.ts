// The event stream and initial sync that came before /sync: GET /events, GET /initialSync and
// GET /rooms/{roomId}/initialSync, answered from the /sync service and checked against the spec.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";
import type { PortierServer } from "../../../src/app";
import { expectMatchesSpec } from "../../helpers/openapi";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
});
afterAll(() => server.stop());

describe("GET /events", () => {
  test("without from: starts now; a later event arrives with its room_id; end continues the stream", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const first = await bob.ok("GET", "/events?timeout=0");
    expect(first.chunk).toEqual([]);
    const waiting = bob.ok("GET", `/events?from=${enc(first.end)}&timeout=5000`);
    await Bun.sleep(50);
    await alice.send(roomId, { msgtype: "m.text", body: "streamed" });
    const next = await waiting;
    expect(next.start).toBe(first.end);
    expect(next.chunk).toContainEqual(expect.objectContaining({ type: "m.room.message", room_id: roomId, content: { msgtype: "m.text", body: "streamed" } }));
    const after = await bob.ok("GET", `/events?from=${enc(next.end)}&timeout=0`);
    expect(after.chunk.filter((e: { type: string }) => e.type === "m.room.message")).toEqual([]);
  });

  test("an invite arrives as the invite event; bad tokens and timeouts are 400", async () => {
    const from = (await bob.ok("GET", "/events?timeout=0")).end;
    const roomId = await alice.createRoom({ preset: "private_chat" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    const r = await bob.ok("GET", `/events?from=${enc(from)}&timeout=0`);
    expect(r.chunk).toContainEqual(expect.objectContaining({ type: "m.room.member", room_id: roomId, state_key: bob.userId, content: expect.objectContaining({ membership: "invite" }) }));
    await bob.fails("GET", "/events?from=nonsense", undefined, 400, "M_INVALID_PARAM");
    await bob.fails("GET", "/events?timeout=soon", undefined, 400, "M_INVALID_PARAM");
    await bob.fails("GET", "/events?limit=many", undefined, 400, "M_INVALID_PARAM");
    await bob.fails("GET", "/events?limit=-1", undefined, 400, "M_INVALID_PARAM");
  });
});

describe("GET /events carries room events only", () => {
  test("account data, typing and presence stay out of the chunk (the spec types it as room events)", async () => {
    const roomId = await alice.createRoom({ preset: "private_chat" });
    const from = (await alice.ok("GET", "/events?timeout=0")).end;
    await alice.ok("PUT", `/user/${enc(alice.userId)}/account_data/org.example.setting`, { on: true });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 5000 });
    await alice.send(roomId, { msgtype: "m.text", body: "an event" });
    const r = await alice.ok("GET", `/events?from=${enc(from)}&timeout=0`);
    expect(r.chunk.map((e: { type: string }) => e.type)).toEqual(["m.room.message"]);
  });
});

describe("GET /initialSync and /rooms/{roomId}/initialSync", () => {
  test("every room with its messages (newest `limit`), current state, visibility and membership", async () => {
    const carol = await TestClient.register(server, "carol");
    const roomId = await carol.createRoom({ preset: "public_chat", name: "Old school" });
    for (let i = 0; i < 5; i++) await carol.send(roomId, { msgtype: "m.text", body: `m${i}` });
    const all = await carol.ok("GET", "/initialSync?limit=3");
    expect(typeof all.end).toBe("string");
    // One's own presence, in the older form (user_id inside the content).
    expect(all.presence).toContainEqual(expect.objectContaining({ type: "m.presence", sender: carol.userId, content: expect.objectContaining({ user_id: carol.userId, presence: "online" }) }));
    const room = all.rooms.find((r: { room_id: string }) => r.room_id === roomId);
    expect(room.membership).toBe("join");
    expect(room.messages.chunk.map((e: { content: { body?: string } }) => e.content.body)).toEqual(["m2", "m3", "m4"]);
    expect(room.messages.chunk.every((e: { room_id: string }) => e.room_id === roomId)).toBe(true);
    expect(room.state.find((e: { type: string }) => e.type === "m.room.name").content.name).toBe("Old school");
    expect(room.visibility).toBe("private");

    const one = await carol.ok("GET", `/rooms/${enc(roomId)}/initialSync?limit=2`);
    expect(one.room_id).toBe(roomId);
    expect(one.membership).toBe("join");
    expect(one.messages.chunk.map((e: { content: { body?: string } }) => e.content.body)).toEqual(["m3", "m4"]);
    // Also for a room one has left; not for one never joined.
    await carol.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    expect((await carol.ok("GET", `/rooms/${enc(roomId)}/initialSync`)).membership).toBe("leave");
    await bob.fails("GET", `/rooms/${enc(roomId)}/initialSync`, undefined, 403, "M_FORBIDDEN");
  });
});

describe("GET /events pages forwards", () => {
  const bodiesOf = (chunk: { type: string; content: { body?: string } }[]) => chunk.filter((e) => e.type === "m.room.message").map((e) => e.content.body);

  test("with a limit, the oldest events come first and `end` leads to the rest: none lost, none twice, across rooms", async () => {
    const erin = await TestClient.register(server, "erin");
    const one = await erin.createRoom({ preset: "private_chat" });
    const two = await erin.createRoom({ preset: "private_chat" });
    let from = (await erin.ok("GET", "/events?timeout=0")).end;
    const sent: Record<string, string[]> = { [one]: [], [two]: [] };
    for (let i = 0; i < 12; i++) {
      const roomId = i % 3 === 2 ? two : one;
      await erin.send(roomId, { msgtype: "m.text", body: `n${i}` });
      sent[roomId]!.push(`n${i}`);
    }
    const seen: Record<string, string[]> = { [one]: [], [two]: [] };
    let pages = 0;
    for (; pages < 10 && seen[one]!.length + seen[two]!.length < 12; pages++) {
      const page = await erin.ok("GET", `/events?from=${enc(from)}&timeout=0&limit=5`);
      expectMatchesSpec({ api: "client-server", method: "GET", path: "/_matrix/client/v3/events", status: 200, body: page });
      expect(page.start).toBe(from);
      for (const e of page.chunk) if (e.type === "m.room.message") seen[e.room_id]!.push(e.content.body);
      from = page.end;
    }
    // Each room's events in order (between rooms, by their timestamps), each once.
    expect(seen).toEqual(sent);
    expect(pages).toBeGreaterThan(1);
    // The first page was cut: it did not give the newest five (as /sync's limited timeline would).
    const again = await erin.ok("GET", `/events?from=${enc(from)}&timeout=0&limit=5`);
    expect(bodiesOf(again.chunk)).toEqual([]);
  });

  test("one room: pages of exactly `limit`, in order", async () => {
    const fay = await TestClient.register(server, "fay");
    const roomId = await fay.createRoom({ preset: "private_chat" });
    const from = (await fay.ok("GET", "/events?timeout=0")).end;
    for (let i = 0; i < 7; i++) await fay.send(roomId, { msgtype: "m.text", body: `m${i}` });
    const first = await fay.ok("GET", `/events?from=${enc(from)}&timeout=0&limit=3`);
    expect(bodiesOf(first.chunk)).toEqual(["m0", "m1", "m2"]);
    const second = await fay.ok("GET", `/events?from=${enc(first.end)}&timeout=0&limit=3`);
    expect(bodiesOf(second.chunk)).toEqual(["m3", "m4", "m5"]);
    const third = await fay.ok("GET", `/events?from=${enc(second.end)}&timeout=0&limit=3`);
    expect(bodiesOf(third.chunk)).toEqual(["m6"]);
  });
});

describe("initialSync: presence, receipts and the older event fields", () => {
  test("room initialSync: members' presence, the room's receipts, user_id on events; none of it for a departed room", async () => {
    const gil = await TestClient.register(server, "gil");
    const hal = await TestClient.register(server, "hal");
    await gil.ok("PUT", `/presence/${enc(gil.userId)}/status`, { presence: "online", status_msg: "Here" });
    const roomId = await gil.createRoom({ preset: "public_chat" });
    await hal.ok("POST", `/join/${enc(roomId)}`, {});
    const eventId = await gil.send(roomId, { msgtype: "m.text", body: "read me" });
    await hal.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {});

    const one = await hal.ok("GET", `/rooms/${enc(roomId)}/initialSync`);
    expectMatchesSpec({ api: "client-server", method: "GET", path: `/_matrix/client/v3/rooms/${enc(roomId)}/initialSync`, status: 200, body: one });
    const ownJoin = one.state.find((e: { type: string; state_key: string }) => e.type === "m.room.member" && e.state_key === hal.userId);
    expect(ownJoin.user_id).toBe(hal.userId);
    expect(one.messages.chunk.every((e: { user_id: string; sender: string }) => e.user_id === e.sender)).toBe(true);
    const gilPresence = one.presence.find((p: { content: { user_id: string } }) => p.content.user_id === gil.userId);
    expect(gilPresence).toMatchObject({ type: "m.presence", content: { presence: "online", status_msg: "Here", user_id: gil.userId } });
    expect(typeof gilPresence.content.last_active_ago).toBe("number");
    expect(one.receipts).toEqual([{ type: "m.receipt", room_id: roomId, content: { [eventId]: { "m.read": { [hal.userId]: { ts: expect.any(Number) } } } } }]);

    // The global initialSync lists receipts too.
    const all = await gil.ok("GET", "/initialSync?limit=1");
    expectMatchesSpec({ api: "client-server", method: "GET", path: "/_matrix/client/v3/initialSync", status: 200, body: all });
    expect(all.receipts).toContainEqual(expect.objectContaining({ type: "m.receipt", room_id: roomId, content: { [eventId]: { "m.read": { [hal.userId]: { ts: expect.any(Number) } } } } }));

    await hal.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const departed = await hal.ok("GET", `/rooms/${enc(roomId)}/initialSync`);
    expect(departed.membership).toBe("leave");
    expect(departed.presence).toEqual([]);
    expect(departed.receipts).toEqual([]);
  });
});
