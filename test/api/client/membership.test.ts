import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { testServer } from "../../helpers/server";
import { R0, TestClient, enc } from "../../helpers/rooms";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "member.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
  carol = await TestClient.register(server, "carol");
});
afterAll(() => server.stop());

const member = (c: TestClient, roomId: string, userId: string) => c.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);
const streamPosition = () => resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering();

describe("join and leave", () => {
  test("anyone joins a public room by /join/{roomId} or /rooms/{roomId}/join, with a reason; leaving with a reason", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    expect(await bob.ok("POST", `/join/${enc(roomId)}`, { reason: "hello" })).toEqual({ room_id: roomId });
    expect(await member(alice, roomId, bob.userId)).toEqual({ membership: "join", reason: "hello", displayname: "bob" });
    expect(await carol.ok("POST", `${R0}/rooms/${enc(roomId)}/join`, {})).toEqual({ room_id: roomId });
    // Joining again is idempotent and stores nothing.
    const before = await streamPosition();
    expect(await carol.ok("POST", `/rooms/${enc(roomId)}/join`)).toEqual({ room_id: roomId });
    expect(await streamPosition()).toBe(before);
    expect(await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, { reason: "bye" })).toEqual({});
    expect(await member(alice, roomId, bob.userId)).toEqual({ membership: "leave", reason: "bye" });
    await bob.fails("POST", `/rooms/${enc(roomId)}/leave`, {}, 403, "M_FORBIDDEN");
  });

  test("other keys of the /join body go into the member event; the keys the server sets cannot be overridden", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, { foo: "bar", nested: { n: 1 }, membership: "leave", displayname: "Not Bob" });
    expect(await member(alice, roomId, bob.userId)).toEqual({ membership: "join", displayname: "bob", foo: "bar", nested: { n: 1 } });
  });

  test("an invite-only room refuses uninvited joiners with a clear 403 and stores nothing", async () => {
    const roomId = await alice.createRoom();
    const before = await streamPosition();
    const body = await bob.fails("POST", `/rooms/${enc(roomId)}/join`, {}, 403, "M_FORBIDDEN");
    expect(body.error).toBe("You are not invited to this room");
    expect(await streamPosition()).toBe(before);
  });

  test("unknown rooms and unknown aliases are 404, bad ids 400", async () => {
    await bob.fails("POST", `/join/${enc("!nope:member.example")}`, {}, 404, "M_NOT_FOUND");
    await bob.fails("POST", `/rooms/${enc("!nope:member.example")}/leave`, {}, 404, "M_NOT_FOUND");
    await bob.fails("POST", `/join/${enc("#alias:member.example")}`, {}, 404, "M_NOT_FOUND");
    await bob.fails("POST", `/join/nonsense`, {}, 400, "M_INVALID_PARAM");
    await bob.fails("POST", `/rooms/${enc("!nope:member.example")}/join`, { reason: 5 }, 400, "M_BAD_JSON");
  });
});

