// /sync for rooms this server does not hold: an invite received over federation, a knock made
// through a resident server, and their end (a rejection, a rescinded knock), recorded through the
// OutOfBandMemberships service and listed under rooms.invite / rooms.knock / rooms.leave — in
// initial and incremental syncs, through filters, waking long-polls, and giving way to the user's
// membership once the room is one we hold. Every 200 is checked against sync.yaml by TestClient.ok.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import type { JsonObject } from "../../../src/protocol/json";
import { roomVersion } from "../../../src/protocol/room-versions";
import { computeEventId } from "../../../src/protocol/signing/event-id";
import type { OutOfBandMemberships, RecordOutOfBandMembership } from "../../../src/services/rooms/out-of-band";
import { parseSyncToken } from "../../../src/services/sync/sync-token";
import { testSigner } from "../../helpers/room-engine";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";

const V10 = roomVersion("10")!;
const remote = testSigner("remote.example");
const home = testSigner("oob.example", 9);
const INVITER = "@carol:remote.example";

let server: PortierServer;
let outOfBand: OutOfBandMemberships;
let n = 0;
beforeAll(async () => {
  server = await testServer({ server_name: "oob.example", registration: { enabled: true } });
  outOfBand = resolve(server.container, Tokens.OutOfBandMemberships);
});
afterAll(() => server.stop());

