// Knocking across two Portier servers over TLS: the room lives on A, the knockers on B. Knock with
// and without a reason, via `via`, `server_name` and an alias; seen by A's members; accepted by
// invite, then joined; rejected (A tells B, knocks.notify_remote_rejection); rescinded; banned
// (before and while knocking); A's admin knock tools; the per-origin rate limit; the knock
// policy's deny, shadow and accept; and the make_knock/send_knock checks of the spec.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, enc } from "../helpers/rooms";
import { request } from "../helpers/server";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";
import { resolve, Tokens } from "../../src/di/tokens";
import { RemoteMatrixError } from "../../src/services/federation/contracts";
import { roomVersion } from "../../src/protocol/room-versions";
import { computeEventId } from "../../src/protocol/signing/event-id";
import type { JsonObject } from "../../src/protocol/json";

let a: FederatedServer;
let b: FederatedServer;
let admin: TestClient;

beforeAll(async () => {
  a = await federatedServer({
    registration: { enabled: true },
    knocks: { notify_remote_rejection: true },
    plugins: [{ name: "knock-policy", config: { deny: { users: ["@denied*:*"] }, shadow: { users: ["@shadowed*:*"] }, auto_accept: { users: ["@vip*:*"] } } }],
  });
  b = await federatedServer({ registration: { enabled: true } });
  admin = await TestClient.register(a.server, "moderator");
});

afterAll(async () => {
  await a?.server.stop();
  await b?.server.stop();
});

async function knockRoom(alias?: string): Promise<string> {
  return admin.createRoom({
    room_version: "10",
    preset: "private_chat",
    name: "Knock here",
    ...(alias ? { room_alias_name: alias } : {}),
    initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }],
  });
}

async function membershipOnA(roomId: string, userId: string): Promise<string | undefined> {
  const r = await admin.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);
  return r.status === 200 ? r.body.membership : undefined;
}

async function syncOf(client: TestClient): Promise<any> {
  return client.ok("GET", `/sync?timeout=0&filter=${enc(JSON.stringify({ room: { include_leave: true } }))}`);
}

