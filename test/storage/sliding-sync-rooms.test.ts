// The sliding sync queries on every engine of this run: a user's rooms with their membership, the
// member event, the last timeline event and the last bump event; current state of many rooms at once.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";
import type { NewEvent, StoredEvent } from "../../src/storage/stores";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";
const key = (type: string, stateKey: string) => `${type}\u0000${stateKey}`;

describe.each(testDatabases.map((d) => [d.name, d] as const))("sliding sync room queries on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  const last = new Map<string, StoredEvent>();
  beforeEach(async () => {
    stores = storesOver(await database.open());
    last.clear();
  });
  afterEach(async () => {
    await stores.db.close();
  });

  let n = 0;
  /** Appends an event to a room after its last one, state after = before + itself. */
  async function append(roomId: string, type: string, fields: { stateKey?: string; sender?: string; content?: Record<string, unknown>; outlier?: boolean } = {}): Promise<StoredEvent> {
    const id = `$e${++n}`;
    const prev = last.get(roomId);
    const membership = type === "m.room.member" ? (fields.content?.membership as string) : undefined;
    const event: NewEvent = {
      eventId: id,
      roomId,
      type,
      stateKey: fields.stateKey,
      sender: fields.sender ?? ALICE,
      depth: n,
      originServerTs: n,
      prevEvents: prev ? [prev.eventId] : [],
      authEvents: [],
      json: JSON.stringify({ type, state_key: fields.stateKey, content: fields.content ?? {} }),
      membership,
      outlier: fields.outlier,
    };
    const delta = new Map<string, string | null>();
    if (fields.stateKey !== undefined) delta.set(key(type, fields.stateKey), id);
    const stored = await stores.roomEvents.persistEvent({ event, stateAfter: { parent: prev?.stateSnapshot, delta }, updateForwardExtremities: true, updateCurrentState: true });
    last.set(roomId, stored);
    return stored;
  }

  test("userRooms: membership, member event, last event and last bump event per room", async () => {
    const create = await append("!a:x", "m.room.create", { stateKey: "" });
    const join = await append("!a:x", "m.room.member", { stateKey: ALICE, content: { membership: "join" } });
    const message = await append("!a:x", "m.room.message");
    const reaction = await append("!a:x", "m.reaction");
    await append("!b:x", "m.room.create", { stateKey: "", sender: BOB });
    const invite = await append("!b:x", "m.room.member", { stateKey: ALICE, sender: BOB, content: { membership: "invite" } });
    await append("!c:x", "m.room.create", { stateKey: "", sender: BOB });
    await append("!c:x", "m.room.member", { stateKey: ALICE, sender: ALICE, content: { membership: "join" } });
    const kick = await append("!c:x", "m.room.member", { stateKey: ALICE, sender: BOB, content: { membership: "leave" } });
    // Bob's rooms are not Alice's.
    await append("!d:x", "m.room.create", { stateKey: "", sender: BOB });
    await append("!d:x", "m.room.member", { stateKey: BOB, sender: BOB, content: { membership: "join" } });

    const rooms = await stores.slidingSyncRooms.userRooms(ALICE, ["join", "invite", "leave"], ["m.room.create", "m.room.message"]);
    const byRoom = new Map(rooms.map((r) => [r.roomId, r]));
    expect([...byRoom.keys()].sort()).toEqual(["!a:x", "!b:x", "!c:x"]);
    expect(byRoom.get("!a:x")).toEqual({ roomId: "!a:x", membership: "join", memberEventId: join.eventId, memberSender: ALICE, memberStream: join.streamOrdering, lastStream: reaction.streamOrdering, bumpStream: message.streamOrdering });
    expect(byRoom.get("!b:x")).toMatchObject({ membership: "invite", memberEventId: invite.eventId, memberSender: BOB });
    expect(byRoom.get("!c:x")).toMatchObject({ membership: "leave", memberEventId: kick.eventId, memberSender: BOB, memberStream: kick.streamOrdering });
    expect(create.streamOrdering).toBeLessThan(message.streamOrdering!);

    // Only the memberships asked for.
    expect((await stores.slidingSyncRooms.userRooms(ALICE, ["invite"], ["m.room.message"])).map((r) => r.roomId)).toEqual(["!b:x"]);
    expect(await stores.slidingSyncRooms.userRooms(ALICE, [], ["m.room.message"])).toEqual([]);
    // No bump type in the room: no bump position.
    expect((await stores.slidingSyncRooms.userRooms(ALICE, ["invite"], ["m.room.message"]))[0]!.bumpStream).toBeUndefined();
  });

  test("currentStateOfRooms: the named entries of many rooms, none of the others", async () => {
    const encA = await append("!a:x", "m.room.encryption", { stateKey: "", content: { algorithm: "m.megolm.v1.aes-sha2" } });
    const nameA = await append("!a:x", "m.room.name", { stateKey: "", content: { name: "A" } });
    await append("!a:x", "m.room.topic", { stateKey: "" });
    const nameB = await append("!b:x", "m.room.name", { stateKey: "", content: { name: "B" } });
    await append("!b:x", "m.room.member", { stateKey: "", content: { membership: "join" } });
    const state = await stores.slidingSyncRooms.currentStateOfRooms(["!a:x", "!b:x", "!none:x"], [
      ["m.room.encryption", ""],
      ["m.room.name", ""],
    ]);
    expect(state).toEqual(
      new Map([
        ["!a:x", new Map([[key("m.room.encryption", ""), encA.eventId], [key("m.room.name", ""), nameA.eventId]])],
        ["!b:x", new Map([[key("m.room.name", ""), nameB.eventId]])],
      ]),
    );
    expect(await stores.slidingSyncRooms.currentStateOfRooms([], [["m.room.name", ""]])).toEqual(new Map());
    // Many rooms in one call (more than one IN list).
    const many = Array.from({ length: 300 }, (_, i) => `!m${i}:x`);
    for (const roomId of many.slice(0, 3)) await append(roomId, "m.room.encryption", { stateKey: "" });
    expect([...(await stores.slidingSyncRooms.currentStateOfRooms(["!a:x", ...many], [["m.room.encryption", ""]])).keys()].sort()).toEqual(["!a:x", ...many.slice(0, 3)].sort());
  });
});
