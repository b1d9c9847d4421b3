import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ server_name: "acct.example", registration: { enabled: true } });
});
afterAll(() => server.stop());

const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

async function register(username: string, password = "correct horse", extra: Record<string, unknown> = {}) {
  return request(server, "POST", "/_matrix/client/v3/register", { username, password, auth: { type: "m.login.dummy" }, ...extra });
}

describe("registration", () => {
  test("first call without auth answers 401 with the m.login.dummy flow and a session", async () => {
    const r = await request(server, "POST", "/_matrix/client/v3/register", { username: "flowcheck", password: "pw" });
    expect(r.status).toBe(401);
    expect(r.body.flows).toEqual([{ stages: ["m.login.dummy"] }]);
    expect(typeof r.body.session).toBe("string");
    expectMatchesSpec({ api: "client-server", method: "POST", path: "/_matrix/client/v3/register", status: 401, body: r.body });
    const done = await request(server, "POST", "/_matrix/client/v3/register", { username: "flowcheck", password: "pw", auth: { type: "m.login.dummy", session: r.body.session } });
    expect(done.status).toBe(200);
    expect(done.body.user_id).toBe("@flowcheck:acct.example");
    expectMatchesSpec({ api: "client-server", method: "POST", path: "/_matrix/client/v3/register", status: 200, body: done.body });
  });

  test("dummy auth on the first call (as matrix-nio sends it), r0 path, device display name", async () => {
    const r = await request(server, "POST", "/_matrix/client/r0/register", { username: "nio", password: "pw", auth: { type: "m.login.dummy" }, initial_device_display_name: "nio phone" });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ user_id: "@nio:acct.example", home_server: "acct.example" });
    const { Tokens, resolve } = await import("../../../src/di/tokens");
    const device = await resolve(server.container, Tokens.Accounts).device("@nio:acct.example", r.body.device_id);
    expect(device?.displayName).toBe("nio phone");
  });

  test("inhibit_login returns no token", async () => {
    const r = await register("quiet", "pw", { inhibit_login: true });
    expect(r.status).toBe(200);
    expect(r.body.user_id).toBe("@quiet:acct.example");
    expect(r.body.access_token).toBeUndefined();
  });

  test("taken and invalid usernames, and /register/available", async () => {
    await register("taken");
    const again = await register("taken");
    expect(again.status).toBe(400);
    expect(again.body.errcode).toBe("M_USER_IN_USE");
    const bad = await register("Not Valid!");
    expect(bad.body.errcode).toBe("M_INVALID_USERNAME");
    expect((await request(server, "GET", "/_matrix/client/v3/register/available?username=free")).body).toEqual({ available: true });
    expect((await request(server, "GET", "/_matrix/client/v3/register/available?username=taken")).body.errcode).toBe("M_USER_IN_USE");
    expect((await request(server, "GET", "/_matrix/client/v3/register/available")).body.errcode).toBe("M_MISSING_PARAM");
  });

  test("guests are refused; registration can be switched off", async () => {
    expect((await request(server, "POST", "/_matrix/client/v3/register?kind=guest", {})).body.errcode).toBe("M_GUEST_ACCESS_FORBIDDEN");
    const closed = await testServer({ server_name: "closed.example" });
    try {
      const r = await request(closed, "POST", "/_matrix/client/v3/register", { username: "x", password: "y", auth: { type: "m.login.dummy" } });
      expect(r.status).toBe(403);
      expect(r.body.errcode).toBe("M_FORBIDDEN");
    } finally {
      await closed.stop();
    }
  });

  test("a body that is not JSON is M_NOT_JSON; a wrong type is M_BAD_JSON", async () => {
    expect((await request(server, "POST", "/_matrix/client/v3/register", "{nope")).body.errcode).toBe("M_NOT_JSON");
    expect((await request(server, "POST", "/_matrix/client/v3/register", { username: 5 })).body.errcode).toBe("M_BAD_JSON");
  });
});

