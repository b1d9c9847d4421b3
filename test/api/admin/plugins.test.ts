// Plugin administration over HTTP: the loaded plugins with their counters, and a reload that keeps
// the running plugins when the new set does not load. Server admins only.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PortierServer } from "../../../src/app";
import { request, testServer } from "../../helpers/server";
import { bearer, registerAdmin, registerUser, type TestUser } from "../../helpers/accounts";

const ADMIN = "/_portier/admin/v1";
const SECRET = "plugin-admin-secret";
const dir = mkdtempSync(join(tmpdir(), "portier-plugin-admin-"));
const file = join(dir, "counting.ts");
const plugin = (version: string) =>
  `export default { name: "counting", version: ${JSON.stringify(version)}, register(host) { host.addKnockPolicy({ decideKnock: () => ({ kind: "allow" }) }); } };\n`;

let server: PortierServer;
let admin: TestUser;
let user: TestUser;

beforeAll(async () => {
  writeFileSync(file, plugin("1.0.0"));
  server = await testServer({ registration: { enabled: true, shared_secret: SECRET }, plugins: [{ path: file, fail_mode: "closed", timeout_ms: 500 }] });
  admin = await registerAdmin(server, "operator", SECRET);
  user = await registerUser(server, "someone");
});
afterAll(() => server.stop());

describe("plugin admin API", () => {
  test("lists the loaded plugins with their settings and counters; only for server admins", async () => {
    const r = await request(server, "GET", `${ADMIN}/plugins`, undefined, bearer(admin.token));
    expect(r.status).toBe(200);
    expect(r.body.plugins).toEqual([{ name: "counting", version: "1.0.0", source: file, fail_mode: "closed", timeout_ms: 500, calls: 0, denials: 0, errors: 0, p99_ms: 0 }]);
    expect((await request(server, "GET", `${ADMIN}/plugins`, undefined, bearer(user.token))).status).toBe(403);
    expect((await request(server, "GET", `${ADMIN}/plugins`)).status).toBe(401);
    expect((await request(server, "POST", `${ADMIN}/plugins/reload`, {}, bearer(user.token))).status).toBe(403);
  });

  test("reload picks up an edited file; a file that no longer loads is refused and the running plugin stays", async () => {
    writeFileSync(file, plugin("2.0.0"));
    const reloaded = await request(server, "POST", `${ADMIN}/plugins/reload`, {}, bearer(admin.token));
    expect(reloaded).toMatchObject({ status: 200, body: { plugins: [{ name: "counting", version: "2.0.0" }] } });
    writeFileSync(file, "export default 42;\n");
    const refused = await request(server, "POST", `${ADMIN}/plugins/reload`, {}, bearer(admin.token));
    expect(refused.status).toBe(400);
    expect(refused.body.errcode).toBe("M_UNKNOWN");
    expect(refused.body.error).toContain("has no default export");
    expect((await request(server, "GET", `${ADMIN}/plugins`, undefined, bearer(admin.token))).body.plugins[0].version).toBe("2.0.0");
  });
});
