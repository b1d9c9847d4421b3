// Room aliases (client-server-api "Room aliases"): PUT/GET/DELETE /directory/room/{roomAlias},
// GET /rooms/{roomId}/aliases, createRoom's room_alias_name, and joining by alias.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { R0, TestClient, V3, enc } from "../../helpers/rooms";

const SERVER = "dir.example";
let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: SERVER, registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
  carol = await TestClient.register(server, "carol");
});
afterAll(() => server.stop());

const aliasPath = (alias: string, prefix = V3) => `${prefix}/directory/room/${enc(alias)}`;
const streamPosition = () => resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering();
const count = async (table: string) => (await resolve(server.container, Tokens.Database).get<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))!.n;
const roomCount = () => count("rooms");
const aliasCount = () => count("room_aliases");
const stateContent = (c: TestClient, roomId: string, type: string) => c.ok("GET", `/rooms/${enc(roomId)}/state/${type}/`);

/** GET /directory/room/{alias} without an access token, checked against the spec. */
async function lookup(alias: string, prefix = V3) {
  const r = await request(server, "GET", aliasPath(alias, prefix));
  if (r.status === 200) expectMatchesSpec({ api: "client-server", method: "GET", path: aliasPath(alias, prefix), status: 200, body: r.body });
  return r;
}

