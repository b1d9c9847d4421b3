import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { bearer, registerUser, type TestUser } from "../../helpers/accounts";

let server: PortierServer;
let alice: TestUser;
let bob: TestUser;
beforeAll(async () => {
  server = await testServer({ server_name: "prof.example", registration: { enabled: true } });
  alice = await registerUser(server, "alice");
  bob = await registerUser(server, "bob");
});
afterAll(() => server.stop());

const enc = encodeURIComponent;
const check = (method: string, path: string, status: number, body: unknown) => expectMatchesSpec({ api: "client-server", method, path, status, body });

describe("profiles", () => {
  test("registration sets the display name to the localpart", async () => {
    const path = `/_matrix/client/v3/profile/${enc(alice.userId)}`;
    const r = await request(server, "GET", path);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ displayname: "alice" });
    check("GET", path, 200, r.body);
  });

  test("set and read displayname and avatar_url under v3 and r0; the whole profile shows both", async () => {
    for (const prefix of ["/_matrix/client/v3", "/_matrix/client/r0"]) {
      const dn = `${prefix}/profile/${enc(alice.userId)}/displayname`;
      const put = await request(server, "PUT", dn, { displayname: `Alice ${prefix.slice(-2)}` }, bearer(alice.token));
      expect(put.status).toBe(200);
      expect(put.body).toEqual({});
      check("PUT", dn, 200, put.body);
      const get = await request(server, "GET", dn);
      expect(get.body).toEqual({ displayname: `Alice ${prefix.slice(-2)}` });
      check("GET", dn, 200, get.body);

      const av = `${prefix}/profile/${enc(alice.userId)}/avatar_url`;
      expect((await request(server, "PUT", av, { avatar_url: "mxc://prof.example/abc" }, bearer(alice.token))).status).toBe(200);
      const avGet = await request(server, "GET", av);
      expect(avGet.body).toEqual({ avatar_url: "mxc://prof.example/abc" });
      check("GET", av, 200, avGet.body);
    }
    // Unencoded user IDs in the path work too (clients differ).
    const whole = await request(server, "GET", `/_matrix/client/v3/profile/${alice.userId}`);
    expect(whole.body).toEqual({ displayname: "Alice r0", avatar_url: "mxc://prof.example/abc" });
    check("GET", `/_matrix/client/v3/profile/${alice.userId}`, 200, whole.body);
  });

  test("custom fields and m.tz can be set, read and deleted", async () => {
    const base = `/_matrix/client/v3/profile/${enc(bob.userId)}`;
    expect((await request(server, "PUT", `${base}/m.tz`, { "m.tz": "Europe/Paris" }, bearer(bob.token))).status).toBe(200);
    expect((await request(server, "PUT", `${base}/org.example.job`, { "org.example.job": { title: "chef" } }, bearer(bob.token))).status).toBe(200);
    const whole = await request(server, "GET", base);
    expect(whole.body).toEqual({ displayname: "bob", "m.tz": "Europe/Paris", "org.example.job": { title: "chef" } });
    check("GET", base, 200, whole.body);
    const del = await request(server, "DELETE", `${base}/org.example.job`, undefined, bearer(bob.token));
    expect(del.status).toBe(200);
    check("DELETE", `${base}/org.example.job`, 200, del.body);
    expect((await request(server, "GET", `${base}/org.example.job`)).status).toBe(404);
    // Deleting what is not there is fine.
    expect((await request(server, "DELETE", `${base}/org.example.job`, undefined, bearer(bob.token))).status).toBe(200);
  });

  test("someone else's profile is 403 M_FORBIDDEN to change", async () => {
    const path = `/_matrix/client/v3/profile/${enc(alice.userId)}/displayname`;
    const r = await request(server, "PUT", path, { displayname: "Mallory" }, bearer(bob.token));
    expect(r.status).toBe(403);
    expect(r.body.errcode).toBe("M_FORBIDDEN");
    check("PUT", path, 403, r.body);
    expect((await request(server, "DELETE", path, undefined, bearer(bob.token))).status).toBe(403);
    expect((await request(server, "PUT", path, { displayname: "x" })).status).toBe(401);
  });

  test("unknown users, remote users and unset fields are 404 M_NOT_FOUND", async () => {
    for (const user of ["@nobody:prof.example", "@someone:elsewhere.example"]) {
      const path = `/_matrix/client/v3/profile/${enc(user)}`;
      const r = await request(server, "GET", path);
      expect(r.status).toBe(404);
      expect(r.body.errcode).toBe("M_NOT_FOUND");
      check("GET", path, 404, r.body);
      expect((await request(server, "GET", `${path}/displayname`)).body.errcode).toBe("M_NOT_FOUND");
    }
    expect((await request(server, "GET", `/_matrix/client/v3/profile/${enc(bob.userId)}/avatar_url`)).body.errcode).toBe("M_NOT_FOUND");
    expect((await request(server, "GET", "/_matrix/client/v3/profile/notauser")).body.errcode).toBe("M_INVALID_PARAM");
  });

  test("bad bodies and keys: wrong types, missing key, invalid key names, oversize", async () => {
    const base = `/_matrix/client/v3/profile/${enc(bob.userId)}`;
    const cases: [string, unknown, number, string][] = [
      ["displayname", { displayname: 5 }, 400, "M_BAD_JSON"],
      ["displayname", { displayname: null }, 400, "M_BAD_JSON"],
      ["avatar_url", { displayname: "x" }, 400, "M_MISSING_PARAM"],
      ["displayname", [1], 400, "M_BAD_JSON"],
      ["displayname", "{nope", 400, "M_NOT_JSON"],
      ["Bad-Key", { "Bad-Key": 1 }, 400, "M_INVALID_PARAM"],
      [`org.${"a".repeat(260)}`, {}, 400, "M_KEY_TOO_LARGE"],
      ["org.example.big", { "org.example.big": "x".repeat(70_000) }, 400, "M_PROFILE_TOO_LARGE"],
    ];
    for (const [key, body, status, errcode] of cases) {
      const r = await request(server, "PUT", `${base}/${key}`, body, bearer(bob.token));
      expect({ key, status: r.status, errcode: r.body.errcode }).toEqual({ key, status, errcode });
      check("PUT", `${base}/${key}`, status, r.body);
    }
    expect((await request(server, "GET", base)).body.displayname).toBe("bob");
  });

  test("two large fields set at the same time cannot together pass the 64 KiB limit", async () => {
    const dana = await registerUser(server, "dana");
    const base = `/_matrix/client/v3/profile/${enc(dana.userId)}`;
    const [a, b] = await Promise.all(
      ["org.example.a", "org.example.b"].map((key) => request(server, "PUT", `${base}/${key}`, { [key]: "x".repeat(40_000) }, bearer(dana.token))),
    );
    expect([a!.status, b!.status].sort()).toEqual([200, 400]);
    expect([a!.body.errcode, b!.body.errcode]).toContain("M_PROFILE_TOO_LARGE");
    // The display name set at registration, and the one field that fitted.
    expect(Object.keys((await request(server, "GET", base)).body)).toHaveLength(2);
  });

  test("onProfileChange hears changes with the new profile; a throwing listener does not fail the request", async () => {
    const profiles = resolve(server.container, Tokens.Profiles);
    const heard: unknown[] = [];
    const off1 = profiles.onProfileChange((userId, profile, field) => void heard.push([userId, profile.displayname, field]));
    const off2 = profiles.onProfileChange(() => {
      throw new Error("boom");
    });
    const r = await request(server, "PUT", `/_matrix/client/v3/profile/${enc(bob.userId)}/displayname`, { displayname: "Robert" }, bearer(bob.token));
    expect(r.status).toBe(200);
    expect(heard).toEqual([[bob.userId, "Robert", "displayname"]]);
    off1();
    off2();
    await request(server, "PUT", `/_matrix/client/v3/profile/${enc(bob.userId)}/displayname`, { displayname: "Bob" }, bearer(bob.token));
    expect(heard.length).toBe(1);
  });
});
