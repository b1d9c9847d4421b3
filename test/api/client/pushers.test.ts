// Pushers through the HTTP API (pusher.yaml): GET /pushers, POST /pushers/set (create, update,
// append, delete with kind null, the refusals), and their removal when a password change logs out
// the user's other sessions (sytest 14account/01change-password, 61push/06_get_pusher).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { bearer, login, registerUser, type TestUser } from "../../helpers/accounts";

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ server_name: "pushers.example", registration: { enabled: true } });
});
afterAll(() => server.stop());

const V3 = "/_matrix/client/v3";
const URL = "https://push.example/_matrix/push/v1/notify";
let users = 0;
const freshUser = (password = "correct horse") => registerUser(server, `p${++users}`, password);
const list = async (user: TestUser) => {
  const r = await request(server, "GET", `${V3}/pushers`, undefined, bearer(user.token));
  expect(r.status).toBe(200);
  expectMatchesSpec({ api: "client-server", method: "GET", path: `${V3}/pushers`, status: 200, body: r.body });
  return r.body.pushers as Record<string, unknown>[];
};
const set = (user: TestUser, body: unknown, prefix = V3) => request(server, "POST", `${prefix}/pushers/set`, body, bearer(user.token));
const pusherBody = (over: Record<string, unknown> = {}) => ({
  profile_tag: "tag",
  kind: "http",
  app_id: "sytest",
  app_display_name: "SyTest",
  device_display_name: "A testing machine",
  pushkey: "a_push_key",
  lang: "en",
  data: { url: URL },
  ...over,
});

describe("pushers", () => {
  test("a new user has none; a pusher set is listed with everything given, custom data included (sytest 06)", async () => {
    const alice = await freshUser();
    expect(await list(alice)).toEqual([]);
    const body = pusherBody({ data: { testcustom: "This is some custom data", url: URL, format: "id_event_only" } });
    const r = await set(alice, body);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({});
    expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/pushers/set`, status: 200, body: r.body });
    expect(await list(alice)).toEqual([
      { pushkey: "a_push_key", kind: "http", app_id: "sytest", app_display_name: "SyTest", device_display_name: "A testing machine", profile_tag: "tag", lang: "en", data: { testcustom: "This is some custom data", url: URL, format: "id_event_only" } },
    ]);
  });

  test("setting the same app_id and pushkey again updates it; another pushkey adds one; kind null deletes; r0 works", async () => {
    const alice = await freshUser();
    await set(alice, pusherBody());
    expect((await set(alice, pusherBody({ lang: "fr", profile_tag: undefined, data: { url: URL, format: "event_id_only" } }))).status).toBe(200);
    expect(await list(alice)).toEqual([{ pushkey: "a_push_key", kind: "http", app_id: "sytest", app_display_name: "SyTest", device_display_name: "A testing machine", lang: "fr", data: { url: URL, format: "event_id_only" } }]);
    expect((await set(alice, pusherBody({ pushkey: "key_2" }), "/_matrix/client/r0")).status).toBe(200);
    expect((await list(alice)).map((p) => p.pushkey)).toEqual(["a_push_key", "key_2"]);
    // Deleting needs only kind, app_id and pushkey; deleting what is not there is fine too.
    expect((await set(alice, { kind: null, app_id: "sytest", pushkey: "a_push_key" })).status).toBe(200);
    expect((await set(alice, { kind: null, app_id: "sytest", pushkey: "a_push_key" })).status).toBe(200);
    expect((await list(alice)).map((p) => p.pushkey)).toEqual(["key_2"]);
  });

  test("without append, the same app_id and pushkey of other users go; with append, they stay", async () => {
    const [a, b, c] = [await freshUser(), await freshUser(), await freshUser()];
    await set(a, pusherBody({ pushkey: "shared" }));
    await set(b, pusherBody({ pushkey: "shared", append: true }));
    expect(await list(a)).toHaveLength(1);
    expect(await list(b)).toHaveLength(1);
    await set(c, pusherBody({ pushkey: "shared" }));
    expect(await list(a)).toEqual([]);
    expect(await list(b)).toEqual([]);
    expect(await list(c)).toHaveLength(1);
  });

  test("refusals: 400 with the right errcode, and nothing stored", async () => {
    const alice = await freshUser();
    const cases: [string, unknown, string][] = [
      ["no body fields", {}, "M_MISSING_PARAM"],
      ["no pushkey", { kind: "http", app_id: "a" }, "M_MISSING_PARAM"],
      ["no kind", { app_id: "a", pushkey: "k" }, "M_MISSING_PARAM"],
      ["missing lang and data", pusherBody({ lang: undefined, data: undefined }), "M_MISSING_PARAM"],
      ["missing display names", pusherBody({ app_display_name: undefined, device_display_name: undefined }), "M_MISSING_PARAM"],
      ["kind of the wrong type", pusherBody({ kind: 1 }), "M_BAD_JSON"],
      ["data not an object", pusherBody({ data: "x" }), "M_BAD_JSON"],
      ["append not a boolean", pusherBody({ append: "yes" }), "M_BAD_JSON"],
      ["an unknown kind", pusherBody({ kind: "carrier-pigeon" }), "M_INVALID_PARAM"],
      ["email (no mail server)", pusherBody({ kind: "email", app_id: "m.email", pushkey: "a@example.org" }), "M_INVALID_PARAM"],
      ["http without data.url", pusherBody({ data: {} }), "M_INVALID_PARAM"],
      ["data.url not a string", pusherBody({ data: { url: 5 } }), "M_INVALID_PARAM"],
      ["data.url not a URL", pusherBody({ data: { url: "not a url" } }), "M_INVALID_PARAM"],
      ["data.url not http(s)", pusherBody({ data: { url: "ftp://push.example/_matrix/push/v1/notify" } }), "M_INVALID_PARAM"],
      ["data.url with another path", pusherBody({ data: { url: "https://push.example/notify" } }), "M_INVALID_PARAM"],
      ["a pushkey over 512 bytes", pusherBody({ pushkey: "é".repeat(257) }), "M_INVALID_PARAM"],
      ["an app_id over 64 characters", pusherBody({ app_id: "a".repeat(65) }), "M_INVALID_PARAM"],
    ];
    for (const [name, body, errcode] of cases) {
      const r = await set(alice, body);
      expect({ name, status: r.status, errcode: r.body.errcode }).toEqual({ name, status: 400, errcode });
      expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/pushers/set`, status: 400, body: r.body });
    }
    expect(await list(alice)).toEqual([]);
    // At the limits exactly, it is accepted.
    expect((await set(alice, pusherBody({ pushkey: "é".repeat(256), app_id: "a".repeat(64) }))).status).toBe(200);
    expect((await request(server, "GET", `${V3}/pushers`)).status).toBe(401);
    expect((await request(server, "POST", `${V3}/pushers/set`, pusherBody())).status).toBe(401);
  });
});

