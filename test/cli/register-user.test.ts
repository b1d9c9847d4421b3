import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildServer } from "../../src/app";
import { loadConfig } from "../../src/config/loader";
import { parseFlags } from "../../src/main";
import { request, silentLogger, tempDir } from "../helpers/server";

const MAIN = join(import.meta.dir, "../../src/main.ts");
const run = (...args: string[]) => {
  const r = Bun.spawnSync([process.execPath, MAIN, ...args], { env: { PATH: process.env.PATH ?? "" } });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};

describe("portier register-user", () => {
  test("creates a user (admin with --admin) who can then log in; a taken name fails", async () => {
    const dir = tempDir();
    const configFile = join(dir, "portier.yaml");
    writeFileSync(configFile, `server_name: cli.example\ndata_dir: ${JSON.stringify(join(dir, "data"))}\n`);

    const r = run("register-user", "--config", configFile, "--user", "root", "--admin", "--password", "hunter2");
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("@root:cli.example");
    expect(run("register-user", "--config", configFile, "--user", "plain", "--password=pw").code).toBe(0);

    const taken = run("register-user", "--config", configFile, "--user", "root", "--password", "x");
    expect(taken.code).toBe(1);
    expect(taken.err).toContain("already taken");
    expect(run("register-user", "--config", configFile, "--user", "nopw").code).toBe(2);

    const server = await buildServer(loadConfig({ configFile }), { logger: silentLogger });
    try {
      const login = await request(server, "POST", "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user: "root" }, password: "hunter2" });
      expect(login.status).toBe(200);
      const { Tokens, resolve } = await import("../../src/di/tokens");
      const db = resolve(server.container, Tokens.Database);
      const admins = await db.all<{ user_id: string; is_admin: number }>("SELECT user_id, is_admin FROM users ORDER BY user_id");
      expect(admins).toEqual([
        { user_id: "@plain:cli.example", is_admin: 0 },
        { user_id: "@root:cli.example", is_admin: 1 },
      ]);
      expect((await request(server, "GET", "/_matrix/client/v3/profile/@root:cli.example")).body).toEqual({ displayname: "root" });
    } finally {
      await server.stop();
    }
  });

  test("parseFlags takes switches without values", () => {
    expect(parseFlags(["--admin", "--user", "u"], ["user"], ["admin"])).toEqual({ admin: "true", user: "u" });
    expect(() => parseFlags(["--admin"], ["user"])).toThrow("unknown argument");
  });
});
