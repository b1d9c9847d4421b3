import { describe, expect, test } from "bun:test";
import { createRoom } from "../../src/services/rooms/room-creation";
import { ROOM_VERSIONS, roomVersion } from "../../src/protocol/room-versions";
import { computeEventId } from "../../src/protocol/signing/event-id";
import { verifyEventSignatures } from "../../src/protocol/signing/event-signatures";
import { checkContentHash } from "../../src/protocol/signing/hashes";
import { MatrixError } from "../../src/protocol/errors";
import type { JsonObject } from "../../src/protocol/json";
import { testEngine } from "../helpers/room-engine";
import { BULK_EVENTS } from "../../src/services/rooms/room-engine";
import { testDatabases } from "../helpers/databases";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";

const stateTypes = (state: Map<string, string>) => [...state.keys()].map((k) => k.replace("\u0000", "|")).sort();

describe.each([...ROOM_VERSIONS.keys()])("room version %s", (versionId) => {
  test("createRoom builds the spec's events in order, each signed, hashed and authorized", async () => {
    const { engine, store, signer } = await testEngine();
    const roomId = await createRoom(engine, {
      creator: ALICE,
      roomVersion: versionId,
      preset: "public_chat",
      name: "Lobby",
      topic: "Hello ✓",
      canonicalAlias: "#lobby:example.org",
      initialState: [{ type: "m.room.history_visibility", content: { history_visibility: "world_readable" } }],
      creatorProfile: { displayname: "Alice" },
    });
    const version = roomVersion(versionId)!;
    if (version.roomIdFromCreateEvent) expect(roomId).toMatch(/^![A-Za-z0-9_-]{43}$/);
    else expect(roomId).toMatch(/^![A-Za-z0-9]+:example\.org$/);

    const timeline = await store.roomEventsBetween(roomId, 0, Number.MAX_SAFE_INTEGER, 100);
    expect(timeline.map((e) => `${e.type}|${e.stateKey}`)).toEqual([
      "m.room.create|",
      `m.room.member|${ALICE}`,
      "m.room.power_levels|",
      "m.room.canonical_alias|",
      "m.room.join_rules|",
      "m.room.guest_access|",
      "m.room.history_visibility|",
      "m.room.name|",
      "m.room.topic|",
    ]);
    for (const [i, stored] of timeline.entries()) {
      const pdu = JSON.parse(stored.json) as JsonObject;
      expect(computeEventId(pdu, version)).toBe(stored.eventId);
      expect(checkContentHash(pdu, version).valid).toBe(true);
      expect(verifyEventSignatures(pdu, version, (server, keyId) => (server === "example.org" && keyId === signer.keyId ? signer.publicKey : undefined)).valid).toBe(true);
      expect(stored.depth).toBe(i + 1);
      if (i > 0) expect(stored.prevEvents).toEqual([timeline[i - 1].eventId]);
      if (version.roomIdFromCreateEvent && i === 0) expect(pdu.room_id).toBeUndefined();
      if (version.roomIdFromCreateEvent && i > 0) expect(stored.authEvents).not.toContain(timeline[0].eventId);
    }
    const create = JSON.parse(timeline[0].json);
    expect(create.content.room_version).toBe(versionId);
    expect("creator" in create.content).toBe(!version.createUsesSender);
    const pl = JSON.parse(timeline[2].json).content;
    expect(ALICE in pl.users).toBe(!version.privilegedCreators);
    expect(JSON.parse(timeline[4].json).content.join_rule).toBe("public");
    expect(JSON.parse(timeline[6].json).content.history_visibility).toBe("world_readable");
    expect(JSON.parse(timeline[1].json).content).toEqual({ membership: "join", displayname: "Alice" });
    expect(await store.forwardExtremities(roomId)).toEqual([timeline[8].eventId]);
    expect(stateTypes(await store.currentState(roomId))).toEqual([
      "m.room.canonical_alias|",
      "m.room.create|",
      "m.room.guest_access|",
      "m.room.history_visibility|",
      "m.room.join_rules|",
      `m.room.member|${ALICE}`,
      "m.room.name|",
      "m.room.power_levels|",
      "m.room.topic|",
    ]);
  });
});

