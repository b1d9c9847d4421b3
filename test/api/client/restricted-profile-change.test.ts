// A joined member's own m.room.member update (join -> join: a per-room displayname, /myroomnick)
// in restricted (v8+) and knock_restricted (v10+) rooms, over PUT /rooms/{roomId}/state/m.room.member/{userId},
// when the content carries join_authorised_via_users_server (as it does when a client copies the
// content of a restricted join).
//
// The auth rules check the key's signature first (rooms/v8.md 4.2.1, v12.md 5.2.1), before the
// join -> join allowance (4.3.5.1 / 5.3.5.1), and only after that whether the authoriser is joined
// and may invite (4.3.5.2 / 5.3.5.2). This server signs only for itself, so:
// - a key naming a local user passes, whoever it is (5.3.5.2 is never reached);
// - a key naming another server's user fails 5.2.1 if the event is sent as given.
// The m.room.member schema (data/event-schemas/schema/m.room.member.yaml) tells implementations
// to drop the key when copying member content, and only a resident server's join may set it, so
// PUT /state drops it: a profile change passes, and no one gets in by naming a local admin.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { bearer, registerUser, type TestUser } from "../../helpers/accounts";
import { enc, V3 } from "../../helpers/rooms";
import { request, testServer } from "../../helpers/server";

const REMOTE_USER = "@someone:elsewhere.example";

let server: PortierServer;
let alice: TestUser; // creates the rooms (invite power)
let bob: TestUser; // joins through the allow list
let carol: TestUser; // in no allowed room
let dave: TestUser; // a local user who is in no room at all

beforeAll(async () => {
  server = await testServer({ server_name: "rp.example", registration: { enabled: true } });
  alice = await registerUser(server, "alice");
  bob = await registerUser(server, "bob");
  carol = await registerUser(server, "carol");
  dave = await registerUser(server, "dave");
});
afterAll(async () => {
  await server.stop();
});

const memberPath = (roomId: string, userId: string) => `${V3}/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`;

async function ok(user: TestUser, method: string, path: string, body?: unknown) {
  const r = await request(server, method, path, body, bearer(user.token));
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A room with `rule` allowing members of a space bob is in; bob joins it through the allow list. */
async function restrictedRoomWithBob(version: string, rule: string): Promise<string> {
  const space = (await ok(alice, "POST", `${V3}/createRoom`, { room_version: version, preset: "public_chat" })).room_id;
  await ok(bob, "POST", `${V3}/rooms/${enc(space)}/join`, {});
  const roomId = (
    await ok(alice, "POST", `${V3}/createRoom`, {
      room_version: version,
      initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: rule, allow: [{ type: "m.room_membership", room_id: space }] } }],
    })
  ).room_id;
  await ok(bob, "POST", `${V3}/rooms/${enc(roomId)}/join`, {});
  return roomId;
}

const CASES: [version: string, rule: string][] = [
  ["8", "restricted"],
  ["9", "restricted"],
  ["10", "restricted"],
  ["10", "knock_restricted"],
  ["11", "restricted"],
  ["11", "knock_restricted"],
  ["12", "restricted"],
  ["12", "knock_restricted"],
];

for (const [version, rule] of CASES) {
  describe(`room version ${version}, join rule ${rule}`, () => {
    let roomId: string;
    beforeAll(async () => {
      roomId = await restrictedRoomWithBob(version, rule);
    });

    test("bob's restricted join carries alice as its authoriser", async () => {
      const content = await ok(bob, "GET", memberPath(roomId, bob.userId));
      expect(content).toMatchObject({ membership: "join", join_authorised_via_users_server: alice.userId });
    });

    test("copying the member content (with its local authoriser) to change the displayname: 200", async () => {
      const current = await ok(bob, "GET", memberPath(roomId, bob.userId));
      await ok(bob, "PUT", memberPath(roomId, bob.userId), { ...current, displayname: `Bob ${version} ${rule}` });
      expect(await ok(bob, "GET", memberPath(roomId, bob.userId))).toMatchObject({ membership: "join", displayname: `Bob ${version} ${rule}` });
    });

    test("join -> join naming a local user who is not in the room: 200 (5.3.5.1 comes before 5.3.5.2)", async () => {
      await ok(bob, "PUT", memberPath(roomId, bob.userId), { membership: "join", displayname: "Bob via dave", join_authorised_via_users_server: dave.userId });
      expect(await ok(bob, "GET", memberPath(roomId, bob.userId))).toMatchObject({ displayname: "Bob via dave" });
    });

    test("join -> join naming another server's user: 200, the key dropped by PUT /state", async () => {
      const r = await request(server, "PUT", memberPath(roomId, bob.userId), { membership: "join", displayname: "Bob remote", join_authorised_via_users_server: REMOTE_USER }, bearer(bob.token));
      expect(r.status).toBe(200);
      const content = await ok(bob, "GET", memberPath(roomId, bob.userId));
      expect(content.displayname).toBe("Bob remote");
      expect(content.join_authorised_via_users_server).toBeUndefined();
    });

    test("POST /join refuses carol, who is in no allowed room", async () => {
      const r = await request(server, "POST", `${V3}/rooms/${enc(roomId)}/join`, {}, bearer(carol.token));
      expect(r.status).toBe(403);
    });

    test("PUT /state cannot let carol in by naming alice as her authoriser", async () => {
      const r = await request(server, "PUT", memberPath(roomId, carol.userId), { membership: "join", join_authorised_via_users_server: alice.userId }, bearer(carol.token));
      expect(r.status).toBe(403);
      // Leave again so that the next run of this check starts from the same state.
      if (r.status === 200) await ok(carol, "POST", `${V3}/rooms/${enc(roomId)}/leave`, {});
    });
  });
}
