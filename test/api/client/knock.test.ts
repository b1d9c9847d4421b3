// Knocking on one server, mirroring Complement's TestKnocking (room version 7, join rule knock) and
// TestKnockingInMSC3787Room (room version 10, knock_restricted), plus the rest of issue 5's list.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { request, testServer } from "../../helpers/server";
import { TestClient, V3, R0, enc } from "../../helpers/rooms";

let server: PortierServer;
let n = 0;
beforeAll(async () => {
  server = await testServer({ server_name: "knock.example", registration: { enabled: true } });
});
afterAll(() => server.stop());

const users = async () => {
  n++;
  return {
    alice: await TestClient.register(server, `alice${n}`),
    bob: await TestClient.register(server, `bob${n}`),
  };
};
const sync = (c: TestClient, since?: string) => c.ok("GET", `/sync?timeout=0${since ? `&since=${since}` : ""}`);
const membershipOf = async (viewer: TestClient, roomId: string, userId: string) =>
  (await viewer.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`)).membership;

describe.each([
  ["7", "knock"],
  ["10", "knock_restricted"],
])("room version %s, join rule %s", (version, joinRule) => {
  test("the whole knock lifecycle", async () => {
    const { alice, bob } = await users();
    const roomId = await alice.createRoom({ room_version: version, preset: "private_chat", name: "Knock knock", topic: "who's there" });

    // Not knockable yet: the join rule is invite.
    await bob.fails("POST", `/knock/${enc(roomId)}`, { reason: "early" }, 403, "M_FORBIDDEN");

    const allowRoom = await alice.createRoom();
    const joinRules = joinRule === "knock" ? { join_rule: "knock" } : { join_rule: "knock_restricted", allow: [{ type: "m.room_membership", room_id: allowRoom }] };
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.join_rules/`, joinRules);

    // Join without an invite: refused.
    await bob.fails("POST", `/rooms/${enc(roomId)}/join`, {}, 403, "M_FORBIDDEN");

    // Knock with a reason: 200, and the knocker's sync shows the room under rooms.knock with stripped state.
    expect(await bob.ok("POST", `/knock/${enc(roomId)}`, { reason: "let me in" })).toEqual({ room_id: roomId });
    const bobSync = await sync(bob);
    const knockState = bobSync.rooms.knock[roomId].knock_state.events as { type: string; state_key: string; content: Record<string, unknown>; sender: string }[];
    const types = knockState.map((e) => e.type);
    for (const t of ["m.room.create", "m.room.join_rules", "m.room.name", "m.room.topic", "m.room.member"]) expect(types).toContain(t);
    expect(knockState.find((e) => e.type === "m.room.member")).toMatchObject({ state_key: bob.userId, content: { membership: "knock", reason: "let me in", displayname: `bob${n}` } });
    expect(knockState.find((e) => e.type === "m.room.join_rules")?.content.join_rule).toBe(joinRule);

    // Knocking again is allowed and makes a new event.
    // ?format=event bodies match both branches of the spec's oneOf, so they are read without the schema check.
    const memberEventId = async () => (await alice.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}?format=event`)).body.event_id as string;
    const firstKnock = await memberEventId();
    await bob.ok("POST", `/knock/${enc(roomId)}`, { reason: "again" });
    const secondKnock = await memberEventId();
    expect(secondKnock).toStartWith("$");
    expect(secondKnock).not.toBe(firstKnock);

    // Members see the knock and its reason, in their timeline and in /members?membership=knock.
    const aliceSync = await sync(alice);
    const timeline = aliceSync.rooms.join[roomId].timeline.events as { type: string; state_key?: string; content: Record<string, unknown> }[];
    expect(timeline.some((e) => e.type === "m.room.member" && e.state_key === bob.userId && e.content.membership === "knock" && e.content.reason === "again")).toBe(true);
    const knockers = await alice.ok("GET", `/rooms/${enc(roomId)}/members?membership=knock`);
    expect(knockers.chunk.map((e: { state_key: string }) => e.state_key)).toEqual([bob.userId]);

    // Rescind: the knocker leaves; the room moves to rooms.leave in an incremental sync; knock again.
    const beforeRescind = (await sync(bob)).next_batch;
    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    expect(await membershipOf(alice, roomId, bob.userId)).toBe("leave");
    const afterRescind = await sync(bob, beforeRescind);
    expect(afterRescind.rooms.leave[roomId]).toBeDefined();
    expect(afterRescind.rooms.knock?.[roomId]).toBeUndefined();
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});

    // Reject: a kick by a moderator; the knocker may knock again.
    await alice.ok("POST", `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId, reason: "not now" });
    expect(await membershipOf(alice, roomId, bob.userId)).toBe("leave");
    // Knock with an empty body object.
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});

    // Accept: an invite; the room moves to rooms.invite; knocking while invited is refused.
    const beforeAccept = (await sync(bob)).next_batch;
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    const afterAccept = await sync(bob, beforeAccept);
    expect(afterAccept.rooms.invite[roomId]).toBeDefined();
    await bob.fails("POST", `/knock/${enc(roomId)}`, {}, 403, "M_FORBIDDEN");

    // Joined: knocking is refused.
    await bob.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await bob.fails("POST", `/knock/${enc(roomId)}`, {}, 403, "M_FORBIDDEN");

    // Banned: refused; after an unban the user may knock again.
    await alice.ok("POST", `/rooms/${enc(roomId)}/ban`, { user_id: bob.userId, reason: "spam" });
    const banned = await bob.fails("POST", `/knock/${enc(roomId)}`, {}, 403, "M_FORBIDDEN");
    expect(banned.error).toContain("banned");
    await alice.ok("POST", `/rooms/${enc(roomId)}/unban`, { user_id: bob.userId });
    // MSC2403's room-id form is not in the spec's OpenAPI: its answer is checked by hand.
    const roomIdForm = await bob.call("POST", `/rooms/${enc(roomId)}/knock`, { reason: "sorry" });
    expect({ status: roomIdForm.status, body: roomIdForm.body }).toEqual({ status: 200, body: { room_id: roomId } });
    expect(await membershipOf(alice, roomId, bob.userId)).toBe("knock");
  });
});

