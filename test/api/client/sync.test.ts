import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { tempDir, testServer } from "../../helpers/server";
import { R0, TestClient, V3, enc } from "../../helpers/rooms";
import { expectMatchesSpec } from "../../helpers/openapi";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
let dave: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "sync.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
  carol = await TestClient.register(server, "carol");
  dave = await TestClient.register(server, "dave");
});
afterAll(() => server.stop());

const q = (params: Record<string, string | number | boolean | object | undefined>) =>
  "?" +
  Object.entries(params)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${enc(typeof v === "object" ? JSON.stringify(v) : String(v))}`)
    .join("&");

const sync = (client: TestClient, params: Record<string, string | number | boolean | object | undefined> = {}) => client.ok("GET", `/sync${q(params)}`);
const bodies = (events: any[]) => events.filter((e) => e.type === "m.room.message").map((e) => e.content.body);
const stateKeys = (events: any[]) => events.map((e) => `${e.type}|${e.state_key}`);

describe("initial and incremental sync", () => {
  test("initial sync: the joined room with timeline, state at its start, push rules, empty extras", async () => {
    const roomId = await alice.createRoom({ preset: "private_chat", name: "Initial" });
    for (let i = 0; i < 3; i++) await alice.send(roomId, { msgtype: "m.text", body: `m${i}` });
    const r = await sync(alice);
    // Four streams, the e2ee stream once a device exists, then presence (her own sync made her online), then the boot.
    expect(r.next_batch).toMatch(/^s\d+_\d+_\d+_\d+(_e\d+)?_p\d+_[0-9a-z]+$/);
    const room = r.rooms.join[roomId];
    expect(bodies(room.timeline.events)).toEqual(["m0", "m1", "m2"]);
    expect(room.timeline.events.length).toBeLessThanOrEqual(10);
    expect(room.timeline.events.every((e: any) => e.room_id === undefined)).toBe(true);
    expect(room.timeline.events.at(-1).unsigned.transaction_id).toBeDefined();
    // timeline + state cover the room's current state, with no event in both.
    const timelineIds = new Set(room.timeline.events.map((e: any) => e.event_id));
    expect(room.state.events.some((e: any) => timelineIds.has(e.event_id))).toBe(false);
    const current = await alice.ok("GET", `/rooms/${enc(roomId)}/state`);
    const seen = new Set([...room.state.events, ...room.timeline.events].filter((e: any) => e.state_key !== undefined).map((e: any) => e.event_id));
    for (const e of current) expect(seen.has(e.event_id)).toBe(true);
    expect(room.unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
    expect(room.summary["m.joined_member_count"]).toBe(1);
    expect(r.account_data.events.find((e: any) => e.type === "m.push_rules").content.global.override.length).toBeGreaterThan(0);
    // Her own presence, online since this sync.
    expect(r.presence.events).toEqual([{ type: "m.presence", sender: alice.userId, content: expect.objectContaining({ presence: "online", currently_active: true }) }]);
    expect(r.to_device).toEqual({ events: [] });
    expect(r.device_lists).toEqual({ changed: [], left: [] });
    // signed_curve25519 is always counted, zero included (e2ee/e2ee-keys.ts); no fallback key yet.
    expect(r.device_one_time_keys_count).toEqual({ signed_curve25519: 0 });
    expect(r.device_unused_fallback_key_types).toEqual([]);
    // r0 answers the same way.
    const r0 = await alice.ok("GET", `${R0}/sync`);
    expect(Object.keys(r0.rooms.join)).toContain(roomId);
  });

  test("incremental sync: only what is new; nothing new leaves the room out", async () => {
    const roomId = await alice.createRoom({ preset: "private_chat" });
    const first = await sync(alice);
    await alice.send(roomId, { msgtype: "m.text", body: "new1" });
    await alice.send(roomId, { msgtype: "m.text", body: "new2" });
    const second = await sync(alice, { since: first.next_batch });
    const room = second.rooms.join[roomId];
    expect(bodies(room.timeline.events)).toEqual(["new1", "new2"]);
    expect(room.timeline.events.length).toBe(2);
    expect(room.timeline.limited).toBe(false);
    expect(room.state.events).toEqual([]);
    expect(second.account_data.events).toEqual([]);
    const third = await sync(alice, { since: second.next_batch });
    expect(third.rooms.join[roomId]).toBeUndefined();
    expect(third.next_batch).toBe(second.next_batch);
    // A state change arrives in the timeline, not repeated in state.
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: "T" });
    const fourth = await sync(alice, { since: third.next_batch });
    expect(stateKeys(fourth.rooms.join[roomId].timeline.events)).toEqual(["m.room.topic|"]);
    expect(fourth.rooms.join[roomId].state.events).toEqual([]);
  });

  test("limited timeline: state at the timeline's start holds the gap's changes; prev_batch pages with /messages", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const start = await sync(bob);
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: "in the gap" });
    for (let i = 0; i < 15; i++) await alice.send(roomId, { msgtype: "m.text", body: `g${i}` });
    const filter = { room: { timeline: { limit: 5 } } };
    const r = await sync(bob, { since: start.next_batch, filter });
    const room = r.rooms.join[roomId];
    expect(room.timeline.limited).toBe(true);
    expect(bodies(room.timeline.events)).toEqual(["g10", "g11", "g12", "g13", "g14"]);
    expect(stateKeys(room.state.events)).toEqual(["m.room.topic|"]);
    expect(room.state.events[0].content).toEqual({ topic: "in the gap" });
    const page = await bob.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=10&from=${enc(room.timeline.prev_batch)}`);
    expect(bodies(page.chunk)).toEqual(["g9", "g8", "g7", "g6", "g5", "g4", "g3", "g2", "g1", "g0"]);
    // next_batch also works as a /messages token (the spec allows it).
    const fromNext = await bob.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=2&from=${enc(r.next_batch)}`);
    expect(bodies(fromNext.chunk)).toEqual(["g14", "g13"]);
    // An initial sync with a small limit: limited, and the state is the state before the timeline.
    const initial = await sync(bob, { filter });
    const iroom = initial.rooms.join[roomId];
    expect(iroom.timeline.limited).toBe(true);
    expect(stateKeys(iroom.state.events)).toContain("m.room.create|");
    expect(stateKeys(iroom.state.events)).toContain(`m.room.member|${bob.userId}`);
  });

  test("full_state=true: the full state with an incremental timeline, at once", async () => {
    const roomId = await alice.createRoom({ preset: "private_chat" });
    const first = await sync(alice);
    await alice.send(roomId, { msgtype: "m.text", body: "after" });
    const started = performance.now();
    const r = await sync(alice, { since: first.next_batch, full_state: true, timeout: 5000 });
    expect(performance.now() - started).toBeLessThan(2000);
    const room = r.rooms.join[roomId];
    expect(bodies(room.timeline.events)).toEqual(["after"]);
    expect(stateKeys(room.state.events)).toContain("m.room.create|");
    expect(stateKeys(room.state.events)).toContain("m.room.power_levels|");
  });
});

describe("room summary", () => {
  test("heroes for a room without a name or canonical alias; none once it has a name", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const unnamed = (await sync(alice)).rooms.join[roomId].summary;
    expect(unnamed).toEqual({ "m.heroes": [bob.userId], "m.joined_member_count": 2, "m.invited_member_count": 0 });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.name`, { name: "Now named" });
    const named = (await sync(alice)).rooms.join[roomId].summary;
    expect(named).toEqual({ "m.joined_member_count": 2, "m.invited_member_count": 0 });
  });
});

