// The published room directory (client-server-api "Published room directory"):
// GET/PUT /directory/list/room/{roomId}, GET/POST /publicRooms, createRoom's visibility.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { R0, TestClient, V3, enc } from "../../helpers/rooms";

const SERVER = "pub.example";
let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
let dave: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: SERVER, registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
  carol = await TestClient.register(server, "carol");
  dave = await TestClient.register(server, "dave");
});
afterAll(() => server.stop());

const listPath = (roomId: string, prefix = V3) => `${prefix}/directory/list/room/${enc(roomId)}`;

/** GET without a token, 200 checked against the spec. */
async function anonymousGet(path: string) {
  const r = await request(server, "GET", path);
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  expectMatchesSpec({ api: "client-server", method: "GET", path, status: 200, body: r.body });
  return r.body;
}

/** Removes every room from the directory so that each test sees only its own. */
async function clearDirectory() {
  for (const room of (await alice.ok("POST", "/publicRooms", { limit: 500 })).chunk) {
    await request(server, "PUT", listPath(room.room_id), { visibility: "private" }, { Authorization: `Bearer ${(await adminOf(room.room_id)).token}` });
  }
}
const creators = new Map<string, TestClient>();
async function adminOf(roomId: string): Promise<TestClient> {
  return creators.get(roomId) ?? alice;
}
async function create(by: TestClient, body: Record<string, unknown>): Promise<string> {
  const roomId = await by.createRoom(body);
  creators.set(roomId, by);
  return roomId;
}

