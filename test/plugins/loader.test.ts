// Loading plugins: bundled by name and drop-in files by path, in config order; configs checked against
// the plugin's schema with messages naming the plugin and the key; a reload that fails keeps the
// running set; policy chains with timeouts, fail modes, first denial wins, and stats.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PluginLoader } from "../../src/services/plugins/loader";
import { PolicySet } from "../../src/services/plugins/policies";
import { configErrors } from "../../src/services/plugins/config-schema";
import { allow, deny, definePlugin, shadow, type KnockRequest, type PortierPlugin } from "../../src/extensions";
import { silentLogger } from "../helpers/server";

const knock: KnockRequest = { roomId: "!r:example.org", userId: "@k:example.org", originServer: "example.org", reason: undefined, local: true };

function loaderWith(bundled: Record<string, PortierPlugin<any>>, baseDir = tmpdir()) {
  const policies = new PolicySet(silentLogger);
  const loader = new PluginLoader(policies, {
    bundled,
    baseDir,
    serverName: "example.org",
    logger: silentLogger,
    clock: { now: () => 0 },
    rooms: { state: async () => undefined, membership: async () => undefined },
  });
  return { policies, loader };
}

const knockPlugin = (name: string, decide: () => unknown, schema?: unknown) =>
  definePlugin<any>({ name, version: "1.0.0", configSchema: schema, register: (host) => host.addKnockPolicy({ decideKnock: decide as never }) });

describe("plugin loader", () => {
  test("runs policies in config order; the first denial wins; later ones are not asked", async () => {
    const asked: string[] = [];
    const { policies, loader } = loaderWith({
      a: knockPlugin("a", () => (asked.push("a"), allow)),
      b: knockPlugin("b", () => (asked.push("b"), deny("M_FORBIDDEN", "b says no"))),
      c: knockPlugin("c", () => (asked.push("c"), shadow)),
    });
    await loader.load(["a", "b", "c"]);
    expect(await policies.decideKnock(knock)).toEqual(deny("M_FORBIDDEN", "b says no"));
    expect(asked).toEqual(["a", "b"]);
    expect(loader.plugins.map((p) => p.name)).toEqual(["a", "b", "c"]);
    expect(policies.stats.get("b")).toMatchObject({ calls: 1, denials: 1, errors: 0 });
  });

  test("a plugin that throws or hangs is handled by its fail mode", async () => {
    const { policies, loader } = loaderWith({
      throws: knockPlugin("throws", () => {
        throw new Error("boom");
      }),
      hangs: knockPlugin("hangs", () => new Promise(() => {})),
    });
    await loader.load([{ name: "throws", fail_mode: "open" }]);
    expect(await policies.decideKnock(knock)).toEqual(allow);
    await loader.load([{ name: "throws", fail_mode: "closed" }]);
    expect((await policies.decideKnock(knock)).kind).toBe("deny");
    await loader.load([{ name: "hangs", fail_mode: "closed", timeout_ms: 20 }]);
    expect((await policies.decideKnock(knock)).kind).toBe("deny");
    await loader.load([{ name: "hangs", timeout_ms: 20 }]);
    expect(await policies.decideKnock(knock)).toEqual(allow);
    expect(policies.stats.get("hangs")?.errors).toBe(2);
    expect(policies.stats.get("throws")?.errors).toBe(2);
  });

  test("an answer that is not a decision, or a decision the call does not take, counts as allow or the fail mode", async () => {
    const { policies, loader } = loaderWith({
      junk: knockPlugin("junk", () => ({ kind: "maybe" })),
      badcode: knockPlugin("badcode", () => ({ kind: "deny", errcode: "nope", message: "x" })),
    });
    await loader.load([{ name: "junk", fail_mode: "closed" }]);
    expect((await policies.decideKnock(knock)).kind).toBe("deny");
    await loader.load(["badcode"]);
    expect(await policies.decideKnock(knock)).toEqual(allow);
  });

  test("bad entries and configs stop the load with a message naming the plugin and the key", async () => {
    const schema = { type: "object", properties: { max: { type: "integer", minimum: 1 }, servers: { type: "array", items: { type: "string" } } }, additionalProperties: false };
    const { loader } = loaderWith({ p: knockPlugin("p", () => allow, schema) });
    await expect(loader.load(["nope"])).rejects.toThrow("no bundled plugin 'nope'");
    await expect(loader.load([{ name: "p", config: { max: 0 } }])).rejects.toThrow("plugin 'p' (plugins[0]): config key 'max': must be at least 1");
    await expect(loader.load([{ name: "p", config: { servers: ["a", 3] } }])).rejects.toThrow("key 'servers[1]'");
    await expect(loader.load([{ name: "p", config: { other: 1 } }])).rejects.toThrow("key 'other': unknown");
    await expect(loader.load([{}])).rejects.toThrow("plugins[0]: give either");
    await expect(loader.load(["p", "p"])).rejects.toThrow("loaded twice");
    await expect(loader.load(["./missing-plugin.ts"])).rejects.toThrow("cannot load");
  });

  test("drop-in files load by path, and a reload picks up an edited file; a failing reload keeps the running set", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portier-plugins-"));
    const file = join(dir, "policy.ts");
    const write = (message: string) =>
      writeFileSync(file, `import type { PortierPlugin } from "portier";\nconst plugin = { name: "file-policy", version: "1", register(host) { host.addKnockPolicy({ decideKnock: () => ({ kind: "deny", errcode: "M_FORBIDDEN", message: ${JSON.stringify(message)} }) }); } };\nexport default plugin;\n`);
    write("first");
    const { policies, loader } = loaderWith({}, dir);
    await loader.load(["./policy.ts"]);
    expect(await policies.decideKnock(knock)).toEqual(deny("M_FORBIDDEN", "first"));
    write("second");
    await loader.load(["./policy.ts"]);
    expect(await policies.decideKnock(knock)).toEqual(deny("M_FORBIDDEN", "second"));
    writeFileSync(file, "export default {};\n");
    await expect(loader.load(["./policy.ts"])).rejects.toThrow("has no name");
    expect(await policies.decideKnock(knock)).toEqual(deny("M_FORBIDDEN", "second"));
    expect(loader.plugins.map((p) => p.source)).toEqual([file]);
  });
});

describe("plugin config schemas", () => {
  test("the JSON Schema subset", () => {
    const schema = { type: "object", required: ["a"], properties: { a: { type: "string", pattern: "^x" }, b: { enum: [1, 2] }, c: { anyOf: [{ type: "string" }, { type: "integer" }] } } };
    expect(configErrors(schema, { a: "xy", b: 2, c: 3 })).toEqual([]);
    expect(configErrors(schema, { b: 1 })).toEqual(["key 'a': required"]);
    expect(configErrors(schema, { a: "y" })).toEqual(["key 'a': must match ^x"]);
    expect(configErrors(schema, { a: "x", b: 3 })).toEqual(["key 'b': must be one of 1, 2"]);
    expect(configErrors(schema, { a: "x", c: true })).toEqual(["key 'c': matches none of the allowed shapes"]);
    expect(configErrors(schema, [])).toEqual(["expected object, got array"]);
  });
});
