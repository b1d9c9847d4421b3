import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import type { PortierServer } from "../../../src/app";
import { request, testServer } from "../../helpers/server";
import { bearer } from "../../helpers/accounts";

const SECRET = "s3cr3t-shared";
let now = 1_700_000_000_000;
let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ server_name: "admin.example", registration: { shared_secret: SECRET } }, { clock: { now: () => now } });
});
afterAll(() => server.stop());

const PATH = "/_synapse/admin/v1/register";

/** The MAC as Synapse's register_new_matrix_user script computes it. */
function mac(nonce: string, username: string, password: string, admin: boolean, secret = SECRET, userType?: string) {
  const h = createHmac("sha1", secret).update(`${nonce}\0${username}\0${password}\0${admin ? "admin" : "notadmin"}`);
  if (userType !== undefined) h.update(`\0${userType}`);
  return h.digest("hex");
}
const nonce = async () => (await request(server, "GET", PATH)).body.nonce as string;

describe("shared-secret registration", () => {
  test("registers a user with a nonce and the right MAC; the token works; admin flag kept", async () => {
    const n = await nonce();
    expect(n).toMatch(/^[0-9a-f]{64}$/);
    const r = await request(server, "POST", PATH, { nonce: n, username: "Admin1", password: "pw", admin: true, mac: mac(n, "Admin1", "pw", true), displayname: "The Admin" });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ user_id: "@admin1:admin.example", home_server: "admin.example" });
    expect(typeof r.body.device_id).toBe("string");
    const who = await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(r.body.access_token));
    expect(who.body.user_id).toBe("@admin1:admin.example");
    const { Tokens, resolve } = await import("../../../src/di/tokens");
    const db = resolve(server.container, Tokens.Database);
    expect((await db.get<{ is_admin: number }>("SELECT is_admin FROM users WHERE user_id = ?", "@admin1:admin.example"))?.is_admin).toBe(1);
    const profile = await request(server, "GET", "/_matrix/client/v3/profile/@admin1:admin.example");
    expect(profile.body.displayname).toBe("The Admin");
    const login = await request(server, "POST", "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: "admin1" }, password: "pw" });
    expect(login.status).toBe(200);
  });

  test("user_type is part of the MAC; notadmin users are not admins", async () => {
    const n = await nonce();
    const r = await request(server, "POST", PATH, { nonce: n, username: "bot", password: "pw", mac: mac(n, "bot", "pw", false, SECRET, "bot"), user_type: "bot" });
    expect(r.status).toBe(200);
    expect(r.body.user_id).toBe("@bot:admin.example");
    const { Tokens, resolve } = await import("../../../src/di/tokens");
    expect((await resolve(server.container, Tokens.Database).get<{ is_admin: number }>("SELECT is_admin FROM users WHERE user_id = ?", "@bot:admin.example"))?.is_admin).toBe(0);
  });

  test("a wrong MAC is 403; a nonce is single-use; unknown and expired nonces are 400", async () => {
    const n = await nonce();
    const bad = await request(server, "POST", PATH, { nonce: n, username: "eve", password: "pw", admin: false, mac: mac(n, "eve", "pw", true) });
    expect(bad.status).toBe(403);
    expect(bad.body.errcode).toBe("M_FORBIDDEN");
    const wrongSecret = await nonce();
    expect((await request(server, "POST", PATH, { nonce: wrongSecret, username: "eve", password: "pw", mac: mac(wrongSecret, "eve", "pw", false, "other") })).status).toBe(403);
    // The nonce was used up by the failed attempt.
    const again = await request(server, "POST", PATH, { nonce: n, username: "eve", password: "pw", admin: false, mac: mac(n, "eve", "pw", false) });
    expect(again.status).toBe(400);
    expect(again.body.errcode).toBe("M_UNKNOWN");
    const unknown = await request(server, "POST", PATH, { nonce: "abc", username: "eve", password: "pw", mac: mac("abc", "eve", "pw", false) });
    expect(unknown.status).toBe(400);

    const old = await nonce();
    now += 61_000;
    const expired = await request(server, "POST", PATH, { nonce: old, username: "eve", password: "pw", mac: mac(old, "eve", "pw", false) });
    expect(expired.status).toBe(400);
  });

  test("bad bodies are 400; taken usernames M_USER_IN_USE; invalid ones M_INVALID_USERNAME", async () => {
    expect((await request(server, "POST", PATH, { nonce: "x" })).body.errcode).toBe("M_MISSING_PARAM");
    expect((await request(server, "POST", PATH, { nonce: "x", username: 1, password: "p", mac: "m" })).body.errcode).toBe("M_BAD_JSON");
    let n = await nonce();
    const taken = await request(server, "POST", PATH, { nonce: n, username: "bot", password: "pw", mac: mac(n, "bot", "pw", false) });
    expect(taken.status).toBe(400);
    expect(taken.body.errcode).toBe("M_USER_IN_USE");
    n = await nonce();
    const invalid = await request(server, "POST", PATH, { nonce: n, username: "not valid", password: "pw", mac: mac(n, "not valid", "pw", false) });
    expect(invalid.body.errcode).toBe("M_INVALID_USERNAME");
    n = await nonce();
    const nul = await request(server, "POST", PATH, { nonce: n, username: "a\0b", password: "pw", mac: "00" });
    expect(nul.status).toBe(400);
  });

  test("without a configured secret both calls are 400", async () => {
    const plain = await testServer({ server_name: "nosecret.example" });
    try {
      const g = await request(plain, "GET", PATH);
      expect(g.status).toBe(400);
      const p = await request(plain, "POST", PATH, { nonce: "n", username: "u", password: "p", mac: "m" });
      expect(p.status).toBe(400);
      expect(p.body.errcode).toBe("M_UNKNOWN");
    } finally {
      await plain.stop();
    }
  });
});