describe("PUT/GET/DELETE /directory/room/{roomAlias}", () => {
  test("a member maps an alias; anyone resolves it (no token needed) under v3 and r0; the creator deletes it", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    expect(await alice.ok("PUT", aliasPath(`#coffee:${SERVER}`), { room_id: roomId })).toEqual({});
    const found = await lookup(`#coffee:${SERVER}`);
    expect(found.status).toBe(200);
    expect(found.body).toEqual({ room_id: roomId, servers: [SERVER] });
    expect((await lookup(`#coffee:${SERVER}`, R0)).body.room_id).toBe(roomId);
    expect(await bob.ok("GET", aliasPath(`#coffee:${SERVER}`, R0))).toEqual({ room_id: roomId, servers: [SERVER] });

    expect(await alice.ok("DELETE", aliasPath(`#coffee:${SERVER}`))).toEqual({});
    expect((await lookup(`#coffee:${SERVER}`)).status).toBe(404);
    await alice.fails("DELETE", aliasPath(`#coffee:${SERVER}`), undefined, 404, "M_NOT_FOUND");

    // r0 works the same for PUT and DELETE.
    expect(await alice.ok("PUT", aliasPath(`#tea:${SERVER}`, R0), { room_id: roomId })).toEqual({});
    expect(await alice.ok("DELETE", aliasPath(`#tea:${SERVER}`, R0))).toEqual({});
  });

  test("an alias that exists is 409; bad and foreign aliases 400; bad bodies 400; all store nothing", async () => {
    const roomId = await alice.createRoom();
    await alice.ok("PUT", aliasPath(`#taken:${SERVER}`), { room_id: roomId });
    const before = await aliasCount();
    const conflict = await alice.fails("PUT", aliasPath(`#taken:${SERVER}`), { room_id: roomId }, 409, "M_UNKNOWN");
    expect(conflict.error).toContain("already exists");
    await alice.fails("PUT", aliasPath(`#elsewhere:other.example`), { room_id: roomId }, 400, "M_INVALID_PARAM");
    await alice.fails("PUT", aliasPath("#nocolon"), { room_id: roomId }, 400, "M_INVALID_PARAM");
    await alice.fails("PUT", aliasPath("nosigil:dir.example"), { room_id: roomId }, 400, "M_INVALID_PARAM");
    await alice.fails("PUT", aliasPath(`#has space:${SERVER}`), { room_id: roomId }, 400, "M_INVALID_PARAM");
    await alice.fails("PUT", aliasPath(`#ok:${SERVER}`), { room_id: "not-a-room" }, 400, "M_INVALID_PARAM");
    await alice.fails("PUT", aliasPath(`#ok:${SERVER}`), {}, 400, "M_MISSING_PARAM");
    await alice.fails("PUT", aliasPath(`#ok:${SERVER}`), { room_id: 7 }, 400, "M_BAD_JSON");
    await alice.fails("PUT", aliasPath(`#ok:${SERVER}`), { room_id: `!unknown:${SERVER}` }, 404, "M_NOT_FOUND");
    expect(await aliasCount()).toBe(before);
    // GET: malformed 400, unknown 404, another server's alias 404 until federation.
    expect((await lookup("#nocolon")).body.errcode).toBe("M_INVALID_PARAM");
    expect((await lookup(`#nothing:${SERVER}`)).status).toBe(404);
    const foreign = await lookup("#x:other.example");
    expect({ status: foreign.status, errcode: foreign.body.errcode }).toEqual({ status: 404, errcode: "M_NOT_FOUND" });
    // Requests that need a token say so.
    const anonymous = await request(server, "PUT", aliasPath(`#anon:${SERVER}`), { room_id: roomId });
    expect({ status: anonymous.status, errcode: anonymous.body.errcode }).toEqual({ status: 401, errcode: "M_MISSING_TOKEN" });
    const badToken = await request(server, "GET", aliasPath(`#taken:${SERVER}`), undefined, { Authorization: "Bearer nope" });
    expect(badToken.status).toBe(401);
  });

  test("only members may add an alias; only the alias creator or a room admin may delete it", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.fails("PUT", aliasPath(`#outsider:${SERVER}`), { room_id: roomId }, 403, "M_FORBIDDEN");
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    await carol.ok("POST", `/join/${enc(roomId)}`, {});
    // Bob (power 0, a member) may create aliases; Carol (power 0) may not delete Bob's.
    await bob.ok("PUT", aliasPath(`#bobs:${SERVER}`), { room_id: roomId });
    await carol.fails("DELETE", aliasPath(`#bobs:${SERVER}`), undefined, 403, "M_FORBIDDEN");
    expect((await lookup(`#bobs:${SERVER}`)).status).toBe(200);
    // Alice can send m.room.canonical_alias (power 100 >= 50): she may delete anyone's alias.
    await alice.ok("DELETE", aliasPath(`#bobs:${SERVER}`));
    // Bob may delete his own even after leaving the room.
    await bob.ok("PUT", aliasPath(`#bobs2:${SERVER}`), { room_id: roomId });
    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    await bob.ok("DELETE", aliasPath(`#bobs2:${SERVER}`));
    // A user given the canonical_alias level may delete others' aliases.
    await alice.ok("PUT", aliasPath(`#alices:${SERVER}`), { room_id: roomId });
    const levels = await stateContent(alice, roomId, "m.room.power_levels");
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...levels, users: { ...levels.users, [carol.userId]: 50 } });
    await carol.ok("DELETE", aliasPath(`#alices:${SERVER}`));
  });

  test("deleting the canonical alias takes it out of m.room.canonical_alias", async () => {
    const roomId = await alice.createRoom({ room_alias_name: "canon" });
    await alice.ok("PUT", aliasPath(`#canon-alt:${SERVER}`), { room_id: roomId });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.canonical_alias/`, { alias: `#canon:${SERVER}`, alt_aliases: [`#canon-alt:${SERVER}`] });
    await alice.ok("DELETE", aliasPath(`#canon-alt:${SERVER}`));
    expect(await stateContent(alice, roomId, "m.room.canonical_alias")).toEqual({ alias: `#canon:${SERVER}`, alt_aliases: [] });
    await alice.ok("DELETE", aliasPath(`#canon:${SERVER}`));
    expect(await stateContent(alice, roomId, "m.room.canonical_alias")).toEqual({ alt_aliases: [] });
  });
});