const user = async () => TestClient.register(server, `user${++n}`);
const remoteRoom = () => `!remote${++n}:remote.example`;
type Params = Record<string, string | number | boolean | object | undefined>;
const sync = (c: TestClient, params: Params = {}) =>
  c.ok(
    "GET",
    "/sync?" +
      Object.entries({ timeout: 0, ...params })
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${k}=${enc(typeof v === "object" ? JSON.stringify(v) : String(v))}`)
        .join("&"),
  );

let depth = 100;
function memberEvent(roomId: string, sender: string, userId: string, content: JsonObject): JsonObject {
  const signer = sender.endsWith(":remote.example") ? remote : home;
  return signer.signEvent(
    { type: "m.room.member", room_id: roomId, sender, state_key: userId, content, origin_server_ts: 1_700_000_000_000 + depth, depth: depth++, prev_events: [`$prev${depth}`], auth_events: ["$create", "$power"] },
    V10,
  );
}

/** Stripped state as a remote server may send it: a full create PDU (v1.16), stripped events, one malformed entry, and the member event again. */
function receivedState(roomId: string, userId: string): JsonObject[] {
  return [
    { type: "m.room.create", state_key: "", sender: INVITER, content: { room_version: "10", creator: INVITER }, room_id: roomId, event_id: "$create", origin_server_ts: 1, depth: 1, prev_events: [], auth_events: [], hashes: { sha256: "x" }, signatures: {} },
    { type: "m.room.name", state_key: "", sender: INVITER, content: { name: "Far away" } },
    { type: "m.room.join_rules", state_key: "", sender: INVITER, content: { join_rule: "knock" } },
    { type: "m.room.topic", sender: INVITER, content: { topic: "no state_key: dropped" } },
    { type: "m.room.member", state_key: userId, sender: INVITER, content: { membership: "invite" } },
  ];
}

async function record(input: Omit<RecordOutOfBandMembership, "roomVersion" | "strippedState"> & { strippedState?: JsonObject[] }): Promise<string> {
  await outOfBand.record({ roomVersion: "10", strippedState: [], ...input });
  return computeEventId(input.event, V10);
}

const invite = (c: TestClient, roomId: string) =>
  record({ userId: c.userId, roomId, membership: "invite", event: memberEvent(roomId, INVITER, c.userId, { membership: "invite", displayname: "Bob" }), strippedState: receivedState(roomId, c.userId) });
const knock = (c: TestClient, roomId: string) =>
  record({ userId: c.userId, roomId, membership: "knock", event: memberEvent(roomId, c.userId, c.userId, { membership: "knock", reason: "let me in" }), strippedState: receivedState(roomId, c.userId).slice(0, 3) });
const leave = (c: TestClient, roomId: string, sender = c.userId) =>
  record({ userId: c.userId, roomId, membership: "leave", event: memberEvent(roomId, sender, c.userId, { membership: "leave" }) });

const INCLUDE_LEAVE = { room: { include_leave: true } };

describe("initial sync", () => {
  test("an out-of-band invite: the stripped state it came with, pruned, then the invite event whole (its ID and time too)", async () => {
    const bob = await user();
    const roomId = remoteRoom();
    await invite(bob, roomId);
    const r = await sync(bob);
    expect(r.rooms.invite[roomId].invite_state.events).toEqual([
      { type: "m.room.create", state_key: "", sender: INVITER, content: { room_version: "10", creator: INVITER } },
      { type: "m.room.name", state_key: "", sender: INVITER, content: { name: "Far away" } },
      { type: "m.room.join_rules", state_key: "", sender: INVITER, content: { join_rule: "knock" } },
      { type: "m.room.member", state_key: bob.userId, sender: INVITER, content: { membership: "invite", displayname: "Bob" }, event_id: expect.stringMatching(/^\$/), origin_server_ts: expect.any(Number) },
    ]);
    expect(r.rooms.join[roomId]).toBeUndefined();
    expect(r.rooms.knock[roomId]).toBeUndefined();
    // Once the stream has begun, the token carries its position.
    expect(parseSyncToken(r.next_batch).outOfBand).toBeGreaterThan(0);
  });

  test("an out-of-band knock: the knock state with the knock event", async () => {
    const bob = await user();
    const roomId = remoteRoom();
    await knock(bob, roomId);
    const r = await sync(bob);
    const events = r.rooms.knock[roomId].knock_state.events;
    expect(events.map((e: { type: string }) => e.type)).toEqual(["m.room.create", "m.room.name", "m.room.join_rules", "m.room.member"]);
    expect(events.at(-1)).toEqual({ type: "m.room.member", state_key: bob.userId, sender: bob.userId, content: { membership: "knock", reason: "let me in" }, event_id: expect.stringMatching(/^\$/), origin_server_ts: expect.any(Number) });
    expect(r.rooms.invite[roomId]).toBeUndefined();
  });

  test("an ended one: only with include_leave, a timeline of just the leave in client format, no state", async () => {
    const bob = await user();
    const roomId = remoteRoom();
    await invite(bob, roomId);
    const leaveId = await leave(bob, roomId);
    const plain = await sync(bob);
    expect(plain.rooms.leave[roomId]).toBeUndefined();
    expect(plain.rooms.invite[roomId]).toBeUndefined();

    const r = await sync(bob, { filter: INCLUDE_LEAVE });
    const left = r.rooms.leave[roomId];
    expect(left.state.events).toEqual([]);
    expect(left.timeline.limited).toBe(false);
    expect(left.timeline.events).toHaveLength(1);
    const [event] = left.timeline.events;
    expect(event).toMatchObject({ type: "m.room.member", state_key: bob.userId, sender: bob.userId, content: { membership: "leave" }, event_id: leaveId });
    expect(event.room_id).toBeUndefined();
    expect(event.signatures).toBeUndefined();
    expect(event.origin_server_ts).toBeNumber();
    expect(event.unsigned.age).toBeNumber();
  });

  test("room filters apply: rooms / not_rooms, and a timeline filter empties the leave timeline", async () => {
    const bob = await user();
    const invited = remoteRoom();
    const left = remoteRoom();
    await invite(bob, invited);
    await leave(bob, left, INVITER);
    expect(Object.keys((await sync(bob, { filter: { room: { not_rooms: [invited] } } })).rooms.invite)).not.toContain(invited);
    const only = await sync(bob, { filter: { room: { rooms: [left], include_leave: true } } });
    expect(only.rooms.invite).toEqual({});
    expect(Object.keys(only.rooms.leave)).toEqual([left]);
    expect(only.rooms.leave[left].timeline.events[0].sender).toBe(INVITER);
    const noMembers = await sync(bob, { filter: { room: { include_leave: true, timeline: { not_types: ["m.room.member"] } } } });
    expect(noMembers.rooms.leave[left].timeline.events).toEqual([]);
    const notThisRoom = await sync(bob, { filter: { room: { include_leave: true, timeline: { not_rooms: [left] } } } });
    expect(notThisRoom.rooms.leave[left].timeline.events).toEqual([]);
  });
});

describe("incremental sync", () => {
  test("lists each change once, after since: invite, then its rejection under rooms.leave", async () => {
    const bob = await user();
    const roomId = remoteRoom();
    const start = await sync(bob);
    const inviteId = await invite(bob, roomId);
    const r1 = await sync(bob, { since: start.next_batch });
    expect(r1.rooms.invite[roomId].invite_state.events.at(-1).state_key).toBe(bob.userId);
    expect(inviteId).toStartWith("$");

    // Nothing new: not listed again (unless full_state asks).
    const r2 = await sync(bob, { since: r1.next_batch });
    expect(r2.rooms.invite[roomId]).toBeUndefined();
    expect((await sync(bob, { since: r1.next_batch, full_state: true })).rooms.invite[roomId]).toBeDefined();

    const leaveId = await leave(bob, roomId);
    const r3 = await sync(bob, { since: r2.next_batch });
    expect(r3.rooms.invite[roomId]).toBeUndefined();
    expect(r3.rooms.leave[roomId].timeline.events.map((e: { event_id: string }) => e.event_id)).toEqual([leaveId]);
    expect(r3.rooms.leave[roomId].state.events).toEqual([]);
    const r4 = await sync(bob, { since: r3.next_batch });
    expect(r4.rooms.leave[roomId]).toBeUndefined();
  });

  test("a knock, then its rescinding", async () => {
    const bob = await user();
    const roomId = remoteRoom();
    const start = await sync(bob);
    await knock(bob, roomId);
    const r1 = await sync(bob, { since: start.next_batch });
    expect(r1.rooms.knock[roomId].knock_state.events.at(-1).content.membership).toBe("knock");
    await leave(bob, roomId);
    const r2 = await sync(bob, { since: r1.next_batch });
    expect(r2.rooms.knock[roomId]).toBeUndefined();
    expect(r2.rooms.leave[roomId].timeline.events.map((e: { content: { membership: string } }) => e.content.membership)).toEqual(["leave"]);
  });

  test("another user's records are not listed", async () => {
    const bob = await user();
    const eve = await user();
    const start = await sync(eve);
    await invite(bob, remoteRoom());
    const r = await sync(eve, { since: start.next_batch });
    expect(r.rooms.invite).toEqual({});
  });

  test("a token without the out-of-band position (issued before the stream existed) reads as 0: every record is new", async () => {
    const bob = await user();
    const roomId = remoteRoom();
    await invite(bob, roomId);
    const now = parseSyncToken((await sync(bob)).next_batch);
    const old = `s${now.events}_${now.accountData}_${now.receipts}_${now.typing}_${now.boot}`;
    expect((await sync(bob, { since: old })).rooms.invite[roomId]).toBeDefined();
  });

  test("a long-poll wakes when a record for its user lands", async () => {
    const bob = await user();
    const roomId = remoteRoom();
    const start = await sync(bob);
    const started = performance.now();
    const pending = sync(bob, { since: start.next_batch, timeout: 3_000 });
    await Bun.sleep(100);
    await invite(bob, roomId);
    const r = await pending;
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(r.rooms.invite[roomId]).toBeDefined();
  });
});

describe("a room that becomes one we hold", () => {
  test("the user's membership in the held room wins over an older out-of-band record", async () => {
    const alice = await user();
    const bob = await user();
    const roomId = await alice.createRoom({ preset: "public_chat" });
    // An invite recorded out of band (as if received before the room was held here), then a real join.
    await invite(bob, roomId);
    const before = await sync(bob);
    expect(before.rooms.invite[roomId]).toBeDefined();
    await bob.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    const initial = await sync(bob, { filter: INCLUDE_LEAVE });
    expect(initial.rooms.join[roomId]).toBeDefined();
    expect(initial.rooms.invite[roomId]).toBeUndefined();
    const incremental = await sync(bob, { since: before.next_batch });
    expect(incremental.rooms.join[roomId]).toBeDefined();
    expect(incremental.rooms.invite[roomId]).toBeUndefined();

    // A later out-of-band leave (made through another server) is newer: it lists the room as left.
    await leave(bob, roomId);
    const after = await sync(bob, { since: incremental.next_batch });
    expect(after.rooms.leave[roomId].timeline.events).toHaveLength(1);
    expect(after.rooms.join[roomId]).toBeUndefined();
  });

  test("an out-of-band invite newer than a held leave lists the room as invited, not left", async () => {
    const alice = await user();
    const bob = await user();
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    expect((await sync(bob, { filter: INCLUDE_LEAVE })).rooms.leave[roomId]).toBeDefined();
    const token = (await sync(bob)).next_batch;
    await invite(bob, roomId);
    const initial = await sync(bob, { filter: INCLUDE_LEAVE });
    expect(initial.rooms.invite[roomId]).toBeDefined();
    expect(initial.rooms.leave[roomId]).toBeUndefined();
    expect(Object.keys((await sync(bob, { since: token })).rooms.invite)).toEqual([roomId]);
  });
});

describe("record", () => {
  test("refuses what is not the user's member event with that membership in that room, and unknown room versions", async () => {
    const bob = await user();
    const roomId = remoteRoom();
    const event = memberEvent(roomId, INVITER, bob.userId, { membership: "invite" });
    const fails = (input: Partial<RecordOutOfBandMembership>, errcode: string) =>
      expect(outOfBand.record({ userId: bob.userId, roomId, roomVersion: "10", membership: "invite", event, strippedState: [], ...input })).rejects.toMatchObject({ errcode });
    await fails({ userId: "@other:oob.example" }, "M_BAD_JSON");
    await fails({ roomId: remoteRoom() }, "M_BAD_JSON");
    await fails({ membership: "knock" }, "M_BAD_JSON");
    await fails({ event: { ...event, type: "m.room.message" } }, "M_BAD_JSON");
    await fails({ event: { ...event, depth: "deep" } }, "M_BAD_JSON");
    await fails({ strippedState: ["nope"] as unknown as JsonObject[] }, "M_BAD_JSON");
    await fails({ roomVersion: "999" }, "M_UNSUPPORTED_ROOM_VERSION");
    expect(await outOfBand.current(bob.userId, roomId)).toBeUndefined();
  });

  test("current and forUser read back the latest record, parsed", async () => {
    const bob = await user();
    const roomId = remoteRoom();
    const inviteId = await invite(bob, roomId);
    const current = (await outOfBand.current(bob.userId, roomId))!;
    expect(current).toMatchObject({ userId: bob.userId, roomId, roomVersion: "10", membership: "invite", eventId: inviteId });
    expect(current.event.sender).toBe(INVITER);
    expect(current.strippedState).toHaveLength(5);
    const leaveId = await leave(bob, roomId);
    const all = await outOfBand.forUser(bob.userId);
    expect(all.map((m) => [m.roomId, m.membership, m.eventId])).toEqual([[roomId, "leave", leaveId]]);
    expect(all[0]!.streamPosition).toBeGreaterThan(current.streamPosition);
  });
});
