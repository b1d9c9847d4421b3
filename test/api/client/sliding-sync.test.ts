// Simplified sliding sync (MSC4186) at its unstable path: lists, subscriptions, required_state,
// timelines, incremental answers by pos, long-polling, extensions, invites and knocks, errors. The
// shapes follow the MSC's example response (and Synapse's unstable field names where they differ).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { roomVersion } from "../../../src/protocol/room-versions";
import { testSigner } from "../../helpers/room-engine";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";

const PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "ss.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
  carol = await TestClient.register(server, "carol");
});
afterAll(() => server.stop());

async function slidingSync(client: TestClient, body: Record<string, unknown>, query: Record<string, string | number> = {}): Promise<any> {
  const qs = Object.entries(query).map(([k, v]) => `${k}=${enc(String(v))}`).join("&");
  const r = await client.call("POST", `${PATH}${qs ? `?${qs}` : ""}`, body);
  if (r.status !== 200) throw new Error(`sliding sync: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

const list = (range: [number, number], extra: Record<string, unknown> = {}) => ({ ranges: [range], required_state: [], timeline_limit: 1, ...extra });
const bodies = (events: any[] | undefined) => (events ?? []).filter((e) => e.type === "m.room.message").map((e) => e.content.body);
const keys = (events: any[] | undefined) => (events ?? []).map((e) => `${e.type}|${e.state_key}`).sort();

describe("lists", () => {
  test("rooms sorted by recent activity, the range cut from them, the count of all; the MSC's room fields", async () => {
    const user = await TestClient.register(server, "lister");
    const a = await user.createRoom({ name: "A" });
    const b = await user.createRoom({ name: "B" });
    const c = await user.createRoom({});
    await user.send(a, { msgtype: "m.text", body: "a is newest" });
    const r = await slidingSync(user, { lists: { all: list([0, 1]) } });
    expect(r.pos).toBeString();
    expect(r.lists).toEqual({ all: { count: 3 } });
    // a (a message just now), then c (created after b); b is outside the range.
    expect(Object.keys(r.rooms).sort()).toEqual([a, c].sort());
    const room = r.rooms[a];
    expect(room.initial).toBe(true);
    expect(room.name).toBe("A");
    expect(bodies(room.timeline)).toEqual(["a is newest"]);
    expect(room.timeline[0].room_id).toBeUndefined();
    expect(room.limited).toBe(true);
    expect(room.prev_batch).toBeString();
    expect(room.joined_count).toBe(1);
    expect(room.invited_count).toBe(0);
    expect(room.notification_count).toBe(0);
    expect(room.highlight_count).toBe(0);
    expect(room.num_live).toBe(0);
    expect(room.membership).toBe("join");
    // bump_stamp follows the latest message-like event: a's message is newer than c's creation.
    expect(room.bump_stamp).toBeGreaterThan(r.rooms[c].bump_stamp);
    // A room without a name gets no name field, and no heroes when it has no other member.
    expect(r.rooms[c].name).toBeUndefined();
    expect(r.rooms[c].heroes).toBeUndefined();
    expect(r.rooms[b]).toBeUndefined();

    // Widening the range sends only the room not sent before (MSC4186 "Paginating room list").
    const wider = await slidingSync(user, { lists: { all: list([0, 9]) } }, { pos: r.pos });
    expect(Object.keys(wider.rooms)).toEqual([b]);
    expect(wider.rooms[b].initial).toBe(true);
  });

  test("heroes name a room without a name; filters is_dm, is_invite and room_types", async () => {
    const user = await TestClient.register(server, "filterer");
    const dm = await user.createRoom({ invite: [bob.userId], is_direct: true });
    await bob.ok("POST", `/join/${enc(dm)}`, {});
    await user.ok("PUT", `/user/${enc(user.userId)}/account_data/m.direct`, { [bob.userId]: [dm] });
    const space = await user.createRoom({ name: "Space", creation_content: { type: "m.space" } });
    const invite = await bob.createRoom({ name: "Invite", invite: [user.userId] });

    const r = await slidingSync(user, {
      lists: {
        dms: list([0, 9], { filters: { is_dm: true } }),
        invites: list([0, 9], { filters: { is_invite: true } }),
        spaces: list([0, 9], { filters: { room_types: ["m.space"] } }),
        notSpaces: list([0, 9], { filters: { not_room_types: ["m.space"], is_invite: false } }),
      },
    });
    expect(r.lists).toEqual({ dms: { count: 1 }, invites: { count: 1 }, spaces: { count: 1 }, notSpaces: { count: 1 } });
    expect(r.rooms[dm].is_dm).toBe(true);
    expect(r.rooms[dm].heroes).toEqual([{ user_id: bob.userId, displayname: "bob" }]);
    expect(r.rooms[dm].joined_count).toBe(2);
    expect(r.rooms[space].is_dm).toBeUndefined();
    expect(r.rooms[invite].membership).toBe("invite");
  });
});

describe("room subscriptions and required_state", () => {
  test("a subscription brings a room outside every window; a room the user is not in is ignored", async () => {
    const user = await TestClient.register(server, "subscriber");
    const old = await user.createRoom({ name: "Old" });
    const recent = await user.createRoom({ name: "Recent" });
    const foreign = await bob.createRoom({ name: "Not mine" });
    const r = await slidingSync(user, {
      lists: { top: list([0, 0]) },
      room_subscriptions: { [old]: { required_state: [["m.room.create", ""]], timeline_limit: 0 }, [foreign]: { required_state: [], timeline_limit: 1 } },
    });
    expect(Object.keys(r.rooms).sort()).toEqual([old, recent].sort());
    expect(keys(r.rooms[old].required_state)).toEqual(["m.room.create|"]);
    // timeline_limit 0: no timeline section at all.
    expect(r.rooms[old].timeline).toBeUndefined();
  });

  test("explicit, wildcard, $ME and $LAZY required_state", async () => {
    const user = await TestClient.register(server, "stater");
    const roomId = await user.createRoom({ name: "State", topic: "t", preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    await carol.ok("POST", `/join/${enc(roomId)}`, {});
    await carol.send(roomId, { msgtype: "m.text", body: "from carol" });
    const sub = (required_state: string[][], timeline_limit = 1) => ({ room_subscriptions: { [roomId]: { required_state, timeline_limit } } });

    const explicit = await slidingSync(user, sub([["m.room.topic", ""], ["m.room.name", ""], ["m.room.nothing", ""]]));
    expect(keys(explicit.rooms[roomId].required_state)).toEqual(["m.room.name|", "m.room.topic|"]);

    const all = await slidingSync(user, sub([["*", "*"]]));
    const current = await user.ok("GET", `/rooms/${enc(roomId)}/state`);
    expect(keys(all.rooms[roomId].required_state)).toEqual(keys(current));

    const members = await slidingSync(user, sub([["m.room.member", "*"]]));
    expect(keys(members.rooms[roomId].required_state)).toEqual([`m.room.member|${bob.userId}`, `m.room.member|${carol.userId}`, `m.room.member|${user.userId}`].sort());

    const me = await slidingSync(user, sub([["m.room.member", "$ME"]]));
    expect(keys(me.rooms[roomId].required_state)).toEqual([`m.room.member|${user.userId}`]);

    // Lazy: only the member events of the timeline's senders (carol's message), not bob's nor the user's own.
    const lazy = await slidingSync(user, sub([["m.room.member", "$LAZY"], ["m.room.create", ""]]));
    expect(keys(lazy.rooms[roomId].required_state)).toEqual(["m.room.create|", `m.room.member|${carol.userId}`]);

    // Incremental: bob speaks, his member event comes; then carol, whose member event was sent already.
    const lazyBody = sub([["m.room.member", "$LAZY"], ["m.room.create", ""]]);
    await bob.send(roomId, { msgtype: "m.text", body: "from bob" });
    const next = await slidingSync(user, lazyBody, { pos: lazy.pos });
    expect(bodies(next.rooms[roomId].timeline)).toEqual(["from bob"]);
    expect(keys(next.rooms[roomId].required_state)).toEqual([`m.room.member|${bob.userId}`]);
    await carol.send(roomId, { msgtype: "m.text", body: "carol again" });
    const after = await slidingSync(user, lazyBody, { pos: next.pos });
    expect(bodies(after.rooms[roomId].timeline)).toEqual(["carol again"]);
    expect(after.rooms[roomId].required_state).toBeUndefined();
  });
});

describe("timelines", () => {
  test("timeline_limit, limited and a prev_batch that /messages pages back from", async () => {
    const user = await TestClient.register(server, "timeliner");
    const roomId = await user.createRoom({});
    for (let i = 0; i < 5; i++) await user.send(roomId, { msgtype: "m.text", body: `m${i}` });
    const r = await slidingSync(user, { room_subscriptions: { [roomId]: { required_state: [], timeline_limit: 3 } } });
    const room = r.rooms[roomId];
    expect(bodies(room.timeline)).toEqual(["m2", "m3", "m4"]);
    expect(room.limited).toBe(true);
    const earlier = await user.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=2&from=${enc(room.prev_batch)}`);
    expect(bodies(earlier.chunk)).toEqual(["m1", "m0"]);

    const whole = await slidingSync(user, { room_subscriptions: { [roomId]: { required_state: [], timeline_limit: 50 } } });
    expect(whole.rooms[roomId].limited).toBe(false);
    expect(whole.rooms[roomId].timeline[0].type).toBe("m.room.create");
  });

  test("history visibility: a room with joined visibility shows nothing from before the user joined", async () => {
    const user = await TestClient.register(server, "latecomer");
    const roomId = await bob.createRoom({ preset: "public_chat", initial_state: [{ type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } }] });
    await bob.send(roomId, { msgtype: "m.text", body: "before" });
    await user.ok("POST", `/join/${enc(roomId)}`, {});
    await bob.send(roomId, { msgtype: "m.text", body: "after" });
    const r = await slidingSync(user, { room_subscriptions: { [roomId]: { required_state: [], timeline_limit: 20 } } });
    expect(bodies(r.rooms[roomId].timeline)).toEqual(["after"]);
  });

  test("a larger timeline_limit on a sent room resends the history with expanded_timeline", async () => {
    const user = await TestClient.register(server, "expander");
    const roomId = await user.createRoom({});
    for (let i = 0; i < 3; i++) await user.send(roomId, { msgtype: "m.text", body: `e${i}` });
    const first = await slidingSync(user, { lists: { l: list([0, 0]) } });
    expect(bodies(first.rooms[roomId].timeline)).toEqual(["e2"]);
    const more = await slidingSync(user, { lists: { l: list([0, 0], { timeline_limit: 3 }) } }, { pos: first.pos });
    expect(bodies(more.rooms[roomId].timeline)).toEqual(["e0", "e1", "e2"]);
    expect(more.rooms[roomId].initial).toBeUndefined();
    expect(more.rooms[roomId].unstable_expanded_timeline).toBe(true);
    expect(more.rooms[roomId].expanded_timeline).toBe(true);
  });
});

