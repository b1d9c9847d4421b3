import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { bearer, login, registerUser } from "../../helpers/accounts";

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ server_name: "pw.example", registration: { enabled: true } });
});
afterAll(() => server.stop());

const PATH = "/_matrix/client/v3/account/password";
const check = (status: number, body: unknown) => expectMatchesSpec({ api: "client-server", method: "POST", path: PATH, status, body });
const passwordAuth = (user: string, password: string, session?: string) => ({ type: "m.login.password", identifier: { type: "m.id.user", user }, password, session });
const whoami = async (token: string) => (await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(token))).status;

describe("POST /account/password", () => {
  test("UIA flow; logs out other devices by default and keeps the requester's", async () => {
    const main = await registerUser(server, "carol", "old-pw");
    const other = await login(server, "carol", "old-pw");
    const first = await request(server, "POST", PATH, { new_password: "new-pw" }, bearer(main.token));
    expect(first.status).toBe(401);
    expect(first.body.flows).toEqual([{ stages: ["m.login.password"] }]);
    check(401, first.body);

    const wrong = await request(server, "POST", PATH, { new_password: "new-pw", auth: passwordAuth("carol", "bad", first.body.session) }, bearer(main.token));
    expect(wrong.status).toBe(401);
    expect(wrong.body.errcode).toBe("M_FORBIDDEN");
    check(401, wrong.body);

    const ok = await request(server, "POST", PATH, { new_password: "new-pw", auth: passwordAuth("carol", "old-pw", first.body.session) }, bearer(main.token));
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({});
    check(200, ok.body);
    expect(await whoami(main.token)).toBe(200);
    expect(await whoami(other.token)).toBe(401);

    const oldLogin = await request(server, "POST", "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: "carol" }, password: "old-pw" });
    expect(oldLogin.status).toBe(403);
    await login(server, "carol", "new-pw");
  });

  test("logout_devices false keeps every device; r0 path", async () => {
    const main = await registerUser(server, "dave", "pw1");
    const other = await login(server, "dave", "pw1");
    const r = await request(server, "POST", "/_matrix/client/r0/account/password", { new_password: "pw2", logout_devices: false, auth: passwordAuth("@dave:pw.example", "pw1") }, bearer(main.token));
    expect(r.status).toBe(200);
    expect(await whoami(other.token)).toBe(200);
    await login(server, "dave", "pw2");
  });

  test("without an access token the password stage names the account, and every device is logged out", async () => {
    const main = await registerUser(server, "erin", "pw1");
    const r = await request(server, "POST", PATH, { new_password: "pw2", auth: passwordAuth("erin", "pw1") });
    expect(r.status).toBe(200);
    expect(await whoami(main.token)).toBe(401);
    await login(server, "erin", "pw2");
  });

  test("another account's password is refused; bad bodies are 400", async () => {
    const frank = await registerUser(server, "frank", "frankpw");
    await registerUser(server, "gina", "ginapw");
    const r = await request(server, "POST", PATH, { new_password: "x", auth: passwordAuth("gina", "ginapw") }, bearer(frank.token));
    expect(r.status).toBe(403);
    expect(r.body.errcode).toBe("M_FORBIDDEN");
    await login(server, "gina", "ginapw");

    for (const body of [{}, { new_password: 5 }, { new_password: "x", logout_devices: "yes" }]) {
      const bad = await request(server, "POST", PATH, body, bearer(frank.token));
      expect(bad.status).toBe(400);
      expect(["M_MISSING_PARAM", "M_BAD_JSON"]).toContain(bad.body.errcode);
    }
    expect((await request(server, "POST", PATH, { new_password: "x" }, bearer("pt_bogus"))).status).toBe(401);
  });
});