describe("m.room.canonical_alias", () => {
  test("its aliases must be aliases, and this server's must point at the room (400 M_BAD_ALIAS); nothing stored otherwise", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const otherRoom = await alice.createRoom({ preset: "public_chat" });
    const here = `#canon-here:${SERVER}`;
    const there = `#canon-there:${SERVER}`;
    await alice.ok("PUT", `/directory/room/${enc(here)}`, { room_id: roomId });
    await alice.ok("PUT", `/directory/room/${enc(there)}`, { room_id: otherRoom });
    const path = `/rooms/${enc(roomId)}/state/m.room.canonical_alias`;
    await alice.fails("PUT", path, { alias: `#nowhere:${SERVER}` }, 400, "M_BAD_ALIAS");
    await alice.fails("PUT", path, { alias: there }, 400, "M_BAD_ALIAS");
    await alice.fails("PUT", path, { alias: here, alt_aliases: [there] }, 400, "M_BAD_ALIAS");
    await alice.fails("PUT", path, { alias: "not an alias" }, 400, "M_INVALID_PARAM");
    await alice.fails("PUT", path, { alias: here, alt_aliases: "#x:y" }, 400, "M_INVALID_PARAM");
    expect((await alice.call("GET", `${path}/`)).status).toBe(404);
    // This server's alias of the room, and another server's alias (taken as given).
    await alice.ok("PUT", path, { alias: here, alt_aliases: ["#elsewhere:other.example"] });
    expect(await alice.ok("GET", `${path}/`)).toEqual({ alias: here, alt_aliases: ["#elsewhere:other.example"] });
    // Clearing it needs no alias at all.
    await alice.ok("PUT", path, {});
  });
});

describe("GET /rooms/{roomId}/aliases", () => {
  test("members see the room's local aliases; others get 403 unless the history is world_readable", async () => {
    const roomId = await alice.createRoom({ room_alias_name: "listed" });
    await alice.ok("PUT", aliasPath(`#listed-too:${SERVER}`), { room_id: roomId });
    expect(await alice.ok("GET", `/rooms/${enc(roomId)}/aliases`)).toEqual({ aliases: [`#listed-too:${SERVER}`, `#listed:${SERVER}`] });
    expect(await alice.ok("GET", `${R0}/rooms/${enc(roomId)}/aliases`)).toEqual({ aliases: [`#listed-too:${SERVER}`, `#listed:${SERVER}`] });
    await bob.fails("GET", `/rooms/${enc(roomId)}/aliases`, undefined, 403, "M_FORBIDDEN");
    await bob.fails("GET", `/rooms/${enc(`!unknown:${SERVER}`)}/aliases`, undefined, 403, "M_FORBIDDEN");
    await bob.fails("GET", `/rooms/not-a-room/aliases`, undefined, 400, "M_INVALID_PARAM");
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility: "world_readable" });
    expect(await bob.ok("GET", `/rooms/${enc(roomId)}/aliases`)).toEqual({ aliases: [`#listed-too:${SERVER}`, `#listed:${SERVER}`] });
    const empty = await alice.createRoom();
    expect(await alice.ok("GET", `/rooms/${enc(empty)}/aliases`)).toEqual({ aliases: [] });
  });
});

