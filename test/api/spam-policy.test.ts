// Spam policies through HTTP (issue 9), at every hook point of the client API: a message, state
// event or redaction a policy refuses is answered with the plugin's errcode and stores nothing; a
// shadowed one is answered 200 with a fake event ID and reaches no one; joins, invites, room
// creation, publication, aliases and knocks are refused before anything is stored (a shadow is a
// refusal for joins and room creation, and a silent 200 for invites and knocks); registration and
// display names are checked; a plugin that throws or hangs follows its fail mode and never answers 500.
//
// The bundled spam-policy plugin decides on text; a drop-in "gate" decides on who acts (all users
// are of this server, so blocked servers cannot tell them apart here; they have unit tests).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PortierServer } from "../../src/app";
import { TestClient, enc } from "../helpers/rooms";
import { request, testServer } from "../helpers/server";

const pluginDir = mkdtempSync(join(tmpdir(), "portier-spam-policy-"));
function dropIn(file: string, source: string): string {
  const path = join(pluginDir, file);
  writeFileSync(path, source);
  return path;
}

/** Decides by the localpart's prefix: no* users are denied an action, shadow* users are shadowed. */
const gate = dropIn(
  "gate.ts",
  `const is = (userId, prefix) => userId.startsWith("@" + prefix);
const deny = (message, errcode = "M_FORBIDDEN") => ({ kind: "deny", errcode, message });
const by = (userId, action) => (is(userId, "no" + action) ? deny("no " + action + " for you") : is(userId, "shadow" + action) ? { kind: "shadow" } : { kind: "allow" });
export default {
  name: "gate",
  version: "1.0.0",
  register(host) {
    host.addSpamPolicy({
      checkEventForSpam(e) {
        const body = typeof e.content.body === "string" ? e.content.body : "";
        if (body.includes("shadow me")) return { kind: "shadow" };
        if (e.type === "m.room.redaction" && e.content.reason === "deny me") return deny("this redaction is refused");
        if (e.type === "org.example.shadowed") return { kind: "shadow" };
        return { kind: "allow" };
      },
      userMayJoinRoom: (user) => by(user, "join"),
      userMayKnock: (user) => by(user, "knock"),
      userMayInvite: (inviter, invitee) => by(invitee, "invitee"),
      userMayCreateRoom: (user) => (is(user, "nocreate") ? deny("too many rooms", "M_LIMIT_EXCEEDED") : by(user, "create")),
      userMayPublishRoom: (user) => by(user, "publish"),
      userMayCreateAlias: (user) => by(user, "alias"),
    });
  },
};
`,
);
// Fail modes: each misbehaves only for its own word, so the other tests are not slowed.
const thrower = dropIn("thrower.ts", `export default { name: "thrower", version: "1.0.0", register(host) { host.addSpamPolicy({ checkEventForSpam(e) { if (e.content.body === "throw") throw new Error("the policy broke"); return { kind: "allow" }; } }); } };\n`);
const hangOpen = dropIn("hang-open.ts", `export default { name: "hang-open", version: "1.0.0", register(host) { host.addSpamPolicy({ checkEventForSpam: (e) => (e.content.body === "hang" ? new Promise(() => {}) : { kind: "allow" }) }); } };\n`);
const hangClosed = dropIn("hang-closed.ts", `export default { name: "hang-closed", version: "1.0.0", register(host) { host.addSpamPolicy({ checkEventForSpam: (e) => (e.content.body === "stall" ? new Promise(() => {}) : { kind: "allow" }) }); } };\n`);
const garbage = dropIn("garbage.ts", `export default { name: "garbage", version: "1.0.0", register(host) { host.addSpamPolicy({ checkEventForSpam: (e) => (e.content.body === "garbage" ? { kind: "deny", errcode: "not an errcode" } : { kind: "allow" }) }); } };\n`);

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({
    server_name: "sp.example",
    registration: { enabled: true },
    plugins: [
      {
        name: "spam-policy",
        config: {
          messages: { keywords: ["buy cheap pills"], patterns: ["crypto\\s+giveaway"] },
          room_names: { keywords: ["free nitro", "freenitro"] },
          display_names: { patterns: ["^official\\s*admin$"] },
          usernames: { patterns: ["^spambot"] },
          exempt_users: ["@trusted*:sp.example"],
        },
      },
      { path: gate },
      { path: thrower, fail_mode: "closed" },
      { path: hangOpen, fail_mode: "open", timeout_ms: 50 },
      { path: hangClosed, fail_mode: "closed", timeout_ms: 50 },
      { path: garbage, fail_mode: "closed" },
    ],
  });
});
afterAll(() => server.stop());