describe("invite, kick, ban, unban", () => {
  test("invite lets the invitee join; the invitee can also reject by leaving", async () => {
    const roomId = await alice.createRoom();
    expect(await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId, reason: "come" })).toEqual({});
    expect(await member(alice, roomId, bob.userId)).toEqual({ membership: "invite", reason: "come", displayname: "bob" });
    await bob.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    expect((await member(alice, roomId, bob.userId)).membership).toBe("join");
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: carol.userId });
    await carol.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    expect((await member(alice, roomId, carol.userId)).membership).toBe("leave");
  });

  test("invite errors: missing user_id, bad id, unknown user, remote user, already joined, not a member, no power", async () => {
    const roomId = await alice.createRoom({ power_level_content_override: { invite: 50 } });
    const path = `/rooms/${enc(roomId)}/invite`;
    await alice.fails("POST", path, {}, 400, "M_MISSING_PARAM");
    await alice.fails("POST", path, { user_id: "bob" }, 400, "M_INVALID_PARAM");
    await alice.fails("POST", path, { user_id: "@ghost:member.example" }, 404, "M_NOT_FOUND");
    await alice.fails("POST", path, { user_id: "@bob:remote.example" }, 403, "M_FORBIDDEN");
    expect((await alice.fails("POST", path, { user_id: alice.userId }, 403, "M_FORBIDDEN")).error).toContain("already in the room");
    expect((await bob.fails("POST", path, { user_id: carol.userId }, 403, "M_FORBIDDEN")).error).toBe("You are not in this room");
    await alice.ok("POST", path, { user_id: bob.userId });
    await bob.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    const before = await streamPosition();
    expect((await bob.fails("POST", path, { user_id: carol.userId }, 403, "M_FORBIDDEN")).error).toBe("You do not have permission to invite users to this room");
    expect(await streamPosition()).toBe(before);
  });

  test("kick, ban and unban with reasons and power checks", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const at = (action: string) => `/rooms/${enc(roomId)}/${action}`;
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    await carol.ok("POST", `/join/${enc(roomId)}`, {});
    expect((await bob.fails("POST", at("kick"), { user_id: carol.userId }, 403, "M_FORBIDDEN")).error).toBe("You do not have permission to kick users from this room");
    expect(await alice.ok("POST", at("kick"), { user_id: carol.userId, reason: "spam" })).toEqual({});
    expect(await member(alice, roomId, carol.userId)).toEqual({ membership: "leave", reason: "spam" });
    expect((await alice.fails("POST", at("kick"), { user_id: carol.userId }, 403, "M_FORBIDDEN")).error).toContain("is not in the room");
    expect(await alice.ok("POST", at("ban"), { user_id: bob.userId, reason: "rude" })).toEqual({});
    expect(await member(alice, roomId, bob.userId)).toEqual({ membership: "ban", reason: "rude" });
    expect((await bob.fails("POST", `/join/${enc(roomId)}`, {}, 403, "M_FORBIDDEN")).error).toBe("You are banned from this room");
    // Banning someone who never joined works too.
    await alice.ok("POST", at("ban"), { user_id: "@stranger:remote.example" });
    expect((await alice.fails("POST", at("unban"), { user_id: carol.userId }, 403, "M_FORBIDDEN")).error).toContain("is not banned");
    expect(await alice.ok("POST", at("unban"), { user_id: bob.userId, reason: "sorry" })).toEqual({});
    expect(await member(alice, roomId, bob.userId)).toEqual({ membership: "leave", reason: "sorry" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    await alice.fails("POST", at("ban"), { user_id: "nope" }, 400, "M_INVALID_PARAM");
  });

  test("a moderator cannot kick someone at their own level", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 50, [carol.userId]: 50 } } });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    await carol.ok("POST", `/join/${enc(roomId)}`, {});
    const body = await bob.fails("POST", `/rooms/${enc(roomId)}/kick`, { user_id: carol.userId }, 403, "M_FORBIDDEN");
    expect(body.error).toContain("their power level is not below yours");
  });
});

describe("forget", () => {
  test("only after leaving; joining again un-forgets", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const refused = await bob.fails("POST", `/rooms/${enc(roomId)}/forget`, {}, 400, "M_UNKNOWN");
    expect(refused.error).toContain("is in room");
    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    await bob.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b`);
    expect(await bob.ok("POST", `/rooms/${enc(roomId)}/forget`, {})).toEqual({});
    // A forgotten room's history is no longer readable.
    await bob.fails("GET", `/rooms/${enc(roomId)}/messages?dir=b`, undefined, 403, "M_FORBIDDEN");
    await bob.fails("GET", `/rooms/${enc(roomId)}/state`, undefined, 403, "M_FORBIDDEN");
    const membership = resolve(server.container, Tokens.Membership);
    expect(await membership.isForgotten(bob.userId, roomId)).toBe(true);
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    expect(await membership.isForgotten(bob.userId, roomId)).toBe(false);
    await bob.fails("POST", `/rooms/${enc("!unknown:member.example")}/forget`, {}, 404, "M_NOT_FOUND");
  });
});
