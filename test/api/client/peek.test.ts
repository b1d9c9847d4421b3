// Room previews (client-server-api "Room Previews"): users, guests among them, who are not in a
// room whose history is world_readable read it without joining — room initialSync, GET
// /events?room_id= (a long-poll woken by the room's events), /messages, /state, /event, /context —
// and see only the events whose state had world_readable history. Other rooms stay 403.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { TestClient, V3, enc } from "../../helpers/rooms";
import { request, testServer } from "../../helpers/server";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let guest: TestClient;

/** A room with one message before it became world_readable and one after. */
async function makeLobby(): Promise<{ roomId: string; privateEventId: string; publicEventId: string }> {
  const roomId = await alice.createRoom({ preset: "public_chat", name: "Lobby" });
  const privateEventId = await alice.send(roomId, { msgtype: "m.text", body: "private" });
  await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: "world_readable" });
  const publicEventId = await alice.send(roomId, { msgtype: "m.text", body: "public" });
  return { roomId, privateEventId, publicEventId };
}
let lobby: string;

const bodies = (chunk: { type: string; content: { body?: string } }[]) => chunk.filter((e) => e.type === "m.room.message").map((e) => e.content.body);

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true, allow_guest_access: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
  const r = await request(server, "POST", `${V3}/register?kind=guest`, {});
  guest = new TestClient(server, r.body.user_id, r.body.device_id, r.body.access_token);
  lobby = (await makeLobby()).roomId;
});
afterAll(() => server.stop());

describe.each([["a user", () => bob], ["a guest", () => guest]] as const)("%s not in a world_readable room", (_name, who) => {
  let lobby: string;
  let privateEventId: string;
  let publicEventId: string;
  beforeAll(async () => {
    ({ roomId: lobby, privateEventId, publicEventId } = await makeLobby());
  });

  test("room initialSync: the events since it became world_readable, the current state, the stream's position", async () => {
    const peeker = who();
    const sync = await peeker.ok("GET", `/rooms/${enc(lobby)}/initialSync`);
    expect(sync.room_id).toBe(lobby);
    expect(sync.membership).toBeUndefined();
    expect(sync.messages.chunk.map((e: { type: string }) => e.type)).toEqual(["m.room.history_visibility", "m.room.message"]);
    expect(sync.messages.chunk[1]).toMatchObject({ event_id: publicEventId, room_id: lobby, content: { body: "public" } });
    expect(sync.state.find((e: { type: string }) => e.type === "m.room.name").content.name).toBe("Lobby");
    expect(sync.presence).toEqual([]);
    // Everything visible fits the page, and still there is a start: paging back from it gives nothing.
    expect(typeof sync.messages.start).toBe("string");
    expect((await peeker.ok("GET", `/rooms/${enc(lobby)}/messages?dir=b&from=${enc(sync.messages.start)}`)).chunk).toEqual([]);
    // The end continues in /events: nothing new yet.
    const next = await peeker.ok("GET", `/events?room_id=${enc(lobby)}&from=${enc(sync.messages.end)}&timeout=0`);
    expect(next.chunk).toEqual([]);
  });

  test("/messages, /state, /event, /context and /members read the world_readable part", async () => {
    const peeker = who();
    const messages = await peeker.ok("GET", `/rooms/${enc(lobby)}/messages?dir=b&limit=20`);
    expect(bodies(messages.chunk)).toEqual(["public"]);
    const state = await peeker.ok("GET", `/rooms/${enc(lobby)}/state`);
    expect(state.some((e: { type: string }) => e.type === "m.room.create")).toBe(true);
    expect((await peeker.ok("GET", `/rooms/${enc(lobby)}/state/m.room.member/${enc(alice.userId)}`)).membership).toBe("join");
    expect((await peeker.ok("GET", `/rooms/${enc(lobby)}/event/${enc(publicEventId)}`)).content.body).toBe("public");
    await peeker.fails("GET", `/rooms/${enc(lobby)}/event/${enc(privateEventId)}`, undefined, 404, "M_NOT_FOUND");
    expect((await peeker.ok("GET", `/rooms/${enc(lobby)}/context/${enc(publicEventId)}?limit=4`)).event.event_id).toBe(publicEventId);
    expect((await peeker.ok("GET", `/rooms/${enc(lobby)}/members`)).chunk.map((e: { state_key: string }) => e.state_key)).toEqual([alice.userId]);
  });

  test("/events?room_id= long-polls: a new event in the room wakes it; end goes on from there", async () => {
    const peeker = who();
    const first = await peeker.ok("GET", `/events?room_id=${enc(lobby)}&timeout=0`);
    expect(first.chunk).toEqual([]);
    const started = Date.now();
    const waiting = peeker.ok("GET", `/events?room_id=${enc(lobby)}&from=${enc(first.end)}&timeout=10000`);
    await Bun.sleep(100);
    await alice.send(lobby, { msgtype: "m.text", body: "mice" });
    const woken = await waiting;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(woken.start).toBe(first.end);
    expect(bodies(woken.chunk)).toEqual(["mice"]);
    expect(woken.chunk[0].room_id).toBe(lobby);
    const after = await peeker.ok("GET", `/events?room_id=${enc(lobby)}&from=${enc(woken.end)}&timeout=0`);
    expect(after.chunk).toEqual([]);
  });
});