describe("invites, joins, leaves and knocks", () => {
  test("an invite appears with invite_state and moves to join after joining", async () => {
    const roomId = await alice.createRoom({ preset: "private_chat", name: "Invited", topic: "about" });
    const before = await sync(bob);
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    const r = await sync(bob, { since: before.next_batch });
    const invite = r.rooms.invite[roomId];
    const keys = stateKeys(invite.invite_state.events);
    for (const k of ["m.room.create|", "m.room.join_rules|", "m.room.name|", "m.room.topic|", `m.room.member|${bob.userId}`]) expect(keys).toContain(k);
    const member = invite.invite_state.events.find((e: any) => e.type === "m.room.member");
    // The invitee's own invite event comes whole, with its ID and time (clients show when it came).
    expect(member).toEqual({ type: "m.room.member", state_key: bob.userId, sender: alice.userId, content: expect.objectContaining({ membership: "invite" }), event_id: expect.stringMatching(/^\$/), origin_server_ts: expect.any(Number) });
    expect(Math.abs(member.origin_server_ts - Date.now())).toBeLessThan(60_000);
    // The other stripped events stay stripped.
    expect(invite.invite_state.events.find((e: any) => e.type === "m.room.create")).not.toHaveProperty("origin_server_ts");
    expect(r.rooms.join[roomId]).toBeUndefined();
    // An initial sync lists it too; an incremental one after that does not again.
    expect((await sync(bob)).rooms.invite[roomId]).toBeDefined();
    expect((await sync(bob, { since: r.next_batch })).rooms.invite[roomId]).toBeUndefined();

    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const joined = await sync(bob, { since: r.next_batch });
    expect(joined.rooms.invite[roomId]).toBeUndefined();
    const room = joined.rooms.join[roomId];
    // New to the client: the whole room (state at the timeline's start + the timeline).
    const all = [...stateKeys(room.state.events), ...stateKeys(room.timeline.events)];
    for (const k of ["m.room.create|", "m.room.name|", `m.room.member|${bob.userId}`, `m.room.member|${alice.userId}`]) expect(all).toContain(k);
    expect(room.summary["m.joined_member_count"]).toBe(2);
    // A named room gets no heroes (they name rooms that have no name).
    expect(room.summary["m.heroes"]).toBeUndefined();
  });

  test("leaving, being kicked or banned appears in rooms.leave; include_leave; forgotten rooms are gone", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    await carol.ok("POST", `/join/${enc(roomId)}`, {});
    const bobStart = await sync(bob);
    const carolStart = await sync(carol);
    await alice.send(roomId, { msgtype: "m.text", body: "before leave" });
    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    await alice.ok("POST", `/rooms/${enc(roomId)}/kick`, { user_id: carol.userId, reason: "bye" });
    await alice.send(roomId, { msgtype: "m.text", body: "after leave" });

    const b = await sync(bob, { since: bobStart.next_batch });
    expect(b.rooms.join[roomId]).toBeUndefined();
    const left = b.rooms.leave[roomId];
    expect(bodies(left.timeline.events)).toEqual(["before leave"]);
    expect(left.timeline.events.at(-1)).toMatchObject({ type: "m.room.member", state_key: bob.userId, content: { membership: "leave" } });
    const c = await sync(carol, { since: carolStart.next_batch });
    expect(c.rooms.leave[roomId].timeline.events.at(-1)).toMatchObject({ type: "m.room.member", state_key: carol.userId, sender: alice.userId });
    // Only once.
    expect((await sync(bob, { since: b.next_batch })).rooms.leave[roomId]).toBeUndefined();

    // Initial sync: only with include_leave, with the state as of the leave.
    expect((await sync(bob)).rooms.leave[roomId]).toBeUndefined();
    const withLeave = await sync(bob, { filter: { room: { include_leave: true } } });
    const l = withLeave.rooms.leave[roomId];
    expect(bodies(l.timeline.events)).not.toContain("after leave");
    expect(stateKeys([...l.state.events, ...l.timeline.events])).toContain("m.room.create|");

    await bob.ok("POST", `/rooms/${enc(roomId)}/forget`, {});
    expect((await sync(bob, { filter: { room: { include_leave: true } } })).rooms.leave[roomId]).toBeUndefined();

    // A ban of a joined user is a leave too.
    await dave.ok("POST", `/join/${enc(roomId)}`, {});
    const daveStart = await sync(dave);
    await alice.ok("POST", `/rooms/${enc(roomId)}/ban`, { user_id: dave.userId });
    const d = await sync(dave, { since: daveStart.next_batch });
    expect(d.rooms.leave[roomId].timeline.events.at(-1).content.membership).toBe("ban");
  });

  test("a rejected invite shows the leave without the room's state", async () => {
    const roomId = await alice.createRoom({ preset: "private_chat", name: "Secret" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: carol.userId });
    const start = await sync(carol);
    expect(start.rooms.invite[roomId]).toBeDefined();
    await carol.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const r = await sync(carol, { since: start.next_batch });
    const left = r.rooms.leave[roomId];
    expect(left.state.events).toEqual([]);
    expect(left.timeline.events.every((e: any) => e.type === "m.room.member" && e.state_key === carol.userId)).toBe(true);
    expect(r.rooms.invite[roomId]).toBeUndefined();
  });

  test("a knock appears in rooms.knock with knock_state", async () => {
    const roomId = await alice.createRoom({ preset: "private_chat", room_version: "10", name: "Knock here" });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.join_rules`, { join_rule: "knock" });
    const start = await sync(dave);
    const engine = resolve(server.container, Tokens.RoomEngine);
    await engine.sendEvent(roomId, { type: "m.room.member", sender: dave.userId, stateKey: dave.userId, content: { membership: "knock", reason: "let me in" } });
    const r = await sync(dave, { since: start.next_batch });
    const knock = r.rooms.knock[roomId];
    const keys = stateKeys(knock.knock_state.events);
    for (const k of ["m.room.create|", "m.room.join_rules|", "m.room.name|", `m.room.member|${dave.userId}`]) expect(keys).toContain(k);
    expect(knock.knock_state.events.find((e: any) => e.type === "m.room.join_rules").content.join_rule).toBe("knock");
    expect(knock.knock_state.events.find((e: any) => e.type === "m.room.member").content).toMatchObject({ membership: "knock", reason: "let me in" });
    expect((await sync(dave)).rooms.knock[roomId]).toBeDefined();
    // Accepting the knock (an invite) moves the room to rooms.invite.
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: dave.userId });
    const accepted = await sync(dave, { since: r.next_batch });
    expect(accepted.rooms.knock[roomId]).toBeUndefined();
    expect(accepted.rooms.invite[roomId]).toBeDefined();
  });
});

describe("ephemeral events and account data", () => {
  test("typing and receipts appear in the joined room's ephemeral section when they change", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const eventId = await alice.send(roomId);
    const start = await sync(bob);
    await alice.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 30_000 });
    await alice.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {});
    const r = await sync(bob, { since: start.next_batch });
    const ephemeral = r.rooms.join[roomId].ephemeral.events;
    expect(ephemeral.find((e: any) => e.type === "m.typing").content).toEqual({ user_ids: [alice.userId] });
    expect(ephemeral.find((e: any) => e.type === "m.receipt").content[eventId]["m.read"][alice.userId].ts).toBeNumber();
    const again = await sync(bob, { since: r.next_batch });
    expect(again.rooms.join[roomId]).toBeUndefined();
    await alice.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: false });
    const stopped = await sync(bob, { since: again.next_batch });
    expect(stopped.rooms.join[roomId].ephemeral.events).toEqual([{ type: "m.typing", content: { user_ids: [] } }]);
  });

  test("global and room account data changes appear once", async () => {
    const roomId = await carol.createRoom({ preset: "private_chat" });
    const start = await sync(carol);
    await carol.ok("PUT", `/user/${enc(carol.userId)}/account_data/org.example.global`, { a: 1 });
    await carol.ok("PUT", `/user/${enc(carol.userId)}/rooms/${enc(roomId)}/account_data/org.example.room`, { b: 2 });
    const r = await sync(carol, { since: start.next_batch });
    expect(r.account_data.events).toEqual([{ type: "org.example.global", content: { a: 1 } }]);
    expect(r.rooms.join[roomId].account_data.events).toEqual([{ type: "org.example.room", content: { b: 2 } }]);
    expect(r.rooms.join[roomId].timeline.events).toEqual([]);
    const again = await sync(carol, { since: r.next_batch });
    expect(again.account_data.events).toEqual([]);
    // An account data filter drops unwanted types; the initial sync carries every entry.
    const initial = await sync(carol, { filter: { account_data: { not_types: ["m.push_rules"] } } });
    expect(initial.account_data.events.map((e: any) => e.type)).toEqual(["org.example.global"]);
  });
});

describe("filters", () => {
  test("lazy_load_members: only members of timeline senders and the user's own", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    for (const c of [bob, carol, dave]) await c.ok("POST", `/join/${enc(roomId)}`, {});
    await bob.send(roomId, { msgtype: "m.text", body: "from bob" });
    const lazy = { room: { timeline: { limit: 1 }, state: { lazy_load_members: true } } };
    const r = await sync(carol, { filter: lazy });
    const members = r.rooms.join[roomId].state.events.filter((e: any) => e.type === "m.room.member").map((e: any) => e.state_key);
    expect(members.sort()).toEqual([bob.userId, carol.userId].sort());
    expect(stateKeys(r.rooms.join[roomId].state.events)).toContain("m.room.power_levels|");
    const eager = await sync(carol, { filter: { room: { timeline: { limit: 1 } } } });
    expect(eager.rooms.join[roomId].state.events.filter((e: any) => e.type === "m.room.member").length).toBe(4);
    // Incremental: a new sender's member event comes along with their message.
    await dave.send(roomId, { msgtype: "m.text", body: "from dave" });
    const next = await sync(carol, { since: r.next_batch, filter: lazy });
    expect(next.rooms.join[roomId].state.events.map((e: any) => e.state_key)).toEqual([dave.userId]);
  });

  test("timeline types, room filters and uploaded filters", async () => {
    const roomA = await alice.createRoom({ preset: "private_chat" });
    const roomB = await alice.createRoom({ preset: "private_chat" });
    const start = await sync(alice);
    await alice.send(roomA, { msgtype: "m.text", body: "a" });
    await alice.send(roomA, { foo: 1 }, "org.example.custom");
    await alice.send(roomB, { msgtype: "m.text", body: "b" });
    const filter = { room: { rooms: [roomA], timeline: { types: ["m.room.message"] } } };
    const r = await sync(alice, { since: start.next_batch, filter });
    expect(Object.keys(r.rooms.join)).toEqual([roomA]);
    expect(r.rooms.join[roomA].timeline.events.map((e: any) => e.type)).toEqual(["m.room.message"]);
    const { filter_id } = await alice.ok("POST", `/user/${enc(alice.userId)}/filter`, filter);
    const byId = await sync(alice, { since: start.next_batch, filter: filter_id });
    expect(Object.keys(byId.rooms.join)).toEqual([roomA]);
  });

  test("bad since, filter, timeout and full_state are Matrix errors", async () => {
    await alice.fails("GET", `/sync?since=garbage`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/sync?since=s1_2_3`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/sync?since=s99999999999999999999_1_1_1_x`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/sync?filter=${enc("{not json")}`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: "x" } } }))}`, undefined, 400, "M_BAD_JSON");
    await alice.fails("GET", `/sync?filter=424242`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/sync?timeout=soon`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/sync?full_state=maybe`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/sync?set_presence=busy`, undefined, 400, "M_INVALID_PARAM");
    const noAuth = await server.app.handle(new Request(`http://localhost${V3}/sync`));
    expect(noAuth.status).toBe(401);
    // A token from the future (a wiped database) is not an error: it reads as now.
    const r = await sync(alice, { since: "s999999_999999_999999_99_zz" });
    expect(r.next_batch).toMatch(/^s\d+_/);
  });
});

