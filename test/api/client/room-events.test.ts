import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { testServer } from "../../helpers/server";
import { R0, TestClient, enc } from "../../helpers/rooms";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "events.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice", "ALICEPHONE");
  bob = await TestClient.register(server, "bob");
  carol = await TestClient.register(server, "carol");
});
afterAll(() => server.stop());

const streamPosition = () => resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering();

async function publicRoom(...joiners: TestClient[]) {
  const roomId = await alice.createRoom({ preset: "public_chat" });
  for (const c of joiners) await c.ok("POST", `/join/${enc(roomId)}`, {});
  return roomId;
}

describe("PUT /send", () => {
  test("sends a message; the same txnId returns the same event and stores nothing new; other devices get their own", async () => {
    const roomId = await publicRoom(bob);
    const path = `/rooms/${enc(roomId)}/send/m.room.message/txn1`;
    const first = await alice.ok("PUT", path, { msgtype: "m.text", body: "hello" });
    expect(first.event_id).toMatch(/^\$/);
    const before = await streamPosition();
    expect(await alice.ok("PUT", path, { msgtype: "m.text", body: "hello" })).toEqual(first);
    expect(await alice.ok("PUT", `${R0}/rooms/${enc(roomId)}/send/m.room.message/txn1`, { msgtype: "m.text", body: "hello" })).toEqual(first);
    expect(await streamPosition()).toBe(before);
    // Concurrent retries of one txnId still make one event.
    const [a, b] = await Promise.all([alice.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/txn2`, { body: "x" }), alice.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/txn2`, { body: "x" })]);
    expect(a.event_id).toBe(b.event_id);
    const otherDevice = await alice.login("TABLET");
    const third = await otherDevice.ok("PUT", path, { msgtype: "m.text", body: "hello" });
    expect(third.event_id).not.toBe(first.event_id);
    const bobs = await bob.ok("PUT", path, { msgtype: "m.text", body: "hello" });
    expect(bobs.event_id).not.toBe(first.event_id);
  });

  test("non-members, unknown rooms, low power and bad bodies are refused without storing anything", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", power_level_content_override: { events: { "org.example.loud": 50 } } });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const before = await streamPosition();
    expect((await carol.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t`, { body: "x" }, 403, "M_FORBIDDEN")).error).toBe("You are not in this room");
    expect((await bob.fails("PUT", `/rooms/${enc(roomId)}/send/org.example.loud/t`, {}, 403, "M_FORBIDDEN")).error).toBe("You do not have permission to send org.example.loud events in this room");
    await alice.fails("PUT", `/rooms/${enc("!missing:events.example")}/send/m.room.message/t`, { body: "x" }, 404, "M_NOT_FOUND");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t2`, [1, 2], 400, "M_BAD_JSON");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t3`, "{bad", 400, "M_NOT_JSON");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t4`, { body: "x".repeat(70000) }, 413, "M_TOO_LARGE");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.redaction/t5`, { redacts: "$x" }, 400, "M_BAD_JSON");
    expect(await streamPosition()).toBe(before);
    // A refused txnId is not remembered: the retry after joining goes through.
    await carol.ok("POST", `/join/${enc(roomId)}`, {});
    await carol.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t`, { body: "x" });
  });

  test("POST /send/{eventType} without a transaction id: each request a new event; refusals as for PUT", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const path = `/_matrix/client/r0/rooms/${enc(roomId)}/send/m.room.message`;
    const first = await alice.call("POST", path, { msgtype: "m.text", body: "old style" });
    const second = await alice.call("POST", path, { msgtype: "m.text", body: "old style" });
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(first.body.event_id).not.toBe(second.body.event_id);
    expect((await alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(first.body.event_id)}`)).content.body).toBe("old style");
    const before = await streamPosition();
    expect((await carol.call("POST", path, { body: "x" })).body.errcode).toBe("M_FORBIDDEN");
    expect(await streamPosition()).toBe(before);
  });
});

describe("client event format and GET /event", () => {
  test("the sender's device sees its transaction_id; others do not; age and all fields are there", async () => {
    const roomId = await publicRoom(bob);
    const { event_id } = await alice.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/mine`, { msgtype: "m.text", body: "hi" });
    const own = await alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(event_id)}`);
    expect(own).toMatchObject({ event_id, room_id: roomId, sender: alice.userId, type: "m.room.message", content: { msgtype: "m.text", body: "hi" } });
    expect(own.unsigned.transaction_id).toBe("mine");
    expect(typeof own.unsigned.age).toBe("number");
    expect(typeof own.origin_server_ts).toBe("number");
    for (const key of ["hashes", "signatures", "auth_events", "prev_events", "depth", "origin"]) expect(own[key]).toBeUndefined();
    const seenByBob = await bob.ok("GET", `/rooms/${enc(roomId)}/event/${enc(event_id)}`);
    expect(seenByBob.unsigned.transaction_id).toBeUndefined();
    const otherDevice = await alice.login("LAPTOP");
    expect((await otherDevice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(event_id)}`)).unsigned.transaction_id).toBeUndefined();
  });

  test("a redaction's sender's device sees the redaction's transaction_id too", async () => {
    const roomId = await publicRoom(bob);
    const { event_id: target } = await alice.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/before-redact`, { msgtype: "m.text", body: "oops" });
    const { event_id } = await alice.ok("PUT", `/rooms/${enc(roomId)}/redact/${enc(target)}/redact-txn`, { reason: "typo" });
    expect((await alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(event_id)}`)).unsigned.transaction_id).toBe("redact-txn");
    expect((await bob.ok("GET", `/rooms/${enc(roomId)}/event/${enc(event_id)}`)).unsigned.transaction_id).toBeUndefined();
  });

  test("state events carry prev_content, replaces_state and prev_sender", async () => {
    const roomId = await publicRoom();
    const first = await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: "one" });
    const second = await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: "two" });
    const event = await alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(second.event_id)}`);
    expect(event.state_key).toBe("");
    expect(event.unsigned).toMatchObject({ prev_content: { topic: "one" }, replaces_state: first.event_id, prev_sender: alice.userId });
  });

  test("unknown events, events of another room and events a user may not see are 404", async () => {
    const roomId = await publicRoom(bob);
    const other = await alice.createRoom();
    const eventId = await alice.send(other);
    await alice.fails("GET", `/rooms/${enc(roomId)}/event/${enc("$nope")}`, undefined, 404, "M_NOT_FOUND");
    await alice.fails("GET", `/rooms/${enc(roomId)}/event/${enc(eventId)}`, undefined, 404, "M_NOT_FOUND");
    await bob.fails("GET", `/rooms/${enc(other)}/event/${enc(eventId)}`, undefined, 404, "M_NOT_FOUND");
  });

  test("history visibility: joined-only history is hidden from later joiners; shared history stops at a leave", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", initial_state: [{ type: "m.room.history_visibility", content: { history_visibility: "joined" } }] });
    const early = await alice.send(roomId);
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const late = await alice.send(roomId);
    await bob.fails("GET", `/rooms/${enc(roomId)}/event/${enc(early)}`, undefined, 404, "M_NOT_FOUND");
    await bob.ok("GET", `/rooms/${enc(roomId)}/event/${enc(late)}`);

    const shared = await publicRoom();
    const before = await alice.send(shared);
    await carol.ok("POST", `/join/${enc(shared)}`, {});
    await carol.ok("GET", `/rooms/${enc(shared)}/event/${enc(before)}`);
    await carol.ok("POST", `/rooms/${enc(shared)}/leave`, {});
    const after = await alice.send(shared);
    await carol.ok("GET", `/rooms/${enc(shared)}/event/${enc(before)}`);
    await carol.fails("GET", `/rooms/${enc(shared)}/event/${enc(after)}`, undefined, 404, "M_NOT_FOUND");
  });
});

describe("PUT /redact", () => {
  test("the sender redacts their own event; it is then served pruned with redacted_because; txnIds are idempotent", async () => {
    const roomId = await publicRoom(bob);
    const eventId = await bob.send(roomId, { msgtype: "m.text", body: "oops" });
    const path = `/rooms/${enc(roomId)}/redact/${enc(eventId)}/r1`;
    const { event_id: redactionId } = await bob.ok("PUT", path, { reason: "typo" });
    expect(await bob.ok("PUT", path, { reason: "typo" })).toEqual({ event_id: redactionId });
    const redacted = await alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(eventId)}`);
    expect(redacted.content).toEqual({});
    expect(redacted.unsigned.redacted_because).toMatchObject({ event_id: redactionId, type: "m.room.redaction", sender: bob.userId, content: { reason: "typo" } });
    expect(redacted.unsigned.redacted_by).toBe(redactionId);
    const redaction = await alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(redactionId)}`);
    expect(redaction.redacts).toBe(eventId); // v10 room: top-level redacts
  });

  test("others need the redact level; unknown events are 404; the room's version decides where redacts lives", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", room_version: "11" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const aliceEvent = await alice.send(roomId);
    const before = await streamPosition();
    const refused = await bob.fails("PUT", `/rooms/${enc(roomId)}/redact/${enc(aliceEvent)}/r`, {}, 403, "M_FORBIDDEN");
    expect(refused.error).toContain("permission to redact");
    await bob.fails("PUT", `/rooms/${enc(roomId)}/redact/${enc("$unknown")}/r2`, {}, 404, "M_NOT_FOUND");
    await carol.fails("PUT", `/rooms/${enc(roomId)}/redact/${enc(aliceEvent)}/r3`, {}, 404, "M_NOT_FOUND");
    await bob.fails("PUT", `/rooms/${enc(roomId)}/redact/${enc(aliceEvent)}/r4`, { reason: 3 }, 400, "M_BAD_JSON");
    expect(await streamPosition()).toBe(before);
    // An event of another room the requester can see: 400, nothing stored.
    const other = await publicRoom(bob);
    const elsewhere = await bob.send(other, { msgtype: "m.text", body: "elsewhere" });
    const beforeElsewhere = await streamPosition();
    await bob.fails("PUT", `/rooms/${enc(roomId)}/redact/${enc(elsewhere)}/r5`, {}, 400, "M_INVALID_PARAM");
    // Also one of a room the requester is not in (as Synapse; sytest's "disallows redaction of event in different room").
    const carolsRoom = await carol.createRoom({ preset: "private_chat" });
    const carolsEvent = await carol.send(carolsRoom, { msgtype: "m.text", body: "mine" });
    const beforeUnseen = await streamPosition();
    await alice.fails("PUT", `/rooms/${enc(roomId)}/redact/${enc(carolsEvent)}/r6`, {}, 400, "M_INVALID_PARAM");
    expect(await streamPosition()).toBe(beforeUnseen);
    const bobEvent = await bob.send(roomId, { msgtype: "m.text", body: "bad" });
    const { event_id } = await alice.ok("PUT", `/rooms/${enc(roomId)}/redact/${enc(bobEvent)}/mod`, {});
    const redaction = await bob.ok("GET", `/rooms/${enc(roomId)}/event/${enc(event_id)}`);
    expect(redaction.content).toEqual({ redacts: bobEvent });
    expect((await bob.ok("GET", `/rooms/${enc(roomId)}/event/${enc(bobEvent)}`)).unsigned.redacted_because.event_id).toBe(event_id);
  });

  test("a redacted state event keeps only the keys the redaction algorithm keeps", async () => {
    const roomId = await publicRoom();
    const { event_id } = await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.join_rules`, { join_rule: "public", extra: "gone" });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/redact/${enc(event_id)}/jr`, {});
    expect(await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.join_rules/`)).toEqual({ join_rule: "public" });
  });
});

