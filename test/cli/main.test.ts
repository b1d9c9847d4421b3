import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { parseConfigYaml, resolveConfig } from "../../src/config/loader";
import { parseFlags } from "../../src/main";
import pkg from "../../package.json" with { type: "json" };

const MAIN = join(import.meta.dir, "../../src/main.ts");
const run = (...args: string[]) => {
  const r = Bun.spawnSync([process.execPath, MAIN, ...args], { env: { PATH: process.env.PATH ?? "" } });
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() };
};

describe("portier CLI", () => {
  test("version", () => {
    const r = run("version");
    expect(r.code).toBe(0);
    expect(r.out.trim()).toBe(`portier ${pkg.version}`);
  });

  test("generate-config prints a commented config that loads", () => {
    const r = run("generate-config", "--server-name", "chat.example.org");
    expect(r.code).toBe(0);
    expect(r.out).toContain("#");
    expect(resolveConfig(parseConfigYaml(r.out, "generated")).server_name).toBe("chat.example.org");
  });

  test("unknown command and unknown flag exit 2 with usage", () => {
    expect(run("frobnicate").code).toBe(2);
    const r = run("serve", "--no-such-flag");
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown argument");
  });

  test("serve with a bad config names the key and exits 2", () => {
    const r = Bun.spawnSync([process.execPath, MAIN, "serve"], { env: { PATH: process.env.PATH ?? "", PORTIER_BIND: "nowhere" } });
    expect(r.exitCode).toBe(2);
    expect(r.stderr.toString()).toContain("config key 'bind'");
  });

  test("parseFlags accepts --k v and --k=v", () => {
    expect(parseFlags(["--config", "a.yaml"], ["config"])).toEqual({ config: "a.yaml" });
    expect(parseFlags(["--config=b.yaml"], ["config"])).toEqual({ config: "b.yaml" });
    expect(() => parseFlags(["--config"], ["config"])).toThrow("needs a value");
  });
});
