// Federation when things go wrong: a remote server restarts while events for it queue up (the
// outbound queue is persisted and delivered, in order, to the new process); forged or broken PDUs
// through /send (bad signature, content changed after signing, failing auth, a sender of another
// server) change nothing they should not; a retried transaction is answered the same and stored once.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, enc } from "../helpers/rooms";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";
import { silentLogger } from "../helpers/server";
import { buildServer, type PortierServer } from "../../src/app";
import { resolve, Tokens } from "../../src/di/tokens";
import { roomVersion } from "../../src/protocol/room-versions";
import { computeEventId } from "../../src/protocol/signing/event-id";
import type { JsonObject } from "../../src/protocol/json";

let a: FederatedServer;
let b: FederatedServer;
/** Every Portier this file started, stopped in afterAll (stop() of a stopped server is harmless). */
const started: PortierServer[] = [];

beforeAll(async () => {
  a = await federatedServer({ registration: { enabled: true } });
  b = await federatedServer({ registration: { enabled: true } });
  started.push(a.server, b.server);
});

afterAll(async () => {
  for (const server of started.reverse()) await server.stop().catch(() => {});
});

const ROOM_VERSION = "10";
const version = roomVersion(ROOM_VERSION)!;

async function timelineBodies(client: TestClient, roomId: string): Promise<string[]> {
  const messages = await client.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=100`);
  return (messages.chunk as { type: string; content: { body?: string } }[])
    .filter((e) => e.type === "m.room.message" && typeof e.content.body === "string")
    .map((e) => e.content.body!)
    .reverse();
}

async function membershipOn(client: TestClient, roomId: string, userId: string): Promise<string | undefined> {
  const r = await client.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);
  return r.status === 200 ? r.body.membership : undefined;
}

/** A user of A creates a public room (room v10), a user of B joins it by alias; both servers agree on the join. */
async function sharedRoom(aliasName: string, aliceName: string, bobName: string): Promise<{ alice: TestClient; bob: TestClient; roomId: string }> {
  const alice = await TestClient.register(a.server, aliceName);
  const bob = await TestClient.register(b.server, bobName);
  const roomId = await alice.createRoom({ preset: "public_chat", room_alias_name: aliasName, room_version: ROOM_VERSION });
  expect((await bob.ok("POST", `/join/${enc(`#${aliasName}:${a.serverName}`)}`, {})).room_id).toBe(roomId);
  await eventually(async () => (await membershipOn(alice, roomId, bob.userId)) === "join", 10_000, "the remote join on A");
  return { alice, bob, roomId };
}

const storeOf = (server: PortierServer) => resolve(server.container, Tokens.RoomEventStore);

/**
 * An unsigned PDU of `sender` in a room A holds, built on A's current forward extremities, with the
 * auth events the rules call for (create, power levels, the sender's membership).
 */
async function pduOnA(roomId: string, sender: string, fields: { type: string; content: JsonObject; state_key?: string }): Promise<JsonObject> {
  const store = storeOf(a.server);
  const prevEvents = await store.forwardExtremities(roomId);
  expect(prevEvents.length).toBeGreaterThan(0);
  const prevs = await Promise.all(prevEvents.map((id) => store.getEvent(id)));
  const depth = Math.max(...prevs.map((e) => e!.depth)) + 1;
  const authEvents: string[] = [];
  for (const [type, key] of [["m.room.create", ""], ["m.room.power_levels", ""], ["m.room.member", sender]] as const) {
    const id = await store.currentStateEvent(roomId, type, key);
    if (id) authEvents.push(id);
  }
  return {
    room_id: roomId,
    sender,
    type: fields.type,
    content: fields.content,
    ...(fields.state_key !== undefined ? { state_key: fields.state_key } : {}),
    origin_server_ts: Date.now(),
    depth,
    prev_events: prevEvents,
    auth_events: authEvents,
  };
}

const signByB = (pdu: JsonObject) => resolve(b.server.container, Tokens.ServerKeys).signEvent(pdu, version);
const signByA = (pdu: JsonObject) => resolve(a.server.container, Tokens.ServerKeys).signEvent(pdu, version);

/** B's signed federation client PUTs a transaction to A's /send; returns A's answer. */
async function sendAsB(pdus: JsonObject[], txnId = `txn-${crypto.randomUUID()}`): Promise<{ pdus: Record<string, { error?: string }> }> {
  const client = resolve(b.server.container, Tokens.FederationClient);
  return (await client.request("PUT", a.serverName, `/_matrix/federation/v1/send/${enc(txnId)}`, {
    body: { origin: b.serverName, origin_server_ts: Date.now(), pdus },
  })) as { pdus: Record<string, { error?: string }> };
}

const unique = (label: string) => `${label} ${crypto.randomUUID().slice(0, 8)}`;

describe("forged and broken PDUs through /send", () => {
  let room: { alice: TestClient; bob: TestClient; roomId: string } | undefined;
  const forgeRoom = async () => (room ??= await sharedRoom("forgery", "alice-f", "bob-f"));

  test("(a) control: a PDU of B's user, correctly signed by B, is accepted and shows in A's timeline", async () => {
    const { alice, bob, roomId } = await forgeRoom();
    const body = unique("signed by B");
    const pdu = signByB(await pduOnA(roomId, bob.userId, { type: "m.room.message", content: { msgtype: "m.text", body } }));
    const eventId = computeEventId(pdu, version);
    const answer = await sendAsB([pdu]);
    expect(answer.pdus[eventId]).toEqual({});
    expect(await timelineBodies(alice, roomId)).toContain(body);
    expect(await storeOf(a.server).forwardExtremities(roomId)).toEqual([eventId]);
  }, 20_000);

  test("(b) a bad signature: the answer names the error, A stores nothing and its extremities stay", async () => {
    const { alice, bob, roomId } = await forgeRoom();
    const body = unique("bad signature");
    const signed = signByB(await pduOnA(roomId, bob.userId, { type: "m.room.message", content: { msgtype: "m.text", body } }));
    const sigs = (signed.signatures as Record<string, Record<string, string>>)[b.serverName];
    const [keyId, sig] = Object.entries(sigs)[0];
    const flipped = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
    const pdu: JsonObject = { ...signed, signatures: { [b.serverName]: { [keyId]: flipped } } };
    const eventId = computeEventId(pdu, version);
    const before = await storeOf(a.server).forwardExtremities(roomId);

    const answer = await sendAsB([pdu]);
    expect(answer.pdus[eventId]?.error).toBeString();
    expect(await storeOf(a.server).getEvent(eventId)).toBeUndefined();
    expect(await storeOf(a.server).forwardExtremities(roomId)).toEqual(before);
    expect(await timelineBodies(alice, roomId)).not.toContain(body);
  }, 20_000);

  test("(c) content changed after signing: the body never shows on A (stored redacted, if at all)", async () => {
    const { alice, bob, roomId } = await forgeRoom();
    const body = unique("original");
    const tampered = unique("tampered");
    const signed = signByB(await pduOnA(roomId, bob.userId, { type: "m.room.message", content: { msgtype: "m.text", body } }));
    const pdu: JsonObject = { ...signed, content: { msgtype: "m.text", body: tampered } };
    const eventId = computeEventId(pdu, version);

    await sendAsB([pdu]);
    const bodies = await timelineBodies(alice, roomId);
    expect(bodies).not.toContain(tampered);
    expect(bodies).not.toContain(body);
    const stored = await storeOf(a.server).getEvent(eventId);
    if (stored) {
      // Redacted per the spec: a message keeps no content.
      expect(JSON.parse(stored.json).content).toEqual({});
      const event = await alice.call("GET", `/rooms/${enc(roomId)}/event/${enc(eventId)}`);
      if (event.status === 200) expect(event.body.content?.body).toBeUndefined();
    }
  }, 20_000);

  test("(d) an event failing auth (B's user, power 0, giving themself 100) changes no state on A", async () => {
    const { alice, bob, roomId } = await forgeRoom();
    const store = storeOf(a.server);
    const plIdBefore = await store.currentStateEvent(roomId, "m.room.power_levels", "");
    const plBefore = await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.power_levels`);
    expect(plBefore.users?.[bob.userId] ?? plBefore.users_default ?? 0).toBe(0);
    const content = { ...plBefore, users: { ...(plBefore.users ?? {}), [bob.userId]: 100 } };
    const pdu = signByB(await pduOnA(roomId, bob.userId, { type: "m.room.power_levels", state_key: "", content }));
    const eventId = computeEventId(pdu, version);

    // Processed, so no error in the answer (as Synapse answers): it is kept, as rejected.
    const answer = await sendAsB([pdu]);
    expect(answer.pdus[eventId]).toEqual({});
    expect(await store.currentStateEvent(roomId, "m.room.power_levels", "")).toBe(plIdBefore!);
    expect(await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.power_levels`)).toEqual(plBefore);
    expect((await store.getEvent(eventId))?.rejectedReason).toBeString();
  }, 20_000);

  test("(e) a PDU of a user of A that A never signed is refused when B sends it: not stored, and the answer says why for its event id", async () => {
    const { alice, roomId } = await forgeRoom();
    const body = unique("not yours");
    const pdu = signByB(await pduOnA(roomId, alice.userId, { type: "m.room.message", content: { msgtype: "m.text", body } }));
    const eventId = computeEventId(pdu, version);

    const answer = await sendAsB([pdu]);
    expect(answer.pdus[eventId]?.error).toBeString();
    expect(await storeOf(a.server).getEvent(eventId)).toBeUndefined();
    expect(await timelineBodies(alice, roomId)).not.toContain(body);
  }, 20_000);

  test("(e') a PDU of another server's user, signed by that server, may be relayed by B (as a resident server relays joins): accepted", async () => {
    const { alice, roomId } = await forgeRoom();
    const body = unique("relayed");
    const pdu = signByA(await pduOnA(roomId, alice.userId, { type: "m.room.message", content: { msgtype: "m.text", body } }));
    const eventId = computeEventId(pdu, version);

    const answer = await sendAsB([pdu]);
    expect(answer.pdus[eventId]).toEqual({});
    expect(await timelineBodies(alice, roomId)).toContain(body);
  }, 20_000);
});

describe("one transaction, several rooms and chains", () => {
  /** A chain of PDUs of `sender` after A's current extremities, each citing the one before. */
  async function chain(roomId: string, sender: string, items: { type: string; content: JsonObject; state_key?: string }[]): Promise<JsonObject[]> {
    const first = await pduOnA(roomId, sender, items[0]!);
    const out: JsonObject[] = [signByB(first)];
    let depth = first.depth as number;
    for (const item of items.slice(1)) {
      const prev = computeEventId(out.at(-1)!, version);
      out.push(signByB({ ...first, type: item.type, content: item.content, ...(item.state_key !== undefined ? { state_key: item.state_key } : {}), depth: ++depth, prev_events: [prev] }));
    }
    return out;
  }

  test("interleaved chains of two rooms, one event failing auth and one forged among them: each room's events land in order, in one batch per room, and only the bad ones are refused", async () => {
    const one = await sharedRoom("batch-one", "alice-b1", "bob-b1");
    const two = await sharedRoom("batch-two", "alice-b2", "bob-b2");
    const tag = unique("batch");
    const pl = await one.alice.ok("GET", `/rooms/${enc(one.roomId)}/state/m.room.power_levels`);
    const first = await chain(one.roomId, one.bob.userId, [
      { type: "m.room.message", content: { msgtype: "m.text", body: `${tag} 1.1` } },
      // Fails auth (power 0 giving itself 100): rejected, yet the events after it still stand.
      { type: "m.room.power_levels", state_key: "", content: { ...pl, users: { ...(pl.users ?? {}), [one.bob.userId]: 100 } } },
      { type: "m.room.message", content: { msgtype: "m.text", body: `${tag} 1.2` } },
      { type: "m.room.message", content: { msgtype: "m.text", body: `${tag} 1.3` } },
    ]);
    const second = await chain(two.roomId, two.bob.userId, [1, 2, 3].map((i) => ({ type: "m.room.message", content: { msgtype: "m.text", body: `${tag} 2.${i}` } })));
    // A forged copy of the last event of room two (content changed, signature kept) as a fourth.
    const forged: JsonObject = { ...second.at(-1)!, content: { msgtype: "m.text", body: `${tag} forged` }, depth: (second.at(-1)!.depth as number) + 1, prev_events: [computeEventId(second.at(-1)!, version)] };
    const pdus = [first[0]!, second[0]!, first[1]!, second[1]!, first[2]!, second[2]!, first[3]!, forged];
    // Watch the receiver: each room's events are to be stored as one batch (one transaction).
    const receiver = resolve(a.server.container, Tokens.PduReceiver);
    const batches: { roomId: string; size: number }[] = [];
    const receiveMany = receiver.receiveMany.bind(receiver);
    receiver.receiveMany = (roomId, items) => {
      batches.push({ roomId, size: items.length });
      return receiveMany(roomId, items);
    };

    const answer = await sendAsB(pdus);
    const ids = pdus.map((p) => computeEventId(p, version));
    // The rejected one was processed (no error; stored as rejected), the forged one dropped.
    expect(answer.pdus[ids[7]!]?.error).toBeString();
    for (const i of [0, 1, 2, 3, 4, 5, 6]) expect(answer.pdus[ids[i]!]).toEqual({});
    expect((await storeOf(a.server).getEvent(ids[2]!))?.rejectedReason).toBeString();
    receiver.receiveMany = receiveMany;
    expect(batches.sort((x, y) => (x.roomId < y.roomId ? -1 : 1))).toEqual([{ roomId: one.roomId, size: 4 }, { roomId: two.roomId, size: 4 }].sort((x, y) => (x.roomId < y.roomId ? -1 : 1)));

    expect((await timelineBodies(one.alice, one.roomId)).filter((b) => b.startsWith(tag))).toEqual([`${tag} 1.1`, `${tag} 1.2`, `${tag} 1.3`]);
    // The batch notified A's member of each of its three messages (one commit for all three).
    expect((await resolve(a.server.container, Tokens.Notifications).unreadCounts(one.alice.userId, one.roomId)).notification_count).toBe(3);
    expect((await timelineBodies(two.alice, two.roomId)).filter((b) => b.startsWith(tag))).toEqual([`${tag} 2.1`, `${tag} 2.2`, `${tag} 2.3`]);
    const extremities = await storeOf(a.server).forwardExtremities(one.roomId);
    expect(extremities).toContain(ids[6]!);
    expect(extremities).not.toContain(ids[2]!);
    expect((await one.alice.ok("GET", `/rooms/${enc(one.roomId)}/state/m.room.power_levels`)).users?.[one.bob.userId]).toBeUndefined();
  }, 30_000);
});

describe("retried transactions", () => {
  test("the same txnId again gets the same answer and stores nothing twice; the same PDU under a new txnId neither", async () => {
    const { alice, bob, roomId } = await sharedRoom("retries", "alice-r", "bob-r");
    const body = unique("once only");
    const pdu = signByB(await pduOnA(roomId, bob.userId, { type: "m.room.message", content: { msgtype: "m.text", body } }));
    const eventId = computeEventId(pdu, version);
    const txnId = `retry-${crypto.randomUUID()}`;

    const first = await sendAsB([pdu], txnId);
    expect(first.pdus[eventId]).toEqual({});
    const extremities = await storeOf(a.server).forwardExtremities(roomId);
    expect(extremities).toEqual([eventId]);
    const ordering = (await storeOf(a.server).getEvent(eventId))!.streamOrdering;

    const second = await sendAsB([pdu], txnId);
    expect(second).toEqual(first);
    const third = await sendAsB([pdu], `other-${crypto.randomUUID()}`);
    expect(third.pdus[eventId]?.error).toBeUndefined();

    expect((await timelineBodies(alice, roomId)).filter((x) => x === body)).toHaveLength(1);
    expect(await storeOf(a.server).forwardExtremities(roomId)).toEqual(extremities);
    expect((await storeOf(a.server).getEvent(eventId))!.streamOrdering).toBe(ordering);
  }, 20_000);

  test("after A restarts, a retried transaction gets its first answer from the record, not a new processing", async () => {
    const { bob, roomId } = await sharedRoom("retries-restart", "alice-rr", "bob-rr");
    const good = signByB(await pduOnA(roomId, bob.userId, { type: "m.room.message", content: { msgtype: "m.text", body: unique("kept") } }));
    const signed = signByB(await pduOnA(roomId, bob.userId, { type: "m.room.message", content: { msgtype: "m.text", body: unique("forged") } }));
    const [keyId, sig] = Object.entries((signed.signatures as Record<string, Record<string, string>>)[b.serverName])[0];
    const forged: JsonObject = { ...signed, signatures: { [b.serverName]: { [keyId]: (sig[0] === "A" ? "B" : "A") + sig.slice(1) } } };
    const txnId = `restart-${crypto.randomUUID()}`;
    const first = await sendAsB([good, forged], txnId);
    expect(first.pdus[computeEventId(good, version)]).toEqual({});
    expect(first.pdus[computeEventId(forged, version)]?.error).toBeString();

    const config = a.server.config;
    await a.server.stop();
    const server = await buildServer(config, { logger: silentLogger });
    started.push(server);
    await server.start();
    a = { server, serverName: a.serverName, url: a.url };

    // Memory is gone: the same txnId, even with other PDUs (which no real server sends), is answered
    // from the record; a new txnId with those PDUs is processed.
    expect(await sendAsB([], txnId)).toEqual(first);
    expect(await sendAsB([], `fresh-${crypto.randomUUID()}`)).toEqual({ pdus: {} });
  }, 30_000);
});

describe("a remote server restarts", () => {
  test("messages sent while B was down reach the new B process, in order", async () => {
    const { alice, bob, roomId } = await sharedRoom("restart", "alice-s", "bob-s");
    await alice.send(roomId, { msgtype: "m.text", body: "before the restart" });
    await eventually(async () => (await timelineBodies(bob, roomId)).includes("before the restart"), 10_000, "the first message on B");

    const config = b.server.config;
    await b.server.stop();
    const whileDown = Array.from({ length: 5 }, (_, i) => `while B was down ${i}`);
    for (const body of whileDown) await alice.send(roomId, { msgtype: "m.text", body });
    // A tried, failed, and is backing off for B: delivery below is the outbound queue's retry.
    const sender = resolve(a.server.container, Tokens.FederationSender);
    await eventually(async () => sender.backingOff().some((d) => d.destination === b.serverName), 10_000, "A backing off for B");

    // A new process over the same data_dir, server name, port, signing key and certificate.
    const server = await buildServer(config, { logger: silentLogger });
    started.push(server);
    await server.start();
    b = { server, serverName: b.serverName, url: b.url };
    const bobAgain = new TestClient(server, bob.userId, bob.deviceId, bob.token);
    // B sends nothing to A by itself; bob's message is an inbound request to A, whose markReachable
    // retries B at once rather than after the (2 s, 4 s, ...) backoff.
    await bobAgain.send(roomId, { msgtype: "m.text", body: "bob is back" });

    const onB = await eventually(async () => {
      const bodies = await timelineBodies(bobAgain, roomId);
      return whileDown.every((x) => bodies.includes(x)) && bodies;
    }, 10_000, "the queued messages on B");
    expect(onB.filter((x) => x.startsWith("while B was down"))).toEqual(whileDown);
    expect(onB.indexOf("before the restart")).toBeLessThan(onB.indexOf(whileDown[0]));
    await eventually(async () => (await timelineBodies(alice, roomId)).includes("bob is back"), 10_000, "bob's message on A");
  }, 20_000);
});