describe("incremental answers", () => {
  test("with pos, only the room that changed, with only what is new", async () => {
    const user = await TestClient.register(server, "incr");
    const quiet = await user.createRoom({ name: "Quiet" });
    const busy = await user.createRoom({ name: "Busy" });
    const body = { lists: { all: list([0, 9], { required_state: [["m.room.name", ""]] }) } };
    const first = await slidingSync(user, body);
    expect(Object.keys(first.rooms).sort()).toEqual([quiet, busy].sort());

    await user.send(busy, { msgtype: "m.text", body: "news" });
    const next = await slidingSync(user, body, { pos: first.pos });
    expect(Object.keys(next.rooms)).toEqual([busy]);
    const room = next.rooms[busy];
    expect(room.initial).toBeUndefined();
    expect(bodies(room.timeline)).toEqual(["news"]);
    expect(room.num_live).toBe(1);
    expect(room.limited).toBe(false);
    // Unchanged fields are left out.
    expect(room.name).toBeUndefined();
    expect(room.required_state).toBeUndefined();
    expect(room.bump_stamp).toBeGreaterThan(first.rooms[busy].bump_stamp);

    // A name change comes as the field and as required_state.
    await user.ok("PUT", `/rooms/${enc(busy)}/state/m.room.name/`, { name: "Busier" });
    const renamed = await slidingSync(user, body, { pos: next.pos });
    expect(renamed.rooms[busy].name).toBe("Busier");
    expect(keys(renamed.rooms[busy].required_state)).toEqual(["m.room.name|"]);

    // Nothing new: no rooms (and timeout 0 answers at once).
    const idle = await slidingSync(user, body, { pos: renamed.pos, timeout: 0 });
    expect(idle.rooms).toEqual({});
    expect(idle.lists).toEqual({ all: { count: 2 } });
    // The same pos may be used again (a retry).
    const retry = await slidingSync(user, body, { pos: renamed.pos });
    expect(retry.rooms).toEqual({});
  });

  test("a room that left the window brings what happened meanwhile when it comes back", async () => {
    const user = await TestClient.register(server, "window");
    const a = await user.createRoom({});
    const b = await user.createRoom({});
    const body = { lists: { top: list([0, 0], { timeline_limit: 5 }) } };
    const first = await slidingSync(user, body);
    expect(Object.keys(first.rooms)).toEqual([b]);
    await user.send(a, { msgtype: "m.text", body: "a1" });
    const second = await slidingSync(user, body, { pos: first.pos });
    expect(Object.keys(second.rooms)).toEqual([a]);
    expect(second.rooms[a].initial).toBe(true);
    // b falls out, gets news, comes back: only the news, not initial.
    await user.send(b, { msgtype: "m.text", body: "b1" });
    const third = await slidingSync(user, body, { pos: second.pos });
    expect(Object.keys(third.rooms)).toEqual([b]);
    expect(third.rooms[b].initial).toBeUndefined();
    expect(bodies(third.rooms[b].timeline)).toEqual(["b1"]);
  });

  test("a long-poll wakes on a new message", async () => {
    const user = await TestClient.register(server, "poller");
    const roomId = await user.createRoom({});
    const body = { lists: { all: list([0, 9]) } };
    const first = await slidingSync(user, body);
    const started = performance.now();
    const waiting = slidingSync(user, body, { pos: first.pos, timeout: 10_000 });
    await Bun.sleep(150);
    await user.send(roomId, { msgtype: "m.text", body: "wake up" });
    const r = await waiting;
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(bodies(r.rooms[roomId].timeline)).toEqual(["wake up"]);
  });

  test("a long-poll with nothing new answers after the timeout with no rooms", async () => {
    const user = await TestClient.register(server, "sleeper");
    await user.createRoom({});
    const body = { lists: { all: list([0, 9]) } };
    const first = await slidingSync(user, body);
    const started = performance.now();
    const r = await slidingSync(user, body, { pos: first.pos, timeout: 300 });
    expect(performance.now() - started).toBeGreaterThanOrEqual(250);
    expect(r.rooms).toEqual({});
  });

  test("a kicked user sees the room with the kick; a room left by the user is not listed", async () => {
    const user = await TestClient.register(server, "kicked");
    const roomId = await bob.createRoom({ preset: "public_chat", name: "Kick" });
    const leftRoom = await bob.createRoom({ preset: "public_chat", name: "Left" });
    await user.ok("POST", `/join/${enc(roomId)}`, {});
    await user.ok("POST", `/join/${enc(leftRoom)}`, {});
    await user.ok("POST", `/rooms/${enc(leftRoom)}/leave`, {});
    const body = { lists: { all: list([0, 9], { timeline_limit: 2 }) } };
    const first = await slidingSync(user, body);
    expect(Object.keys(first.rooms)).toEqual([roomId]);
    await bob.ok("POST", `/rooms/${enc(roomId)}/kick`, { user_id: user.userId, reason: "bye" });
    await bob.send(roomId, { msgtype: "m.text", body: "after the kick" });
    const next = await slidingSync(user, body, { pos: first.pos });
    const room = next.rooms[roomId];
    expect(room.membership).toBe("leave");
    expect(room.timeline.map((e: any) => e.content.membership ?? e.content.body)).toEqual(["leave"]);
  });
});

