// What a federation transaction costs the receiving server's database: a chain of PDUs in one
// /send is checked and stored with a bounded number of statements per PDU (the batch's "do we hold
// these" asked once, the current state read once until a state event changes it, the PDU before
// each one read from the transaction's own writes, the room's extremities and current snapshot kept
// in memory), and every PDU still lands in order.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { TestClient, enc } from "../helpers/rooms";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";
import { resolve, Tokens } from "../../src/di/tokens";
import { statementsDuring } from "../helpers/statements";
import { roomVersion } from "../../src/protocol/room-versions";
import { computeEventId } from "../../src/protocol/signing/event-id";
import type { JsonObject } from "../../src/protocol/json";

let a: FederatedServer;
let b: FederatedServer;

beforeAll(async () => {
  a = await federatedServer({ registration: { enabled: true } });
  b = await federatedServer({ registration: { enabled: true } });
});

afterAll(async () => {
  await a?.server.stop();
  await b?.server.stop();
});


/**
 * A room on A (version 10) that a user of B has joined, and what B needs to write messages into
 * it: the room's head (prev events, depth) and a message's auth events, read from A's store.
 */
async function roomWithRemoteMember(local: string, remote: string) {
  const alice = await TestClient.register(a.server, local);
  const bob = await TestClient.register(b.server, remote);
  const roomId = await alice.createRoom({ preset: "public_chat", room_version: "10" });
  await bob.ok("POST", `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {});
  const storeA = resolve(a.server.container, Tokens.RoomEventStore);
  await eventually(async () => (await storeA.currentStateEvent(roomId, "m.room.member", bob.userId)) !== undefined, 10_000, `${remote}'s join on A`);
  const prev = await storeA.forwardExtremities(roomId);
  const depth = Math.max(...(await Promise.all(prev.map((id) => storeA.getEvent(id)))).map((e) => e!.depth));
  const auth: string[] = [];
  for (const [type, key] of [["m.room.create", ""], ["m.room.power_levels", ""], ["m.room.member", bob.userId]] as const) auth.push((await storeA.currentStateEvent(roomId, type, key))!);
  return { alice, bob, roomId, storeA, prev, depth, auth, version: roomVersion("10")!, signer: resolve(b.server.container, Tokens.ServerKeys) };
}

/** PUTs one transaction of these PDUs from B to A; A's answer. */
async function sendTransaction(pdus: JsonObject[]): Promise<{ pdus: Record<string, { error?: string }> }> {
  const client = resolve(b.server.container, Tokens.FederationClient);
  return (await client.request("PUT", a.serverName, `/_matrix/federation/v1/send/${crypto.randomUUID()}`, {
    body: { origin: b.serverName, origin_server_ts: Date.now(), pdus },
  })) as { pdus: Record<string, { error?: string }> };
}

test("a chain of 50 PDUs in one transaction costs at most 6 statements each on the receiving server, and all are stored in order", async () => {
  const { alice, bob, roomId, storeA, version, signer, auth, ...head } = await roomWithRemoteMember("alice", "bob");
  let { prev, depth } = head;
  const pdus: JsonObject[] = [];
  for (let i = 0; i < 50; i++) {
    const pdu = signer.signEvent({ room_id: roomId, sender: bob.userId, type: "m.room.message", content: { msgtype: "m.text", body: `chain ${i}` }, origin_server_ts: Date.now(), depth: ++depth, prev_events: prev, auth_events: auth }, version);
    prev = [computeEventId(pdu, version)];
    pdus.push(pdu);
  }
  let answer: { pdus: Record<string, { error?: string }> } | undefined;
  const { statements } = await statementsDuring(a.server, async () => {
    answer = await sendTransaction(pdus);
  });
  expect(Object.values(answer!.pdus).filter((r) => r.error)).toEqual([]);
  expect(Object.keys(answer!.pdus)).toHaveLength(50);
  // Before the batch read its "held?" answers and the current state once and kept the room's heads
  // in memory, it was 14; what is left is the writes.
  expect(statements / 50).toBeLessThanOrEqual(6);
  expect(await storeA.forwardExtremities(roomId)).toEqual(prev);
  const messages = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
  const bodies = (messages.chunk as { content: { body?: string } }[]).map((e) => e.content.body).reverse();
  expect(bodies).toEqual(pdus.map((_, i) => `chain ${i}`));
});

test("a forged PDU in the middle of a batch is dropped by the off-thread signature check; the rest land", async () => {
  const { bob, roomId, storeA, version, signer, auth, ...head } = await roomWithRemoteMember("amy", "ben");
  let { prev, depth } = head;
  const pdus: JsonObject[] = [];
  for (let i = 0; i < 12; i++) {
    const pdu = signer.signEvent({ room_id: roomId, sender: bob.userId, type: "m.room.message", content: { msgtype: "m.text", body: `good ${i}` }, origin_server_ts: Date.now(), depth: ++depth, prev_events: prev, auth_events: auth }, version);
    prev = [computeEventId(pdu, version)];
    pdus.push(pdu);
  }
  // Signed, then changed where the signature covers it: a forgery on the sixth event, sent seventh.
  const signed = signer.signEvent({ room_id: roomId, sender: bob.userId, type: "m.room.message", content: { msgtype: "m.text", body: "forged" }, origin_server_ts: Date.now(), depth: depth + 1, prev_events: [computeEventId(pdus[5]!, version)], auth_events: auth }, version);
  const forged = { ...signed, origin_server_ts: (signed.origin_server_ts as number) + 1 };
  const forgedId = computeEventId(forged, version);
  pdus.splice(6, 0, forged);
  const answer = await sendTransaction(pdus);
  expect(answer.pdus[forgedId]?.error).toContain("signature");
  expect(Object.entries(answer.pdus).filter(([id, r]) => id !== forgedId && r.error)).toEqual([]);
  expect(await storeA.getEvent(forgedId)).toBeUndefined();
  expect(await storeA.forwardExtremities(roomId)).toEqual(prev);
});

test("in one batch, an event after a state event is judged against the current state that event made (soft failure)", async () => {
  const { bob, roomId, storeA, version, signer, auth, prev: base, ...head } = await roomWithRemoteMember("ada", "bert");
  let { depth } = head;
  const sign = (fields: JsonObject) => signer.signEvent({ room_id: roomId, sender: bob.userId, origin_server_ts: Date.now(), depth: ++depth, auth_events: auth, ...fields }, version);
  const first = sign({ type: "m.room.message", content: { msgtype: "m.text", body: "before" }, prev_events: base });
  const firstId = computeEventId(first, version);
  // Bert leaves; then, on a fork from before the leave, says something: allowed by the state before
  // it (his join), refused by the room's current state (his leave): soft-failed.
  const leave = sign({ type: "m.room.member", state_key: bob.userId, content: { membership: "leave" }, prev_events: [firstId] });
  const fork = sign({ type: "m.room.message", content: { msgtype: "m.text", body: "after leaving" }, prev_events: [firstId] });
  const answer = await sendTransaction([first, leave, fork]);
  expect(Object.values(answer.pdus).filter((r) => r.error)).toEqual([]);
  const stored = await storeA.getEvent(computeEventId(fork, version));
  expect(stored?.softFailed).toBe(true);
  expect((await storeA.getEvent(firstId))?.softFailed).toBe(false);
});

test("joining a room of much state over federation stores the join, with the room's whole state, in a database transaction of its own", async () => {
  const { BULK_EVENTS } = await import("../../src/services/rooms/room-engine");
  const carol = await TestClient.register(a.server, "carol");
  const dave = await TestClient.register(b.server, "dave");
  const initial_state = Array.from({ length: BULK_EVENTS }, (_, i) => ({ type: "org.example.setting", state_key: `k${i}`, content: { i } }));
  const roomId = await carol.createRoom({ preset: "public_chat", room_version: "10", initial_state });
  const storeB = resolve(b.server.container, Tokens.RoomEventStore);
  const atomically = storeB.atomically.bind(storeB);
  const asked: { options: unknown; result: unknown }[] = [];
  storeB.atomically = async (fn, options) => {
    const result = await atomically(fn, options);
    asked.push({ options, result });
    return result;
  };
  try {
    await dave.ok("POST", `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {});
  } finally {
    storeB.atomically = atomically;
  }
  const joinId = await storeB.currentStateEvent(roomId, "m.room.member", dave.userId);
  expect(joinId).toBeDefined();
  const join = asked.find((a) => (a.result as { eventId?: string } | undefined)?.eventId === joinId);
  expect(join?.options).toEqual({ alone: true });
  expect((await storeB.currentState(roomId)).size).toBeGreaterThan(BULK_EVENTS);
});
