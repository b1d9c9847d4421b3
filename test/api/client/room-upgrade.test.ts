// POST /rooms/{roomId}/upgrade: a new room naming its predecessor (before v12, by the tombstone's
// event ID), the old room's defining state, power levels and bans copied, a tombstone in the old
// room, aliases and the directory listing moved, the old room closed to ordinary members; refusals
// and failures store nothing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";
import { resolve, Tokens } from "../../../src/di/tokens";
import type { PortierServer } from "../../../src/app";
import { MatrixError } from "../../../src/protocol/errors";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
});
afterAll(() => server.stop());

describe("POST /rooms/{roomId}/upgrade", () => {
  for (const newVersion of ["2", "11", "12"]) {
    test(`to room version ${newVersion}: predecessor, copied state and power levels, tombstone, old room closed`, async () => {
      const oldRoom = await alice.createRoom({ room_version: "10", preset: "public_chat", name: "Old name", topic: "Old topic", power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 20 } } });
      await bob.ok("POST", `/join/${enc(oldRoom)}`, {});
      const { replacement_room: newRoom } = await alice.ok("POST", `/rooms/${enc(oldRoom)}/upgrade`, { new_version: newVersion });
      expect(newRoom).not.toBe(oldRoom);

      const create = await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.create/`);
      expect(create.room_version).toBe(newVersion);
      expect(create.predecessor.room_id).toBe(oldRoom);
      const oldState: { type: string; event_id: string }[] = await bob.ok("GET", `/rooms/${enc(oldRoom)}/state`);
      const tombstoneId = oldState.find((e) => e.type === "m.room.tombstone")!.event_id;
      // Before v12 the predecessor is the tombstone (as Synapse); a v12 room's ID is its create
      // event's hash, which cannot name an event that needs the room's ID: no event_id.
      if (newVersion === "12") expect(create.predecessor).toEqual({ room_id: oldRoom });
      else expect(create.predecessor).toEqual({ room_id: oldRoom, event_id: tombstoneId });
      expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.name/`)).name).toBe("Old name");
      expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.topic/`)).topic).toBe("Old topic");
      expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.join_rules/`)).join_rule).toBe("public");
      const power = await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.power_levels/`);
      expect(power.users[bob.userId]).toBe(20);

      const tombstone = await bob.ok("GET", `/rooms/${enc(oldRoom)}/state/m.room.tombstone/`);
      expect(tombstone.replacement_room).toBe(newRoom);
      await bob.fails("PUT", `/rooms/${enc(oldRoom)}/send/m.room.message/${crypto.randomUUID()}`, { msgtype: "m.text", body: "still here?" }, 403, "M_FORBIDDEN");
      // bob follows to the new room (a public one).
      await bob.ok("POST", `/join/${enc(newRoom)}`, {});
      await bob.send(newRoom, { msgtype: "m.text", body: "moved" });
    });
  }

  test("refused without the power to send m.room.tombstone, for an unknown version, for a room one is not in; nothing created", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const before = await resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering();
    await bob.fails("POST", `/rooms/${enc(roomId)}/upgrade`, { new_version: "11" }, 403, "M_FORBIDDEN");
    await alice.fails("POST", `/rooms/${enc(roomId)}/upgrade`, { new_version: "99" }, 400, "M_UNSUPPORTED_ROOM_VERSION");
    await alice.fails("POST", `/rooms/${enc("!nowhere:" + server.config.server_name)}/upgrade`, { new_version: "11" }, 404, "M_NOT_FOUND");
    await alice.fails("POST", `/rooms/${enc(roomId)}/upgrade`, {}, 400, "M_MISSING_PARAM");
    expect(await resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering()).toBe(before);
  });

  test("local aliases move to the new room; the old room's canonical alias is cleared", async () => {
    const oldRoom = await alice.createRoom({ preset: "public_chat", room_alias_name: "moving-house" });
    const alias = `#moving-house:${server.config.server_name}`;
    const second = `#second-name:${server.config.server_name}`;
    await alice.ok("PUT", `/directory/room/${enc(second)}`, { room_id: oldRoom });
    const { replacement_room: newRoom } = await alice.ok("POST", `/rooms/${enc(oldRoom)}/upgrade`, { new_version: "11" });
    expect((await bob.ok("GET", `/directory/room/${enc(alias)}`)).room_id).toBe(newRoom);
    expect((await bob.ok("GET", `/directory/room/${enc(second)}`)).room_id).toBe(newRoom);
    expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/aliases`)).aliases.sort()).toEqual([alias, second].sort());
    expect((await alice.ok("GET", `/rooms/${enc(oldRoom)}/aliases`)).aliases).toEqual([]);
    expect(await alice.ok("GET", `/rooms/${enc(oldRoom)}/state/m.room.canonical_alias/`)).toEqual({});
    expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.canonical_alias/`)).alias).toBe(alias);
  });

  test("joining the new room copies the user's push rules and tags for the old room, without overwriting what they set since", async () => {
    const oldRoom = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(oldRoom)}`, {});
    const other = await alice.createRoom({ preset: "public_chat" });
    const roomCondition = (roomId: string) => [{ kind: "event_match", key: "room_id", pattern: roomId }];
    for (const who of [alice, bob]) {
      await who.ok("PUT", `/pushrules/global/room/${enc(oldRoom)}`, { actions: [] });
      await who.ok("PUT", `/user/${enc(who.userId)}/rooms/${enc(oldRoom)}/tags/m.favourite`, { order: 0.5 });
    }
    await bob.ok("PUT", `/pushrules/global/override/${enc(oldRoom)}`, { actions: [], conditions: roomCondition(oldRoom) });
    await bob.ok("PUT", `/pushrules/global/override/elsewhere`, { actions: [], conditions: roomCondition(other) });
    await bob.ok("PUT", `/pushrules/global/underride/off`, { actions: ["notify"], conditions: roomCondition(oldRoom) });
    await bob.ok("PUT", `/pushrules/global/underride/off/enabled`, { enabled: false });

    const { replacement_room: newRoom } = await alice.ok("POST", `/rooms/${enc(oldRoom)}/upgrade`, { new_version: "11" });
    // The upgrader joined the new room by creating it.
    expect((await alice.ok("GET", `/pushrules/global/room/${enc(newRoom)}`)).actions).toEqual([]);
    expect((await alice.ok("GET", `/user/${enc(alice.userId)}/rooms/${enc(newRoom)}/tags`)).tags).toEqual({ "m.favourite": { order: 0.5 } });
    await bob.fails("GET", `/pushrules/global/room/${enc(newRoom)}`, undefined, 404, "M_NOT_FOUND");

    await bob.ok("POST", `/join/${enc(newRoom)}`, {});
    expect((await bob.ok("GET", `/pushrules/global/room/${enc(newRoom)}`)).actions).toEqual([]);
    // An override rule on the old room (a client's "mute"): its copy is named by the new room, as in Synapse.
    expect((await bob.ok("GET", `/pushrules/global/override/${enc(newRoom)}`)).conditions).toEqual(roomCondition(newRoom));
    const rules = (await bob.ok("GET", "/pushrules/")).global;
    const overrides = rules.override.map((r: { rule_id: string }) => r.rule_id);
    expect(overrides.filter((id: string) => id.startsWith("elsewhere"))).toEqual(["elsewhere"]);
    // A disabled rule is not copied (as Synapse).
    expect(rules.underride.filter((r: { conditions?: { pattern?: string }[] }) => r.conditions?.some((c) => c.pattern === newRoom))).toEqual([]);
    expect((await bob.ok("GET", `/user/${enc(bob.userId)}/rooms/${enc(newRoom)}/tags`)).tags).toEqual({ "m.favourite": { order: 0.5 } });

    // What bob changes afterwards stays, through a later join event (a display name change).
    await bob.ok("PUT", `/pushrules/global/room/${enc(newRoom)}/actions`, { actions: ["notify"] });
    await bob.ok("PUT", `/profile/${enc(bob.userId)}/displayname`, { displayname: "Bob again" });
    expect((await bob.ok("GET", `/pushrules/global/room/${enc(newRoom)}`)).actions).toEqual(["notify"]);
  });

  test("a moderator allowed to send the tombstone upgrades: every state copied, the power levels exactly the old ones in both rooms", async () => {
    const oldRoom = await alice.createRoom({ room_version: "10", preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(oldRoom)}`, {});
    const levels = await alice.ok("GET", `/rooms/${enc(oldRoom)}/state/m.room.power_levels/`);
    levels.users[bob.userId] = 50;
    levels.events["m.room.tombstone"] = 50;
    await alice.ok("PUT", `/rooms/${enc(oldRoom)}/state/m.room.power_levels/`, levels);
    await alice.ok("PUT", `/rooms/${enc(oldRoom)}/state/m.room.history_visibility/`, { history_visibility: "joined" });

    const { replacement_room: newRoom } = await bob.ok("POST", `/rooms/${enc(oldRoom)}/upgrade`, { new_version: "11" });
    // bob needed 100 to copy history visibility: raised while the room was made, then put back.
    expect((await bob.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.history_visibility/`)).history_visibility).toBe("joined");
    expect(await bob.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.power_levels/`)).toEqual(levels);
    // bob may not change the old room's power levels (100): they stay as they were.
    expect(await bob.ok("GET", `/rooms/${enc(oldRoom)}/state/m.room.power_levels/`)).toEqual(levels);
    expect((await bob.ok("GET", `/rooms/${enc(oldRoom)}/state/m.room.tombstone/`)).replacement_room).toBe(newRoom);
  });

  test("bans, the room type and m.federate carry over; a v12 room's creator keeps the top level in a v11 room", async () => {
    const banned = `@spammer:elsewhere.example`;
    const oldRoom = await alice.createRoom({ room_version: "12", preset: "public_chat", creation_content: { type: "org.example.kind", "m.federate": false } });
    await alice.ok("PUT", `/rooms/${enc(oldRoom)}/state/m.room.member/${enc(banned)}`, { membership: "ban", reason: "spam" });
    const { replacement_room: newRoom } = await alice.ok("POST", `/rooms/${enc(oldRoom)}/upgrade`, { new_version: "11" });
    expect(await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.member/${enc(banned)}`)).toEqual({ membership: "ban", reason: "spam" });
    const create = await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.create/`);
    expect(create.type).toBe("org.example.kind");
    expect(create["m.federate"]).toBe(false);
    expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.power_levels/`)).users[alice.userId]).toBe(100);
    await alice.ok("PUT", `/rooms/${enc(newRoom)}/state/m.room.topic/`, { topic: "still in charge" });
  });

  test("to v12 with additional_creators: they are creators of the new room and left out of its power levels", async () => {
    const oldRoom = await alice.createRoom({ room_version: "11", preset: "public_chat", power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 100 } } });
    await bob.ok("POST", `/join/${enc(oldRoom)}`, {});
    await alice.fails("POST", `/rooms/${enc(oldRoom)}/upgrade`, { new_version: "12", additional_creators: ["not-a-user"] }, 400, "M_INVALID_PARAM");
    const { replacement_room: newRoom } = await alice.ok("POST", `/rooms/${enc(oldRoom)}/upgrade`, { new_version: "12", additional_creators: [bob.userId] });
    expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.create/`)).additional_creators).toEqual([bob.userId]);
    expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.power_levels/`)).users).toEqual({});
  });

  test("a published room's directory entry moves to the new room; an unpublished one stays unlisted; m.direct lists the new room", async () => {
    const listed = await alice.createRoom({ preset: "public_chat", visibility: "public" });
    const unlisted = await alice.createRoom({ preset: "public_chat" });
    await alice.ok("PUT", `/user/${enc(alice.userId)}/account_data/m.direct`, { [bob.userId]: [unlisted] });
    const { replacement_room: newListed } = await alice.ok("POST", `/rooms/${enc(listed)}/upgrade`, { new_version: "11" });
    const { replacement_room: newUnlisted } = await alice.ok("POST", `/rooms/${enc(unlisted)}/upgrade`, { new_version: "11" });
    expect((await alice.ok("GET", `/directory/list/room/${enc(newListed)}`)).visibility).toBe("public");
    expect((await alice.ok("GET", `/directory/list/room/${enc(listed)}`)).visibility).toBe("private");
    expect((await alice.ok("GET", `/directory/list/room/${enc(newUnlisted)}`)).visibility).toBe("private");
    const publicRooms: string[] = (await bob.ok("GET", "/publicRooms")).chunk.map((r: { room_id: string }) => r.room_id);
    expect(publicRooms).toContain(newListed);
    expect(publicRooms).not.toContain(listed);
    expect(await alice.ok("GET", `/user/${enc(alice.userId)}/account_data/m.direct`)).toEqual({ [bob.userId]: [unlisted, newUnlisted] });
  });

  test("a tombstone naming its own room, or none, or sent as a message is refused", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await alice.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.tombstone/${crypto.randomUUID()}`, { replacement_room: roomId }, 400, "M_BAD_JSON");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.tombstone/${crypto.randomUUID()}`, { replacement_room: "!other:example.org" }, 400, "M_BAD_JSON");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/state/m.room.tombstone/`, { replacement_room: roomId }, 400, "M_BAD_JSON");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/state/m.room.tombstone/`, { body: "gone" }, 400, "M_BAD_JSON");
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.tombstone/`, { replacement_room: "!other:example.org" });
  });

  test("when the new room cannot be made, the old room gets no tombstone and nothing is stored", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const rooms = resolve(server.container, Tokens.Rooms);
    const store = resolve(server.container, Tokens.RoomEventStore);
    const before = await store.maxStreamOrdering();
    const createRoom = rooms.createRoom;
    let predecessor: { event_id?: string } | undefined;
    let storedYet: unknown;
    rooms.createRoom = async (input) => {
      predecessor = input.creationContent?.predecessor as typeof predecessor;
      storedYet = await store.getEvent(predecessor!.event_id!);
      throw new MatrixError("M_FORBIDDEN", "no rooms today");
    };
    try {
      await alice.fails("POST", `/rooms/${enc(roomId)}/upgrade`, { new_version: "11" }, 403, "M_FORBIDDEN");
    } finally {
      rooms.createRoom = createRoom;
    }
    // The new room was to name the tombstone, built and signed but not stored yet (and never, now).
    expect(predecessor!.event_id).toStartWith("$");
    expect(storedYet).toBeUndefined();
    expect(await store.getEvent(predecessor!.event_id!)).toBeUndefined();
    expect(await store.maxStreamOrdering()).toBe(before);
    await alice.fails("GET", `/rooms/${enc(roomId)}/state/m.room.tombstone/`, undefined, 404, "M_NOT_FOUND");
    await alice.send(roomId);
  });
});
