// The timeline of a room under rooms.leave in an incremental /sync holds only what happened after
// `since`: a withdrawn knock, a rejected invite or a refused (kicked) knock shows just the leave,
// not the knock or invite the client already had before the token.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";

let server: PortierServer;
let n = 0;
beforeAll(async () => {
  server = await testServer({ server_name: "left.example", registration: { enabled: true } });
});
afterAll(() => server.stop());

const users = async () => {
  n++;
  return { alice: await TestClient.register(server, `alice${n}`), bob: await TestClient.register(server, `bob${n}`) };
};
const sync = (c: TestClient, since?: string) => c.ok("GET", `/sync?timeout=0${since ? `&since=${enc(since)}` : ""}`);
const memberEventId = async (viewer: TestClient, roomId: string, userId: string) =>
  (await viewer.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}?format=event`)).body.event_id as string;
const knockableRoom = (alice: TestClient) => alice.createRoom({ room_version: "10", preset: "private_chat", initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }] });
const summary = (events: { type: string; state_key?: string; content: { membership?: string } }[]) => events.map((e) => `${e.type}|${e.state_key ?? ""}|${e.content.membership ?? ""}`);

describe("rooms.leave timelines in an incremental sync start at since", () => {
  test("a knock withdrawn with /leave: just the leave", async () => {
    const { alice, bob } = await users();
    const roomId = await knockableRoom(alice);
    await bob.ok("POST", `/knock/${enc(roomId)}`, { reason: "let me in" });
    const before = await sync(bob);
    expect(before.rooms.knock[roomId]).toBeDefined();

    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const leaveId = await memberEventId(alice, roomId, bob.userId);
    const after = await sync(bob, before.next_batch);
    const left = after.rooms.leave[roomId];
    expect(left.timeline.events.map((e: { event_id: string }) => e.event_id)).toEqual([leaveId]);
    expect(summary(left.timeline.events)).toEqual([`m.room.member|${bob.userId}|leave`]);
    expect(left.timeline.limited).toBe(false);
    expect(left.state.events).toEqual([]);
    expect(after.rooms.knock[roomId]).toBeUndefined();
  });

  test("an invite rejected with /leave: just the leave", async () => {
    const { alice, bob } = await users();
    const roomId = await alice.createRoom({ preset: "private_chat" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    const before = await sync(bob);
    expect(before.rooms.invite[roomId]).toBeDefined();

    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const leaveId = await memberEventId(alice, roomId, bob.userId);
    const after = await sync(bob, before.next_batch);
    expect(after.rooms.leave[roomId].timeline.events.map((e: { event_id: string }) => e.event_id)).toEqual([leaveId]);
    expect(after.rooms.leave[roomId].state.events).toEqual([]);
  });

  test("a knock refused by a kick: just the kick", async () => {
    const { alice, bob } = await users();
    const roomId = await knockableRoom(alice);
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    const before = await sync(bob);

    await alice.ok("POST", `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId, reason: "not now" });
    const kickId = await memberEventId(alice, roomId, bob.userId);
    const after = await sync(bob, before.next_batch);
    const events = after.rooms.leave[roomId].timeline.events;
    expect(events.map((e: { event_id: string }) => e.event_id)).toEqual([kickId]);
    expect(events[0]).toMatchObject({ sender: alice.userId, content: { membership: "leave", reason: "not now" } });
  });

  test("knocked, invited and rejected after since: the invite and the rejection, not the knock", async () => {
    const { alice, bob } = await users();
    const roomId = await knockableRoom(alice);
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    const before = await sync(bob);

    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const after = await sync(bob, before.next_batch);
    expect(summary(after.rooms.leave[roomId].timeline.events)).toEqual([`m.room.member|${bob.userId}|invite`, `m.room.member|${bob.userId}|leave`]);
  });

  test("a joined room left: the events after since (unchanged); a room joined and left since: from its start, as a newly joined room", async () => {
    const { alice, bob } = await users();
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await alice.send(roomId, { msgtype: "m.text", body: "before" });
    const before = await sync(bob);
    await alice.send(roomId, { msgtype: "m.text", body: "after" });
    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const after = await sync(bob, before.next_batch);
    const bodies = (events: { type: string; content: { body?: string } }[]) => events.filter((e) => e.type === "m.room.message").map((e) => e.content.body);
    expect(bodies(after.rooms.leave[roomId].timeline.events)).toEqual(["after"]);

    const other = await alice.createRoom({ preset: "public_chat" });
    await alice.send(other, { msgtype: "m.text", body: "history" });
    const token = (await sync(bob)).next_batch;
    await bob.ok("POST", `/rooms/${enc(other)}/join`, {});
    await bob.ok("POST", `/rooms/${enc(other)}/leave`, {});
    const joinedAndLeft = (await sync(bob, token)).rooms.leave[other];
    expect(bodies(joinedAndLeft.timeline.events)).toEqual(["history"]);
    expect(summary(joinedAndLeft.timeline.events).slice(-2)).toEqual([`m.room.member|${bob.userId}|join`, `m.room.member|${bob.userId}|leave`]);
  });
});
