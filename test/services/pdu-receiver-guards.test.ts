// Malformed or hostile PDUs are dropped, never thrown and never allowed to mix rooms.
import { describe, expect, test } from "bun:test";
import { createRoom } from "../../src/services/rooms/room-creation";
import { PduReceiver } from "../../src/services/rooms/pdu-receiver";
import { roomVersion } from "../../src/protocol/room-versions";
import type { JsonObject } from "../../src/protocol/json";
import { testEngine, testSigner } from "../helpers/room-engine";

const ALICE = "@alice:example.org";

async function twoRooms() {
  const h = testEngine("example.org");
  const receiver = new PduReceiver(h.store, h.engine);
  const a = await createRoom(h.engine, { creator: ALICE, roomVersion: "10", preset: "public_chat" });
  const b = await createRoom(h.engine, { creator: ALICE, roomVersion: "10", preset: "public_chat" });
  const lookupKey = (server: string, keyId: string) => (server === "example.org" && keyId === h.signer.keyId ? h.signer.publicKey : undefined);
  return { ...h, receiver, a, b, lookupKey };
}

/** A message in `roomId` signed by the test server, with the given prev/auth events. */
function message(h: Awaited<ReturnType<typeof twoRooms>>, roomId: string, prev: string[], auth: string[], extra: JsonObject = {}): JsonObject {
  const pdu: JsonObject = { room_id: roomId, type: "m.room.message", sender: ALICE, content: { body: "x" }, origin_server_ts: 1, depth: 50, prev_events: prev, auth_events: auth, ...extra };
  return h.signer.signEvent(pdu, roomVersion("10")!);
}

describe("PDU receiver guards", () => {
  test("prev_events from another room are dropped", async () => {
    const h = await twoRooms();
    const authA = h.store.getEvent(h.store.forwardExtremities(h.a)[0])!;
    const msgAuth = [h.store.currentStateEvent(h.a, "m.room.create", "")!, h.store.currentStateEvent(h.a, "m.room.power_levels", "")!, h.store.currentStateEvent(h.a, "m.room.member", ALICE)!];
    const pdu = message(h, h.a, h.store.forwardExtremities(h.b), msgAuth);
    const result = await h.receiver.receive(pdu, h.lookupKey);
    expect(result).toMatchObject({ outcome: "dropped", reason: "prev_events belong to another room" });
    expect(h.store.forwardExtremities(h.a)).toEqual([authA.eventId]);
  });

  test("auth_events from another room are dropped", async () => {
    const h = await twoRooms();
    const bAuth = [h.store.currentStateEvent(h.b, "m.room.create", "")!, h.store.currentStateEvent(h.b, "m.room.power_levels", "")!, h.store.currentStateEvent(h.b, "m.room.member", ALICE)!];
    const result = await h.receiver.receive(message(h, h.a, h.store.forwardExtremities(h.a), bAuth), h.lookupKey);
    expect(result.outcome).toBe("dropped");
  });

  test("a second m.room.create for a known room is dropped", async () => {
    const h = await twoRooms();
    const create = h.signer.signEvent({ room_id: h.a, type: "m.room.create", state_key: "", sender: ALICE, content: { room_version: "1", creator: ALICE }, origin_server_ts: 5, depth: 1, prev_events: [], auth_events: [] }, roomVersion("10")!);
    const result = await h.receiver.receive(create, h.lookupKey);
    expect(result.outcome).toBe("dropped");
    expect(h.store.getRoom(h.a)?.roomVersion).toBe("10");
  });

  test("malformed PDUs are dropped, not thrown", async () => {
    const h = await twoRooms();
    const extremities = h.store.forwardExtremities(h.a);
    const auth = [h.store.currentStateEvent(h.a, "m.room.create", "")!, h.store.currentStateEvent(h.a, "m.room.power_levels", "")!, h.store.currentStateEvent(h.a, "m.room.member", ALICE)!];
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
    expect(h.store.forwardExtremities(h.a)).toEqual(extremities);
  });

  test("events signed by the wrong key are dropped", async () => {
    const h = await twoRooms();
    const other = testSigner("example.org", 9);
    const auth = [h.store.currentStateEvent(h.a, "m.room.create", "")!, h.store.currentStateEvent(h.a, "m.room.power_levels", "")!, h.store.currentStateEvent(h.a, "m.room.member", ALICE)!];
    const forged = other.signEvent({ room_id: h.a, type: "m.room.message", sender: ALICE, content: {}, origin_server_ts: 1, depth: 9, prev_events: h.store.forwardExtremities(h.a), auth_events: auth }, roomVersion("10")!);
    expect((await h.receiver.receive(forged, h.lookupKey)).outcome).toBe("dropped");
  });
});
