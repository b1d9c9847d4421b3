// A signer that gives the event ID with the signature (signEventWithId) is asked once per local
// event, and what is stored under that ID is the event whose reference hash it is.
import { expect, test } from "bun:test";
import { createRoom } from "../../src/services/rooms/room-creation";
import { RoomEngine, type EventSigner } from "../../src/services/rooms/room-engine";
import { ROOM_VERSIONS } from "../../src/protocol/room-versions";
import { computeEventId } from "../../src/protocol/signing/event-id";
import { signEventWithId } from "../../src/protocol/signing/local-event";
import type { JsonObject } from "../../src/protocol/json";
import { testSigner } from "../helpers/room-engine";
import { testStores } from "../helpers/databases";
import { canonicalJsonBytes } from "../../src/protocol/canonical-json";
import { MAX_PDU_BYTES } from "../../src/protocol/event-limits";

for (const [versionId, version] of ROOM_VERSIONS) {
  test(`room version ${versionId}: a message is signed and identified in one step`, async () => {
    const stores = await testStores();
    const base = testSigner("example.org");
    let withId = 0;
    const seed = new Uint8Array(32).fill(7);
    const signer: EventSigner = {
      serverName: base.serverName,
      signEvent: base.signEvent,
      signEventWithId: (pdu, v) => {
        withId++;
        return signEventWithId(pdu, v, "example.org", base.keyId, seed);
      },
    };
    let now = 1_700_000_000_000;
    const engine = new RoomEngine(stores.roomEvents, signer, { now: () => now++ }, undefined, { log: () => {} });
    const roomId = await createRoom(engine, { creator: "@alice:example.org", roomVersion: versionId, preset: "private_chat", creatorProfile: {} });
    const before = withId;
    const { eventId } = await engine.sendEvent(roomId, { type: "m.room.message", sender: "@alice:example.org", content: { msgtype: "m.text", body: "hi" } });
    expect(withId - before).toBe(1);
    const stored = await stores.roomEvents.getEvent(eventId);
    expect(computeEventId(JSON.parse(stored!.json) as JsonObject, version)).toBe(eventId);
  });
}


/** An engine over fresh stores whose signer records the canonical size of each event it signs. */
async function measuredEngine(): Promise<{ stores: Awaited<ReturnType<typeof testStores>>; engine: RoomEngine; sizes: number[] }> {
  const stores = await testStores();
  const base = testSigner("example.org");
  const seed = new Uint8Array(32).fill(7);
  const sizes: number[] = [];
  const signer: EventSigner = {
    serverName: base.serverName,
    signEvent: base.signEvent,
    signEventWithId: (pdu, v) => {
      const result = signEventWithId(pdu, v, "example.org", base.keyId, seed);
      sizes.push(canonicalJsonBytes(result.signed).length);
      return result;
    },
  };
  let now = 1_700_000_000_000;
  return { stores, engine: new RoomEngine(stores.roomEvents, signer, { now: () => now++ }, undefined, { log: () => {} }), sizes };
}

test("the size limit counts the signed event, signatures included: an event of exactly the limit is stored, one byte past it refused", async () => {
  const { stores, engine, sizes } = await measuredEngine();
  const roomId = await createRoom(engine, { creator: "@alice:example.org", roomVersion: "10", preset: "private_chat", creatorProfile: {} });
  const send = (body: string) => engine.sendEvent(roomId, { type: "m.room.message", sender: "@alice:example.org", content: { msgtype: "m.text", body } });
  // Measure one event, then size the body so the signed event is exactly the limit, and one past it.
  await send("x");
  const fixed = sizes.at(-1)! - 1;
  const { eventId } = await send("x".repeat(MAX_PDU_BYTES - fixed));
  expect(sizes.at(-1)).toBe(MAX_PDU_BYTES);
  const stored = JSON.parse((await stores.roomEvents.getEvent(eventId))!.json) as JsonObject;
  expect(canonicalJsonBytes(stored).length).toBe(MAX_PDU_BYTES);
  // The signature alone (~100 bytes) is what tips this one over: the unsigned event would fit.
  const error = await send("x".repeat(MAX_PDU_BYTES - fixed + 1)).catch((e: unknown) => e);
  expect(error).toMatchObject({ errcode: "M_TOO_LARGE" });
  expect(sizes.at(-1)).toBe(MAX_PDU_BYTES + 1);
  const { signatures: _s, ...unsignedPart } = stored;
  expect(canonicalJsonBytes({ ...unsignedPart, content: { msgtype: "m.text", body: "x".repeat(MAX_PDU_BYTES - fixed + 1) } }).length).toBeLessThan(MAX_PDU_BYTES);
});

test("an event the policy server's signature takes past the size limit is refused, not stored", async () => {
  const { stores, engine, sizes } = await measuredEngine();
  // The policy server adds a signature of its own (a long key ID: ~200 bytes more).
  engine.setPolicySigner(async (_roomId, pdu) => ({ ...pdu, signatures: { ...(pdu.signatures as JsonObject), "policy.example": { [`ed25519:${"k".repeat(100)}`]: "s".repeat(86) } } }));
  const roomId = await createRoom(engine, { creator: "@alice:example.org", roomVersion: "10", preset: "private_chat", creatorProfile: {} });
  await engine.sendEvent(roomId, { type: "m.room.policy", sender: "@alice:example.org", stateKey: "", content: { via: "policy.example" } });
  const send = (body: string) => engine.sendEvent(roomId, { type: "m.room.message", sender: "@alice:example.org", content: { msgtype: "m.text", body } });
  const small = await send("x");
  expect(Object.keys((JSON.parse((await stores.roomEvents.getEvent(small.eventId))!.json) as { signatures: JsonObject }).signatures)).toContain("policy.example");
  // At the limit with our signature: the policy server's takes it past.
  const fixed = sizes.at(-1)! - 1;
  const error = await send("x".repeat(MAX_PDU_BYTES - fixed)).catch((e: unknown) => e);
  expect(sizes.at(-1)).toBe(MAX_PDU_BYTES);
  expect(error).toMatchObject({ errcode: "M_TOO_LARGE" });
  expect(await stores.roomEvents.forwardExtremities(roomId)).toEqual([small.eventId]);
});
