import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";

let server: PortierServer;
let token: string;
beforeAll(async () => {
  server = await testServer({ server_name: "caps.example", registration: { enabled: true } });
  const r = await request(server, "POST", "/_matrix/client/v3/register", { username: "cap", password: "pw", auth: { type: "m.login.dummy" } });
  token = r.body.access_token;
});
afterAll(() => server.stop());

describe("GET /capabilities", () => {
  test("lists password change, room versions 1..12 with default 10, profile changes, no 3pid changes", async () => {
    for (const prefix of ["/_matrix/client/v3", "/_matrix/client/r0"]) {
      const r = await request(server, "GET", `${prefix}/capabilities`, undefined, { Authorization: `Bearer ${token}` });
      expect(r.status).toBe(200);
      expectMatchesSpec({ api: "client-server", method: "GET", path: `${prefix}/capabilities`, status: 200, body: r.body });
      const caps = r.body.capabilities;
      expect(caps["m.change_password"]).toEqual({ enabled: true });
      expect(caps["m.room_versions"].default).toBe("10");
      expect(Object.keys(caps["m.room_versions"].available).sort((a, b) => Number(a) - Number(b))).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]);
      expect(Object.values(caps["m.room_versions"].available).every((s) => s === "stable")).toBe(true);
      expect(caps["m.set_displayname"]).toEqual({ enabled: true });
      expect(caps["m.set_avatar_url"]).toEqual({ enabled: true });
      expect(caps["m.3pid_changes"]).toEqual({ enabled: false });
    }
  });

  test("needs an access token", async () => {
    const r = await request(server, "GET", "/_matrix/client/v3/capabilities");
    expect(r.status).toBe(401);
    expect(r.body.errcode).toBe("M_MISSING_TOKEN");
  });
});