describe("createRoom room_alias_name", () => {
  test("creates #name:server pointing at the room and the m.room.canonical_alias event", async () => {
    const roomId = await alice.createRoom({ room_alias_name: "created", preset: "public_chat" });
    expect((await lookup(`#created:${SERVER}`)).body).toEqual({ room_id: roomId, servers: [SERVER] });
    expect(await stateContent(alice, roomId, "m.room.canonical_alias")).toEqual({ alias: `#created:${SERVER}` });
  });

  test("a taken alias is 400 M_ROOM_IN_USE before anything is stored; invalid local parts 400 M_INVALID_PARAM", async () => {
    await alice.createRoom({ room_alias_name: "once" });
    const [rooms, position, aliases] = [await roomCount(), await streamPosition(), await aliasCount()];
    await bob.fails("POST", "/createRoom", { room_alias_name: "once" }, 400, "M_ROOM_IN_USE");
    await bob.fails("POST", `${R0}/createRoom`, { room_alias_name: "once" }, 400, "M_ROOM_IN_USE");
    for (const bad of ["", "a:b", "with space", "x\u0000y"]) await bob.fails("POST", "/createRoom", { room_alias_name: bad }, 400, "M_INVALID_PARAM");
    await bob.fails("POST", "/createRoom", { room_alias_name: 5 }, 400, "M_BAD_JSON");
    expect([await roomCount(), await streamPosition(), await aliasCount()]).toEqual([rooms, position, aliases]);
  });

  test("when the room itself is refused, the alias stays free", async () => {
    await alice.fails("POST", "/createRoom", { room_alias_name: "refused", room_version: "999" }, 400, "M_UNSUPPORTED_ROOM_VERSION");
    await alice.fails("POST", "/createRoom", { room_alias_name: "refused", power_level_content_override: { users: {}, state_default: 1000, events: {} } }, 400, "M_INVALID_ROOM_STATE");
    expect((await lookup(`#refused:${SERVER}`)).status).toBe(404);
    expect(typeof (await alice.createRoom({ room_alias_name: "refused" }))).toBe("string");
  });

  test("two concurrent createRooms with one alias: one room wins, the other stores nothing", async () => {
    const [rooms, aliases] = [await roomCount(), await aliasCount()];
    const results = await Promise.all([alice.call("POST", "/createRoom", { room_alias_name: "race" }), bob.call("POST", "/createRoom", { room_alias_name: "race" })]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 400]);
    expect(results.find((r) => r.status === 400)!.body.errcode).toBe("M_ROOM_IN_USE");
    expect([await roomCount(), await aliasCount()]).toEqual([rooms + 1, aliases + 1]);
  });
});

describe("POST /join/{roomIdOrAlias} by alias", () => {
  test("a local alias joins its room (v3 and r0); via and server_name are accepted", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", room_alias_name: "joinme" });
    expect(await bob.ok("POST", `/join/${enc(`#joinme:${SERVER}`)}?via=${SERVER}&via=other.example`, {})).toEqual({ room_id: roomId });
    expect(await carol.ok("POST", `${R0}/join/${enc(`#joinme:${SERVER}`)}?server_name=${SERVER}`, {})).toEqual({ room_id: roomId });
    expect(await carol.ok("POST", `/join/${enc(roomId)}?via=other.example`, {})).toEqual({ room_id: roomId });
    expect((await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`)).membership).toBe("join");
  });

  test("unknown and foreign aliases 404, bad aliases and via 400, invite-only rooms 403 — nothing stored", async () => {
    const privateRoom = await alice.createRoom({ room_alias_name: "private-join" });
    const before = await streamPosition();
    await bob.fails("POST", `/join/${enc(`#nope:${SERVER}`)}`, {}, 404, "M_NOT_FOUND");
    await bob.fails("POST", `/join/${enc("#remote:other.example")}?via=other.example`, {}, 404, "M_NOT_FOUND");
    await bob.fails("POST", `/join/${enc("#bad")}`, {}, 400, "M_INVALID_PARAM");
    await bob.fails("POST", `/join/${enc(`#joinme:${SERVER}`)}?via=${enc("bad server")}`, {}, 400, "M_INVALID_PARAM");
    await bob.fails("POST", `/join/${enc(`#private-join:${SERVER}`)}`, {}, 403, "M_FORBIDDEN");
    expect(await streamPosition()).toBe(before);
    expect(privateRoom).toMatch(/^!/);
  });

  test("resolveRoomIdOrAlias is shared: room ids pass through, aliases resolve, anything else is 400", async () => {
    const directory = resolve(server.container, Tokens.Directory);
    const roomId = await alice.createRoom({ room_alias_name: "shared" });
    expect(await directory.resolveRoomIdOrAlias(`#shared:${SERVER}`)).toEqual({ roomId, servers: [SERVER] });
    expect((await directory.resolveRoomIdOrAlias(roomId)).roomId).toBe(roomId);
    await expect(directory.resolveRoomIdOrAlias("shared")).rejects.toMatchObject({ errcode: "M_INVALID_PARAM" });
  });
});
