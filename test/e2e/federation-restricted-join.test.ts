// A restricted join across two Portier servers over TLS on loopback (rooms v8+, server-server-api
// "Restricted rooms"): the joining server's user is in a room the join rules allow, the resident
// server names one of its own users in join_authorised_via_users_server and signs the join on
// send_join; the joining server keeps that signature, without which the join is not valid anywhere.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, enc } from "../helpers/rooms";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";
import { resolve, Tokens } from "../../src/di/tokens";
import { isJsonObject, type JsonObject } from "../../src/protocol/json";

let a: FederatedServer;
let b: FederatedServer;
let alice: TestClient;
let spaceId: string;
let roomId: string;
/** Bytes of padding added to A's signatures in the send_join answers B receives (0: none). */
let padSignatures = 0;

beforeAll(async () => {
  a = await federatedServer({ registration: { enabled: true } });
  b = await federatedServer({ registration: { enabled: true } });
  // What a resident server other than Portier could answer: its signatures made larger.
  const client = resolve(b.server.container, Tokens.FederationClient);
  const request = client.request.bind(client);
  client.request = async (method, destination, path, options) => {
    const response = await request(method, destination, path, options);
    if (padSignatures > 0 && path.includes("/send_join/") && isJsonObject(response) && isJsonObject(response.event)) {
      const signatures = response.event.signatures as Record<string, JsonObject>;
      signatures[a.serverName] = { ...signatures[a.serverName], "ed25519:padding": "A".repeat(padSignatures) };
    }
    return response;
  };
  alice = await TestClient.register(a.server, "alice");
  spaceId = await alice.createRoom({ preset: "public_chat", room_version: "10" });
  roomId = await restrictedRoom();
});

/** A room of A's that members of the space may join. */
const restrictedRoom = () =>
  alice.createRoom({
    room_version: "10",
    initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "restricted", allow: [{ type: "m.room_membership", room_id: spaceId }] } }],
  });

afterAll(async () => {
  await a?.server.stop();
  await b?.server.stop();
});

async function memberOfSpace(username: string): Promise<TestClient> {
  const user = await TestClient.register(b.server, username);
  await user.ok("POST", `/join/${enc(spaceId)}?server_name=${enc(a.serverName)}`, {});
  return user;
}

const storedJoin = async (server: FederatedServer, userId: string, room = roomId) => {
  const store = resolve(server.server.container, Tokens.RoomEventStore);
  const id = await store.currentStateEvent(room, "m.room.member", userId);
  const stored = id === undefined ? undefined : await store.getEvent(id);
  return stored && (JSON.parse(stored.json) as JsonObject);
};

describe("a restricted join over federation", () => {
  test("a member of the allowed room joins through the resident server, which signs the join; both servers hold it with both signatures", async () => {
    const bob = await memberOfSpace("bob");
    const joined = await bob.ok("POST", `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {});
    expect(joined.room_id).toBe(roomId);
    const onB = (await storedJoin(b, bob.userId))!;
    expect((onB.content as JsonObject).join_authorised_via_users_server).toBe(alice.userId);
    expect(Object.keys(onB.signatures as JsonObject).sort()).toEqual([a.serverName, b.serverName].sort());
    await eventually(async () => (await alice.ok("GET", `/rooms/${enc(roomId)}/joined_members`)).joined[bob.userId] !== undefined, 10_000, "bob's join on A");
    expect(((await storedJoin(a, bob.userId))!.signatures as JsonObject)[a.serverName]).toEqual((onB.signatures as JsonObject)[a.serverName]);
    // Joined on B too: B's user can send into the room, and A receives it.
    const { event_id } = await bob.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: "m.text", body: "hello from B" });
    await eventually(async () => (await alice.call("GET", `/rooms/${enc(roomId)}/event/${enc(event_id)}`)).status === 200, 10_000, "bob's message on A");
  }, 30_000);

  test("a user in no allowed room is refused by the resident server, and joins nothing", async () => {
    const carol = await TestClient.register(b.server, "carol");
    const r = await carol.call("POST", `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {});
    expect(r.status).toBe(403);
    expect(r.body.errcode).toBe("M_FORBIDDEN");
    expect(await storedJoin(b, carol.userId)).toBeUndefined();
  }, 30_000);

  test("a join that the resident server's signature takes past the size limit is not stored: every other server would drop it", async () => {
    const dave = await memberOfSpace("dave");
    // A room B has no member in yet: B cannot authorise the join itself, as it could for bob's room.
    const other = await restrictedRoom();
    padSignatures = 70_000;
    try {
      const r = await dave.call("POST", `/join/${enc(other)}?server_name=${enc(a.serverName)}`, {});
      expect(r.status).toBe(502);
      expect(r.body.errcode).toBe("M_UNKNOWN");
      expect(r.body.error).toContain("65536");
    } finally {
      padSignatures = 0;
    }
    expect(await storedJoin(b, dave.userId, other)).toBeUndefined();
    const rooms = (await dave.ok("GET", "/joined_rooms")).joined_rooms;
    expect(rooms).toEqual([spaceId]);
  }, 30_000);
});
