import { describe, expect, test } from "bun:test";
import { createRoom } from "../../src/services/rooms/room-creation";
import { ROOM_VERSIONS, roomVersion } from "../../src/protocol/room-versions";
import { computeEventId } from "../../src/protocol/signing/event-id";
import { verifyEventSignatures } from "../../src/protocol/signing/event-signatures";
import { checkContentHash } from "../../src/protocol/signing/hashes";
import { MatrixError } from "../../src/protocol/errors";
import type { JsonObject } from "../../src/protocol/json";
import { testEngine } from "../helpers/room-engine";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";

const stateTypes = (state: Map<string, string>) => [...state.keys()].map((k) => k.replace("\u0000", "|")).sort();

describe.each([...ROOM_VERSIONS.keys()])("room version %s", (versionId) => {
  test("createRoom builds the spec's events in order, each signed, hashed and authorized", async () => {
    const { engine, store, signer } = testEngine();
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

    const timeline = store.roomEventsBetween(roomId, 0, Number.MAX_SAFE_INTEGER, 100);
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
    expect(store.forwardExtremities(roomId)).toEqual([timeline[8].eventId]);
    expect(stateTypes(store.currentState(roomId))).toEqual([
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

describe("local events", () => {
  test("auth events follow the selection rules; a join needs the join rules", async () => {
    const { engine, store } = testEngine();
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "10", preset: "public_chat" });
    const join = await engine.sendEvent(roomId, { type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } });
    const auth = join.stored.authEvents.map((id) => store.getEvent(id)!).map((e) => `${e.type}|${e.stateKey}`).sort();
    expect(auth).toEqual(["m.room.create|", "m.room.join_rules|", "m.room.power_levels|"]);
    const msg = await engine.sendEvent(roomId, { type: "m.room.message", sender: BOB, content: { msgtype: "m.text", body: "hi" } });
    const msgAuth = msg.stored.authEvents.map((id) => store.getEvent(id)!).map((e) => `${e.type}|${e.stateKey}`).sort();
    expect(msgAuth).toEqual(["m.room.create|", `m.room.member|${BOB}`, "m.room.power_levels|"]);
  });

  test("an event the rules refuse is M_FORBIDDEN and stores nothing", async () => {
    const { engine, store } = testEngine();
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "10", preset: "private_chat" });
    const before = store.maxStreamOrdering();
    const extremities = store.forwardExtremities(roomId);
    const attempt = engine.sendEvent(roomId, { type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } });
    await expect(attempt).rejects.toBeInstanceOf(MatrixError);
    await expect(attempt).rejects.toMatchObject({ errcode: "M_FORBIDDEN" });
    expect(store.maxStreamOrdering()).toBe(before);
    expect(store.forwardExtremities(roomId)).toEqual(extremities);
    expect(store.currentStateEvent(roomId, "m.room.member", BOB)).toBeUndefined();
  });

  test("concurrent sends to one room stay linear (no forks)", async () => {
    const { engine, store } = testEngine();
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "10" });
    await Promise.all(Array.from({ length: 20 }, (_, i) => engine.sendEvent(roomId, { type: "m.room.message", sender: ALICE, content: { body: `${i}` } })));
    expect(store.forwardExtremities(roomId)).toHaveLength(1);
    const timeline = store.roomEventsBetween(roomId, 0, Number.MAX_SAFE_INTEGER, 100);
    for (let i = 1; i < timeline.length; i++) expect(timeline[i].prevEvents).toEqual([timeline[i - 1].eventId]);
  });

  test("unknown room is M_NOT_FOUND; unknown version is M_UNSUPPORTED_ROOM_VERSION", async () => {
    const { engine } = testEngine();
    await expect(engine.sendEvent("!nope:example.org", { type: "m.room.message", sender: ALICE, content: {} })).rejects.toMatchObject({ errcode: "M_NOT_FOUND" });
    await expect(createRoom(engine, { creator: ALICE, roomVersion: "99" })).rejects.toMatchObject({ errcode: "M_UNSUPPORTED_ROOM_VERSION" });
  });

  test("trusted_private_chat: invitees get creator power (v10) or become additional creators (v12)", async () => {
    for (const versionId of ["10", "12"]) {
      const { engine, store } = testEngine();
      const roomId = await createRoom(engine, { creator: ALICE, roomVersion: versionId, preset: "trusted_private_chat", invite: [BOB], isDirect: true });
      const pl = JSON.parse(store.getEvent(store.currentStateEvent(roomId, "m.room.power_levels", "")!)!.json).content;
      const create = JSON.parse(store.getEvent(store.currentStateEvent(roomId, "m.room.create", "")!)!.json).content;
      if (versionId === "10") expect(pl.users[BOB]).toBe(100);
      else expect(create.additional_creators).toEqual([BOB]);
      const invite = JSON.parse(store.getEvent(store.currentStateEvent(roomId, "m.room.member", BOB)!)!.json).content;
      expect(invite).toEqual({ membership: "invite", is_direct: true });
    }
  });
});
