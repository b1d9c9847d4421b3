// User-interactive auth sessions: bound to the API call that began them; registration sessions
// remember their parameters and answer a retry with the account they made; a failed stage lists
// `completed`; usernames are downcased.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { bearer, login, registerUser } from "../../helpers/accounts";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";

const V3 = "/_matrix/client/v3";
let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ server_name: "uia.example", registration: { enabled: true } });
});
afterAll(() => server.stop());

const passwordAuth = (user: string, password: string, session?: string) => ({ type: "m.login.password", identifier: { type: "m.id.user", user }, password, session });

describe("registration sessions", () => {
  test("usernames are downcased", async () => {
    const r = await request(server, "POST", `${V3}/register`, { username: "user-UPPER", password: "pw", auth: { type: "m.login.dummy" } });
    expect(r.status).toBe(200);
    expect(r.body.user_id).toBe("@user-upper:uia.example");
    const taken = await request(server, "GET", `${V3}/register/available?username=USER-upper`);
    expect(taken.body.errcode).toBe("M_USER_IN_USE");
  });

  test("a retry of a completed session, without a username, answers with the same account and a new login", async () => {
    const first = await request(server, "POST", `${V3}/register`, { password: "pw" });
    expect(first.status).toBe(401);
    const session = first.body.session;
    const done = await request(server, "POST", `${V3}/register`, { password: "pw", auth: { type: "m.login.dummy", session } });
    expect(done.status).toBe(200);
    const again = await request(server, "POST", `${V3}/register`, { password: "pw", auth: { type: "m.login.dummy", session } });
    expect(again.status).toBe(200);
    expect(again.body.user_id).toBe(done.body.user_id);
    expect(again.body.access_token).not.toBe(done.body.access_token);
    expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/register`, status: 200, body: again.body });
    // Both logins work, with the password given in the session.
    for (const token of [done.body.access_token, again.body.access_token]) {
      expect((await request(server, "GET", `${V3}/account/whoami`, undefined, bearer(token))).body.user_id).toBe(done.body.user_id);
    }
    await login(server, done.body.user_id, "pw");
  });

  test("a retry with the username the session registered is not M_USER_IN_USE; the auth dict with only the session also succeeds", async () => {
    const first = await request(server, "POST", `${V3}/register`, { username: "retrier", password: "pw" });
    const session = first.body.session;
    const done = await request(server, "POST", `${V3}/register`, { username: "retrier", password: "pw", auth: { type: "m.login.dummy", session } });
    expect(done.body.user_id).toBe("@retrier:uia.example");
    const again = await request(server, "POST", `${V3}/register`, { username: "retrier", password: "pw", auth: { type: "m.login.dummy", session } });
    expect(again.status).toBe(200);
    expect(again.body.user_id).toBe("@retrier:uia.example");
    const sessionOnly = await request(server, "POST", `${V3}/register`, { username: "retrier", password: "pw", auth: { session } });
    expect(sessionOnly.status).toBe(200);
    expect(sessionOnly.body.user_id).toBe("@retrier:uia.example");
    // Another session asking for the name is refused as before.
    const other = await request(server, "POST", `${V3}/register`, { username: "retrier", password: "pw", auth: { type: "m.login.dummy" } });
    expect(other.body.errcode).toBe("M_USER_IN_USE");
  });

  test("parameters given in the first request are remembered when the next gives only auth", async () => {
    const first = await request(server, "POST", `${V3}/register`, { username: "rememberme", password: "pw", device_id: "xyzzy", initial_device_display_name: "display_name" });
    expect(first.status).toBe(401);
    const done = await request(server, "POST", `${V3}/register`, { auth: { type: "m.login.dummy", session: first.body.session } });
    expect(done.status).toBe(200);
    expect(done.body.user_id).toBe("@rememberme:uia.example");
    expect(done.body.device_id).toBe("xyzzy");
    const device = await request(server, "GET", `${V3}/devices/xyzzy`, undefined, bearer(done.body.access_token));
    expect(device.body.display_name).toBe("display_name");
    await login(server, "rememberme", "pw");
  });

  test("a remembered inhibit_login gives no access token or device", async () => {
    const first = await request(server, "POST", `${V3}/register`, { username: "inhibited", password: "pw", inhibit_login: true });
    const done = await request(server, "POST", `${V3}/register`, { auth: { type: "m.login.dummy", session: first.body.session } });
    expect(done.status).toBe(200);
    expect(done.body.user_id).toBe("@inhibited:uia.example");
    expect(done.body.access_token).toBeUndefined();
    expect(done.body.device_id).toBeUndefined();
  });
});

describe("a session belongs to one operation", () => {
  test("a session begun deleting one device cannot delete another (403), and that device stays", async () => {
    const owner = await registerUser(server, "twodevices", "pw");
    await login(server, owner.userId, "pw", "login_device");
    await login(server, owner.userId, "pw", "second_device");
    const first = await request(server, "DELETE", `${V3}/devices/login_device`, {}, bearer(owner.token));
    expect(first.status).toBe(401);
    const other = await request(server, "DELETE", `${V3}/devices/second_device`, { auth: passwordAuth(owner.userId, "pw", first.body.session) }, bearer(owner.token));
    expect(other.status).toBe(403);
    expect((await request(server, "GET", `${V3}/devices/second_device`, undefined, bearer(owner.token))).status).toBe(200);
    // The session still serves the call it began with.
    const ok = await request(server, "DELETE", `${V3}/devices/login_device`, { auth: passwordAuth(owner.userId, "pw", first.body.session) }, bearer(owner.token));
    expect(ok.status).toBe(200);
    expect((await request(server, "GET", `${V3}/devices/login_device`, undefined, bearer(owner.token))).status).toBe(404);
  });

  test("a registration session cannot authenticate a password change", async () => {
    const owner = await registerUser(server, "crossop", "pw");
    const reg = await request(server, "POST", `${V3}/register`, { password: "pw" });
    const change = await request(server, "POST", `${V3}/account/password`, { new_password: "new", auth: passwordAuth(owner.userId, "pw", reg.body.session) }, bearer(owner.token));
    expect(change.status).toBe(403);
    await login(server, owner.userId, "pw");
  });
});

describe("a failed stage lists completed", () => {
  test("deactivation with a wrong password: 401 M_FORBIDDEN with error, params, completed and flows; the account stays", async () => {
    const owner = await registerUser(server, "notleaving", "pw");
    const wrong = await request(server, "POST", `${V3}/account/deactivate`, { auth: passwordAuth(owner.userId, "wrong password") }, bearer(owner.token));
    expect(wrong.status).toBe(401);
    expect(wrong.body.errcode).toBe("M_FORBIDDEN");
    expect(wrong.body.completed).toEqual([]);
    expect(Object.keys(wrong.body)).toEqual(expect.arrayContaining(["error", "params", "flows", "session"]));
    expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/account/deactivate`, status: 401, body: wrong.body });
    expect((await request(server, "GET", `${V3}/account/whoami`, undefined, bearer(owner.token))).status).toBe(200);
  });

  test("the first 401 of a flow, before any attempt, has no completed list", async () => {
    const owner = await registerUser(server, "firstcall", "pw");
    const first = await request(server, "POST", `${V3}/account/deactivate`, {}, bearer(owner.token));
    expect(first.status).toBe(401);
    expect(first.body.completed).toBeUndefined();
  });
});