let n = 0;
const user = (name: string) => TestClient.register(server, `${name}${++n}`);
const sendPath = (roomId: string, txnId: string = crypto.randomUUID(), type = "m.room.message") => `/rooms/${enc(roomId)}/send/${enc(type)}/${txnId}`;
const text = (body: string) => ({ msgtype: "m.text", body });
/** The bodies of the messages a user sees in a room's timeline. */
const bodies = async (viewer: TestClient, roomId: string) =>
  ((await viewer.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=100`)).chunk as { type: string; content: { body?: string } }[])
    .filter((e) => e.type === "m.room.message")
    .map((e) => e.content.body);
const membershipOf = async (viewer: TestClient, roomId: string, userId: string) => {
  const r = await viewer.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);
  return r.status === 404 ? undefined : (r.body.membership as string);
};
/** A public room of `owner` with `members` joined. */
async function publicRoom(owner: TestClient, ...members: TestClient[]): Promise<string> {
  const roomId = await owner.createRoom({ preset: "public_chat" });
  for (const m of members) await m.ok("POST", `/rooms/${enc(roomId)}/join`, {});
  return roomId;
}

describe("events", () => {
  test("a spammy message is refused 403 with the plugin's message, and nobody sees it", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const roomId = await publicRoom(alice, bob);
    const since = (await bob.ok("GET", "/sync?timeout=0")).next_batch;
    const body = await alice.fails("PUT", sendPath(roomId), text("Buy Cheap Pills today"), 403, "M_FORBIDDEN");
    expect(body.error).toBe("This message was not sent: it contains text this server does not allow");
    await alice.fails("PUT", sendPath(roomId), { msgtype: "m.text", body: "hi", format: "org.matrix.custom.html", formatted_body: "<p>crypto  giveaway</p>" }, 403, "M_FORBIDDEN");
    await alice.fails("PUT", sendPath(roomId), { msgtype: "m.text", body: "* hi", "m.new_content": text("buy cheap pills") }, 403, "M_FORBIDDEN");
    await alice.send(roomId, text("an honest message"));
    expect(await bodies(alice, roomId)).toEqual(["an honest message"]);
    expect(await bodies(bob, roomId)).toEqual(["an honest message"]);
    const sync = await bob.ok("GET", `/sync?timeout=0&since=${since}`);
    expect(sync.rooms.join[roomId].timeline.events.map((e: { content: { body?: string } }) => e.content.body)).toEqual(["an honest message"]);
    // Exempt users are not checked.
    const trusted = await user("trusted");
    await trusted.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await trusted.send(roomId, text("buy cheap pills (a quote)"));
    expect(await bodies(bob, roomId)).toEqual(["buy cheap pills (a quote)", "an honest message"]);
  });

  test("a shadowed message gets 200 and a fake event ID, the same for a retry of its txnId, and reaches no one", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const roomId = await publicRoom(alice, bob);
    const since = (await bob.ok("GET", "/sync?timeout=0")).next_batch;
    const txnId = "shadow-txn";
    const { event_id: eventId } = await alice.ok("PUT", sendPath(roomId, txnId), text("please shadow me"));
    expect(eventId).toMatch(/^\$[A-Za-z0-9_-]{43}$/);
    expect((await alice.ok("PUT", sendPath(roomId, txnId), text("please shadow me"))).event_id).toBe(eventId);
    await alice.send(roomId, text("visible"));
    expect(await bodies(bob, roomId)).toEqual(["visible"]);
    expect(await bodies(alice, roomId)).toEqual(["visible"]);
    const sync = await bob.ok("GET", `/sync?timeout=0&since=${since}`);
    expect(sync.rooms.join[roomId].timeline.events.map((e: { event_id: string }) => e.event_id)).not.toContain(eventId);
    expect(sync.rooms.join[roomId].timeline.events.map((e: { content: { body?: string } }) => e.content.body)).toEqual(["visible"]);
    await bob.fails("GET", `/rooms/${enc(roomId)}/event/${enc(eventId)}`, undefined, 404, "M_NOT_FOUND");
    // Old room versions choose their event IDs in the server's form.
    const v1 = await alice.createRoom({ room_version: "1" });
    expect((await alice.ok("PUT", sendPath(v1), text("shadow me"))).event_id).toMatch(/^\$[A-Za-z0-9_-]+:sp\.example$/);
  });

  test("state events: a spammy room name or topic is refused and the state is unchanged; a shadowed one is not stored", async () => {
    const alice = await user("alice");
    const roomId = await alice.createRoom({ name: "Book club" });
    const body = await alice.fails("PUT", `/rooms/${enc(roomId)}/state/m.room.name/`, { name: "FREE NITRO" }, 403, "M_FORBIDDEN");
    expect(body.error).toBe("This room name or topic contains text this server does not allow");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: "get free nitro" }, 403, "M_FORBIDDEN");
    expect(await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.name/`)).toEqual({ name: "Book club" });
    await alice.fails("GET", `/rooms/${enc(roomId)}/state/m.room.topic/`, undefined, 404, "M_NOT_FOUND");
    const { event_id: fake } = await alice.ok("PUT", `/rooms/${enc(roomId)}/state/org.example.shadowed/`, { a: 1 });
    expect(fake).toMatch(/^\$/);
    await alice.fails("GET", `/rooms/${enc(roomId)}/state/org.example.shadowed/`, undefined, 404, "M_NOT_FOUND");
    // A display name in a member event set through PUT /state is checked as a display name.
    await alice.fails("PUT", `/rooms/${enc(roomId)}/state/m.room.member/${enc(alice.userId)}`, { membership: "join", displayname: "Official Admin" }, 403, "M_FORBIDDEN");
  });

  test("a refused redaction leaves the event as it was", async () => {
    const alice = await user("alice");
    const roomId = await alice.createRoom();
    const eventId = await alice.send(roomId, text("keep me"));
    const body = await alice.fails("PUT", `/rooms/${enc(roomId)}/redact/${enc(eventId)}/r1`, { reason: "deny me" }, 403, "M_FORBIDDEN");
    expect(body.error).toBe("this redaction is refused");
    expect((await alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(eventId)}`)).content).toEqual(text("keep me"));
    await alice.ok("PUT", `/rooms/${enc(roomId)}/redact/${enc(eventId)}/r2`, { reason: "fine" });
    expect((await alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(eventId)}`)).content).toEqual({});
  });
});

