// Knock moderation admin API (issue 5): listing, bulk accept/deny, expiry (by hand and by the
// background job on an injected timer and clock) and knocks.auto_join_on_invite, all over HTTP.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { ConfigError, resolveConfig } from "../../../src/config/loader";
import { knockExpiryInterval, type IntervalTimer } from "../../../src/services/knocks/knock-expiry";
import { request, testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";
import { registerAdmin as registerAdminUser } from "../../helpers/accounts";

const ADMIN = "/_portier/admin/v1";
const SECRET = "knock-admin-secret";
const START = 1_700_000_000_000;

async function registerAdmin(server: PortierServer, username: string): Promise<TestClient> {
  const user = await registerAdminUser(server, username, SECRET);
  return new TestClient(server, user.userId, user.deviceId, user.token);
}

const admin = (c: TestClient, method: string, path: string, body?: unknown) =>
  request(c.server, method, `${ADMIN}${path}`, body, { Authorization: `Bearer ${c.token}` });

async function adminOk(c: TestClient, method: string, path: string, body?: unknown): Promise<any> {
  const r = await admin(c, method, path, body);
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function adminFails(c: TestClient, method: string, path: string, body: unknown, status: number, errcode: string): Promise<any> {
  const r = await admin(c, method, path, body);
  expect({ status: r.status, errcode: r.body?.errcode }).toEqual({ status, errcode });
  return r.body;
}

const memberEvent = async (viewer: TestClient, roomId: string, userId: string) =>
  (await viewer.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}?format=event`)).body as { sender: string; content: Record<string, unknown>; event_id: string };

const knockRoom = (owner: TestClient, extra: Record<string, unknown> = {}) =>
  owner.createRoom({ room_version: "7", initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }], ...extra });

describe("with auto_join_on_invite off (the default)", () => {
  let server: PortierServer;
  let now = START;
  let n = 0;
  let op: TestClient;
  beforeAll(async () => {
    server = await testServer({ server_name: "knocks.example", registration: { enabled: true, shared_secret: SECRET } }, { clock: { now: () => now } });
    op = await registerAdmin(server, "operator");
  });
  afterAll(() => server.stop());

  const users = async () => {
    n++;
    return {
      alice: await TestClient.register(server, `alice${n}`),
      bob: await TestClient.register(server, `bob${n}`),
      carol: await TestClient.register(server, `carol${n}`),
    };
  };

  test("pending knocks per room, oldest first, with reason, displayname and age; per user", async () => {
    const { alice, bob, carol } = await users();
    const roomId = await knockRoom(alice);
    const other = await knockRoom(alice);
    const t0 = now;
    await carol.ok("POST", `/knock/${enc(roomId)}`, { reason: "carol here" });
    now += 5_000;
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    now += 1_000;
    await bob.ok("POST", `/knock/${enc(other)}`, { reason: "me too" });
    now += 4_000;

    const expected = [
      { user_id: carol.userId, event_id: (await memberEvent(alice, roomId, carol.userId)).event_id, reason: "carol here", displayname: `carol${n}`, knocked_at: t0, age_ms: 10_000 },
      { user_id: bob.userId, event_id: (await memberEvent(alice, roomId, bob.userId)).event_id, displayname: `bob${n}`, knocked_at: t0 + 5_000, age_ms: 5_000 },
    ];
    // The room's moderator and a server admin who is not in the room both see them.
    expect((await adminOk(alice, "GET", `/rooms/${enc(roomId)}/knocks`)).knocks).toEqual(expected);
    expect((await adminOk(op, "GET", `/rooms/${enc(roomId)}/knocks`)).knocks).toEqual(expected);

    // A user's own knocks, in every room; admins may look too; others may not.
    const bobs = [
      { room_id: roomId, event_id: expected[1].event_id, knocked_at: t0 + 5_000, age_ms: 5_000 },
      { room_id: other, event_id: (await memberEvent(alice, other, bob.userId)).event_id, reason: "me too", knocked_at: t0 + 6_000, age_ms: 4_000 },
    ];
    expect((await adminOk(bob, "GET", `/users/${enc(bob.userId)}/knocks`)).knocks).toEqual(bobs);
    expect((await adminOk(op, "GET", `/users/${enc(bob.userId)}/knocks`)).knocks).toEqual(bobs);
    expect((await adminOk(alice, "GET", `/users/${enc(alice.userId)}/knocks`)).knocks).toEqual([]);
    await adminFails(carol, "GET", `/users/${enc(bob.userId)}/knocks`, undefined, 403, "M_FORBIDDEN");
    await adminFails(op, "GET", `/users/${enc("@nobody:knocks.example")}/knocks`, undefined, 404, "M_NOT_FOUND");
    await adminFails(op, "GET", `/users/${enc("not-a-user")}/knocks`, undefined, 400, "M_INVALID_PARAM");
  });

  test("listing a room's knocks: 403 for knockers and members without power, 404 unknown room, 400 bad id, 401 no token", async () => {
    const { alice, bob, carol } = await users();
    // Without power: carol is a plain member (the spec's default invite level is 0, so it is raised).
    const roomId = await knockRoom(alice, { invite: [carol.userId], power_level_content_override: { invite: 50 } });
    await carol.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    await adminFails(bob, "GET", `/rooms/${enc(roomId)}/knocks`, undefined, 403, "M_FORBIDDEN");
    await adminFails(carol, "GET", `/rooms/${enc(roomId)}/knocks`, undefined, 403, "M_FORBIDDEN");
    await adminFails(op, "GET", `/rooms/${enc("!nowhere:knocks.example")}/knocks`, undefined, 404, "M_NOT_FOUND");
    await adminFails(op, "GET", `/rooms/nowhere/knocks`, undefined, 400, "M_INVALID_PARAM");
    const noToken = await request(server, "GET", `${ADMIN}/rooms/${enc(roomId)}/knocks`);
    expect({ status: noToken.status, errcode: noToken.body.errcode }).toEqual({ status: 401, errcode: "M_MISSING_TOKEN" });
  });

  test("a moderator accepts knocks in bulk: each user ok or their own error; the knocker is invited, not joined", async () => {
    const { alice, bob, carol } = await users();
    const dave = await TestClient.register(server, `dave${n}`);
    const roomId = await knockRoom(alice);
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    await dave.ok("POST", `/knock/${enc(roomId)}`, {});
    await dave.ok("POST", `/rooms/${enc(roomId)}/leave`, {}); // dave withdrew his knock
    const r = await adminOk(alice, "POST", `/rooms/${enc(roomId)}/knocks/accept`, { user_ids: [bob.userId, carol.userId, dave.userId, bob.userId], reason: "welcome" });
    expect(r.results).toEqual([
      { user_id: bob.userId, ok: true, membership: "invite" },
      { user_id: carol.userId, ok: false, errcode: "M_BAD_STATE", error: `${carol.userId} is not knocking on this room` },
      { user_id: dave.userId, ok: false, errcode: "M_BAD_STATE", error: `${dave.userId} is not knocking on this room (their membership is leave)` },
    ]);
    expect((await memberEvent(alice, roomId, bob.userId))).toMatchObject({ sender: alice.userId, content: { membership: "invite", reason: "welcome" } });
    expect((await adminOk(alice, "GET", `/rooms/${enc(roomId)}/knocks`)).knocks).toEqual([]);
  });

  test("a moderator denies knocks in bulk: kicked with the reason; may knock again", async () => {
    const { alice, bob, carol } = await users();
    const roomId = await knockRoom(alice);
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    await carol.ok("POST", `/knock/${enc(roomId)}`, {});
    const r = await adminOk(alice, "POST", `/rooms/${enc(roomId)}/knocks/deny`, { user_ids: [bob.userId, carol.userId], reason: "not today" });
    expect(r.results).toEqual([
      { user_id: bob.userId, ok: true, membership: "leave" },
      { user_id: carol.userId, ok: true, membership: "leave" },
    ]);
    expect(await memberEvent(alice, roomId, bob.userId)).toMatchObject({ sender: alice.userId, content: { membership: "leave", reason: "not today" } });
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
  });

  test("members without the needed power are refused, and nothing is stored", async () => {
    const { alice, bob, carol } = await users();
    const dave = await TestClient.register(server, `dave${n}`);
    // carol may kick (50) but not invite (60); dave is a plain member.
    const roomId = await knockRoom(alice, { invite: [carol.userId, dave.userId], power_level_content_override: { invite: 60, kick: 50, users: { [alice.userId]: 100, [carol.userId]: 50 } } });
    await carol.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await dave.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    const knock = (await memberEvent(alice, roomId, bob.userId)).event_id;

    const refused = await adminFails(carol, "POST", `/rooms/${enc(roomId)}/knocks/accept`, { user_ids: [bob.userId] }, 403, "M_FORBIDDEN");
    expect(refused.error).toContain("permission to accept knocks");
    await adminFails(dave, "POST", `/rooms/${enc(roomId)}/knocks/deny`, { user_ids: [bob.userId] }, 403, "M_FORBIDDEN");
    await adminFails(bob, "POST", `/rooms/${enc(roomId)}/knocks/accept`, { user_ids: [bob.userId] }, 403, "M_FORBIDDEN");
    await adminFails(bob, "POST", `/knocks/expire`, { older_than_ms: 0 }, 403, "M_FORBIDDEN");
    expect((await memberEvent(alice, roomId, bob.userId)).event_id).toBe(knock);

    // carol may list (kick power) and deny.
    expect((await adminOk(carol, "GET", `/rooms/${enc(roomId)}/knocks`)).knocks.map((k: { user_id: string }) => k.user_id)).toEqual([bob.userId]);
    expect((await adminOk(carol, "POST", `/rooms/${enc(roomId)}/knocks/deny`, { user_ids: [bob.userId] })).results).toEqual([{ user_id: bob.userId, ok: true, membership: "leave" }]);
  });

  test("a server admin outside the room acts as the local member with the most power; with none, 403", async () => {
    const { alice, bob, carol } = await users();
    const roomId = await knockRoom(alice, { invite: [carol.userId], power_level_content_override: { users: { [alice.userId]: 100, [carol.userId]: 50 } } });
    await carol.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    expect((await adminOk(op, "POST", `/rooms/${enc(roomId)}/knocks/accept`, { user_ids: [bob.userId] })).results).toEqual([{ user_id: bob.userId, ok: true, membership: "invite" }]);
    expect((await memberEvent(alice, roomId, bob.userId)).sender).toBe(alice.userId);

    // Nobody left in the room: the admin has no one to act through.
    const empty = await knockRoom(alice);
    await bob.ok("POST", `/knock/${enc(empty)}`, {});
    await alice.ok("POST", `/rooms/${enc(empty)}/leave`, {});
    for (const action of ["accept", "deny"]) {
      const r = await adminFails(op, "POST", `/rooms/${enc(empty)}/knocks/${action}`, { user_ids: [bob.userId] }, 403, "M_FORBIDDEN");
      expect(r.error).toContain("No local member");
    }
    expect((await adminOk(op, "GET", `/users/${enc(bob.userId)}/knocks`)).knocks.map((k: { room_id: string }) => k.room_id)).toContain(empty);
  });

  test("bad bodies are 400 and act on nobody", async () => {
    const { alice, bob } = await users();
    const roomId = await knockRoom(alice);
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    const path = `/rooms/${enc(roomId)}/knocks/accept`;
    await adminFails(alice, "POST", path, {}, 400, "M_MISSING_PARAM");
    await adminFails(alice, "POST", path, { user_ids: [] }, 400, "M_BAD_JSON");
    await adminFails(alice, "POST", path, { user_ids: Array.from({ length: 1001 }, (_, i) => `@u${i}:knocks.example`) }, 400, "M_BAD_JSON");
    await adminFails(alice, "POST", path, { user_ids: bob.userId }, 400, "M_BAD_JSON");
    await adminFails(alice, "POST", path, { user_ids: [bob.userId], reason: 5 }, 400, "M_BAD_JSON");
    await adminFails(alice, "POST", `/rooms/${enc(roomId)}/knocks/deny`, { user_ids: [bob.userId, "bob"] }, 400, "M_INVALID_PARAM");
    await adminFails(alice, "POST", path, "{nope", 400, "M_NOT_JSON");
    await adminFails(alice, "POST", `/rooms/${enc("!nowhere:knocks.example")}/knocks/accept`, { user_ids: [bob.userId] }, 404, "M_NOT_FOUND");
    await adminFails(op, "POST", "/knocks/expire", { older_than_ms: -1 }, 400, "M_BAD_JSON");
    await adminFails(op, "POST", "/knocks/expire", { older_than_ms: "1h" }, 400, "M_BAD_JSON");
    await adminFails(op, "POST", "/knocks/expire", { older_than_ms: 1.5 }, 400, "M_BAD_JSON");
    // No knocks.expire_after_ms configured here: the age must be given.
    await adminFails(op, "POST", "/knocks/expire", {}, 400, "M_MISSING_PARAM");
    expect((await memberEvent(alice, roomId, bob.userId)).content.membership).toBe("knock");
  });

  test("an admin expires knocks older than an age: old ones kicked with the reason, young ones kept, unreachable ones reported", async () => {
    const { alice, bob, carol } = await users();
    const roomId = await knockRoom(alice);
    const stranded = await knockRoom(alice);
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    await bob.ok("POST", `/knock/${enc(stranded)}`, {});
    await alice.ok("POST", `/rooms/${enc(stranded)}/leave`, {});
    now += 120_000;
    await carol.ok("POST", `/knock/${enc(roomId)}`, {});
    now += 1_000;
    const r = await adminOk(op, "POST", "/knocks/expire", { older_than_ms: 100_000, reason: "too slow" });
    expect(r.older_than_ms).toBe(100_000);
    expect(r.reason).toBe("too slow");
    const bobKnock = r.expired.find((e: { user_id: string }) => e.user_id === bob.userId);
    expect(bobKnock).toMatchObject({ room_id: roomId, knocked_at: now - 121_000 });
    expect(r.expired.some((e: { user_id: string }) => e.user_id === carol.userId)).toBe(false);
    expect(r.failed.find((f: { room_id: string }) => f.room_id === stranded)).toMatchObject({ user_id: bob.userId, errcode: "M_FORBIDDEN" });
    expect(await memberEvent(alice, roomId, bob.userId)).toMatchObject({ sender: alice.userId, content: { membership: "leave", reason: "too slow" } });
    expect((await memberEvent(alice, roomId, carol.userId)).content.membership).toBe("knock");
  });

  test("auto_join_on_invite off: inviting a knocker leaves them invited", async () => {
    const { alice, bob } = await users();
    const roomId = await knockRoom(alice);
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    expect((await memberEvent(alice, roomId, bob.userId)).content.membership).toBe("invite");
  });
});

describe("with auto_join_on_invite on", () => {
  let server: PortierServer;
  let n = 0;
  beforeAll(async () => {
    server = await testServer({ server_name: "autojoin.example", registration: { enabled: true }, knocks: { auto_join_on_invite: true } });
  });
  afterAll(() => server.stop());

  test("a knocker invited by /invite or by bulk accept joins at once; a non-knocker stays invited", async () => {
    n++;
    const alice = await TestClient.register(server, `alice${n}`);
    const bob = await TestClient.register(server, `bob${n}`);
    const carol = await TestClient.register(server, `carol${n}`);
    const dave = await TestClient.register(server, `dave${n}`);
    const roomId = await knockRoom(alice);
    await bob.ok("POST", `/knock/${enc(roomId)}`, {});
    await carol.ok("POST", `/knock/${enc(roomId)}`, {});

    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    expect(await memberEvent(alice, roomId, bob.userId)).toMatchObject({ sender: bob.userId, content: { membership: "join", displayname: `bob${n}` } });

    expect((await adminOk(alice, "POST", `/rooms/${enc(roomId)}/knocks/accept`, { user_ids: [carol.userId] })).results).toEqual([{ user_id: carol.userId, ok: true, membership: "join" }]);
    const sync = await carol.ok("GET", "/sync?timeout=0");
    expect(sync.rooms.join[roomId]).toBeDefined();

    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: dave.userId });
    expect((await memberEvent(alice, roomId, dave.userId)).content.membership).toBe("invite");
  });
});

describe("the expiry job (knocks.expire_after_ms)", () => {
  test("runs every expire_after_ms / 4 on the injected timer and denies knocks that old with the configured reason", async () => {
    let now = START;
    const scheduled: { intervalMs: number; tick: () => Promise<unknown>; cancelled: boolean }[] = [];
    const timer: IntervalTimer = {
      every(intervalMs, tick) {
        const entry = { intervalMs, tick, cancelled: false };
        scheduled.push(entry);
        return { cancel: () => void (entry.cancelled = true) };
      },
    };
    const server = await testServer(
      { server_name: "expiry.example", registration: { enabled: true, shared_secret: SECRET }, knocks: { expire_after_ms: 60_000 } },
      { clock: { now: () => now }, timer },
    );
    try {
      expect(scheduled).toEqual([]); // nothing runs before start()
      await server.start();
      expect(scheduled.map((s) => s.intervalMs)).toEqual([15_000]);
      const alice = await TestClient.register(server, "alice");
      const bob = await TestClient.register(server, "bob");
      const carol = await TestClient.register(server, "carol");
      const roomId = await knockRoom(alice);
      await bob.ok("POST", `/knock/${enc(roomId)}`, { reason: "hello" });

      now += 30_000;
      await scheduled[0].tick();
      expect((await memberEvent(alice, roomId, bob.userId)).content.membership).toBe("knock");

      now += 30_000;
      await carol.ok("POST", `/knock/${enc(roomId)}`, {});
      await scheduled[0].tick();
      expect(await memberEvent(alice, roomId, bob.userId)).toMatchObject({ sender: alice.userId, content: { membership: "leave", reason: "Your request to join has expired" } });
      expect((await memberEvent(alice, roomId, carol.userId)).content.membership).toBe("knock");

      // The admin endpoint takes its default age from the config too.
      const op = await registerAdmin(server, "operator");
      now += 59_999;
      expect((await adminOk(op, "POST", "/knocks/expire", {})).expired).toEqual([]);
      now += 1;
      const r = await adminOk(op, "POST", "/knocks/expire", {});
      expect(r).toMatchObject({ older_than_ms: 60_000, reason: "Your request to join has expired", failed: [] });
      expect(r.expired.map((e: { user_id: string }) => e.user_id)).toEqual([carol.userId]);
    } finally {
      await server.stop();
    }
    expect(scheduled[0].cancelled).toBe(true);
  });

  test("the interval is a quarter of the age, at most an hour; the age is at least a minute", () => {
    expect(knockExpiryInterval(60_000)).toBe(15_000);
    expect(knockExpiryInterval(8 * 3600_000)).toBe(3600_000);
    const config = resolveConfig({ knocks: { expire_after_ms: 600_000 } });
    expect(config.knocks).toEqual({ expire_after_ms: 600_000, expire_reason: "Your request to join has expired", auto_join_on_invite: false, notify_remote_rejection: false });
    expect(() => resolveConfig({ knocks: { expire_after_ms: 59_999 } })).toThrow(ConfigError);
    expect(() => resolveConfig({ knocks: { expire_reason: 5, unknown: true } })).toThrow(ConfigError);
  });
});
