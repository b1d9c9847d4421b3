import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { testServer } from "../../helpers/server";
import { R0, TestClient, enc } from "../../helpers/rooms";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
let dave: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "timeline.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
  carol = await TestClient.register(server, "carol");
  dave = await TestClient.register(server, "dave");
});
afterAll(() => server.stop());

describe("members", () => {
  test("GET /members with membership filters (knock included); /joined_members with profiles; /joined_rooms", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", room_version: "10" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    await bob.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`, { membership: "join", displayname: "Bob", avatar_url: "mxc://timeline.example/b" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: carol.userId });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.join_rules`, { join_rule: "knock" });
    await dave.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.member/${enc(dave.userId)}`, { membership: "knock" });

    const all = await bob.ok("GET", `/rooms/${enc(roomId)}/members`);
    const byUser = Object.fromEntries(all.chunk.map((e: any) => [e.state_key, e.content.membership]));
    expect(byUser).toEqual({ [alice.userId]: "join", [bob.userId]: "join", [carol.userId]: "invite", [dave.userId]: "knock" });
    const joined = await bob.ok("GET", `/rooms/${enc(roomId)}/members?membership=join`);
    expect(joined.chunk.map((e: any) => e.state_key).sort()).toEqual([alice.userId, bob.userId].sort());
    const notJoined = await bob.ok("GET", `${R0}/rooms/${enc(roomId)}/members?not_membership=join`);
    expect(notJoined.chunk.map((e: any) => e.state_key).sort()).toEqual([carol.userId, dave.userId].sort());
    expect((await bob.ok("GET", `/rooms/${enc(roomId)}/members?membership=knock&at=s1`)).chunk.map((e: any) => e.state_key)).toEqual([dave.userId]);
    await bob.fails("GET", `/rooms/${enc(roomId)}/members?membership=joined`, undefined, 400, "M_INVALID_PARAM");
    await dave.fails("GET", `/rooms/${enc(roomId)}/members`, undefined, 403, "M_FORBIDDEN");

    const jm = await alice.ok("GET", `/rooms/${enc(roomId)}/joined_members`);
    expect(jm).toEqual({ joined: { [alice.userId]: { display_name: "alice" }, [bob.userId]: { display_name: "Bob", avatar_url: "mxc://timeline.example/b" } } });
    await carol.fails("GET", `/rooms/${enc(roomId)}/joined_members`, undefined, 403, "M_FORBIDDEN");
    await alice.fails("GET", `/rooms/${enc("!gone:timeline.example")}/joined_members`, undefined, 404, "M_NOT_FOUND");

    expect((await bob.ok("GET", "/joined_rooms")).joined_rooms).toContain(roomId);
    expect((await carol.ok("GET", `${R0}/joined_rooms`)).joined_rooms).not.toContain(roomId);
  });
});

describe("GET /messages", () => {
  async function roomWithMessages(n: number) {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(await (i % 2 ? bob : alice).send(roomId, { msgtype: "m.text", body: `m${i}` }));
    return { roomId, ids };
  }

  test("backwards from the newest by default, limit 10, paging with end tokens to the room's start", async () => {
    const { roomId, ids } = await roomWithMessages(15);
    const first = await bob.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b`);
    expect(first.chunk).toHaveLength(10);
    expect(first.chunk.map((e: any) => e.event_id)).toEqual(ids.slice(5).reverse());
    expect(typeof first.start).toBe("string");
    const second = await bob.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&from=${first.end}&limit=5`);
    expect(second.start).toBe(first.end);
    expect(second.chunk.map((e: any) => e.event_id)).toEqual(ids.slice(0, 5).reverse());
    let token = second.end;
    const rest: any[] = [];
    while (token) {
      const page = await bob.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&from=${token}&limit=100`);
      rest.push(...page.chunk);
      token = page.end;
    }
    expect(rest.at(-1).type).toBe("m.room.create");
    expect(rest.map((e: any) => e.type)).toContain("m.room.power_levels");
  });

  test("forwards from a token, up to `to`, and back; filters by types, not_types, senders", async () => {
    const { roomId, ids } = await roomWithMessages(6);
    const back = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=3`);
    const forward = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=f&from=${back.end}`);
    expect(forward.chunk.map((e: any) => e.event_id)).toEqual(ids.slice(3));
    // At the newest event, forwards still gives an end (the spec omits it only at the timeline's
    // start or past what the user may see): the next page is empty until more arrive, then has them.
    expect(forward.end).toBeDefined();
    const to = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=1`);
    const bounded = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&to=${back.end}&limit=50`);
    expect(bounded.chunk.map((e: any) => e.event_id)).toEqual(ids.slice(3).reverse());
    expect(bounded.end).toBeUndefined();
    expect(to.chunk[0].event_id).toBe(ids[5]);

    const filter = (f: unknown) => `/rooms/${enc(roomId)}/messages?dir=b&limit=50&filter=${enc(JSON.stringify(f))}`;
    const bobOnly = await alice.ok("GET", filter({ senders: [bob.userId], types: ["m.room.message"] }));
    expect(bobOnly.chunk.map((e: any) => e.event_id)).toEqual([ids[5], ids[3], ids[1]]);
    const noMessages = await alice.ok("GET", filter({ not_types: ["m.room.*"] }));
    expect(noMessages.chunk).toEqual([]);
    const wildcard = await alice.ok("GET", filter({ types: ["m.room.mem*"] }));
    expect(wildcard.chunk.every((e: any) => e.type === "m.room.member")).toBe(true);
    expect(wildcard.chunk.length).toBe(2);
    const filterLimit = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&filter=${enc(JSON.stringify({ limit: 2 }))}`);
    expect(filterLimit.chunk).toHaveLength(2);

    // Paging on forwards from the end given at the newest event.
    const later = await alice.send(roomId, { msgtype: "m.text", body: "later" });
    const next = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=f&from=${forward.end}`);
    expect(next.chunk.map((e: any) => e.event_id)).toEqual([later]);
    const empty = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=f&from=${next.end}`);
    expect(empty.chunk).toEqual([]);
    expect(empty.end).toBeUndefined();
  });

  test("history visibility applies; leavers page up to their leave; errors for bad params and non-members", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", initial_state: [{ type: "m.room.history_visibility", content: { history_visibility: "joined" } }] });
    const hidden = await alice.send(roomId, { body: "before carol" });
    await carol.ok("POST", `/join/${enc(roomId)}`, {});
    const seen = await alice.send(roomId, { body: "with carol" });
    await carol.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const after = await alice.send(roomId, { body: "after carol" });
    const page = await carol.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=100`);
    const ids = page.chunk.map((e: any) => e.event_id);
    expect(ids).toContain(seen);
    expect(ids).not.toContain(hidden);
    expect(ids).not.toContain(after);
    expect(page.end).toBeUndefined();

    await dave.fails("GET", `/rooms/${enc(roomId)}/messages?dir=b`, undefined, 403, "M_FORBIDDEN");
    await alice.fails("GET", `/rooms/${enc(roomId)}/messages`, undefined, 400, "M_MISSING_PARAM");
    await alice.fails("GET", `/rooms/${enc(roomId)}/messages?dir=x`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/rooms/${enc(roomId)}/messages?dir=b&from=garbage`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=-1`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/rooms/${enc(roomId)}/messages?dir=b&filter=${enc("{nope")}`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/rooms/${enc(roomId)}/messages?dir=b&filter=${enc(JSON.stringify({ types: "m.room.message" }))}`, undefined, 400, "M_INVALID_PARAM");
    await alice.fails("GET", `/rooms/${enc("!none:timeline.example")}/messages?dir=b`, undefined, 404, "M_NOT_FOUND");
    // A limit above the cap is clamped, not refused.
    expect((await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=5000`)).chunk.length).toBeGreaterThan(5);
  });
});

describe("lazy-loaded members and history visibility changes", () => {
  const members = (events: any[]) => events.filter((e: any) => e.type === "m.room.member").map((e: any) => e.state_key).sort();
  const lazy = enc(JSON.stringify({ lazy_load_members: true }));

  test("/messages with lazy_load_members gives the member events of the chunk's senders in `state`", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    for (const c of [bob, carol]) await c.ok("POST", `/join/${enc(roomId)}`, {});
    await bob.send(roomId, { msgtype: "m.text", body: "from bob" });
    await alice.send(roomId, { msgtype: "m.text", body: "from alice" });
    const page = await carol.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=2&filter=${lazy}`);
    expect(page.chunk.map((e: any) => e.sender)).toEqual([alice.userId, bob.userId]);
    expect(members(page.state)).toEqual([alice.userId, bob.userId].sort());
    expect(page.state.every((e: any) => e.content.membership === "join")).toBe(true);
    // Without it, no state.
    expect((await carol.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=2`)).state).toBeUndefined();
    await carol.fails("GET", `/rooms/${enc(roomId)}/messages?dir=b&filter=${enc(JSON.stringify({ lazy_load_members: "true" }))}`, undefined, 400, "M_INVALID_PARAM");
  });

  test("/context with lazy_load_members keeps only the senders' member events in `state`", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", name: "Lazy ctx" });
    for (const c of [bob, carol]) await c.ok("POST", `/join/${enc(roomId)}`, {});
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await alice.send(roomId, { msgtype: "m.text", body: `hello ${i}` }));
    const ctx = await alice.ok("GET", `/rooms/${enc(roomId)}/context/${enc(ids[2]!)}?limit=2&filter=${lazy}`);
    expect(members(ctx.state)).toEqual([alice.userId]);
    expect(ctx.state.some((e: any) => e.type === "m.room.name")).toBe(true);
    expect(ctx.events_before.map((e: any) => e.event_id)).toEqual([ids[1]]);
    const full = await alice.ok("GET", `/rooms/${enc(roomId)}/context/${enc(ids[2]!)}?limit=2`);
    expect(members(full.state)).toEqual([alice.userId, bob.userId, carol.userId].sort());
  });

  test("a history visibility event is seen when the visibility before or after it allows", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const toJoined = (await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility`, { history_visibility: "joined" })).event_id;
    const m1 = await alice.send(roomId, { msgtype: "m.text", body: "1" });
    const toInvited = (await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility`, { history_visibility: "invited" })).event_id;
    const m2 = await alice.send(roomId, { msgtype: "m.text", body: "2" });
    const toShared = (await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility`, { history_visibility: "shared" })).event_id;
    const m3 = await alice.send(roomId, { msgtype: "m.text", body: "3" });
    await dave.ok("POST", `/join/${enc(roomId)}`, {});
    const ids = (await dave.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`)).chunk.map((e: any) => e.event_id);
    // shared -> joined: seen by what was before; invited -> shared: by what is after; joined -> invited: by neither.
    expect(ids).toContain(toJoined);
    expect(ids).toContain(toShared);
    expect(ids).toContain(m3);
    for (const hidden of [toInvited, m1, m2]) expect(ids).not.toContain(hidden);
    // /sync's timeline applies the same rule.
    const r = await dave.ok("GET", `/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 4 } } }))}`);
    const timeline = r.rooms.join[roomId].timeline.events.map((e: any) => e.event_id);
    expect(timeline).toEqual([toJoined, toShared, m3, timeline[3]]);
    expect(r.rooms.join[roomId].timeline.events[3].state_key).toBe(dave.userId);
  });
});

describe("GET /context", () => {
  test("events before and after, tokens that continue pagination, and the state", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", name: "Ctx" });
    const ids: string[] = [];
    for (let i = 0; i < 9; i++) ids.push(await alice.send(roomId, { msgtype: "m.text", body: `c${i}` }));
    const ctx = await alice.ok("GET", `/rooms/${enc(roomId)}/context/${enc(ids[4]!)}?limit=4`);
    expect(ctx.event.event_id).toBe(ids[4]);
    expect(ctx.events_before.map((e: any) => e.event_id)).toEqual([ids[3], ids[2]]);
    expect(ctx.events_after.map((e: any) => e.event_id)).toEqual([ids[5], ids[6]]);
    expect(ctx.state.some((e: any) => e.type === "m.room.name" && e.content.name === "Ctx")).toBe(true);
    const older = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&from=${ctx.start}&limit=2`);
    expect(older.chunk.map((e: any) => e.event_id)).toEqual([ids[1], ids[0]]);
    const newer = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=f&from=${ctx.end}&limit=2`);
    expect(newer.chunk.map((e: any) => e.event_id)).toEqual([ids[7], ids[8]]);
    const defaults = await alice.ok("GET", `${R0}/rooms/${enc(roomId)}/context/${enc(ids[8]!)}`);
    expect(defaults.events_before).toHaveLength(5);
    expect(defaults.events_after).toEqual([]);
    await alice.fails("GET", `/rooms/${enc(roomId)}/context/${enc("$missing")}`, undefined, 404, "M_NOT_FOUND");
    // Someone who may not read the room at all: 403, as for /messages (an event they cannot see in a room they can read stays 404).
    await dave.fails("GET", `/rooms/${enc(roomId)}/context/${enc(ids[0]!)}`, undefined, 403, "M_FORBIDDEN");
    await alice.fails("GET", `/rooms/${enc(roomId)}/context/${enc(ids[0]!)}?limit=x`, undefined, 400, "M_INVALID_PARAM");
  });
});

describe("authentication", () => {
  test("every room endpoint needs an access token", async () => {
    const { request } = await import("../../helpers/server");
    const room = enc("!r:timeline.example");
    const calls: [string, string][] = [
      ["POST", "/createRoom"], ["GET", "/joined_rooms"], ["POST", `/join/${room}`], ["POST", `/rooms/${room}/leave`], ["POST", `/rooms/${room}/forget`],
      ["POST", `/rooms/${room}/invite`], ["PUT", `/rooms/${room}/send/m.room.message/t`], ["PUT", `/rooms/${room}/redact/%24e/t`],
      ["GET", `/rooms/${room}/state`], ["GET", `/rooms/${room}/state/m.room.name`], ["PUT", `/rooms/${room}/state/m.room.name`],
      ["GET", `/rooms/${room}/event/%24e`], ["GET", `/rooms/${room}/members`], ["GET", `/rooms/${room}/joined_members`],
      ["GET", `/rooms/${room}/messages?dir=b`], ["GET", `/rooms/${room}/context/%24e`], ["PUT", `/rooms/${room}/typing/%40a%3Ab`],
      ["POST", `/rooms/${room}/receipt/m.read/%24e`], ["POST", `/rooms/${room}/read_markers`],
    ];
    for (const [method, path] of calls) {
      const r = await request(server, method, `/_matrix/client/v3${path}`, method === "GET" ? undefined : {});
      expect({ path, status: r.status, errcode: r.body.errcode }).toEqual({ path, status: 401, errcode: "M_MISSING_TOKEN" });
    }
  });
});
