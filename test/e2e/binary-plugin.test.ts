// A drop-in plugin with the shipped binary: the binary is built and copied alone into an empty
// folder with a config naming a knock policy file beside it (no Portier source, no node_modules).
// The policy decides a knock over HTTP; the file is edited, SIGHUP reloads it, and the new policy
// decides the next knock. A file that no longer loads is refused on reload and the old policy stays.
import { afterAll, describe, expect, test } from "bun:test";
import { spawn, spawnSync, type Subprocess } from "bun";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../helpers/net";

const ROOT = join(import.meta.dir, "../..");
const V3 = "/_matrix/client/v3";
const enc = encodeURIComponent;
const dir = mkdtempSync(join(tmpdir(), "portier-binary-plugin-"));
let proc: Subprocess | undefined;

afterAll(async () => {
  proc?.kill("SIGKILL");
  await proc?.exited;
  rmSync(dir, { recursive: true, force: true });
});

/** A knock policy file as an operator writes it: type imports only, nothing else from Portier. */
function policyFile(message: string): string {
  return `import type { PortierPlugin, KnockRequest } from "portier/extensions";
const plugin: PortierPlugin<{ word: string }> = {
  name: "needs-a-word",
  version: "1.0.0",
  register(host, config) {
    host.addKnockPolicy({
      decideKnock: (knock: KnockRequest) =>
        (knock.reason ?? "").includes(config.word) ? { kind: "allow" } : { kind: "deny", errcode: "M_FORBIDDEN", message: ${JSON.stringify(message)} },
    });
  },
};
export default plugin;
`;
}

async function call(base: string, method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${base}${V3}${path}`, {
    method,
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: response.status, body: await response.json() };
}

describe("a drop-in plugin file with the compiled binary", () => {
  test("decides knocks; an edited file takes effect on SIGHUP; a broken one is refused and the old stays", async () => {
    const binary = join(dir, "portier");
    const built = spawnSync([process.execPath, "build", "--compile", join(ROOT, "src/main.ts"), "--outfile", join(dir, "build", "portier")], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    expect(built.exitCode).toBe(0);
    copyFileSync(join(dir, "build", "portier"), binary);
    rmSync(join(dir, "build"), { recursive: true, force: true });
    writeFileSync(join(dir, "needs-a-word.ts"), policyFile("say please"));
    const port = await freePort();
    writeFileSync(
      join(dir, "portier.yaml"),
      `server_name: plugin.test\nbind: "127.0.0.1:${port}"\ndata_dir: ./data\nregistration:\n  enabled: true\nplugins:\n  - path: ./needs-a-word.ts\n    config:\n      word: please\n`,
    );
    proc = spawn([binary, "serve", "--config", "portier.yaml"], { cwd: dir, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, stdout: "pipe", stderr: "pipe" });
    const base = `http://127.0.0.1:${port}`;
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      try {
        up = (await fetch(`${base}/_matrix/client/versions`)).ok;
      } catch {
        await Bun.sleep(100);
      }
    }
    expect(up).toBe(true);

    const register = async (username: string) => (await call(base, "POST", "/register", undefined, { username, password: "plugin test pw", auth: { type: "m.login.dummy" } })).body.access_token as string;
    const mod = await register("mod");
    const knocker = await register("knocker");
    const room = (await call(base, "POST", "/createRoom", mod, { room_version: "10", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] })).body.room_id as string;

    const refused = await call(base, "POST", `/knock/${enc(room)}`, knocker, { reason: "let me in" });
    expect(refused).toEqual({ status: 403, body: { errcode: "M_FORBIDDEN", error: "say please" } });
    const allowed = await call(base, "POST", `/knock/${enc(room)}`, knocker, { reason: "please let me in" });
    expect(allowed.status).toBe(200);
    await call(base, "POST", `/rooms/${enc(room)}/leave`, knocker, {});

    // The operator edits the file and sends SIGHUP: the new wording decides the next knock.
    writeFileSync(join(dir, "needs-a-word.ts"), policyFile("say the magic word"));
    proc.kill("SIGHUP");
    let after: { status: number; body: any } | undefined;
    for (let i = 0; i < 50; i++) {
      after = await call(base, "POST", `/knock/${enc(room)}`, knocker, { reason: "let me in" });
      if (after.body.error === "say the magic word") break;
      await Bun.sleep(100);
    }
    expect(after).toEqual({ status: 403, body: { errcode: "M_FORBIDDEN", error: "say the magic word" } });

    // A file that no longer loads: the reload is refused and the running policy stays.
    writeFileSync(join(dir, "needs-a-word.ts"), "export default { nothing: true };\n");
    proc.kill("SIGHUP");
    await Bun.sleep(300);
    expect(await call(base, "POST", `/knock/${enc(room)}`, knocker, { reason: "let me in" })).toEqual({ status: 403, body: { errcode: "M_FORBIDDEN", error: "say the magic word" } });
    expect(proc.exitCode).toBeNull();
  }, 60_000);
});
