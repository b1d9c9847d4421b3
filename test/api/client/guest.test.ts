// Guest accounts (client-server-api "Guest Access"): POST /register?kind=guest behind
// registration.allow_guest_access, whoami's is_guest, the routes a guest may call (every other one
// is 403 M_GUEST_ACCESS_FORBIDDEN), joins only where m.room.guest_access is can_join, guests made to
// leave when it stops being so, and the upgrade to a full account with guest_access_token.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { expectMatchesSpec } from "../../helpers/openapi";
import { TestClient, V3, enc } from "../../helpers/rooms";
import { request, testServer } from "../../helpers/server";
import { guestMayCall } from "../../../src/api/middleware/guest-access";

let server: PortierServer;
let alice: TestClient;

async function registerGuest(on: PortierServer, body: Record<string, unknown> = {}): Promise<TestClient> {
  const r = await request(on, "POST", `${V3}/register?kind=guest`, body);
  if (r.status !== 200) throw new Error(`guest registration: ${r.status} ${JSON.stringify(r.body)}`);
  expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/register`, status: 200, body: r.body });
  return new TestClient(on, r.body.user_id, r.body.device_id, r.body.access_token);
}

const localpartOf = (userId: string) => userId.slice(1, userId.indexOf(":"));

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true, allow_guest_access: true } });
  alice = await TestClient.register(server, "alice");
});
afterAll(() => server.stop());

describe("guest registration", () => {
  test("is off by default: 403 M_GUEST_ACCESS_FORBIDDEN, and nothing is made", async () => {
    const closed = await testServer({ registration: { enabled: true } });
    try {
      const r = await request(closed, "POST", `${V3}/register?kind=guest`, {});
      expect({ status: r.status, errcode: r.body.errcode }).toEqual({ status: 403, errcode: "M_GUEST_ACCESS_FORBIDDEN" });
      expect(r.body.access_token).toBeUndefined();
    } finally {
      await closed.stop();
    }
  });

  test("the switch works apart from registration.enabled", async () => {
    const guestsOnly = await testServer({ registration: { enabled: false, allow_guest_access: true } });
    try {
      const guest = await registerGuest(guestsOnly);
      expect((await guest.ok("GET", "/account/whoami")).is_guest).toBe(true);
      const full = await request(guestsOnly, "POST", `${V3}/register`, { username: "someone", password: "pw", auth: { type: "m.login.dummy" } });
      expect(full.status).toBe(403);
    } finally {
      await guestsOnly.stop();
    }
  });

  test("a guest gets a numeric user ID, a token and a device; everything but the device's name is ignored", async () => {
    const guest = await registerGuest(server, { username: "wanted", password: "pw", device_id: "CHOSEN", initial_device_display_name: "Guest phone" });
    expect(guest.userId).toMatch(/^@\d+:/);
    expect(guest.deviceId).not.toBe("CHOSEN");
    expect(guest.token.length).toBeGreaterThan(10);
    const whoami = await guest.ok("GET", "/account/whoami");
    expect(whoami).toEqual({ user_id: guest.userId, device_id: guest.deviceId, is_guest: true });
    expect((await guest.ok("GET", `/devices/${enc(guest.deviceId)}`)).display_name).toBe("Guest phone");
    // No password was set: the guest cannot log in with the one it sent.
    const login = await request(server, "POST", `${V3}/login`, { type: "m.login.password", identifier: { type: "m.id.user", user: guest.userId }, password: "pw" });
    expect(login.status).toBe(403);
    // And two guests are two users.
    expect((await registerGuest(server)).userId).not.toBe(guest.userId);
  });

  test("a full account is not a guest; all-digit usernames are kept for guests", async () => {
    expect((await alice.ok("GET", "/account/whoami")).is_guest).toBe(false);
    const r = await request(server, "POST", `${V3}/register`, { username: "12345", password: "pw", auth: { type: "m.login.dummy" } });
    expect({ status: r.status, errcode: r.body.errcode }).toEqual({ status: 400, errcode: "M_INVALID_USERNAME" });
  });
});

describe("what a guest may call", () => {
  test("routes off the guest list are 403 M_GUEST_ACCESS_FORBIDDEN", async () => {
    const guest = await registerGuest(server);
    await guest.fails("POST", "/createRoom", {}, 403, "M_GUEST_ACCESS_FORBIDDEN");
    await guest.fails("GET", "/pushrules/", undefined, 403, "M_GUEST_ACCESS_FORBIDDEN");
    await guest.fails("PUT", `/profile/${enc(guest.userId)}/avatar_url`, { avatar_url: "mxc://x/y" }, 403, "M_GUEST_ACCESS_FORBIDDEN");
    await guest.fails("POST", "/account/password", { new_password: "x" }, 403, "M_GUEST_ACCESS_FORBIDDEN");
    await guest.fails("GET", "/initialSync", undefined, 403, "M_GUEST_ACCESS_FORBIDDEN");
    // /events is for room previews only.
    await guest.fails("GET", "/events?timeout=0", undefined, 403, "M_GUEST_ACCESS_FORBIDDEN");
    // The deprecated query-parameter token is checked the same way.
    const viaQuery = await request(server, "POST", `${V3}/createRoom?access_token=${enc(guest.token)}`, {});
    expect(viaQuery.body.errcode).toBe("M_GUEST_ACCESS_FORBIDDEN");
  });

  test("routes on the list work: display name, devices, sync, keys", async () => {
    const guest = await registerGuest(server);
    await guest.ok("PUT", `/profile/${enc(guest.userId)}/displayname`, { displayname: "creeper" });
    expect((await guest.ok("GET", `/profile/${enc(guest.userId)}/displayname`)).displayname).toBe("creeper");
    expect((await guest.ok("GET", "/devices")).devices).toHaveLength(1);
    await guest.ok("PUT", `/devices/${enc(guest.deviceId)}`, { display_name: "renamed" });
    await guest.ok("GET", "/sync?timeout=0");
    await guest.ok("POST", "/keys/query", { device_keys: { [guest.userId]: [] } });
    await guest.ok("GET", "/publicRooms");
  });

  test("the list, path by path", () => {
    expect(guestMayCall("GET", "/_matrix/client/v3/rooms/!r:x/messages")).toBe(true);
    expect(guestMayCall("GET", "/_matrix/client/r0/rooms/!r:x/state/m.room.member/@a:x")).toBe(true);
    expect(guestMayCall("PUT", "/_matrix/client/v3/rooms/!r:x/send/m.room.message/t1")).toBe(true);
    expect(guestMayCall("GET", "/_matrix/client/v1/media/download/x/abc")).toBe(true);
    expect(guestMayCall("GET", "/_matrix/media/v3/thumbnail/x/abc")).toBe(true);
    expect(guestMayCall("GET", "/_matrix/client/v3/directory/room/%23lobby%3Ax")).toBe(true);
    expect(guestMayCall("POST", "/_matrix/media/v3/upload")).toBe(false);
    // Member events go through /join and /leave, where the guest rules are.
    expect(guestMayCall("PUT", "/_matrix/client/v3/rooms/!r:x/state/m.room.topic")).toBe(true);
    expect(guestMayCall("PUT", "/_matrix/client/v3/rooms/!r:x/state/m.room.member/@g:x")).toBe(false);
    expect(guestMayCall("PUT", "/_matrix/client/v3/rooms/!r:x/state/m%2Eroom%2Emember/%40g%3Ax")).toBe(false);
    expect(guestMayCall("GET", "/_matrix/client/v3/rooms/!r:x/state/m.room.member/@g:x")).toBe(true);
    expect(guestMayCall("POST", "/_matrix/client/v3/rooms/!r:x/invite")).toBe(false);
    expect(guestMayCall("POST", "/_matrix/client/v3/rooms/!r:x/kick")).toBe(false);
    expect(guestMayCall("DELETE", "/_matrix/client/v3/devices/D")).toBe(false);
    expect(guestMayCall("GET", "/_matrix/client/v3/rooms/!r:x/messages/extra")).toBe(false);
    expect(guestMayCall("GET", "/_synapse/admin/v1/users")).toBe(false);
  });
});

describe("guests joining rooms", () => {
  test("a guest joins where guest access is can_join, sends there, and is refused elsewhere (an invite does not help)", async () => {
    const guest = await registerGuest(server);
    const open = await alice.createRoom({ preset: "public_chat" });
    await alice.ok("PUT", `/rooms/${enc(open)}/state/m.room.guest_access/`, { guest_access: "can_join" });
    await guest.ok("POST", `/rooms/${enc(open)}/join`, {});
    await guest.send(open, { msgtype: "m.text", body: "sup" });
    const messages = await alice.ok("GET", `/rooms/${enc(open)}/messages?dir=b&limit=1`);
    expect(messages.chunk[0]).toMatchObject({ sender: guest.userId, content: { body: "sup" } });

    // public_chat makes guest access forbidden.
    const closed = await alice.createRoom({ preset: "public_chat" });
    await guest.fails("POST", `/rooms/${enc(closed)}/join`, {}, 403, "M_FORBIDDEN");
    await guest.fails("POST", `/join/${enc(closed)}`, {}, 403, "M_FORBIDDEN");
    await alice.ok("POST", `/rooms/${enc(closed)}/invite`, { user_id: guest.userId });
    await guest.fails("POST", `/rooms/${enc(closed)}/join`, {}, 403, "M_FORBIDDEN");
    // Nor by a member event of its own.
    await guest.fails("PUT", `/rooms/${enc(closed)}/state/m.room.member/${enc(guest.userId)}`, { membership: "join" }, 403, "M_GUEST_ACCESS_FORBIDDEN");
    // Not joined, so not sending either.
    const r = await guest.call("PUT", `/rooms/${enc(closed)}/send/m.room.message/t1`, { msgtype: "m.text", body: "no" });
    expect(r.status).toBe(403);
    // A full user joins the same room as before.
    const bob = await TestClient.register(server, "bob-joins");
    await bob.ok("POST", `/rooms/${enc(closed)}/join`, {});
  });

  test("guests are made to leave when guest access stops being can_join", async () => {
    const guest = await registerGuest(server);
    const roomId = await alice.createRoom({ preset: "private_chat" }); // private_chat: can_join
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: guest.userId });
    await guest.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    const bob = await TestClient.register(server, "bob-stays");
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    await bob.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    expect((await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(guest.userId)}`)).membership).toBe("join");

    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.guest_access/`, { guest_access: "forbidden" });
    let membership = "join";
    for (let i = 0; i < 100 && membership === "join"; i++) {
      membership = (await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(guest.userId)}`)).membership;
      if (membership === "join") await Bun.sleep(20);
    }
    expect(membership).toBe("leave");
    // Its own leave, and full members stay.
    // (format=event: the spec's oneOf of content and event cannot tell the two apart, so no schema check here.)
    const leave = await alice.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(guest.userId)}?format=event`);
    expect(leave.body.sender).toBe(guest.userId);
    expect((await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`)).membership).toBe("join");
  });
});