describe("peeking /events", () => {
  test("limit cuts a page: its end leads to the rest", async () => {
    const from = (await bob.ok("GET", `/events?room_id=${enc(lobby)}&timeout=0`)).end;
    await alice.send(lobby, { msgtype: "m.text", body: "one" });
    await alice.send(lobby, { msgtype: "m.text", body: "two" });
    const page = await bob.ok("GET", `/events?room_id=${enc(lobby)}&from=${enc(from)}&limit=1&timeout=0`);
    expect(bodies(page.chunk)).toEqual(["one"]);
    const rest = await bob.ok("GET", `/events?room_id=${enc(lobby)}&from=${enc(page.end)}&timeout=0`);
    expect(bodies(rest.chunk)).toEqual(["two"]);
  });

  test("a long-poll with nothing new ends at its timeout, empty", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: "world_readable" });
    const from = (await guest.ok("GET", `/events?room_id=${enc(roomId)}&timeout=0`)).end;
    // Events elsewhere do not end it early with anything.
    const waiting = guest.ok("GET", `/events?room_id=${enc(roomId)}&from=${enc(from)}&timeout=300`);
    await alice.send(lobby, { msgtype: "m.text", body: "elsewhere" });
    expect((await waiting).chunk).toEqual([]);
  });

  test("events sent while the history was not world_readable are not given to a peeker", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: "world_readable" });
    const from = (await bob.ok("GET", `/events?room_id=${enc(roomId)}&timeout=0`)).end;
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: "shared" });
    await alice.send(roomId, { msgtype: "m.text", body: "members only" });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: "world_readable" });
    await alice.send(roomId, { msgtype: "m.text", body: "open again" });
    expect(bodies((await bob.ok("GET", `/events?room_id=${enc(roomId)}&from=${enc(from)}&timeout=0`)).chunk)).toEqual(["open again"]);
    // Once it is no longer world_readable, there is no preview at all.
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: "joined" });
    await bob.fails("GET", `/events?room_id=${enc(roomId)}&from=${enc(from)}&timeout=0`, undefined, 403, "M_FORBIDDEN");
    await bob.fails("GET", `/rooms/${enc(roomId)}/initialSync`, undefined, 403, "M_FORBIDDEN");
  });
});

describe("rooms that are not world_readable", () => {
  test("a shared-history room is 403 to non-members, guests too", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await alice.send(roomId, { msgtype: "m.text", body: "members only" });
    for (const outsider of [bob, guest]) {
      await outsider.fails("GET", `/rooms/${enc(roomId)}/initialSync`, undefined, 403, "M_FORBIDDEN");
      await outsider.fails("GET", `/rooms/${enc(roomId)}/messages?dir=b`, undefined, 403, "M_FORBIDDEN");
      await outsider.fails("GET", `/rooms/${enc(roomId)}/state`, undefined, 403, "M_FORBIDDEN");
      await outsider.fails("GET", `/events?room_id=${enc(roomId)}&timeout=0`, undefined, 403, "M_FORBIDDEN");
    }
  });

  test("a member's /events?room_id= is still their own stream", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const from = (await alice.ok("GET", `/events?room_id=${enc(roomId)}&timeout=0`)).end;
    await alice.send(roomId, { msgtype: "m.text", body: "mine" });
    expect(bodies((await alice.ok("GET", `/events?room_id=${enc(roomId)}&from=${enc(from)}&timeout=0`)).chunk)).toEqual(["mine"]);
  });
});