describe.each(testDatabases.map((d) => [d.name] as const))("local events on %s", (database) => {
  /** The stored event that holds a piece of current state, parsed. */
  const currentPdu = async (store: Awaited<ReturnType<typeof testEngine>>["store"], roomId: string, type: string, stateKey: string) =>
    JSON.parse((await store.getEvent((await store.currentStateEvent(roomId, type, stateKey))!))!.json);
  const describeAuth = async (store: Awaited<ReturnType<typeof testEngine>>["store"], ids: readonly string[]) => {
    const out: string[] = [];
    for (const id of ids) {
      const e = (await store.getEvent(id))!;
      out.push(`${e.type}|${e.stateKey}`);
    }
    return out.sort();
  };

  test("auth events follow the selection rules; a join needs the join rules", async () => {
    const { engine, store } = await testEngine("example.org", database);
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "10", preset: "public_chat" });
    const join = await engine.sendEvent(roomId, { type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } });
    expect(await describeAuth(store, join.stored.authEvents)).toEqual(["m.room.create|", "m.room.join_rules|", "m.room.power_levels|"]);
    const msg = await engine.sendEvent(roomId, { type: "m.room.message", sender: BOB, content: { msgtype: "m.text", body: "hi" } });
    expect(await describeAuth(store, msg.stored.authEvents)).toEqual(["m.room.create|", `m.room.member|${BOB}`, "m.room.power_levels|"]);
  });

  test("an event the rules refuse is M_FORBIDDEN and stores nothing", async () => {
    const { engine, store } = await testEngine("example.org", database);
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "10", preset: "private_chat" });
    const before = await store.maxStreamOrdering();
    const extremities = await store.forwardExtremities(roomId);
    const attempt = engine.sendEvent(roomId, { type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } });
    await expect(attempt).rejects.toBeInstanceOf(MatrixError);
    await expect(attempt).rejects.toMatchObject({ errcode: "M_FORBIDDEN" });
    expect(await store.maxStreamOrdering()).toBe(before);
    expect(await store.forwardExtremities(roomId)).toEqual(extremities);
    expect(await store.currentStateEvent(roomId, "m.room.member", BOB)).toBeUndefined();
  });

  test("concurrent sends to one room stay linear (no forks)", async () => {
    const { engine, store } = await testEngine("example.org", database);
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "10" });
    await Promise.all(Array.from({ length: 20 }, (_, i) => engine.sendEvent(roomId, { type: "m.room.message", sender: ALICE, content: { body: `${i}` } })));
    expect(await store.forwardExtremities(roomId)).toHaveLength(1);
    const timeline = await store.roomEventsBetween(roomId, 0, Number.MAX_SAFE_INTEGER, 100);
    expect(timeline).toHaveLength(6 + 20); // create, join, power levels, join rules, history visibility, guest access; the messages
    for (let i = 1; i < timeline.length; i++) expect(timeline[i].prevEvents).toEqual([timeline[i - 1].eventId]);
  });

  test("unknown room is M_NOT_FOUND; unknown version is M_UNSUPPORTED_ROOM_VERSION", async () => {
    const { engine } = await testEngine("example.org", database);
    await expect(engine.sendEvent("!nope:example.org", { type: "m.room.message", sender: ALICE, content: {} })).rejects.toMatchObject({ errcode: "M_NOT_FOUND" });
    await expect(createRoom(engine, { creator: ALICE, roomVersion: "99" })).rejects.toMatchObject({ errcode: "M_UNSUPPORTED_ROOM_VERSION" });
  });

  test("listeners hear of an event only once it is committed", async () => {
    const { engine, store, stores } = await testEngine("example.org", database);
    const heard: { eventId: string; inTransaction: boolean; readable: boolean }[] = [];
    engine.onEvent(async (_roomId, stored) => {
      heard.push({ eventId: stored.eventId, inTransaction: stores.db.inTransaction(), readable: (await store.getEvent(stored.eventId)) !== undefined });
    });
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "10" });
    const sent = await engine.sendEvent(roomId, { type: "m.room.message", sender: ALICE, content: { body: "hi" } });
    expect(heard).toHaveLength(7);
    expect(heard.at(-1)!.eventId).toBe(sent.eventId);
    for (const h of heard) expect(h).toMatchObject({ inTransaction: false, readable: true });
  });

  test("a listener that throws after the commit is isolated: the send succeeds, later listeners still hear", async () => {
    const { engine, store } = await testEngine("example.org", database);
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "10" });
    const heard: string[] = [];
    engine.onEvent(() => {
      throw new Error("a plugin listener blew up");
    });
    engine.onEvent(async () => {
      await Promise.reject(new Error("and an async one"));
    });
    engine.onEvent((_roomId, stored) => void heard.push(stored.eventId));
    const sent = await engine.sendEvent(roomId, { type: "m.room.message", sender: ALICE, content: { body: "still sent" } });
    expect(await store.getEvent(sent.eventId)).toBeDefined();
    expect(heard).toEqual([sent.eventId]);
  });

  test("recordWith runs in the event's transaction: when it fails, the event is not stored or announced", async () => {
    const { engine, store, stores } = await testEngine("example.org", database);
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "10" });
    const heard: string[] = [];
    engine.onEvent((_roomId, stored) => {
      heard.push(stored.eventId);
    });
    const before = await store.maxStreamOrdering();
    let recorded: { eventId: string; inTransaction: boolean } | undefined;
    const failing = engine.sendEvent(roomId, {
      type: "m.room.message",
      sender: ALICE,
      content: { body: "lost" },
      recordWith: async (eventId) => {
        recorded = { eventId, inTransaction: stores.db.inTransaction() };
        throw new Error("disk full");
      },
    });
    await expect(failing).rejects.toThrow("disk full");
    expect(recorded?.inTransaction).toBe(true);
    expect(await store.getEvent(recorded!.eventId)).toBeUndefined();
    expect(await engine.parsedEvent(recorded!.eventId)).toBeUndefined();
    expect(await store.maxStreamOrdering()).toBe(before);
    expect(heard).toEqual([]);

    const ok = await engine.sendEvent(roomId, { type: "m.room.message", sender: ALICE, content: { body: "kept" }, recordWith: async () => {} });
    expect(heard).toEqual([ok.eventId]);
    expect(await store.forwardExtremities(roomId)).toEqual([ok.eventId]);
  });

  test("rooms created at the same time each announce their own events, after their own commit", async () => {
    const { engine, store } = await testEngine("example.org", database);
    const heard = new Map<string, string[]>();
    engine.onEvent(async (roomId, stored) => {
      expect(stored.roomId).toBe(roomId);
      // A listener that awaits lets the other creations run meanwhile.
      await Promise.resolve();
      heard.set(roomId, [...(heard.get(roomId) ?? []), stored.eventId]);
    });
    const lockedOut = { users: {}, users_default: 0 }; // refused: the creator could not send the next events
    const attempts = await Promise.allSettled([
      createRoom(engine, { creator: ALICE, roomVersion: "10", name: "one" }),
      createRoom(engine, { creator: ALICE, roomVersion: "10", powerLevelContentOverride: lockedOut }),
      createRoom(engine, { creator: BOB, roomVersion: "12", name: "two", topic: "t" }),
      createRoom(engine, { creator: BOB, roomVersion: "11", powerLevelContentOverride: lockedOut }), // (v12 creators cannot be locked out)
      createRoom(engine, { creator: ALICE, roomVersion: "9", preset: "public_chat" }),
    ]);
    expect(attempts.map((a) => a.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"]);
    const created = attempts.filter((a): a is PromiseFulfilledResult<string> => a.status === "fulfilled").map((a) => a.value);
    expect([...heard.keys()].sort()).toEqual([...created].sort());
    for (const roomId of created) {
      const timeline = await store.roomEventsBetween(roomId, 0, Number.MAX_SAFE_INTEGER, 100);
      expect(heard.get(roomId)).toEqual(timeline.map((e) => e.eventId));
    }
    // Nothing of the refused rooms is stored: every stored event belongs to a created room.
    let total = 0;
    for (const roomId of created) total += (await store.roomEventsBetween(roomId, 0, Number.MAX_SAFE_INTEGER, 100)).length;
    expect(await store.maxStreamOrdering()).toBe(total);
  });

  test("trusted_private_chat: invitees get creator power (v10) or become additional creators (v12)", async () => {
    for (const versionId of ["10", "12"]) {
      const { engine, store } = await testEngine("example.org", database);
      const roomId = await createRoom(engine, { creator: ALICE, roomVersion: versionId, preset: "trusted_private_chat", invite: [BOB], isDirect: true });
      const pl = (await currentPdu(store, roomId, "m.room.power_levels", "")).content;
      const create = (await currentPdu(store, roomId, "m.room.create", "")).content;
      if (versionId === "10") expect(pl.users[BOB]).toBe(100);
      else expect(create.additional_creators).toEqual([BOB]);
      expect((await currentPdu(store, roomId, "m.room.member", BOB)).content).toEqual({ membership: "invite", is_direct: true });
    }
  });
});

describe("a room created with much initial state", () => {
  test(`from ${BULK_EVENTS} events on, it is stored in a database transaction of its own; a usual room shares its batch`, async () => {
    const { store, engine } = await testEngine();
    const atomically = store.atomically.bind(store);
    const asked: unknown[] = [];
    store.atomically = (fn, options) => (asked.push(options), atomically(fn, options));
    const usual = await createRoom(engine, { creator: "@alice:example.org", roomVersion: "10", preset: "private_chat", creatorProfile: {} });
    const initialState = Array.from({ length: BULK_EVENTS }, (_, i) => ({ type: "org.example.setting", state_key: `k${i}`, content: { i } }));
    const big = await createRoom(engine, { creator: "@alice:example.org", roomVersion: "10", preset: "private_chat", creatorProfile: {}, initialState });
    expect(asked).toEqual([{ alone: false }, { alone: true }]);
    expect((await store.currentState(usual)).size).toBeLessThan(10);
    expect((await store.currentState(big)).size).toBeGreaterThan(BULK_EVENTS);
  });
});
