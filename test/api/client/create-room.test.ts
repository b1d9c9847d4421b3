import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { testServer } from "../../helpers/server";
import { R0, TestClient, enc } from "../../helpers/rooms";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "create.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
});
afterAll(() => server.stop());

const stateContent = async (c: TestClient, roomId: string, type: string, key = "") => c.ok("GET", `/rooms/${enc(roomId)}/state/${type}/${enc(key)}`);

describe("POST /createRoom", () => {
  test("an empty body makes a private room with the preset's state, the creator joined and admin", async () => {
    const roomId = await alice.createRoom();
    expect(roomId).toMatch(/^!.+:create\.example$/);
    expect(await stateContent(alice, roomId, "m.room.join_rules")).toEqual({ join_rule: "invite" });
    expect(await stateContent(alice, roomId, "m.room.history_visibility")).toEqual({ history_visibility: "shared" });
    expect(await stateContent(alice, roomId, "m.room.guest_access")).toEqual({ guest_access: "can_join" });
    expect((await stateContent(alice, roomId, "m.room.power_levels")).users).toEqual({ [alice.userId]: 100 });
    expect((await stateContent(alice, roomId, "m.room.member", alice.userId)).membership).toBe("join");
    expect((await stateContent(alice, roomId, "m.room.create")).room_version).toBe("10");
  });

  test("name, topic, preset, invite, is_direct, initial_state, creation_content, power level override, room_version (r0 path)", async () => {
    const body = await alice.ok("POST", `${R0}/createRoom`, {
      preset: "public_chat",
      name: "Pub",
      topic: "Happy hour",
      invite: [bob.userId],
      is_direct: true,
      room_version: "11",
      room_alias_name: "pub",
      creation_content: { "m.federate": false, creator: "@mallory:evil.example" },
      initial_state: [{ type: "m.room.name", content: { name: "overridden by name" } }, { type: "org.example.custom", state_key: "k", content: { x: 1 } }],
      power_level_content_override: { events_default: 10 },
    });
    const roomId = body.room_id;
    expect(await stateContent(alice, roomId, "m.room.name")).toEqual({ name: "Pub" });
    expect(await stateContent(alice, roomId, "m.room.topic")).toEqual({ topic: "Happy hour" });
    expect(await stateContent(alice, roomId, "m.room.join_rules")).toEqual({ join_rule: "public" });
    expect(await stateContent(alice, roomId, "org.example.custom", "k")).toEqual({ x: 1 });
    expect(await stateContent(alice, roomId, "m.room.member", bob.userId)).toEqual({ membership: "invite", is_direct: true });
    const create = await stateContent(alice, roomId, "m.room.create");
    expect(create).toEqual({ "m.federate": false, room_version: "11" }); // v11: no creator key, client's creator dropped
    expect((await stateContent(alice, roomId, "m.room.power_levels")).events_default).toBe(10);
  });

  test("v12: the creator is not listed in power levels; trusted_private_chat invitees become additional creators", async () => {
    const roomId = await alice.createRoom({ room_version: "12", preset: "trusted_private_chat", invite: [bob.userId] });
    expect((await stateContent(alice, roomId, "m.room.power_levels")).users).toEqual({});
    expect((await stateContent(alice, roomId, "m.room.create")).additional_creators).toEqual([bob.userId]);
  });

  test("the creator's join carries the profile from the profile hook", async () => {
    const { RoomService } = await import("../../../src/services/rooms/room-service");
    const rooms = resolve(server.container, Tokens.Rooms);
    const withProfile = new RoomService(
      (rooms as any).engine,
      (rooms as any).store,
      (rooms as any).clientStore,
      resolve(server.container, Tokens.RoomAccess),
      { now: () => Date.now() },
      { serverName: "create.example", userExists: async () => true, profileOf: async () => ({ displayname: "Alice A.", avatar_url: "mxc://create.example/a" }) },
    );
    const roomId = await withProfile.createRoom({ creator: alice.userId });
    expect(await stateContent(alice, roomId, "m.room.member", alice.userId)).toEqual({ membership: "join", displayname: "Alice A.", avatar_url: "mxc://create.example/a" });
  });

  test("bad input is refused and stores nothing", async () => {
    const before = await resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering();
    await alice.fails("POST", "/createRoom", { room_version: "99" }, 400, "M_UNSUPPORTED_ROOM_VERSION");
    await alice.fails("POST", "/createRoom", { preset: "open" }, 400, "M_BAD_JSON");
    await alice.fails("POST", "/createRoom", { initial_state: [{ type: "x" }] }, 400, "M_MISSING_PARAM");
    await alice.fails("POST", "/createRoom", { invite: ["not-a-user"] }, 400, "M_INVALID_PARAM");
    await alice.fails("POST", "/createRoom", { invite: ["@nobody:create.example"] }, 400, "M_INVALID_PARAM");
    await alice.fails("POST", "/createRoom", { invite: ["@bob:elsewhere.example"] }, 403, "M_FORBIDDEN");
    await alice.fails("POST", "/createRoom", "{nope", 400, "M_NOT_JSON");
    // An override that leaves the creator unable to send the rest: refused whole, nothing stored.
    const refused = await alice.fails("POST", "/createRoom", { name: "x", power_level_content_override: { users: { [alice.userId]: 0 }, state_default: 50 } }, 400, "M_INVALID_ROOM_STATE");
    expect(refused.error).toContain("m.room.join_rules");
    expect(await resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering()).toBe(before);
    const unauthenticated = await alice.server.app.handle(new Request("http://localhost/_matrix/client/v3/createRoom", { method: "POST", body: "{}" }));
    expect(unauthenticated.status).toBe(401);
  });

  test("the new room is listed in /joined_rooms", async () => {
    const roomId = await alice.createRoom();
    const body = await alice.ok("GET", "/joined_rooms");
    expect(body.joined_rooms).toContain(roomId);
    expect((await bob.ok("GET", "/joined_rooms")).joined_rooms).not.toContain(roomId);
  });
});
