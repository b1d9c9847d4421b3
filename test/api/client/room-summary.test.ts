import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "summary.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
});
afterAll(() => server.stop());

const V1 = "/_matrix/client/v1";
const summary = async (idOrAlias: string, who?: TestClient) => {
  const path = `${V1}/room_summary/${enc(idOrAlias)}`;
  const r = who ? await who.call("GET", path) : await request(server, "GET", path);
  if (r.status === 200) expectMatchesSpec({ api: "client-server", method: "GET", path, status: 200, body: r.body });
  return r;
};

describe("GET /_matrix/client/v1/room_summary", () => {
  test("a knock room is summarised without a token, as knockable", async () => {
    const roomId = await alice.createRoom({ room_version: "10", name: "Door", topic: "knock first", room_alias_name: "door", initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }] });
    const anonymous = await summary(roomId);
    expect(anonymous.status).toBe(200);
    expect(anonymous.body).toMatchObject({ room_id: roomId, join_rule: "knock", name: "Door", topic: "knock first", num_joined_members: 1, room_version: "10", canonical_alias: "#door:summary.example" });
    expect(anonymous.body.membership).toBeUndefined();
    expect((await summary("#door:summary.example")).body.room_id).toBe(roomId);
    expect((await summary(roomId, bob)).body.membership).toBe("leave");
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    expect((await summary(roomId, bob)).body.membership).toBe("knock");
    expect((await summary(roomId, alice)).body.membership).toBe("join");
  });

  test("a private room is 404 to strangers and visible to its members", async () => {
    const roomId = await alice.createRoom({ name: "Secret" });
    expect((await summary(roomId)).status).toBe(404);
    expect((await summary(roomId, bob)).body.errcode).toBe("M_NOT_FOUND");
    expect((await summary(roomId, alice)).body).toMatchObject({ join_rule: "invite", membership: "join" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    expect((await summary(roomId, bob)).body.membership).toBe("invite");
  });

  test("knock_restricted: allowed_room_ids listed; unknown rooms and bad tokens", async () => {
    const space = await alice.createRoom({ preset: "public_chat" });
    const roomId = await alice.createRoom({ room_version: "10", initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock_restricted", allow: [{ type: "m.room_membership", room_id: space }] } }] });
    expect((await summary(roomId)).body).toMatchObject({ join_rule: "knock_restricted", allowed_room_ids: [space] });
    expect((await summary("!nope:summary.example")).status).toBe(404);
    expect((await summary("#nope:summary.example")).status).toBe(404);
    const badToken = await request(server, "GET", `${V1}/room_summary/${enc(roomId)}`, undefined, { Authorization: "Bearer pt_wrong" });
    expect(badToken.status).toBe(401);
  });
});

describe("GET /_matrix/client/v1/rooms/{roomId}/hierarchy", () => {
  test("walks a space: knockable children listed, private children hidden, suggested_only, depth and paging", async () => {
    const space = await alice.createRoom({ preset: "public_chat", name: "Space", creation_content: { type: "m.space" } });
    const knockRoom = await alice.createRoom({ room_version: "10", name: "Knock room", initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }] });
    const hidden = await alice.createRoom({ name: "Hidden" });
    const sub = await alice.createRoom({ preset: "public_chat", name: "Subspace", creation_content: { type: "m.space" } });
    const deep = await alice.createRoom({ preset: "public_chat", name: "Deep" });
    const link = (parent: string, child: string, extra: Record<string, unknown> = {}) =>
      alice.ok("PUT", `/rooms/${enc(parent)}/state/m.space.child/${enc(child)}`, { via: ["summary.example"], ...extra });
    await link(space, knockRoom, { suggested: true, order: "a" });
    await link(space, hidden, { order: "b" });
    await link(space, sub, { order: "c" });
    await link(sub, deep);

    const path = `${V1}/rooms/${enc(space)}/hierarchy`;
    const r = await bob.ok("GET", path);
    const names = r.rooms.map((x: { name: string }) => x.name);
    expect(names).toEqual(["Space", "Knock room", "Subspace", "Deep"]);
    const knockChunk = r.rooms.find((x: { room_id: string }) => x.room_id === knockRoom);
    expect(knockChunk).toMatchObject({ join_rule: "knock", children_state: [] });
    expect(r.rooms[0].room_type).toBe("m.space");
    expect(r.rooms[0].children_state.map((c: { state_key: string }) => c.state_key)).toEqual([knockRoom, hidden, sub]);
    expect(typeof r.rooms[0].children_state[0].origin_server_ts).toBe("number");

    expect((await bob.ok("GET", `${path}?suggested_only=true`)).rooms.map((x: { name: string }) => x.name)).toEqual(["Space", "Knock room"]);
    expect((await bob.ok("GET", `${path}?max_depth=1`)).rooms.map((x: { name: string }) => x.name)).toEqual(["Space", "Knock room", "Subspace"]);
    const page1 = await bob.ok("GET", `${path}?limit=2`);
    expect(page1.rooms).toHaveLength(2);
    const page2 = await bob.ok("GET", `${path}?limit=2&from=${page1.next_batch}`);
    expect(page2.rooms.map((x: { name: string }) => x.name)).toEqual(["Subspace", "Deep"]);
    expect(page2.next_batch).toBeUndefined();
    await bob.fails("GET", `${path}?limit=2&from=${page1.next_batch}&max_depth=1`, undefined, 400, "M_INVALID_PARAM");
    await bob.fails("GET", `${path}?limit=0`, undefined, 400, "M_INVALID_PARAM");
    await bob.fails("GET", `${V1}/rooms/${enc(hidden)}/hierarchy`, undefined, 403, "M_FORBIDDEN");
  });
});