describe("membership", () => {
  test("a denied join is refused with the plugin's message and the user is not in the room; a shadowed join is refused too", async () => {
    const alice = await user("alice");
    const nojoin = await user("nojoin");
    const shadowjoin = await user("shadowjoin");
    const roomId = await publicRoom(alice);
    expect((await nojoin.fails("POST", `/join/${enc(roomId)}`, {}, 403, "M_FORBIDDEN")).error).toBe("no join for you");
    expect((await shadowjoin.fails("POST", `/rooms/${enc(roomId)}/join`, {}, 403, "M_FORBIDDEN")).error).toBe("You may not join this room");
    // Through PUT /state as well.
    await nojoin.fails("PUT", `/rooms/${enc(roomId)}/state/m.room.member/${enc(nojoin.userId)}`, { membership: "join" }, 403, "M_FORBIDDEN");
    expect(await membershipOf(alice, roomId, nojoin.userId)).toBeUndefined();
    expect(await membershipOf(alice, roomId, shadowjoin.userId)).toBeUndefined();
    expect((await nojoin.ok("GET", "/joined_rooms")).joined_rooms).toEqual([]);
  });

  test("a denied invite stores nothing; a shadowed invite gets 200 and reaches no one", async () => {
    const alice = await user("alice");
    const noinvitee = await user("noinvitee");
    const shadowinvitee = await user("shadowinvitee");
    const roomId = await alice.createRoom();
    expect((await alice.fails("POST", `/rooms/${enc(roomId)}/invite`, { user_id: noinvitee.userId }, 403, "M_FORBIDDEN")).error).toBe("no invitee for you");
    expect(await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: shadowinvitee.userId })).toEqual({});
    expect(await membershipOf(alice, roomId, noinvitee.userId)).toBeUndefined();
    expect(await membershipOf(alice, roomId, shadowinvitee.userId)).toBeUndefined();
    expect((await shadowinvitee.ok("GET", "/sync?timeout=0")).rooms?.invite?.[roomId]).toBeUndefined();
    await shadowinvitee.fails("POST", `/rooms/${enc(roomId)}/join`, {}, 403, "M_FORBIDDEN");
  });

  test("a denied knock stores nothing; a shadowed knock gets 200 and stores nothing", async () => {
    const alice = await user("alice");
    const noknock = await user("noknock");
    const shadowknock = await user("shadowknock");
    const roomId = await alice.createRoom({ room_version: "7", initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }] });
    expect((await noknock.fails("POST", `/knock/${enc(roomId)}`, { reason: "hi" }, 403, "M_FORBIDDEN")).error).toBe("no knock for you");
    expect(await shadowknock.ok("POST", `/knock/${enc(roomId)}`, { reason: "hi" })).toEqual({ room_id: roomId });
    expect(await membershipOf(alice, roomId, noknock.userId)).toBeUndefined();
    expect(await membershipOf(alice, roomId, shadowknock.userId)).toBeUndefined();
    expect((await shadowknock.ok("GET", "/sync?timeout=0")).rooms?.knock?.[roomId]).toBeUndefined();
    // An allowed knock is stored as before.
    const carol = await user("carol");
    await carol.ok("POST", `/knock/${enc(roomId)}`, { reason: "hi" });
    expect(await membershipOf(alice, roomId, carol.userId)).toBe("knock");
  });
});

