// The event stream and initial sync that came before /sync: GET /events, GET /initialSync and
// GET /rooms/{roomId}/initialSync, answered from the /sync service and checked against the spec.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";
import type { PortierServer } from "../../../src/app";

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
