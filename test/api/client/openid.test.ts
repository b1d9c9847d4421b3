// OpenID tokens: a user asks for one for themself (not for others), and a third party exchanges it
// at /_matrix/federation/v1/openid/userinfo for the user's ID until it expires.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request, testServer } from "../../helpers/server";
import { bearer, registerUser, type TestUser } from "../../helpers/accounts";
import { expectMatchesSpec } from "../../helpers/openapi";
import type { PortierServer } from "../../../src/app";
import type { Clock } from "../../../src/services/runtime";

let server: PortierServer;
let alice: TestUser;
let bob: TestUser;
let now = 1_700_000_000_000;
const clock: Clock = { now: () => now };

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } }, { clock });
  alice = await registerUser(server, "alice");
  bob = await registerUser(server, "bob");
});
afterAll(() => server.stop());

const enc = encodeURIComponent;

describe("OpenID", () => {
  test("request_token, then userinfo names the user until the token expires an hour later", async () => {
    const path = `/_matrix/client/v3/user/${enc(alice.userId)}/openid/request_token`;
    const r = await request(server, "POST", path, {}, bearer(alice.token));
    expect(r.status).toBe(200);
    expectMatchesSpec({ api: "client-server", method: "POST", path, status: 200, body: r.body });
    expect(r.body).toMatchObject({ token_type: "Bearer", matrix_server_name: server.config.server_name, expires_in: 3600 });

    const info = await request(server, "GET", `/_matrix/federation/v1/openid/userinfo?access_token=${enc(r.body.access_token)}`);
    expect(info.status).toBe(200);
    expect(info.body).toEqual({ sub: alice.userId });
    expectMatchesSpec({ api: "server-server", method: "GET", path: "/_matrix/federation/v1/openid/userinfo", status: 200, body: info.body });

    now += 3_600_001;
    const expired = await request(server, "GET", `/_matrix/federation/v1/openid/userinfo?access_token=${enc(r.body.access_token)}`);
    expect({ status: expired.status, errcode: expired.body.errcode }).toEqual({ status: 401, errcode: "M_UNKNOWN_TOKEN" });
  });

  test("for another user 403; without a token 401; an unknown or missing token at userinfo 401", async () => {
    const other = await request(server, "POST", `/_matrix/client/v3/user/${enc(alice.userId)}/openid/request_token`, {}, bearer(bob.token));
    expect({ status: other.status, errcode: other.body.errcode }).toEqual({ status: 403, errcode: "M_FORBIDDEN" });
    expect((await request(server, "POST", `/_matrix/client/v3/user/${enc(alice.userId)}/openid/request_token`, {})).status).toBe(401);
    for (const query of ["?access_token=nope", ""]) {
      const r = await request(server, "GET", `/_matrix/federation/v1/openid/userinfo${query}`);
      expect({ status: r.status, errcode: r.body.errcode }).toEqual({ status: 401, errcode: "M_UNKNOWN_TOKEN" });
    }
  });
});