describe("long-poll", () => {
  test("returns as soon as a message arrives, well before the timeout", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const start = await sync(bob);
    const started = performance.now();
    const pending = sync(bob, { since: start.next_batch, timeout: 10_000 });
    await Bun.sleep(100);
    await alice.send(roomId, { msgtype: "m.text", body: "wake up" });
    const r = await pending;
    const elapsed = performance.now() - started;
    expect(elapsed).toBeLessThan(5_000);
    expect(bodies(r.rooms.join[roomId].timeline.events)).toEqual(["wake up"]);
  });

  test("an event in another room does not answer; the timeout answers empty", async () => {
    const other = await carol.createRoom({ preset: "private_chat" });
    const start = await sync(dave);
    const started = performance.now();
    const pending = sync(dave, { since: start.next_batch, timeout: 400 });
    await Bun.sleep(50);
    await carol.send(other, { msgtype: "m.text", body: "not for dave" });
    const r = await pending;
    expect(performance.now() - started).toBeGreaterThanOrEqual(350);
    expect(r.rooms).toEqual({ join: {}, invite: {}, knock: {}, leave: {} });
    expect(r.account_data.events).toEqual([]);
  });

  test("an invite, typing and account data wake a waiting sync", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const start = await sync(carol);
    let pending = sync(carol, { since: start.next_batch, timeout: 10_000 });
    await Bun.sleep(20);
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: carol.userId });
    let r = await pending;
    expect(r.rooms.invite[roomId]).toBeDefined();

    await carol.ok("POST", `/join/${enc(roomId)}`, {});
    r = await sync(carol, { since: r.next_batch });
    pending = sync(carol, { since: r.next_batch, timeout: 10_000 });
    await Bun.sleep(20);
    await alice.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 5_000 });
    r = await pending;
    expect(r.rooms.join[roomId].ephemeral.events[0].type).toBe("m.typing");

    pending = sync(carol, { since: r.next_batch, timeout: 10_000 });
    await Bun.sleep(20);
    await carol.ok("PUT", `/user/${enc(carol.userId)}/account_data/org.example.wake`, { x: 1 });
    r = await pending;
    expect(r.account_data.events).toEqual([{ type: "org.example.wake", content: { x: 1 } }]);
  });

  test("a client that goes away leaves no waiter behind", async () => {
    const notifier = resolve(server.container, Tokens.SyncNotifier);
    const start = await sync(dave);
    const controller = new AbortController();
    const pending = server.app.handle(
      new Request(`http://localhost${V3}/sync?since=${enc(start.next_batch)}&timeout=60000`, { headers: { Authorization: `Bearer ${dave.token}` }, signal: controller.signal }),
    );
    await Bun.sleep(20);
    expect(notifier.waitingCount()).toBe(1);
    controller.abort();
    await pending.catch(() => undefined);
    expect(notifier.waitingCount()).toBe(0);
  });
});