describe("invites and knocks", () => {
  test("an invited room carries its stripped state, not its timeline", async () => {
    const user = await TestClient.register(server, "invitee");
    const roomId = await bob.createRoom({ name: "Come in", topic: "secret", invite: [user.userId] });
    await bob.send(roomId, { msgtype: "m.text", body: "hidden" });
    const r = await slidingSync(user, { lists: { all: list([0, 9], { required_state: [["*", "*"]] }) } });
    const room = r.rooms[roomId];
    expect(room.initial).toBe(true);
    expect(room.membership).toBe("invite");
    expect(room.name).toBe("Come in");
    expect(room.timeline).toBeUndefined();
    expect(room.required_state).toBeUndefined();
    // The inviter's membership comes too (as Synapse sends it).
    expect(keys(room.invite_state)).toEqual(["m.room.create|", "m.room.join_rules|", `m.room.member|${bob.userId}`, `m.room.member|${user.userId}`, "m.room.name|", "m.room.topic|"].sort());
    expect(room.invite_state.find((e: any) => e.type === "m.room.member").sender).toBe(bob.userId);
    // Nothing new: the invite is not sent again.
    expect((await slidingSync(user, { lists: { all: list([0, 9]) } }, { pos: r.pos })).rooms).toEqual({});

    // Joining makes the room new again: sent whole with its timeline.
    await user.ok("POST", `/join/${enc(roomId)}`, {});
    const next = await slidingSync(user, { lists: { all: list([0, 9]) } }, { pos: r.pos });
    expect(next.rooms[roomId].initial).toBe(true);
    expect(next.rooms[roomId].membership).toBe("join");
    expect(next.rooms[roomId].invite_state).toBeUndefined();
  });

  test("an invite over federation to a room this server does not hold carries what came with it", async () => {
    const user = await TestClient.register(server, "farinvitee");
    const roomId = "!far:remote.example";
    const inviter = "@carol:remote.example";
    const event = testSigner("remote.example").signEvent(
      { type: "m.room.member", room_id: roomId, sender: inviter, state_key: user.userId, content: { membership: "invite" }, origin_server_ts: 1_700_000_000_000, depth: 5, prev_events: ["$p"], auth_events: ["$create"] },
      roomVersion("10")!,
    );
    await resolve(server.container, Tokens.OutOfBandMemberships).record({
      userId: user.userId,
      roomId,
      roomVersion: "10",
      membership: "invite",
      event,
      strippedState: [
        { type: "m.room.create", state_key: "", sender: inviter, content: { room_version: "10" } },
        { type: "m.room.name", state_key: "", sender: inviter, content: { name: "Far away" } },
      ],
    });
    const r = await slidingSync(user, { lists: { invites: list([0, 9], { filters: { is_invite: true } }) } });
    expect(r.lists.invites.count).toBe(1);
    const room = r.rooms[roomId];
    expect(room.membership).toBe("invite");
    expect(room.name).toBe("Far away");
    expect(keys(room.invite_state)).toEqual(["m.room.create|", `m.room.member|${user.userId}`, "m.room.name|"]);
    expect(room.invite_state.find((e: any) => e.type === "m.room.member").sender).toBe(inviter);
  });

  test("a knocked room carries knock_state", async () => {
    const user = await TestClient.register(server, "knocker");
    const roomId = await bob.createRoom({ room_version: "10", name: "Knockable", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] });
    await user.ok("POST", `/knock/${enc(roomId)}`, { reason: "let me in" });
    const r = await slidingSync(user, { lists: { all: list([0, 9]) } });
    const room = r.rooms[roomId];
    expect(room.membership).toBe("knock");
    expect(keys(room.knock_state)).toContain(`m.room.member|${user.userId}`);
    expect(room.knock_state.find((e: any) => e.type === "m.room.join_rules").content.join_rule).toBe("knock");
  });
});