describe("rooms and the directory", () => {
  test("createRoom: refused with the plugin's errcode and status (M_LIMIT_EXCEEDED is 429), a shadow refused, and no room is made", async () => {
    const nocreate = await user("nocreate");
    const shadowcreate = await user("shadowcreate");
    expect((await nocreate.fails("POST", "/createRoom", {}, 429, "M_LIMIT_EXCEEDED")).error).toBe("too many rooms");
    expect((await shadowcreate.fails("POST", "/createRoom", {}, 403, "M_FORBIDDEN")).error).toBe("You may not create rooms");
    expect((await nocreate.ok("GET", "/joined_rooms")).joined_rooms).toEqual([]);
    expect((await shadowcreate.ok("GET", "/joined_rooms")).joined_rooms).toEqual([]);
  });

  test("createRoom: a spammy name, topic or initial state, or alias, makes no room", async () => {
    const alice = await user("alice");
    await alice.fails("POST", "/createRoom", { name: "Free Nitro" }, 403, "M_FORBIDDEN");
    await alice.fails("POST", "/createRoom", { topic: "free nitro inside" }, 403, "M_FORBIDDEN");
    await alice.fails("POST", "/createRoom", { initial_state: [{ type: "m.room.topic", content: { topic: "FREE NITRO" } }] }, 403, "M_FORBIDDEN");
    expect((await alice.fails("POST", "/createRoom", { room_alias_name: "freenitro-room" }, 403, "M_FORBIDDEN")).error).toBe("This room alias contains text this server does not allow");
    expect((await alice.ok("GET", "/joined_rooms")).joined_rooms).toEqual([]);
    await alice.fails("GET", `/directory/room/${enc("#freenitro-room:sp.example")}`, undefined, 404, "M_NOT_FOUND");
  });

  test("createRoom's invites are asked with the room's ID: a shadowed one is skipped, a denied one is refused after the room is made (as Synapse does)", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const shadowinvitee = await user("shadowinvitee");
    const roomId = await alice.createRoom({ invite: [bob.userId, shadowinvitee.userId], is_direct: true });
    expect(await membershipOf(alice, roomId, bob.userId)).toBe("invite");
    expect(await membershipOf(alice, roomId, shadowinvitee.userId)).toBeUndefined();
    const invite = await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`);
    expect(invite).toEqual({ membership: "invite", is_direct: true });

    const carol = await user("carol");
    const noinvitee = await user("noinvitee");
    expect((await carol.fails("POST", "/createRoom", { invite: [noinvitee.userId] }, 403, "M_FORBIDDEN")).error).toBe("no invitee for you");
    const [made] = (await carol.ok("GET", "/joined_rooms")).joined_rooms;
    expect(await membershipOf(carol, made, noinvitee.userId)).toBeUndefined();
    expect((await noinvitee.ok("GET", "/sync?timeout=0")).rooms?.invite ?? {}).toEqual({});
  });

  test("publishing: refused through the directory API; a public createRoom makes the room but leaves it unlisted", async () => {
    const nopublish = await user("nopublish");
    const roomId = await nopublish.createRoom();
    const body = await nopublish.fails("PUT", `/directory/list/room/${enc(roomId)}`, { visibility: "public" }, 403, "M_FORBIDDEN");
    expect(body.error).toBe("no publish for you");
    expect(await nopublish.ok("GET", `/directory/list/room/${enc(roomId)}`)).toEqual({ visibility: "private" });
    // Unpublishing is never asked.
    await nopublish.ok("PUT", `/directory/list/room/${enc(roomId)}`, { visibility: "private" });
    const publicOne = await nopublish.createRoom({ visibility: "public" });
    expect(await nopublish.ok("GET", `/directory/list/room/${enc(publicOne)}`)).toEqual({ visibility: "private" });
    const listed = (await request(server, "GET", "/_matrix/client/v3/publicRooms")).body.chunk.map((r: { room_id: string }) => r.room_id);
    expect(listed).not.toContain(publicOne);
    // Others publish as before.
    const alice = await user("alice");
    const good = await alice.createRoom({ visibility: "public", name: "Book club" });
    expect(await alice.ok("GET", `/directory/list/room/${enc(good)}`)).toEqual({ visibility: "public" });
  });

  test("aliases: a denied user, a shadowed one, and a spammy alias are refused, and nothing is mapped", async () => {
    const noalias = await user("noalias");
    const shadowalias = await user("shadowalias");
    const roomA = await noalias.createRoom();
    const roomB = await shadowalias.createRoom();
    const alias = (name: string) => `/directory/room/${enc(`#${name}:sp.example`)}`;
    expect((await noalias.fails("PUT", alias(`a${n}`), { room_id: roomA }, 403, "M_FORBIDDEN")).error).toBe("no alias for you");
    expect((await shadowalias.fails("PUT", alias(`b${n}`), { room_id: roomB }, 403, "M_FORBIDDEN")).error).toBe(`You may not create the alias #b${n}:sp.example`);
    await noalias.fails("GET", alias(`a${n}`), undefined, 404, "M_NOT_FOUND");
    await shadowalias.fails("GET", alias(`b${n}`), undefined, 404, "M_NOT_FOUND");
    const alice = await user("alice");
    const roomC = await alice.createRoom();
    await alice.fails("PUT", alias("get-freenitro"), { room_id: roomC }, 403, "M_FORBIDDEN");
    await alice.ok("PUT", alias(`book-club-${n}`), { room_id: roomC });
  });
});