describe("room state", () => {
  test("PUT sets state (empty and non-empty keys); GET reads one (content or ?format=event) or all", async () => {
    const roomId = await publicRoom(bob);
    const { event_id } = await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.name`, { name: "Room" });
    expect(await bob.ok("GET", `/rooms/${enc(roomId)}/state/m.room.name`)).toEqual({ name: "Room" });
    expect(await bob.ok("GET", `/rooms/${enc(roomId)}/state/m.room.name/`)).toEqual({ name: "Room" });
    // Not checked by expectMatchesSpec: the spec's oneOf (any object | ClientEvent) matches a full event twice.
    const full = (await bob.call("GET", `/rooms/${enc(roomId)}/state/m.room.name?format=event`)).body;
    expect(full).toMatchObject({ event_id, type: "m.room.name", state_key: "", content: { name: "Room" } });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/org.example.thing/${enc("a/b")}`, { v: 1 });
    expect(await bob.ok("GET", `/rooms/${enc(roomId)}/state/org.example.thing/${enc("a/b")}`)).toEqual({ v: 1 });
    const all = await bob.ok("GET", `${R0}/rooms/${enc(roomId)}/state`);
    const types = all.map((e: any) => `${e.type}|${e.state_key}`);
    expect(types).toContain("m.room.create|");
    expect(types).toContain("org.example.thing|a/b");
    expect(types).toContain(`m.room.member|${bob.userId}`);
    // Setting the same content again sends nothing new.
    const before = await streamPosition();
    expect(await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.name`, { name: "Room" })).toEqual({ event_id });
    expect(await streamPosition()).toBe(before);
  });

  test("errors: missing state is 404, non-members 403, low power 403, bad format 400, non-object content 400", async () => {
    const roomId = await publicRoom(bob);
    await bob.fails("GET", `/rooms/${enc(roomId)}/state/m.room.topic`, undefined, 404, "M_NOT_FOUND");
    await carol.fails("GET", `/rooms/${enc(roomId)}/state`, undefined, 403, "M_FORBIDDEN");
    await carol.fails("GET", `/rooms/${enc(roomId)}/state/m.room.create`, undefined, 403, "M_FORBIDDEN");
    await carol.fails("GET", `/rooms/${enc("!none:events.example")}/state`, undefined, 404, "M_NOT_FOUND");
    const before = await streamPosition();
    expect((await bob.fails("PUT", `/rooms/${enc(roomId)}/state/m.room.name`, { name: "mine" }, 403, "M_FORBIDDEN")).error).toBe("You do not have permission to send m.room.name events in this room");
    expect((await carol.fails("PUT", `/rooms/${enc(roomId)}/state/m.room.name`, { name: "mine" }, 403, "M_FORBIDDEN")).error).toBe("You are not in this room");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/state/m.room.name`, "just text", 400, "M_NOT_JSON");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/state/m.room.name`, 5, 400, "M_BAD_JSON");
    await bob.fails("GET", `/rooms/${enc(roomId)}/state/m.room.create?format=xml`, undefined, 400, "M_INVALID_PARAM");
    expect(await streamPosition()).toBe(before);
  });

  test("a user who left reads the state as it was when they left", async () => {
    const roomId = await publicRoom(carol);
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: "before" });
    await carol.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: "after" });
    expect(await carol.ok("GET", `/rooms/${enc(roomId)}/state/m.room.topic`)).toEqual({ topic: "before" });
    const state = await carol.ok("GET", `/rooms/${enc(roomId)}/state`);
    expect(state.find((e: any) => e.type === "m.room.member" && e.state_key === carol.userId).content.membership).toBe("leave");
  });
});