describe("extensions", () => {
  test("to_device: messages for the device, acknowledged by since", async () => {
    const user = await TestClient.register(server, "todevice");
    await bob.ok("PUT", `/sendToDevice/m.test/${crypto.randomUUID()}`, { messages: { [user.userId]: { [user.deviceId]: { hello: "there" } } } });
    const r = await slidingSync(user, { extensions: { to_device: { enabled: true } } });
    expect(r.extensions.to_device.events).toEqual([{ sender: bob.userId, type: "m.test", content: { hello: "there" } }]);
    expect(r.extensions.to_device.next_batch).toMatch(/^\d+$/);
    const again = await slidingSync(user, { extensions: { to_device: { enabled: true, since: r.extensions.to_device.next_batch } } }, { pos: r.pos });
    expect(again.extensions.to_device.events).toEqual([]);
    // Not asked for: not there.
    expect((await slidingSync(user, {})).extensions.to_device).toBeUndefined();
  });

  test("e2ee: one-time key counts, fallback key types, device list changes after the first answer", async () => {
    const user = await TestClient.register(server, "e2ee");
    const roomId = await user.createRoom({ preset: "public_chat" });
    const friend = await TestClient.register(server, "e2eefriend");
    await friend.ok("POST", `/join/${enc(roomId)}`, {});
    await user.ok("POST", "/keys/upload", { one_time_keys: { "signed_curve25519:AAAA": { key: "k1", signatures: {} }, "signed_curve25519:AAAB": { key: "k2", signatures: {} } } });
    const r = await slidingSync(user, { extensions: { e2ee: { enabled: true } } });
    expect(r.extensions.e2ee.device_one_time_keys_count).toEqual({ signed_curve25519: 2 });
    expect(r.extensions.e2ee.device_unused_fallback_key_types).toEqual([]);
    expect(r.extensions.e2ee.device_lists).toBeUndefined();
    await friend.login("NEWPHONE");
    const next = await slidingSync(user, { extensions: { e2ee: { enabled: true } } }, { pos: r.pos });
    expect(next.extensions.e2ee.device_lists.changed).toContain(friend.userId);
  });

  test("account_data: global and the rooms' own, whole at first, then what changed", async () => {
    const user = await TestClient.register(server, "accountdata");
    const roomId = await user.createRoom({});
    await user.ok("PUT", `/user/${enc(user.userId)}/account_data/org.example.global`, { a: 1 });
    await user.ok("PUT", `/user/${enc(user.userId)}/rooms/${enc(roomId)}/account_data/org.example.room`, { b: 2 });
    const body = { lists: { all: list([0, 9]) }, extensions: { account_data: { enabled: true } } };
    const r = await slidingSync(user, body);
    expect(r.extensions.account_data.global).toContainEqual({ type: "org.example.global", content: { a: 1 } });
    expect(r.extensions.account_data.global.some((e: any) => e.type === "m.push_rules")).toBe(true);
    expect(r.extensions.account_data.rooms[roomId]).toEqual([{ type: "org.example.room", content: { b: 2 } }]);

    await user.ok("PUT", `/user/${enc(user.userId)}/account_data/org.example.later`, { c: 3 });
    const next = await slidingSync(user, body, { pos: r.pos });
    expect(next.extensions.account_data.global).toEqual([{ type: "org.example.later", content: { c: 3 } }]);
    expect(next.extensions.account_data.rooms).toEqual({});
  });

  test("receipts and typing for the rooms of the lists", async () => {
    const user = await TestClient.register(server, "ephemeral");
    const roomId = await user.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const eventId = await bob.send(roomId, { msgtype: "m.text", body: "read me" });
    const body = { lists: { all: list([0, 9]) }, extensions: { receipts: { enabled: true }, typing: { enabled: true } } };
    const first = await slidingSync(user, body);
    expect(first.extensions.receipts).toEqual({ rooms: {} });
    expect(first.extensions.typing).toEqual({ rooms: {} });

    await bob.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {});
    await bob.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: true, timeout: 30_000 });
    const next = await slidingSync(user, body, { pos: first.pos });
    expect(next.extensions.receipts.rooms[roomId].type).toBe("m.receipt");
    expect(next.extensions.receipts.rooms[roomId].content[eventId]["m.read"][bob.userId].ts).toBeNumber();
    expect(next.extensions.typing.rooms[roomId]).toEqual({ type: "m.typing", content: { user_ids: [bob.userId] } });
    // Only the lists named: none.
    const none = await slidingSync(user, { ...body, extensions: { typing: { enabled: true, lists: [] } } });
    expect(none.extensions.typing).toEqual({ rooms: {} });
  });
});