describe("pushers and password changes", () => {
  const changePassword = (user: TestUser, body: Record<string, unknown>, withToken = true) =>
    request(server, "POST", `${V3}/account/password`, { auth: { type: "m.login.password", identifier: { type: "m.id.user", user: user.userId }, password: user.password }, ...body }, withToken ? bearer(user.token) : {});

  test("pushers set with a different access token are deleted (sytest 'Pushers created with a different access token are deleted on password change')", async () => {
    const user = await freshUser("pw1");
    const other = await login(server, user.userId, "pw1");
    expect((await set(other, pusherBody())).status).toBe(200);
    expect((await changePassword(user, { new_password: "pw2" })).status).toBe(200);
    expect(await list(user)).toEqual([]);
  });

  test("pushers set with the same access token are kept (sytest '... the same access token are not deleted ...'); other users' are untouched", async () => {
    const user = await freshUser("pw1");
    const bystander = await freshUser();
    await set(user, pusherBody());
    await set(bystander, pusherBody({ pushkey: "theirs" }));
    const other = await login(server, user.userId, "pw1");
    await set(other, pusherBody({ pushkey: "other-session" }));
    expect((await changePassword(user, { new_password: "pw2" })).status).toBe(200);
    expect((await list(user)).map((p) => p.pushkey)).toEqual(["a_push_key"]);
    expect(await list(bystander)).toHaveLength(1);
  });

  test("with logout_devices false the other sessions stay, and so do their pushers", async () => {
    const user = await freshUser("pw1");
    const other = await login(server, user.userId, "pw1");
    await set(other, pusherBody());
    expect((await changePassword(user, { new_password: "pw2", logout_devices: false })).status).toBe(200);
    expect(await list(other)).toHaveLength(1);
  });

  test("logging out, or deleting a device, removes the pushers that device set", async () => {
    const user = await freshUser("pw1");
    const phone = await login(server, user.userId, "pw1");
    const tablet = await login(server, user.userId, "pw1");
    await set(user, pusherBody({ pushkey: "main" }));
    await set(phone, pusherBody({ pushkey: "phone" }));
    await set(tablet, pusherBody({ pushkey: "tablet" }));
    expect((await request(server, "POST", `${V3}/logout`, {}, bearer(phone.token))).status).toBe(200);
    expect((await list(user)).map((p) => p.pushkey)).toEqual(["main", "tablet"]);
    const del = await request(server, "DELETE", `${V3}/devices/${encodeURIComponent(tablet.deviceId)}`, { auth: { type: "m.login.password", identifier: { type: "m.id.user", user: user.userId }, password: "pw1" } }, bearer(user.token));
    expect(del.status).toBe(200);
    expect((await list(user)).map((p) => p.pushkey)).toEqual(["main"]);
  });

  test("a change without an access token logs out every session, and every pusher goes", async () => {
    const user = await freshUser("pw1");
    await set(user, pusherBody());
    expect((await changePassword(user, { new_password: "pw2" }, false)).status).toBe(200);
    const again = await login(server, user.userId, "pw2");
    expect(await list(again)).toEqual([]);
  });
});
