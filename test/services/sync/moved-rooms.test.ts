// An incremental /sync visits only the joined rooms where something moved since its token: an event,
// a receipt, typing or room account data. Each kind alone brings its room (and only it); nothing
// moved visits no room at all, however many the user is in.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";
import { resolve, Tokens } from "../../../src/di/tokens";
import type { PortierServer } from "../../../src/app";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
const rooms: string[] = [];
let visited: string[] = [];

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
  for (let i = 0; i < 20; i++) {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    rooms.push(roomId);
  }
  // Count the rooms a sync looks into.
  const sync = resolve(server.container, Tokens.Sync) as unknown as { joinedRoom: (ctx: unknown, roomId: string, data: unknown) => Promise<unknown> };
  const joinedRoom = sync.joinedRoom.bind(sync);
  sync.joinedRoom = (ctx, roomId, data) => {
    visited.push(roomId);
    return joinedRoom(ctx, roomId, data);
  };
});

afterAll(async () => {
  await server?.stop();
});

async function since(token: string): Promise<{ body: any; visited: string[] }> {
  visited = [];
  const body = await bob.ok("GET", `/sync?timeout=0&since=${enc(token)}`);
  return { body, visited: [...new Set(visited)] };
}

describe("incremental /sync", () => {
  test("nothing moved: no room is visited and none listed", async () => {
    const token = (await bob.ok("GET", "/sync?timeout=0")).next_batch;
    const r = await since(token);
    expect(r.visited).toEqual([]);
    expect(r.body.rooms.join).toEqual({});
  });

  test("each kind of change alone brings its room, and only it", async () => {
    let token = (await bob.ok("GET", "/sync?timeout=0")).next_batch;
    const eventId = await alice.send(rooms[0]!, { msgtype: "m.text", body: "an event" });
    let r = await since(token);
    expect(r.visited).toEqual([rooms[0]]);
    expect(Object.keys(r.body.rooms.join)).toEqual([rooms[0]]);

    token = r.body.next_batch;
    await alice.ok("POST", `/rooms/${enc(rooms[0]!)}/receipt/m.read/${enc(eventId)}`, {});
    r = await since(token);
    expect(r.visited).toEqual([rooms[0]]);
    expect(r.body.rooms.join[rooms[0]!].ephemeral.events.map((e: { type: string }) => e.type)).toEqual(["m.receipt"]);

    token = r.body.next_batch;
    await alice.ok("PUT", `/rooms/${enc(rooms[1]!)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 10_000 });
    r = await since(token);
    expect(Object.keys(r.body.rooms.join)).toEqual([rooms[1]]);
    expect(r.body.rooms.join[rooms[1]!].ephemeral.events[0]).toMatchObject({ type: "m.typing", content: { user_ids: [alice.userId] } });
    expect(r.visited).toContain(rooms[1]);
    expect(r.visited.length).toBeLessThanOrEqual(2);

    token = r.body.next_batch;
    await bob.ok("PUT", `/user/${enc(bob.userId)}/rooms/${enc(rooms[2]!)}/account_data/org.example.note`, { note: "hi" });
    r = await since(token);
    expect(Object.keys(r.body.rooms.join)).toEqual([rooms[2]]);
    expect(r.body.rooms.join[rooms[2]!].account_data.events).toEqual([{ type: "org.example.note", content: { note: "hi" } }]);
  });

  test("in 200 rooms, a message in one: the sync lists exactly that room and looks into no other", async () => {
    const carol = await TestClient.register(server, "carol");
    const dave = await TestClient.register(server, "dave");
    const many: string[] = [];
    for (let i = 0; i < 200; i++) {
      const roomId = await dave.createRoom({ preset: "public_chat" });
      await carol.ok("POST", `/join/${enc(roomId)}`, {});
      many.push(roomId);
    }
    const token = (await carol.ok("GET", "/sync?timeout=0")).next_batch;
    expect(Object.keys((await carol.ok("GET", "/sync?timeout=0")).rooms.join).length).toBe(200);
    const target = many[137]!;
    const eventId = await dave.send(target, { msgtype: "m.text", body: "one of 200" });
    visited = [];
    const body = await carol.ok("GET", `/sync?timeout=0&since=${enc(token)}`);
    expect(Object.keys(body.rooms.join)).toEqual([target]);
    expect(body.rooms.join[target].timeline.events.map((e: { event_id: string }) => e.event_id)).toEqual([eventId]);
    expect([...new Set(visited)]).toEqual([target]);
  }, 60_000);
});