describe("GET/PUT /directory/list/room/{roomId}", () => {
  test("rooms start private; createRoom visibility=public publishes; room admins change it (v3 and r0)", async () => {
    const privateRoom = await create(alice, {});
    expect(await anonymousGet(listPath(privateRoom))).toEqual({ visibility: "private" });
    const publicRoom = await create(alice, { visibility: "public" });
    expect(await anonymousGet(listPath(publicRoom, R0))).toEqual({ visibility: "public" });

    expect(await alice.ok("PUT", listPath(privateRoom), { visibility: "public" })).toEqual({});
    expect(await alice.ok("GET", listPath(privateRoom))).toEqual({ visibility: "public" });
    expect(await alice.ok("PUT", listPath(privateRoom, R0), { visibility: "private" })).toEqual({});
    expect(await anonymousGet(listPath(privateRoom))).toEqual({ visibility: "private" });
    // The body's visibility defaults to public.
    expect(await alice.ok("PUT", listPath(privateRoom), {})).toEqual({});
    expect(await anonymousGet(listPath(privateRoom))).toEqual({ visibility: "public" });
  });

  test("non-admins 403, unknown rooms 404, bad input 400, no token 401 — the visibility stays", async () => {
    const roomId = await create(alice, { preset: "public_chat" });
    await bob.fails("PUT", listPath(roomId), { visibility: "public" }, 403, "M_FORBIDDEN");
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    await bob.fails("PUT", listPath(roomId), { visibility: "public" }, 403, "M_FORBIDDEN");
    expect(await anonymousGet(listPath(roomId))).toEqual({ visibility: "private" });
    await alice.fails("PUT", listPath(roomId), { visibility: "hidden" }, 400, "M_BAD_JSON");
    await alice.fails("PUT", listPath(`!nope:${SERVER}`), { visibility: "public" }, 404, "M_NOT_FOUND");
    await alice.fails("GET", listPath(`!nope:${SERVER}`), undefined, 404, "M_NOT_FOUND");
    await alice.fails("GET", `${V3}/directory/list/room/nope`, undefined, 400, "M_INVALID_PARAM");
    const anonymous = await request(server, "PUT", listPath(roomId), { visibility: "public" });
    expect(anonymous.status).toBe(401);
    expect(await anonymousGet(listPath(roomId))).toEqual({ visibility: "private" });
    // Given the canonical_alias level, Bob may publish it.
    const levels = await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.power_levels/`);
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...levels, events: { ...levels.events, "m.room.canonical_alias": 0 } });
    await bob.ok("PUT", listPath(roomId), { visibility: "public" });
    expect(await anonymousGet(listPath(roomId))).toEqual({ visibility: "public" });
  });

  test("before v12, the room's creator may even below the canonical_alias level; a creator who left may not", async () => {
    const roomId = await create(alice, { room_version: "10", preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const levels = await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.power_levels/`);
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.power_levels/`, { ...levels, users: { [alice.userId]: 10, [bob.userId]: 100 } });
    await alice.ok("PUT", listPath(roomId), { visibility: "public" });
    expect(await anonymousGet(listPath(roomId))).toEqual({ visibility: "public" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    await alice.fails("PUT", listPath(roomId), { visibility: "private" }, 403, "M_FORBIDDEN");
    await bob.ok("PUT", listPath(roomId), { visibility: "private" });
  });

  test("v12: the room creator may, by their creator power", async () => {
    const roomId = await create(carol, { room_version: "12" });
    await carol.ok("PUT", listPath(roomId), { visibility: "public" });
    expect(await anonymousGet(listPath(roomId))).toEqual({ visibility: "public" });
  });
});

describe("GET/POST /publicRooms", () => {
  test("each chunk carries the room's directory fields; sorted by joined members; no token needed for GET", async () => {
    await clearDirectory();
    const big = await create(alice, {
      visibility: "public",
      preset: "public_chat",
      name: "Big room",
      topic: "Everything",
      room_alias_name: "big",
      initial_state: [
        { type: "m.room.avatar", content: { url: "mxc://pub.example/avatar" } },
        { type: "m.room.history_visibility", content: { history_visibility: "world_readable" } },
        { type: "m.room.guest_access", content: { guest_access: "can_join" } },
      ],
    });
    for (const c of [bob, carol]) await c.ok("POST", `/join/${enc(big)}`, {});
    const space = await create(bob, { visibility: "public", creation_content: { type: "m.space" }, initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }] });
    const plain = await create(dave, { visibility: "public", preset: "public_chat", topic: "replaced below" });
    await dave.ok("PUT", `/rooms/${enc(plain)}/state/m.room.topic/`, { topic: "fallback", "m.topic": { "m.text": [{ mimetype: "text/html", body: "<b>rich</b>" }, { body: "plain text" }] } });

    const body = await anonymousGet(`${V3}/publicRooms`);
    expect(body.total_room_count_estimate).toBe(3);
    expect(body.next_batch).toBeUndefined();
    expect(body.prev_batch).toBeUndefined();
    expect(body.chunk[0]).toEqual({
      room_id: big,
      num_joined_members: 3,
      world_readable: true,
      guest_can_join: true,
      join_rule: "public",
      name: "Big room",
      topic: "Everything",
      canonical_alias: `#big:${SERVER}`,
      avatar_url: "mxc://pub.example/avatar",
    });
    const rest = body.chunk.slice(1);
    expect(rest.map((r: any) => r.room_id)).toEqual([space, plain].sort());
    expect(rest.find((r: any) => r.room_id === space)).toEqual({ room_id: space, num_joined_members: 1, world_readable: false, guest_can_join: false, join_rule: "knock", room_type: "m.space" });
    expect(rest.find((r: any) => r.room_id === plain)).toEqual({ room_id: plain, num_joined_members: 1, world_readable: false, guest_can_join: false, join_rule: "public", topic: "plain text" });
    // r0, and with a token, the same.
    expect(await anonymousGet(`${R0}/publicRooms`)).toEqual(body);
    expect(await bob.ok("GET", "/publicRooms")).toEqual(body);
    // Private rooms are not listed; unpublishing takes a room out.
    await bob.ok("PUT", listPath(space), { visibility: "private" });
    expect((await anonymousGet(`${V3}/publicRooms`)).chunk.map((r: any) => r.room_id)).toEqual([big, plain]);
  });

  test("limit and since page forwards and backwards with next_batch/prev_batch (GET and POST)", async () => {
    await clearDirectory();
    const rooms: string[] = [];
    for (let i = 0; i < 5; i++) rooms.push(await create(alice, { visibility: "public", preset: "public_chat", name: `page ${i}` }));
    // Give rooms[4] two members and rooms[3] one extra so the order is not only by room id.
    for (const c of [bob, carol]) await c.ok("POST", `/join/${enc(rooms[4]!)}`, {});
    await bob.ok("POST", `/join/${enc(rooms[3]!)}`, {});
    const expected = [rooms[4]!, rooms[3]!, ...[rooms[0]!, rooms[1]!, rooms[2]!].sort()];

    // since: null is the first page (as Synapse reads it; sytest sends it so).
    expect((await alice.ok("POST", "/publicRooms", { limit: 2, since: null })).chunk.map((r: any) => r.room_id)).toEqual(expected.slice(0, 2));
    const seen: string[] = [];
    let page = await anonymousGet(`${V3}/publicRooms?limit=2`);
    expect(page.prev_batch).toBeUndefined();
    const tokens: string[] = [];
    for (;;) {
      expect(page.total_room_count_estimate).toBe(5);
      seen.push(...page.chunk.map((r: any) => r.room_id));
      if (!page.next_batch) break;
      tokens.push(page.next_batch);
      page = await anonymousGet(`${V3}/publicRooms?limit=2&since=${enc(page.next_batch)}`);
      expect(page.prev_batch).toBeDefined();
    }
    expect(seen).toEqual(expected);
    expect(page.chunk.length).toBe(1);
    // Back from the last page.
    const back = await alice.ok("POST", "/publicRooms", { limit: 2, since: page.prev_batch });
    expect(back.chunk.map((r: any) => r.room_id)).toEqual(expected.slice(2, 4));
    const first = await alice.ok("POST", `${R0}/publicRooms`, { limit: 2, since: back.prev_batch });
    expect(first.chunk.map((r: any) => r.room_id)).toEqual(expected.slice(0, 2));
    expect(first.prev_batch).toBeUndefined();
    expect(first.next_batch).toBeDefined();
    // limit 0: no rooms, but the count and a token to start from.
    const counted = await alice.ok("POST", "/publicRooms", { limit: 0 });
    expect(counted.chunk).toEqual([]);
    expect(counted.total_room_count_estimate).toBe(5);
    expect((await alice.ok("POST", "/publicRooms", { limit: 5, since: counted.next_batch })).chunk.map((r: any) => r.room_id)).toEqual(expected);
  });

  test("POST filters by generic_search_term (name, topic, aliases) and room_types", async () => {
    await clearDirectory();
    const coffee = await create(alice, { visibility: "public", name: "Coffee lovers" });
    const tea = await create(alice, { visibility: "public", topic: "All about TEA" });
    const aliased = await create(alice, { visibility: "public", room_alias_name: "espresso-bar" });
    const space = await create(alice, { visibility: "public", name: "Coffee space", creation_content: { type: "m.space" } });
    const search = async (filter: Record<string, unknown>) => (await alice.ok("POST", "/publicRooms", { filter })).chunk.map((r: any) => r.room_id).sort();

    expect(await search({ generic_search_term: "coffee" })).toEqual([coffee, space].sort());
    expect(await search({ generic_search_term: "tea" })).toEqual([tea]);
    expect(await search({ generic_search_term: "ESPRESSO" })).toEqual([aliased]);
    expect(await search({ generic_search_term: tea })).toEqual([tea]);
    expect(await search({ generic_search_term: "nothing matches" })).toEqual([]);
    expect(await search({ room_types: ["m.space"] })).toEqual([space]);
    expect(await search({ room_types: [null] })).toEqual([coffee, tea, aliased].sort());
    expect(await search({ generic_search_term: "coffee", room_types: [null] })).toEqual([coffee]);
    expect(await search({})).toEqual([coffee, tea, aliased, space].sort());
    const filtered = await alice.ok("POST", "/publicRooms", { filter: { generic_search_term: "coffee" } });
    expect(filtered.total_room_count_estimate).toBe(2);
    // A third-party network: this server bridges none.
    expect(await alice.ok("POST", "/publicRooms", { third_party_instance_id: "irc" })).toEqual({ chunk: [], total_room_count_estimate: 0 });
    expect((await alice.ok("POST", "/publicRooms", { include_all_networks: true })).chunk.length).toBe(4);
  });

  test("server: our own name is the local directory; another server's is 404 until federation; bad input 400", async () => {
    await clearDirectory();
    await create(alice, { visibility: "public" });
    expect((await anonymousGet(`${V3}/publicRooms?server=${SERVER}`)).chunk.length).toBe(1);
    expect((await alice.ok("POST", `/publicRooms?server=${SERVER}`, {})).chunk.length).toBe(1);
    await alice.fails("GET", "/publicRooms?server=other.example", undefined, 404, "M_NOT_FOUND");
    await alice.fails("POST", "/publicRooms?server=other.example", {}, 404, "M_NOT_FOUND");
    await alice.fails("GET", `/publicRooms?server=${enc("not a server")}`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", "/publicRooms?limit=-1", undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", "/publicRooms?limit=ten", undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", "/publicRooms?since=garbage", undefined, 400, "M_INVALID_PARAM");
    await alice.fails("POST", "/publicRooms", { since: "nXXXX" }, 400, "M_INVALID_PARAM");
    await alice.fails("POST", "/publicRooms", { limit: "5" }, 400, "M_BAD_JSON");
    await alice.fails("POST", "/publicRooms", { filter: { room_types: [5] } }, 400, "M_BAD_JSON");
    await alice.fails("POST", "/publicRooms", { include_all_networks: true, third_party_instance_id: "irc" }, 400, "M_INVALID_PARAM");
    const anonymous = await request(server, "POST", `${V3}/publicRooms`, {});
    expect(anonymous.status).toBe(401);
    const badToken = await request(server, "GET", `${V3}/publicRooms`, undefined, { Authorization: "Bearer nope" });
    expect(badToken.status).toBe(401);
  });
});