describe("knocking across servers", () => {
  test("knock with a reason via `via`: A's members see it, B's /sync lists it with the room's stripped state; accept, join, speak", async () => {
    const roomId = await knockRoom();
    const knocker = await TestClient.register(b.server, "knocker1");
    expect(await knocker.ok("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, { reason: "please" })).toEqual({ room_id: roomId });
    const member = await admin.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(knocker.userId)}`);
    expect(member).toMatchObject({ membership: "knock", reason: "please" });
    const knock = (await syncOf(knocker)).rooms.knock[roomId];
    const types = (knock.knock_state.events as { type: string }[]).map((e) => e.type);
    expect(types).toEqual(expect.arrayContaining(["m.room.create", "m.room.join_rules", "m.room.name", "m.room.member"]));
    // The knocker's own knock comes whole, with its ID and time; the room's state stays stripped.
    const own = (knock.knock_state.events as JsonObject[]).find((e) => e.type === "m.room.member" && e.state_key === knocker.userId);
    expect(own).toMatchObject({ event_id: expect.stringMatching(/^\$/), origin_server_ts: expect.any(Number), content: { membership: "knock" } });

    await admin.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: knocker.userId });
    await eventually(async () => (await syncOf(knocker)).rooms?.invite?.[roomId], 10_000, "the invite on B");
    await knocker.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    expect(await membershipOnA(roomId, knocker.userId)).toBe("join");
    await knocker.send(roomId, { msgtype: "m.text", body: "thanks" });
    await eventually(async () => {
      const messages = await admin.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=10`);
      return (messages.chunk as { content: { body?: string } }[]).some((e) => e.content.body === "thanks");
    }, 10_000, "the knocker's message on A");
  }, 30_000);

  test("knock without a reason through the legacy server_name, and by alias", async () => {
    const roomId = await knockRoom("knockable");
    const first = await TestClient.register(b.server, "knocker2");
    await first.ok("POST", `/knock/${enc(roomId)}?server_name=${enc(a.serverName)}`, {});
    expect(await membershipOnA(roomId, first.userId)).toBe("knock");
    const second = await TestClient.register(b.server, "knocker3");
    expect(await second.ok("POST", `/knock/${enc(`#knockable:${a.serverName}`)}`, {})).toEqual({ room_id: roomId });
    expect(await membershipOnA(roomId, second.userId)).toBe("knock");
  }, 30_000);

  test("rejected: the kick reaches the knocker's server, whose /sync moves the room to leave; a new knock works", async () => {
    const roomId = await knockRoom();
    const knocker = await TestClient.register(b.server, "knocker4");
    await knocker.ok("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    await admin.ok("POST", `/rooms/${enc(roomId)}/kick`, { user_id: knocker.userId, reason: "not now" });
    const left = await eventually(async () => (await syncOf(knocker)).rooms?.leave?.[roomId], 10_000, "the rejection on B");
    expect(left.timeline.events.at(-1)).toMatchObject({ type: "m.room.member", content: { membership: "leave", reason: "not now" } });
    await knocker.ok("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, { reason: "again" });
    expect(await membershipOnA(roomId, knocker.userId)).toBe("knock");
  }, 30_000);

  test("rescinded: /leave on B withdraws the knock on A", async () => {
    const roomId = await knockRoom();
    const knocker = await TestClient.register(b.server, "knocker5");
    await knocker.ok("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    await knocker.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    expect(await membershipOnA(roomId, knocker.userId)).toBe("leave");
    expect((await syncOf(knocker)).rooms.leave[roomId]).toBeDefined();
  }, 30_000);

  test("banned knockers get A's 403 with its errcode", async () => {
    const roomId = await knockRoom();
    const knocker = await TestClient.register(b.server, "knocker6");
    await admin.ok("POST", `/rooms/${enc(roomId)}/ban`, { user_id: knocker.userId });
    await knocker.fails("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, {}, 403, "M_FORBIDDEN");
  }, 30_000);

  test("a pending knocker banned on A: B's /sync moves the room to leave with the ban, and a new knock is refused", async () => {
    const roomId = await knockRoom();
    const knocker = await TestClient.register(b.server, "knocker7");
    await knocker.ok("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    await admin.ok("POST", `/rooms/${enc(roomId)}/ban`, { user_id: knocker.userId, reason: "spam" });
    const left = await eventually(async () => (await syncOf(knocker)).rooms?.leave?.[roomId], 10_000, "the ban on B");
    expect(left.timeline.events.at(-1)).toMatchObject({ type: "m.room.member", state_key: knocker.userId, content: { membership: "ban", reason: "spam" } });
    expect((await syncOf(knocker)).rooms.knock?.[roomId]).toBeUndefined();
    await knocker.fails("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, {}, 403, "M_FORBIDDEN");
  }, 30_000);

  test("A's admin knock tools see a remote knocker, and accept and deny reach B", async () => {
    const roomId = await knockRoom();
    const accepted = await TestClient.register(b.server, "tools1");
    const denied = await TestClient.register(b.server, "tools2");
    for (const knocker of [accepted, denied]) await knocker.ok("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, { reason: "tools" });
    const admin1 = `/_portier/admin/v1/rooms/${enc(roomId)}/knocks`;
    const adminCall = (method: string, path: string, body?: unknown) => request(a.server, method, path, body, { Authorization: `Bearer ${admin.token}` });
    const listed = await adminCall("GET", admin1);
    expect(listed.status).toBe(200);
    expect((listed.body.knocks as { user_id: string; reason?: string }[]).map((k) => [k.user_id, k.reason]).sort()).toEqual([
      [accepted.userId, "tools"],
      [denied.userId, "tools"],
    ]);
    const accept = await adminCall("POST", `${admin1}/accept`, { user_ids: [accepted.userId] });
    expect(accept.body.results).toEqual([{ user_id: accepted.userId, ok: true, membership: "invite" }]);
    const deny = await adminCall("POST", `${admin1}/deny`, { user_ids: [denied.userId], reason: "no" });
    expect(deny.body.results).toEqual([{ user_id: denied.userId, ok: true, membership: "leave" }]);
    await eventually(async () => (await syncOf(accepted)).rooms?.invite?.[roomId], 10_000, "the accepting invite on B");
    await eventually(async () => (await syncOf(denied)).rooms?.leave?.[roomId], 10_000, "the denial on B");
    expect((await adminCall("GET", admin1)).body.knocks).toEqual([]);
  }, 30_000);

  test("the per-origin knock limit: past its burst one server's knocks get 429 with retry_after_ms, another server's still land", async () => {
    const c = await federatedServer({
      registration: { enabled: true },
      plugins: [{ name: "rate-limit", config: { "knock.origin": { per_second: 0.001, burst: 2 }, registration: false, room_creation: false } }],
    });
    try {
      const owner = await TestClient.register(c.server, "owner");
      const roomId = await owner.createRoom({ room_version: "10", preset: "private_chat", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] });
      const knockers = await Promise.all([1, 2, 3].map((i) => TestClient.register(b.server, `flood${i}`)));
      for (const knocker of knockers.slice(0, 2)) await knocker.ok("POST", `/knock/${enc(roomId)}?via=${enc(c.serverName)}`, {});
      const refused = await knockers[2]!.fails("POST", `/knock/${enc(roomId)}?via=${enc(c.serverName)}`, {}, 429, "M_LIMIT_EXCEEDED");
      expect(refused.retry_after_ms).toBeGreaterThan(0);
      // Nothing of the refused knock is stored on C.
      expect((await owner.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(knockers[2]!.userId)}`)).status).toBe(404);
      const fromA = await TestClient.register(a.server, "other-origin");
      await fromA.ok("POST", `/knock/${enc(roomId)}?via=${enc(c.serverName)}`, {});
      expect((await owner.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(fromA.userId)}`)).membership).toBe("knock");
    } finally {
      await c.server.stop();
    }
  }, 30_000);

  test("A's knock policy: deny passes its 403 through, shadow stores nothing, accept invites at once", async () => {
    const roomId = await knockRoom();
    const denied = await TestClient.register(b.server, "denied1");
    await denied.fails("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, {}, 403, "M_FORBIDDEN");
    expect(await membershipOnA(roomId, denied.userId)).toBeUndefined();

    const shadowed = await TestClient.register(b.server, "shadowed1");
    await shadowed.ok("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    expect(await membershipOnA(roomId, shadowed.userId)).toBeUndefined();

    const vip = await TestClient.register(b.server, "vip1");
    await vip.ok("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    await eventually(async () => (await membershipOnA(roomId, vip.userId)) === "invite", 10_000, "the accepted knock's invite on A");
    await eventually(async () => (await syncOf(vip)).rooms?.invite?.[roomId], 10_000, "the invite on B");
  }, 30_000);

  test("knocks.auto_join_on_invite on the knocker's server: the accepting invite joins the knocker at once", async () => {
    const c = await federatedServer({ registration: { enabled: true }, knocks: { auto_join_on_invite: true } });
    try {
      const roomId = await knockRoom();
      const knocker = await TestClient.register(c.server, "eager");
      await knocker.ok("POST", `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, {});
      await admin.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: knocker.userId });
      await eventually(async () => (await membershipOnA(roomId, knocker.userId)) === "join", 10_000, "the knocker joined on A");
      // An invite that answers no knock is left for the user to accept.
      const invited = await TestClient.register(c.server, "invited-only");
      await admin.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: invited.userId });
      await Bun.sleep(300);
      expect(await membershipOnA(roomId, invited.userId)).toBe("invite");
    } finally {
      await c.server.stop();
    }
  }, 30_000);

  describe("make_knock and send_knock, as the resident server checks them", () => {
    const client = () => resolve(b.server.container, Tokens.FederationClient);
    const asB = (user: string) => `@${user}:${b.serverName}`;
    async function refusal(call: Promise<unknown>): Promise<{ status: number; errcode: string }> {
      try {
        await call;
      } catch (error) {
        if (error instanceof RemoteMatrixError) return { status: error.status, errcode: error.errcode };
        throw error;
      }
      throw new Error("expected a refusal");
    }
    const makeKnock = (roomId: string, userId: string, ver?: string[]) =>
      client().request("GET", a.serverName, `/_matrix/federation/v1/make_knock/${enc(roomId)}/${enc(userId)}`, ver ? { query: { ver } } : {});

    test("make_knock: no or no matching ver 400 M_INCOMPATIBLE_ROOM_VERSION; unknown room 404; not knockable 403; another server's user 403", async () => {
      const roomId = await knockRoom();
      expect(await refusal(makeKnock(roomId, asB("mk")))).toEqual({ status: 400, errcode: "M_INCOMPATIBLE_ROOM_VERSION" });
      expect(await refusal(makeKnock(roomId, asB("mk"), ["1", "6"]))).toEqual({ status: 400, errcode: "M_INCOMPATIBLE_ROOM_VERSION" });
      expect(await refusal(makeKnock(`!nope:${a.serverName}`, asB("mk"), ["10"]))).toEqual({ status: 404, errcode: "M_NOT_FOUND" });
      const publicRoom = await admin.createRoom({ room_version: "10", preset: "public_chat" });
      expect(await refusal(makeKnock(publicRoom, asB("mk"), ["10"]))).toEqual({ status: 403, errcode: "M_FORBIDDEN" });
      expect(await refusal(makeKnock(roomId, `@mk:${a.serverName}`, ["10"]))).toEqual({ status: 403, errcode: "M_FORBIDDEN" });
      const template = (await makeKnock(roomId, asB("mk"), ["9", "10"])) as { room_version: string; event: JsonObject };
      expect(template.room_version).toBe("10");
      expect(template.event).toMatchObject({ type: "m.room.member", state_key: asB("mk"), sender: asB("mk"), content: { membership: "knock" } });
    }, 30_000);

    test("send_knock refuses anything but the knocker's own knock, and stores nothing", async () => {
      const roomId = await knockRoom();
      const userId = asB("sk");
      const template = ((await makeKnock(roomId, userId, ["10"])) as { event: JsonObject }).event;
      const version = roomVersion("10")!;
      const signer = resolve(b.server.container, Tokens.ServerKeys);
      const sendKnock = (pdu: JsonObject) => {
        const signed = signer.signEvent(pdu, version);
        return client().request("PUT", a.serverName, `/_matrix/federation/v1/send_knock/${enc(roomId)}/${enc(computeEventId(signed, version))}`, { body: signed });
      };
      const base: JsonObject = { ...template, origin_server_ts: Date.now() };
      expect(await refusal(sendKnock({ ...base, type: "m.room.message", content: { body: "hi", msgtype: "m.text" } }))).toMatchObject({ status: 400 });
      const { state_key: _drop, ...nonState } = base;
      expect(await refusal(sendKnock({ ...nonState, content: { membership: "knock" } }))).toMatchObject({ status: 400 });
      for (const membership of ["join", "leave", "invite"]) {
        expect(await refusal(sendKnock({ ...base, content: { membership } }))).toMatchObject({ status: 400 });
      }
      expect(await refusal(sendKnock({ ...base, state_key: asB("someone-else") }))).toMatchObject({ status: 400 });
      const other = `@sk:${a.serverName}`;
      expect(await refusal(sendKnock({ ...base, sender: other, state_key: other }))).toEqual({ status: 403, errcode: "M_FORBIDDEN" });
      expect(await membershipOnA(roomId, userId)).toBeUndefined();
      // The knock itself, as sent by B, passes.
      const answer = (await sendKnock(base)) as { knock_room_state: JsonObject[]; knock_state_events: JsonObject[] };
      expect(answer.knock_room_state.map((e) => e.type)).toEqual(expect.arrayContaining(["m.room.create", "m.room.join_rules"]));
      expect(answer.knock_room_state[0]).toHaveProperty("signatures");
      expect(answer.knock_state_events[0]).not.toHaveProperty("signatures");
      expect(await membershipOnA(roomId, userId)).toBe("knock");
    }, 30_000);
  });
});
