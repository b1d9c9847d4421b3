import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { bearer, login, registerUser, type TestUser } from "../../helpers/accounts";

let server: PortierServer;
let alice: TestUser;
let bob: TestUser;
beforeAll(async () => {
  server = await testServer({ server_name: "dev.example", registration: { enabled: true } });
  alice = await registerUser(server, "alice", "alicepw", "ALICE1");
  bob = await registerUser(server, "bob", "bobpw");
});
afterAll(() => server.stop());

const check = (method: string, path: string, status: number, body: unknown) => expectMatchesSpec({ api: "client-server", method, path, status, body });
const passwordAuth = (user: string, password: string, session?: string) => ({ type: "m.login.password", identifier: { type: "m.id.user", user }, password, session });

describe("devices", () => {
  test("list, get and rename devices under v3 and r0", async () => {
    const phone = await login(server, "alice", "alicepw", "PHONE");
    for (const prefix of ["/_matrix/client/v3", "/_matrix/client/r0"]) {
      const list = await request(server, "GET", `${prefix}/devices`, undefined, bearer(alice.token));
      expect(list.status).toBe(200);
      check("GET", `${prefix}/devices`, 200, list.body);
      expect(list.body.devices.map((d: { device_id: string }) => d.device_id).sort()).toEqual(["ALICE1", "PHONE"]);

      const path = `${prefix}/devices/PHONE`;
      const put = await request(server, "PUT", path, { display_name: `phone ${prefix}` }, bearer(alice.token));
      expect(put.status).toBe(200);
      check("PUT", path, 200, put.body);
      const get = await request(server, "GET", path, undefined, bearer(phone.token));
      expect(get.status).toBe(200);
      expect(get.body).toMatchObject({ device_id: "PHONE", display_name: `phone ${prefix}` });
      check("GET", path, 200, get.body);
    }
    // An empty body changes nothing.
    expect((await request(server, "PUT", "/_matrix/client/v3/devices/PHONE", {}, bearer(alice.token))).status).toBe(200);
    expect((await request(server, "GET", "/_matrix/client/v3/devices/PHONE", undefined, bearer(alice.token))).body.display_name).toBe("phone /_matrix/client/r0");
  });

  test("unknown devices and other users' devices are 404; bad bodies 400; no token 401", async () => {
    for (const path of ["/_matrix/client/v3/devices/NOPE", `/_matrix/client/v3/devices/${bob.deviceId}`]) {
      const get = await request(server, "GET", path, undefined, bearer(alice.token));
      expect(get.status).toBe(404);
      expect(get.body.errcode).toBe("M_NOT_FOUND");
      check("GET", path, 404, get.body);
      const put = await request(server, "PUT", path, { display_name: "x" }, bearer(alice.token));
      expect(put.status).toBe(404);
      check("PUT", path, 404, put.body);
    }
    expect((await request(server, "GET", `/_matrix/client/v3/devices/${bob.deviceId}`, undefined, bearer(bob.token))).status).toBe(200);
    const bad = await request(server, "PUT", "/_matrix/client/v3/devices/ALICE1", { display_name: 5 }, bearer(alice.token));
    expect(bad.status).toBe(400);
    expect(bad.body.errcode).toBe("M_BAD_JSON");
    expect((await request(server, "GET", "/_matrix/client/v3/devices")).status).toBe(401);
  });

  test("DELETE /devices/{id}: 401 flow without auth (with or without a body), wrong password, then success", async () => {
    const tablet = await login(server, "alice", "alicepw", "TABLET");
    const path = "/_matrix/client/v3/devices/TABLET";
    const noBody = await request(server, "DELETE", path, undefined, bearer(alice.token));
    expect(noBody.status).toBe(401);
    expect(noBody.body.flows).toEqual([{ stages: ["m.login.password"] }]);
    check("DELETE", path, 401, noBody.body);
    const first = await request(server, "DELETE", path, {}, bearer(alice.token));
    expect(first.status).toBe(401);
    const session = first.body.session;
    expect(typeof session).toBe("string");

    const wrong = await request(server, "DELETE", path, { auth: passwordAuth("alice", "nope", session) }, bearer(alice.token));
    expect(wrong.status).toBe(401);
    expect(wrong.body.errcode).toBe("M_FORBIDDEN");
    expect(wrong.body.session).toBe(session);
    check("DELETE", path, 401, wrong.body);

    // Bob's password does not delete alice's device.
    const other = await request(server, "DELETE", path, { auth: passwordAuth("bob", "bobpw", session) }, bearer(alice.token));
    expect(other.status).toBe(403);

    const unknownStage = await request(server, "DELETE", path, { auth: { type: "m.login.foo", session } }, bearer(alice.token));
    expect(unknownStage.status).toBe(401);
    expect(unknownStage.body.errcode).toBe("M_UNRECOGNIZED");

    const ok = await request(server, "DELETE", path, { auth: passwordAuth(alice.userId, "alicepw", session) }, bearer(alice.token));
    expect(ok.status).toBe(200);
    check("DELETE", path, 200, ok.body);
    expect((await request(server, "GET", path, undefined, bearer(alice.token))).status).toBe(404);
    // The deleted device's token is gone with it.
    expect((await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(tablet.token))).status).toBe(401);
  });

  test("DELETE /devices/{id} of a device alice does not have (bob's): 200 as the spec says (\"had been removed previously\"), and bob's device and token stay", async () => {
    const path = `/_matrix/client/v3/devices/${encodeURIComponent(bob.deviceId)}`;
    const first = await request(server, "DELETE", path, {}, bearer(alice.token));
    expect(first.status).toBe(401);
    const ok = await request(server, "DELETE", path, { auth: passwordAuth(alice.userId, "alicepw", first.body.session) }, bearer(alice.token));
    expect(ok.status).toBe(200);
    check("DELETE", "/_matrix/client/v3/devices/BOB", 200, ok.body);
    expect((await request(server, "GET", path, undefined, bearer(bob.token))).status).toBe(200);
    expect((await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(bob.token))).status).toBe(200);
  });

  test("POST /delete_devices deletes several after UIA; bob's devices are untouched", async () => {
    const a = await login(server, "alice", "alicepw", "A");
    await login(server, "alice", "alicepw", "B");
    const path = "/_matrix/client/r0/delete_devices";
    const first = await request(server, "POST", path, { devices: ["A", "B", bob.deviceId] }, bearer(alice.token));
    expect(first.status).toBe(401);
    check("POST", "/_matrix/client/v3/delete_devices", 401, first.body);
    const ok = await request(server, "POST", path, { devices: ["A", "B", bob.deviceId], auth: passwordAuth("alice", "alicepw", first.body.session) }, bearer(alice.token));
    expect(ok.status).toBe(200);
    check("POST", "/_matrix/client/v3/delete_devices", 200, ok.body);
    const left = await request(server, "GET", "/_matrix/client/v3/devices", undefined, bearer(alice.token));
    expect(left.body.devices.map((d: { device_id: string }) => d.device_id)).not.toContain("A");
    expect(left.body.devices.map((d: { device_id: string }) => d.device_id)).not.toContain("B");
    expect((await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(a.token))).status).toBe(401);
    expect((await request(server, "GET", "/_matrix/client/v3/account/whoami", undefined, bearer(bob.token))).status).toBe(200);

    const missing = await request(server, "POST", path, { auth: passwordAuth("alice", "alicepw") }, bearer(alice.token));
    expect(missing.status).toBe(400);
    expect(missing.body.errcode).toBe("M_MISSING_PARAM");
  });
});