describe("accounts", () => {
  test("registration with a banned username is refused and makes no account; other names register", async () => {
    const r = await request(server, "POST", "/_matrix/client/v3/register", { username: "spambot99", password: "pw", auth: { type: "m.login.dummy" } });
    expect({ status: r.status, errcode: r.body.errcode, error: r.body.error }).toEqual({ status: 403, errcode: "M_FORBIDDEN", error: "This username is not allowed on this server: choose another" });
    expect((await request(server, "GET", "/_matrix/client/v3/register/available?username=spambot99")).body).toEqual({ available: true });
    const login = await request(server, "POST", "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: "spambot99" }, password: "pw" });
    expect(login.status).toBe(403);
    await user("notaspambot");
  });

  test("a spammy display name is refused and the profile keeps the old one; an avatar change is checked and allowed", async () => {
    const alice = await user("alice");
    const path = `/profile/${enc(alice.userId)}/displayname`;
    const before = (await alice.ok("GET", path)).displayname;
    expect((await alice.fails("PUT", path, { displayname: "Official Admin" }, 403, "M_FORBIDDEN")).error).toBe("This display name contains text this server does not allow");
    expect((await alice.ok("GET", path)).displayname).toBe(before);
    await alice.ok("PUT", path, { displayname: "Alice" });
    await alice.ok("PUT", `/profile/${enc(alice.userId)}/avatar_url`, { avatar_url: "mxc://sp.example/abc" });
    expect(await alice.ok("GET", `/profile/${enc(alice.userId)}`)).toEqual({ displayname: "Alice", avatar_url: "mxc://sp.example/abc" });
  });
});

describe("fail modes", () => {
  test("a throwing plugin with fail_mode closed refuses (403, never 500) and nothing is stored", async () => {
    const alice = await user("alice");
    const roomId = await alice.createRoom();
    const body = await alice.fails("PUT", sendPath(roomId), text("throw"), 403, "M_FORBIDDEN");
    expect(body.error).toBe("This request cannot be checked right now; try again later");
    expect(await bodies(alice, roomId)).toEqual([]);
  });

  test("a hanging plugin is cut off at its timeout: fail_mode open sends, closed refuses", async () => {
    const alice = await user("alice");
    const roomId = await alice.createRoom();
    const started = performance.now();
    await alice.send(roomId, text("hang"));
    await alice.fails("PUT", sendPath(roomId), text("stall"), 403, "M_FORBIDDEN");
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await bodies(alice, roomId)).toEqual(["hang"]);
  });

  test("a decision that is not a valid one counts as the plugin failing", async () => {
    const alice = await user("alice");
    const roomId = await alice.createRoom();
    await alice.fails("PUT", sendPath(roomId), text("garbage"), 403, "M_FORBIDDEN");
    expect(await bodies(alice, roomId)).toEqual([]);
  });
});

describe("without spam plugins", () => {
  test("nothing is checked: spam goes through and every hook is inert", async () => {
    const plain = await testServer({ server_name: "plain.example", registration: { enabled: true } });
    try {
      const spambot = await TestClient.register(plain, "spambot1");
      const roomId = await spambot.createRoom({ name: "Free Nitro", visibility: "public", room_alias_name: "freenitro" });
      await spambot.send(roomId, text("buy cheap pills"));
      await spambot.ok("PUT", `/profile/${enc(spambot.userId)}/displayname`, { displayname: "Official Admin" });
      expect(await spambot.ok("GET", `/directory/list/room/${enc(roomId)}`)).toEqual({ visibility: "public" });
    } finally {
      await plain.stop();
    }
  });
});
