// The pieces under the client room endpoints: atomic room creation, tokens, filters, client format.
import { describe, expect, test } from "bun:test";
import { createRoom } from "../../src/services/rooms/room-creation";
import { clientEventFromPdu } from "../../src/services/rooms/client-events";
import { parseStreamToken, streamToken } from "../../src/services/rooms/stream-token";
import { filterAllows, parseRoomEventFilter } from "../../src/services/rooms/room-event-filter";
import { roomVersion } from "../../src/protocol/room-versions";
import type { StoredEvent } from "../../src/storage/stores";
import type { JsonObject } from "../../src/protocol/json";
import { testEngine } from "../helpers/room-engine";
import { testDatabases } from "../helpers/databases";

const ALICE = "@alice:example.org";

describe.each(testDatabases.map((d) => d.name))("atomic createRoom on %s", (database) => {
  test("a refused initial event rolls the whole room back and tells no listener", async () => {
    const { engine, store } = await testEngine("example.org", database);
    const seen: string[] = [];
    engine.onEvent((_room, stored) => {
      seen.push(stored.eventId);
    });
    await expect(createRoom(engine, { creator: ALICE, powerLevelContentOverride: { users: {}, users_default: 0 } })).rejects.toMatchObject({ errcode: "M_INVALID_ROOM_STATE" });
    expect(await store.maxStreamOrdering()).toBe(0);
    expect(seen).toEqual([]);
    // The store is still usable, with no stale snapshot state: a good room is created after.
    const roomId = await createRoom(engine, { creator: ALICE, name: "ok" });
    expect(await store.currentStateEvent(roomId, "m.room.name", "")).toBeDefined();
    expect(seen.length).toBe(await store.maxStreamOrdering());
  });

  test("roomEventsBackwards pages newest first within (after, before]", async () => {
    const { engine, store } = await testEngine("example.org", database);
    const roomId = await createRoom(engine, { creator: ALICE });
    const max = await store.maxStreamOrdering();
    const page = await store.roomEventsBackwards(roomId, max, 1, 3);
    expect(page.map((e) => e.streamOrdering)).toEqual([max, max - 1, max - 2]);
    expect((await store.roomEventsBackwards(roomId, 2, 0, 10)).map((e) => e.streamOrdering)).toEqual([2, 1]);
  });
});

describe("stream tokens", () => {
  test("round trip; anything else is M_INVALID_PARAM", () => {
    expect(parseStreamToken(streamToken(42))).toBe(42);
    // Below zero: history fetched from other servers (backfill).
    expect(streamToken(-3)).toBe("s-3");
    expect(parseStreamToken(streamToken(-3))).toBe(-3);
    for (const bad of ["", "42", "s", "s-", "s--1", "s+1", "t42", "s1e5", "s99999999999999999"]) expect(() => parseStreamToken(bad)).toThrow();
  });
});

describe("room event filters", () => {
  const event = (type: string, sender = ALICE) => ({ type, sender }) as StoredEvent;
  test("types with wildcards, not_types over types, senders, contains_url", () => {
    const f = parseRoomEventFilter(JSON.stringify({ types: ["m.room.*"], not_types: ["m.room.member"], not_senders: ["@spam:x"] }));
    expect(filterAllows(f, event("m.room.message"), () => ({}))).toBe(true);
    expect(filterAllows(f, event("m.room.member"), () => ({}))).toBe(false);
    expect(filterAllows(f, event("m.reaction"), () => ({}))).toBe(false);
    expect(filterAllows(f, event("m.room.message", "@spam:x"), () => ({}))).toBe(false);
    const urls = parseRoomEventFilter(JSON.stringify({ contains_url: true }));
    expect(filterAllows(urls, event("m.room.message"), () => ({ url: "mxc://a/b" }))).toBe(true);
    expect(filterAllows(urls, event("m.room.message"), () => ({}))).toBe(false);
    expect(parseRoomEventFilter(undefined)).toEqual({});
    for (const bad of ["[]", "{", '{"senders":[1]}', '{"limit":0}', '{"contains_url":"yes"}']) expect(() => parseRoomEventFilter(bad)).toThrow();
  });
});

describe("clientEventFromPdu", () => {
  const stored = { eventId: "$e", roomId: "!r:x", sender: ALICE, type: "m.room.member", stateKey: ALICE, originServerTs: 1000 } as StoredEvent;
  const pdu: JsonObject = { type: "m.room.member", state_key: ALICE, sender: ALICE, room_id: "!r:x", content: { membership: "join", displayname: "A" }, origin: "x", depth: 3, hashes: { sha256: "h" }, signatures: {}, prev_events: [], auth_events: [], origin_server_ts: 1000 };

  test("drops federation fields, computes age, carries transaction_id and prev_content", () => {
    const event = clientEventFromPdu(pdu, stored, roomVersion("10")!, { now: 1500, transactionId: "t1", replacedState: { eventId: "$p", content: { membership: "invite" }, sender: "@b:x" } });
    expect(event).toEqual({
      content: { membership: "join", displayname: "A" },
      event_id: "$e",
      origin_server_ts: 1000,
      room_id: "!r:x",
      sender: ALICE,
      type: "m.room.member",
      state_key: ALICE,
      unsigned: { age: 500, transaction_id: "t1", replaces_state: "$p", prev_content: { membership: "invite" }, prev_sender: "@b:x" },
    });
  });

  test("a redacted event is pruned by its room version and names the redaction", () => {
    const because = { content: {}, event_id: "$red", origin_server_ts: 1200, room_id: "!r:x", sender: ALICE, type: "m.room.redaction" };
    const event = clientEventFromPdu(pdu, stored, roomVersion("10")!, { now: 1500, redactedBecause: because });
    expect(event.content).toEqual({ membership: "join" });
    expect(event.unsigned).toEqual({ age: 500, redacted_because: because, redacted_by: "$red" });
  });
});