describe("knock edge cases", () => {
  test("by alias (v3 and r0), with via and the legacy server_name", async () => {
    const { alice, bob } = await users();
    const roomId = await alice.createRoom({ room_version: "10", room_alias_name: `knockable${n}`, initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }] });
    const alias = `#knockable${n}:knock.example`;
    expect(await bob.ok("POST", `${V3}/knock/${enc(alias)}?via=knock.example`, { reason: "hi" })).toEqual({ room_id: roomId });
    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    expect(await bob.ok("POST", `${R0}/knock/${enc(alias)}?server_name=knock.example`, {})).toEqual({ room_id: roomId });
  });

  test("unknown room or alias: 404; a room without knocking: 403; a v6 room: 403", async () => {
    const { alice, bob } = await users();
    await bob.fails("POST", `/knock/${enc("!nowhere:knock.example")}`, {}, 404, "M_NOT_FOUND");
    await bob.fails("POST", `/knock/${enc("#nothing:knock.example")}`, {}, 404, "M_NOT_FOUND");
    const publicRoom = await alice.createRoom({ preset: "public_chat" });
    await bob.fails("POST", `/knock/${enc(publicRoom)}`, {}, 403, "M_FORBIDDEN");
    const v6 = await alice.createRoom({ room_version: "6" });
    const r = await bob.fails("POST", `/knock/${enc(v6)}`, {}, 403, "M_FORBIDDEN");
    expect(r.error).toContain("does not support knocking");
  });

  test("a moderator below kick level cannot reject a knock", async () => {
    const { alice, bob } = await users();
    const mod = await TestClient.register(server, `mod${n}`);
    const roomId = await alice.createRoom({
      room_version: "10",
      preset: "public_chat",
      power_level_content_override: { kick: 80, users: { [alice.userId]: 100, [mod.userId]: 50 } },
    });
    await mod.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.join_rules/`, { join_rule: "knock" });
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    await mod.fails("POST", `/rooms/${enc(roomId)}/kick`, { user_id: bob.userId }, 403, "M_FORBIDDEN");
    expect(await membershipOf(alice, roomId, bob.userId)).toBe("knock");
  });

  test("no token: 401 M_MISSING_TOKEN; a body that is not JSON: 400 M_NOT_JSON", async () => {
    const { alice, bob } = await users();
    const roomId = await alice.createRoom({ room_version: "7", initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }] });
    const noToken = await request(server, "POST", `${V3}/knock/${enc(roomId)}`, {});
    expect({ status: noToken.status, errcode: noToken.body.errcode }).toEqual({ status: 401, errcode: "M_MISSING_TOKEN" });
    const notJson = await bob.call("POST", `${V3}/knock/${enc(roomId)}`, "{nope");
    expect({ status: notJson.status, errcode: notJson.body.errcode }).toEqual({ status: 400, errcode: "M_NOT_JSON" });
    expect(await membershipOf(alice, roomId, bob.userId).catch(() => "none")).toBe("none");
  });
});

describe("knock_restricted and restricted: joining through an allowed room", () => {
  test.each([
    ["10", "knock_restricted"],
    ["9", "restricted"],
  ])("room version %s, %s: members of the allowed room join without knocking; others must knock", async (version, rule) => {
    const { alice, bob } = await users();
    const carol = await TestClient.register(server, `carol${n}`);
    const space = await alice.createRoom({ preset: "public_chat" });
    const roomId = await alice.createRoom({
      room_version: version,
      initial_state: [{ type: "m.room.join_rules", content: { join_rule: rule, allow: [{ type: "m.room_membership", room_id: space }] } }],
    });
    await bob.ok("POST", `/rooms/${enc(space)}/join`, {});
    expect(await bob.ok("POST", `/rooms/${enc(roomId)}/join`, {})).toEqual({ room_id: roomId });
    const join = await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`);
    expect(join).toMatchObject({ membership: "join", join_authorised_via_users_server: alice.userId });
    // Carol is not in the allowed room: no join; in a knock_restricted room she may knock instead.
    const refused = await carol.fails("POST", `/rooms/${enc(roomId)}/join`, {}, 403, "M_FORBIDDEN");
    expect(refused.error).toContain("not in any room its join rules allow");
    if (rule === "knock_restricted") await carol.ok("POST", `/knock/${enc(roomId)}`, { reason: "not in the space" });
    else await carol.fails("POST", `/knock/${enc(roomId)}`, {}, 403, "M_FORBIDDEN");
  });
});