describe("login, whoami, logout", () => {
  test("password login with a user identifier or a full user ID; tokens work in header and query", async () => {
    await register("lena", "s3cret");
    const flows = await request(server, "GET", "/_matrix/client/v3/login");
    expect(flows.body.flows).toContainEqual({ type: "m.login.password" });
    expectMatchesSpec({ api: "client-server", method: "GET", path: "/_matrix/client/v3/login", status: 200, body: flows.body });

    const login = await request(server, "POST", "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: "lena" }, password: "s3cret", device_id: "LAPTOP" });
    expect(login.status).toBe(200);
    expect(login.body).toMatchObject({ user_id: "@lena:acct.example", device_id: "LAPTOP" });
    expectMatchesSpec({ api: "client-server", method: "POST", path: "/_matrix/client/v3/login", status: 200, body: login.body });

    const legacy = await request(server, "POST", "/_matrix/client/r0/login", { type: "m.login.password", user: "@lena:acct.example", password: "s3cret" });
    expect(legacy.status).toBe(200);

    const who = await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(login.body.access_token));
    expect(who.body).toEqual({ user_id: "@lena:acct.example", device_id: "LAPTOP", is_guest: false });
    expectMatchesSpec({ api: "client-server", method: "GET", path: "/_matrix/client/v3/account/whoami", status: 200, body: who.body });
    const viaQuery = await request(server, "GET", `/_matrix/client/r0/account/whoami?access_token=${legacy.body.access_token}`);
    expect(viaQuery.body.user_id).toBe("@lena:acct.example");
  });

  test("wrong password is 403 M_FORBIDDEN; unknown and missing tokens are 401", async () => {
    await register("wrongpw", "right");
    const r = await request(server, "POST", "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: "wrongpw" }, password: "wrong" });
    expect(r.status).toBe(403);
    expect(r.body.errcode).toBe("M_FORBIDDEN");
    const unknown = await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer("pt_nope"));
    expect(unknown.status).toBe(401);
    expect(unknown.body).toMatchObject({ errcode: "M_UNKNOWN_TOKEN", soft_logout: false });
    const missing = await request(server, "GET", "/_matrix/client/v3/account/whoami");
    expect(missing.status).toBe(401);
    expect(missing.body.errcode).toBe("M_MISSING_TOKEN");
  });

  test("logout revokes the token; logout/all revokes every device's", async () => {
    await register("leaver", "pw");
    const login = async () =>
      (await request(server, "POST", "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: "leaver" }, password: "pw" })).body.access_token as string;
    const [a, b, c] = [await login(), await login(), await login()];
    expect((await request(server, "POST", "/_matrix/client/v3/logout", {}, bearer(a))).status).toBe(200);
    expect((await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(a))).status).toBe(401);
    expect((await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(b))).status).toBe(200);
    expect((await request(server, "POST", "/_matrix/client/v3/logout/all", undefined, bearer(b))).status).toBe(200);
    for (const t of [b, c]) expect((await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(t))).status).toBe(401);
  });

  test("a login naming a device it had before revokes that device's earlier tokens; one with a new device revokes none", async () => {
    await register("relogin", "pw");
    const login = async (device_id?: string) => {
      const r = await request(server, "POST", "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: "relogin" }, password: "pw", ...(device_id ? { device_id } : {}) });
      expect(r.status).toBe(200);
      return r.body as { access_token: string; device_id: string };
    };
    const whoami = async (token: string) => (await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(token))).status;
    const first = await login("PHONE");
    const other = await login();
    expect([await whoami(first.access_token), await whoami(other.access_token)]).toEqual([200, 200]);
    const again = await login("PHONE");
    expect(again.device_id).toBe("PHONE");
    expect(await whoami(first.access_token)).toBe(401);
    expect(await whoami(again.access_token)).toBe(200);
    expect(await whoami(other.access_token)).toBe(200);
  });

  test("tokens are stored hashed", async () => {
    const r = await register("hashcheck");
    const { Tokens, resolve } = await import("../../../src/di/tokens");
    const db = resolve(server.container, Tokens.Database);
    const rows = await db.all<{ token_hash: string }>("SELECT token_hash FROM access_tokens");
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.some((row) => row.token_hash === r.body.access_token)).toBe(false);
  });
});