describe("restarts", () => {
  test("stop() releases waiting syncs at once; next_batch stays valid on a new server over the same data", async () => {
    const dataDir = tempDir();
    const config = { server_name: "restart.example", registration: { enabled: true }, data_dir: dataDir };
    let s1: PortierServer | undefined = await testServer(config);
    const erin = await TestClient.register(s1, "erin");
    const frank = await TestClient.register(s1, "frank");
    const roomId = await erin.createRoom({ preset: "public_chat" });
    await frank.ok("POST", `/join/${enc(roomId)}`, {});
    await erin.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(erin.userId)}`, { typing: true, timeout: 60_000 });
    await erin.send(roomId, { msgtype: "m.text", body: "before restart" });
    const before = await sync(frank);
    expect(bodies(before.rooms.join[roomId].timeline.events)).toEqual(["before restart"]);

    const started = performance.now();
    const waiting = sync(frank, { since: before.next_batch, timeout: 60_000 });
    await Bun.sleep(20);
    await s1.stop();
    const released = await waiting;
    expect(performance.now() - started).toBeLessThan(3_000);
    expect(released.rooms.join).toEqual({});
    s1 = undefined;

    const s2 = await testServer(config);
    try {
      const frank2 = new TestClient(s2, frank.userId, frank.deviceId, frank.token);
      const erin2 = new TestClient(s2, erin.userId, erin.deviceId, erin.token);
      const quiet = await sync(frank2, { since: before.next_batch });
      expect(quiet.rooms.join[roomId]).toBeUndefined();
      await erin2.send(roomId, { msgtype: "m.text", body: "after restart" });
      const after = await sync(frank2, { since: quiet.next_batch });
      expect(bodies(after.rooms.join[roomId].timeline.events)).toEqual(["after restart"]);
      expect(after.rooms.join[roomId].timeline.limited).toBe(false);
    } finally {
      await s2.stop();
    }
  });
});

describe("spec shape", () => {
  test("a busy response matches sync.yaml", async () => {
    const r = await alice.call("GET", `/sync${q({ filter: { room: { include_leave: true } } })}`);
    expect(r.status).toBe(200);
    expectMatchesSpec({ api: "client-server", method: "GET", path: `${V3}/sync`, status: 200, body: r.body });
  });
});
