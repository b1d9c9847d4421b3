// /sync details: current state hidden by history visibility still reaches a joined user's timeline;
// lazy-loaded members are not sent twice to a device (unless include_redundant_members); presence
// of those who newly share a room; event_format "federation".
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
let dave: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "syncc.example", registration: { enabled: true } });
  [alice, bob, carol, dave] = await Promise.all(["alice", "bob", "carol", "dave"].map((n) => TestClient.register(server, n)));
});
afterAll(() => server.stop());

const sync = (client: TestClient, params: Record<string, string | object | undefined> = {}) =>
  client.ok(
    "GET",
    "/sync?" +
      Object.entries(params)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${enc(typeof v === "object" ? JSON.stringify(v) : v!)}`)
        .join("&"),
  );
const members = (events: any[]) =>
  events
    .filter((e: any) => e.type === "m.room.member")
    .map((e: any) => `${e.state_key}|${e.content.membership}`)
    .sort();
const join = (c: TestClient, roomId: string) => c.ok("POST", `/join/${enc(roomId)}`, {});
const leave = (c: TestClient, roomId: string) => c.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
const fill = async (c: TestClient, roomId: string, n: number) => {
  for (let i = 0; i < n; i++) await c.send(roomId, { msgtype: "m.text", body: `${c.userId} ${i}` });
};

describe("current state in the timeline", () => {
  test("a join hidden by 'joined' history visibility while the user was away still comes, as current state", async () => {
    for (const messagesAfter of [0, 30]) {
      const roomId = await alice.createRoom({ preset: "public_chat" });
      await join(bob, roomId);
      await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility`, { history_visibility: "joined" });
      await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: carol.userId });
      const since = (await sync(bob)).next_batch;
      await leave(bob, roomId);
      await join(carol, roomId);
      await fill(alice, roomId, messagesAfter);
      await join(bob, roomId);
      const room = (await sync(bob, { since })).rooms.join[roomId];
      const carolJoin = room.timeline.events.find((e: any) => e.type === "m.room.member" && e.state_key === carol.userId);
      expect({ messagesAfter, membership: carolJoin?.content.membership }).toEqual({ messagesAfter, membership: "join" });
      // The messages sent while bob was away stay hidden.
      expect(room.timeline.events.some((e: any) => e.type === "m.room.message")).toBe(false);
    }
  });

  test("a left room's timeline gets no such exception", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await join(bob, roomId);
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility`, { history_visibility: "joined" });
    const since = (await sync(bob)).next_batch;
    await leave(bob, roomId);
    const topic = (await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: "after bob" })).event_id;
    const left = (await sync(bob, { since })).rooms.leave[roomId];
    expect(left.timeline.events.map((e: any) => e.event_id)).not.toContain(topic);
  });
});

describe("lazy-loaded members across incremental syncs", () => {
  const lazy = { room: { state: { lazy_load_members: true }, timeline: { limit: 10 } } };

  async function roomWithBobAndCarol() {
    const roomId = await alice.createRoom({ preset: "public_chat", name: "LL" });
    await join(bob, roomId);
    await join(carol, roomId);
    await fill(bob, roomId, 10);
    await fill(carol, roomId, 5);
    return roomId;
  }

  test("members sent once are not sent again; include_redundant_members sends them", async () => {
    const roomId = await roomWithBobAndCarol();
    const first = await sync(alice, { filter: lazy });
    expect(members(first.rooms.join[roomId].state.events)).toEqual([`${alice.userId}|join`, `${bob.userId}|join`, `${carol.userId}|join`].sort());
    await bob.send(roomId, { msgtype: "m.text", body: "again bob" });
    await carol.send(roomId, { msgtype: "m.text", body: "again carol" });
    const second = await sync(alice, { since: first.next_batch, filter: lazy });
    expect(members(second.rooms.join[roomId].state.events)).toEqual([]);

    // Asked for: sent again.
    const redundant = { room: { state: { lazy_load_members: true, include_redundant_members: true }, timeline: { limit: 10 } } };
    const third = await sync(alice, { since: first.next_batch, filter: redundant });
    expect(members(third.rooms.join[roomId].state.events)).toEqual([`${bob.userId}|join`, `${carol.userId}|join`]);

    // A member sent in a gap is known from that answer's token on; a retried sync from the older
    // token (its answer may never have arrived) gets it again.
    await join(dave, roomId);
    await fill(bob, roomId, 10);
    const gapped = await sync(alice, { since: second.next_batch, filter: lazy });
    expect(members(gapped.rooms.join[roomId].state.events)).toEqual([`${dave.userId}|join`]);
    const retried = await sync(alice, { since: second.next_batch, filter: lazy });
    expect(members(retried.rooms.join[roomId].state.events)).toEqual([`${dave.userId}|join`]);
    await dave.send(roomId, { msgtype: "m.text", body: "dave speaks" });
    const after = await sync(alice, { since: retried.next_batch, filter: lazy });
    expect(after.rooms.join[roomId].timeline.events.map((e: any) => e.sender)).toEqual([dave.userId]);
    expect(members(after.rooms.join[roomId].state.events)).toEqual([]);
    // An initial sync starts afresh.
    const fresh = await sync(alice, { filter: lazy });
    expect(members(fresh.rooms.join[roomId].state.events)).toContain(`${dave.userId}|join`);
  });

  test("a gapped sync gives the leave in the gap, not the members already sent", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", name: "LL gap" });
    await join(bob, roomId);
    await join(carol, roomId);
    await carol.send(roomId, { msgtype: "m.text", body: "hello" });
    await fill(bob, roomId, 10);
    const first = await sync(alice, { filter: lazy });
    expect(members(first.rooms.join[roomId].state.events)).toEqual([`${alice.userId}|join`, `${bob.userId}|join`].sort());
    await leave(carol, roomId);
    await fill(bob, roomId, 10);
    const second = await sync(alice, { since: first.next_batch, filter: lazy });
    expect(second.rooms.join[roomId].timeline.limited).toBe(true);
    expect(members(second.rooms.join[roomId].state.events)).toEqual([`${carol.userId}|leave`]);

    // Dave joins in the next gap and carol comes back: both changes come; bob, who only spoke in
    // the gap, does not.
    await join(dave, roomId);
    await fill(bob, roomId, 10);
    await join(carol, roomId);
    await fill(carol, roomId, 10);
    const third = await sync(alice, { since: second.next_batch, filter: lazy });
    expect(members(third.rooms.join[roomId].state.events)).toEqual([`${carol.userId}|join`, `${dave.userId}|join`].sort());
    expect(third.rooms.join[roomId].timeline.events.every((e: any) => e.sender === carol.userId)).toBe(true);
  });
});

describe("presence of those who newly share a room", () => {
  test("a newly joined room brings its members' presence; a new member's presence comes to those in the room", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await sync(alice); // online
    const bobSince = (await sync(bob)).next_batch;
    const aliceSince = (await sync(alice)).next_batch;
    await join(bob, roomId);
    const forBob = await sync(bob, { since: bobSince });
    expect(forBob.presence.events.filter((e: any) => e.sender !== bob.userId).map((e: any) => e.sender)).toEqual([alice.userId]);
    expect(forBob.presence.events.find((e: any) => e.sender === alice.userId).content.presence).toBe("online");
    const forAlice = await sync(alice, { since: aliceSince });
    expect(forAlice.presence.events.filter((e: any) => e.sender !== alice.userId).map((e: any) => e.sender)).toEqual([bob.userId]);
    // Once only.
    expect((await sync(bob, { since: forBob.next_batch })).presence.events).toEqual([]);
  });
});

describe("event_format", () => {
  test("federation: the timeline's events as PDUs, with their event_id", async () => {
    const roomId = await alice.createRoom({ preset: "private_chat" });
    const eventId = await alice.send(roomId, { msgtype: "m.text", body: "Test message" });
    const r = await sync(alice, { filter: { event_format: "federation", room: { timeline: { limit: 1 } } } });
    const [event] = r.rooms.join[roomId].timeline.events;
    for (const key of ["event_id", "content", "room_id", "sender", "origin_server_ts", "type", "prev_events", "auth_events", "depth", "hashes", "signatures"]) {
      expect(event).toHaveProperty(key);
    }
    expect(event.event_id).toBe(eventId);
    expect(event.content.body).toBe("Test message");
    expect(r.rooms.join[roomId].state.events.every((e: any) => e.room_id === roomId && Array.isArray(e.auth_events))).toBe(true);
    // The client format, by default.
    const client = await sync(alice, { filter: { room: { timeline: { limit: 1 } } } });
    expect(client.rooms.join[roomId].timeline.events[0].room_id).toBeUndefined();
    expect(client.rooms.join[roomId].timeline.events[0].hashes).toBeUndefined();
  });
});
