// Profiles reach member events: joins carry the user's displayname/avatar_url, a change is sent to
// every joined room; the fully-read marker also lands in room account data.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { testServer } from "../../helpers/server";
import { TestClient, V3, enc } from "../../helpers/rooms";

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ server_name: "prof.example", registration: { enabled: true } });
});
afterAll(() => server.stop());

describe("profiles in rooms", () => {
  test("creator and joiner member events carry their profile; a displayname change updates every joined room", async () => {
    const alice = await TestClient.register(server, "alice");
    const bob = await TestClient.register(server, "bob");
    await alice.ok("PUT", `${V3}/profile/${enc(alice.userId)}/displayname`, { displayname: "Alice A." });
    const roomA = await alice.createRoom({ preset: "public_chat" });
    const roomB = await alice.createRoom({ preset: "public_chat" });
    const creatorJoin = await alice.ok("GET", `${V3}/rooms/${enc(roomA)}/state/m.room.member/${enc(alice.userId)}`);
    expect(creatorJoin).toMatchObject({ membership: "join", displayname: "Alice A." });

    await bob.ok("POST", `${V3}/rooms/${enc(roomA)}/join`, {});
    const bobJoin = await bob.ok("GET", `${V3}/rooms/${enc(roomA)}/state/m.room.member/${enc(bob.userId)}`);
    // Registration's default displayname is the localpart.
    expect(bobJoin).toMatchObject({ membership: "join", displayname: "bob" });

    await alice.ok("PUT", `${V3}/profile/${enc(alice.userId)}/displayname`, { displayname: "Alice B." });
    await alice.ok("PUT", `${V3}/profile/${enc(alice.userId)}/avatar_url`, { avatar_url: "mxc://prof.example/abc" });
    for (const room of [roomA, roomB]) {
      const member = await alice.ok("GET", `${V3}/rooms/${enc(room)}/state/m.room.member/${enc(alice.userId)}`);
      expect(member).toMatchObject({ membership: "join", displayname: "Alice B.", avatar_url: "mxc://prof.example/abc" });
    }
    const joined = await bob.ok("GET", `${V3}/rooms/${enc(roomA)}/joined_members`);
    expect(joined.joined[alice.userId]).toEqual({ display_name: "Alice B.", avatar_url: "mxc://prof.example/abc" });
  });

  test("a fully-read marker is room account data m.fully_read", async () => {
    const carol = await TestClient.register(server, "carol");
    const room = await carol.createRoom();
    const eventId = await carol.send(room);
    await carol.ok("POST", `${V3}/rooms/${enc(room)}/read_markers`, { "m.fully_read": eventId });
    const data = await carol.ok("GET", `${V3}/user/${enc(carol.userId)}/rooms/${enc(room)}/account_data/m.fully_read`);
    expect(data).toEqual({ event_id: eventId });
  });
});
