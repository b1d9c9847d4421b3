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