describe("upgrading a guest to a full account", () => {
  test("registering with guest_access_token keeps the user ID; the account is then full", async () => {
    const guest = await registerGuest(server);
    const roomId = await alice.createRoom({ preset: "private_chat" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: guest.userId });
    await guest.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    const body = { username: localpartOf(guest.userId), password: "SIR_Arthur_David", guest_access_token: guest.token };
    // User-interactive auth first, as for any registration.
    const challenge = await request(server, "POST", `${V3}/register`, body);
    expect(challenge.status).toBe(401);
    expect(challenge.body.flows).toBeDefined();
    const r = await request(server, "POST", `${V3}/register`, { ...body, auth: { type: "m.login.dummy", session: challenge.body.session } });
    expect(r.status).toBe(200);
    expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/register`, status: 200, body: r.body });
    expect(r.body.user_id).toBe(guest.userId);
    const upgraded = new TestClient(server, r.body.user_id, r.body.device_id, r.body.access_token);
    expect((await upgraded.ok("GET", "/account/whoami")).is_guest).toBe(false);
    // What was a guest's is now allowed, and its rooms are still its own.
    await upgraded.createRoom({});
    expect((await upgraded.ok("GET", "/joined_rooms")).joined_rooms).toContain(roomId);
    // The old guest token is no longer a guest's either.
    expect((await guest.ok("GET", "/account/whoami")).is_guest).toBe(false);
    // It logs in with its new password.
    const login = await request(server, "POST", `${V3}/login`, { type: "m.login.password", identifier: { type: "m.id.user", user: guest.userId }, password: "SIR_Arthur_David" });
    expect(login.status).toBe(200);
    // Upgraded once only.
    const again = await request(server, "POST", `${V3}/register`, { ...body, guest_access_token: r.body.access_token, auth: { type: "m.login.dummy" } });
    expect(again.status).toBe(403);
  });

  test("a guest cannot upgrade another user; a full user's token upgrades nothing", async () => {
    const one = await registerGuest(server);
    const two = await registerGuest(server);
    const other = await request(server, "POST", `${V3}/register`, { username: localpartOf(one.userId), password: "pw", guest_access_token: two.token, auth: { type: "m.login.dummy" } });
    expect({ status: other.status, errcode: other.body.errcode }).toEqual({ status: 403, errcode: "M_FORBIDDEN" });
    const notGuest = await request(server, "POST", `${V3}/register`, { username: "alice", password: "pw", guest_access_token: alice.token, auth: { type: "m.login.dummy" } });
    expect(notGuest.status).toBe(403);
    // Both guests are still guests.
    expect((await one.ok("GET", "/account/whoami")).is_guest).toBe(true);
    expect((await two.ok("GET", "/account/whoami")).is_guest).toBe(true);
  });
});
