// Malformed or hostile PDUs are dropped, never thrown and never allowed to mix rooms.
import { describe, expect, test } from "bun:test";
import { createRoom } from "../../src/services/rooms/room-creation";
import { PduReceiver } from "../../src/services/rooms/pdu-receiver";
import { roomVersion } from "../../src/protocol/room-versions";
import type { JsonObject } from "../../src/protocol/json";
import { testEngine, testSigner } from "../helpers/room-engine";
import { testDatabases } from "../helpers/databases";
import type { DriverName } from "../../src/storage/database";

const ALICE = "@alice:example.org";

async function twoRooms(database: DriverName) {
  const h = await testEngine("example.org", database);
  const receiver = new PduReceiver(h.store, h.engine);
  const a = await createRoom(h.engine, { creator: ALICE, roomVersion: "10", preset: "public_chat" });
  const b = await createRoom(h.engine, { creator: ALICE, roomVersion: "10", preset: "public_chat" });
  const lookupKey = (server: string, keyId: string) => (server === "example.org" && keyId === h.signer.keyId ? h.signer.publicKey : undefined);
  return { ...h, receiver, a, b, lookupKey };
}

/** The ids of a message's auth events in a room: create, power levels, Alice's membership. */
async function messageAuth(h: Awaited<ReturnType<typeof twoRooms>>, roomId: string): Promise<string[]> {
  return [(await h.store.currentStateEvent(roomId, "m.room.create", ""))!, (await h.store.currentStateEvent(roomId, "m.room.power_levels", ""))!, (await h.store.currentStateEvent(roomId, "m.room.member", ALICE))!];
}

/** A message in `roomId` signed by the test server, with the given prev/auth events. */
function message(h: Awaited<ReturnType<typeof twoRooms>>, roomId: string, prev: string[], auth: string[], extra: JsonObject = {}): JsonObject {
  const pdu: JsonObject = { room_id: roomId, type: "m.room.message", sender: ALICE, content: { body: "x" }, origin_server_ts: 1, depth: 50, prev_events: prev, auth_events: auth, ...extra };
  return h.signer.signEvent(pdu, roomVersion("10")!);
}

describe.each(testDatabases.map((d) => d.name))("PDU receiver guards on %s", (database) => {
  test("prev_events from another room are dropped", async () => {
    const h = await twoRooms(database);
    const authA = (await h.store.getEvent((await h.store.forwardExtremities(h.a))[0]))!;
    const pdu = message(h, h.a, await h.store.forwardExtremities(h.b), await messageAuth(h, h.a));
    const result = await h.receiver.receive(pdu, h.lookupKey);
    expect(result).toMatchObject({ outcome: "dropped", reason: "prev_events belong to another room" });
    expect(await h.store.forwardExtremities(h.a)).toEqual([authA.eventId]);
  });

  test("a signature verdict started by the caller is the one that counts", async () => {
    const h = await twoRooms(database);
    const pdu = message(h, h.a, await h.store.forwardExtremities(h.a), await messageAuth(h, h.a));
    const refused = Promise.resolve({ valid: false, reason: "checked elsewhere", requiredServers: ["example.org"], checked: {} });
    expect(await h.receiver.receive(pdu, h.lookupKey, { signatures: refused })).toMatchObject({ outcome: "dropped", reason: "signature check failed: checked elsewhere" });
    const passed = Promise.resolve({ valid: true, requiredServers: ["example.org"], checked: {} });
    expect((await h.receiver.receive(pdu, h.lookupKey, { signatures: passed })).outcome).toBe("accepted");
  });

  test("auth_events from another room: rejected (kept out of the timeline and the extremities)", async () => {
    const h = await twoRooms(database);
    const extremities = await h.store.forwardExtremities(h.a);
    const result = await h.receiver.receive(message(h, h.a, extremities, await messageAuth(h, h.b)), h.lookupKey);
    expect(result).toMatchObject({ outcome: "rejected", reason: expect.stringContaining("belongs to another room") });
    expect(await h.store.forwardExtremities(h.a)).toEqual(extremities);
  });

  test("a redaction of an event of another room is rejected; of an event of its own room, accepted", async () => {
    const h = await twoRooms(database);
    const sent = async (roomId: string, extra: JsonObject = {}) => h.receiver.receive(message(h, roomId, await h.store.forwardExtremities(roomId), await messageAuth(h, roomId), extra), h.lookupKey);
    const inB = (await sent(h.b)).eventId!;
    const inA = (await sent(h.a)).eventId!;
    const across = await sent(h.a, { type: "m.room.redaction", redacts: inB, content: {} });
    expect(across).toMatchObject({ outcome: "rejected", reason: expect.stringContaining("another room") });
    expect((await sent(h.a, { type: "m.room.redaction", redacts: inA, content: {} })).outcome).toBe("accepted");
  });

  test("a second m.room.create for a known room is dropped", async () => {
    const h = await twoRooms(database);
    const create = h.signer.signEvent({ room_id: h.a, type: "m.room.create", state_key: "", sender: ALICE, content: { room_version: "1", creator: ALICE }, origin_server_ts: 5, depth: 1, prev_events: [], auth_events: [] }, roomVersion("10")!);
    const result = await h.receiver.receive(create, h.lookupKey);
    expect(result.outcome).toBe("dropped");
    expect((await h.store.getRoom(h.a))?.roomVersion).toBe("10");
  });

  test("malformed PDUs are dropped, not thrown", async () => {
    const h = await twoRooms(database);
    const extremities = await h.store.forwardExtremities(h.a);
    const auth = await messageAuth(h, h.a);
    const cases: JsonObject[] = [
      { ...message(h, h.a, extremities, auth), depth: 1.5 },
      { ...message(h, h.a, extremities, auth), origin_server_ts: 2 ** 60 },
      message(h, h.a, extremities, auth, { type: "x".repeat(300) }),
      message(h, h.a, extremities, auth, { type: "m.room.member\u0000", state_key: "x" }),
      message(h, h.a, extremities, auth, { content: { body: "y".repeat(70_000) } }),
      (() => {
        const { hashes: _h, ...rest } = message(h, h.a, extremities, auth);
        return rest;
      })(),
    ];
    for (const pdu of cases) expect((await h.receiver.receive(pdu, h.lookupKey)).outcome).toBe("dropped");
    // A v1 room's PDU without event_id.
    const v1 = await createRoom(h.engine, { creator: ALICE, roomVersion: "1" });
    const noId = { room_id: v1, type: "m.room.message", sender: ALICE, content: {}, origin_server_ts: 1, depth: 9, prev_events: [], auth_events: [], hashes: { sha256: "x" }, signatures: {} };
    expect((await h.receiver.receive(noId, h.lookupKey)).outcome).toBe("dropped");
    expect(await h.store.forwardExtremities(h.a)).toEqual(extremities);
  });

  test("events signed by the wrong key are dropped", async () => {
    const h = await twoRooms(database);
    const other = testSigner("example.org", 9);
    const forged = other.signEvent({ room_id: h.a, type: "m.room.message", sender: ALICE, content: {}, origin_server_ts: 1, depth: 9, prev_events: await h.store.forwardExtremities(h.a), auth_events: await messageAuth(h, h.a) }, roomVersion("10")!);
    expect((await h.receiver.receive(forged, h.lookupKey)).outcome).toBe("dropped");
  });
});