describe("extensions for rooms that left the windows", () => {
  test("a receipt that landed while the room was outside the window comes when it is back", async () => {
    const user = await TestClient.register(server, "comeback");
    const a = await user.createRoom({ preset: "public_chat" });
    const b = await user.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(a)}`, {});
    await bob.ok("POST", `/join/${enc(b)}`, {});
    const inB = await user.send(b, { msgtype: "m.text", body: "in b" });
    const body = { lists: { top: list([0, 0]) }, extensions: { receipts: { enabled: true } } };
    const first = await slidingSync(user, body);
    expect(Object.keys(first.rooms)).toEqual([b]);
    await bob.send(a, { msgtype: "m.text", body: "a moves up" });
    const second = await slidingSync(user, body, { pos: first.pos });
    expect(Object.keys(second.rooms)).toEqual([a]);
    // b is out of the window now: bob's receipt there is not given yet.
    await bob.ok("POST", `/rooms/${enc(b)}/receipt/m.read/${enc(inB)}`, {});
    const third = await slidingSync(user, body, { pos: second.pos });
    expect(third.extensions.receipts.rooms).toEqual({});
    // b comes back (not new to the connection): with the receipt it missed.
    await user.send(b, { msgtype: "m.text", body: "b moves up" });
    const fourth = await slidingSync(user, body, { pos: third.pos });
    expect(fourth.rooms[b].initial).toBeUndefined();
    expect(fourth.extensions.receipts.rooms[b].content[inB]["m.read"][bob.userId].ts).toBeNumber();
  });
});

describe("errors", () => {
  test("an unknown pos is 400 M_UNKNOWN_POS", async () => {
    await alice.fails("POST", `${PATH}?pos=nothing_1`, {}, 400, "M_UNKNOWN_POS");
    const r = await slidingSync(alice, { conn_id: "one" });
    // A pos belongs to its connection.
    await alice.fails("POST", `${PATH}?pos=${enc(r.pos)}`, { conn_id: "other" }, 400, "M_UNKNOWN_POS");
    // Once a newer pos is used, the older one is gone.
    const second = await slidingSync(alice, { conn_id: "one" }, { pos: r.pos });
    await slidingSync(alice, { conn_id: "one" }, { pos: second.pos });
    await alice.fails("POST", `${PATH}?pos=${enc(r.pos)}`, { conn_id: "one" }, 400, "M_UNKNOWN_POS");
  });

  test("a bad body is 400 M_BAD_JSON or M_INVALID_PARAM; nothing is kept", async () => {
    const connections = resolve(server.container, Tokens.SlidingSync).connections;
    const before = connections.size();
    await alice.fails("POST", PATH, { lists: { a: { ranges: "0-9", required_state: [], timeline_limit: 1 } } }, 400, "M_BAD_JSON");
    await alice.fails("POST", PATH, { lists: { a: { ranges: [[0, 9]], required_state: [["m.room.name"]], timeline_limit: 1 } } }, 400, "M_BAD_JSON");
    await alice.fails("POST", PATH, { lists: { a: { ranges: [[0, 9]], required_state: [], timeline_limit: 5000 } } }, 400, "M_BAD_JSON");
    await alice.fails("POST", PATH, { extensions: { to_device: { enabled: true, since: "abc" } } }, 400, "M_BAD_JSON");
    await alice.fails("POST", PATH, { lists: { a: { ranges: [[9, 0]], required_state: [], timeline_limit: 1 } } }, 400, "M_INVALID_PARAM");
    await alice.fails("POST", `${PATH}?timeout=soon`, {}, 400, "M_INVALID_PARAM");
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`l${i}`, list([0, 0])]));
    await alice.fails("POST", PATH, { lists: many }, 400, "M_INVALID_PARAM");
    const r = await alice.call("POST", PATH);
    expect(r.status).toBe(400);
    expect(connections.size()).toBe(before);
    expect(await alice.call("POST", PATH, {}).then((x) => x.status)).toBe(200);
  });

  test("no access token is 401", async () => {
    const r = await server.app.handle(new Request(`http://localhost${PATH}`, { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } }));
    expect(r.status).toBe(401);
  });
});

test("/versions says simplified sliding sync is served (clients such as Element X look for it)", async () => {
  const r = await alice.call("GET", "/_matrix/client/versions");
  expect(r.body.unstable_features["org.matrix.simplified_msc3575"]).toBe(true);
});