describe("unsigned.knock_room_state", () => {
  test("the knocker's own knock event carries the stripped state; other viewers do not get it", async () => {
    const { alice, bob } = await users();
    const roomId = await alice.createRoom({ room_version: "7", name: "Stripped", initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }] });
    await bob.ok("POST", `/knock/${enc(roomId)}`, { reason: "hi" });
    const { Tokens, resolve } = await import("../../../src/di/tokens");
    const store = resolve(server.container, Tokens.RoomEventStore);
    const formatter = resolve(server.container, Tokens.Rooms).formatter;
    const knock = (await store.getEvent((await store.currentStateEvent(roomId, "m.room.member", bob.userId))!))!;
    const forKnocker = (await formatter.format(knock, { userId: bob.userId }))!;
    const stripped = (forKnocker.unsigned as { knock_room_state: { type: string; content: Record<string, unknown> }[] }).knock_room_state;
    expect(stripped.map((e) => e.type).sort()).toEqual(["m.room.create", "m.room.join_rules", "m.room.name"]);
    expect(stripped.find((e) => e.type === "m.room.name")?.content).toEqual({ name: "Stripped" });
    expect((await formatter.format(knock, { userId: alice.userId }))!.unsigned).not.toHaveProperty("knock_room_state");
    // It reaches the knocker through /sync: after a rescind, the leave timeline holds the knock.
    const before = (await sync(bob)).next_batch;
    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const after = await sync(bob, before);
    expect(after.rooms.leave[roomId]).toBeDefined();
  });
});
