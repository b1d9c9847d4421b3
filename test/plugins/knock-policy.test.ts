// The bundled knock-policy plugin on its own (issue 9): patterns, the order of its checks, per-room
// overrides (tighten, never loosen), config validation that names the key, and decisions the
// PolicySet takes as they are. Also the drop-in example, loaded the way an operator loads it.
import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import knockPolicyPlugin, { configSchema, globMatcher, parseConfig, type KnockPolicyConfig } from "../../plugins/knock-policy";
import type { Decision, KnockPolicy, KnockRequest, PluginHost } from "../../src/extensions";
import { configErrors } from "../../src/services/plugins/config-schema";
import { PluginLoader } from "../../src/services/plugins/loader";
import { PolicySet } from "../../src/services/plugins/policies";
import { silentLogger } from "../helpers/server";
import { fakePluginHost } from "../helpers/plugin-host";

const ROOM = "!room:home.example";

/** Room state by "roomId|type"; the policies are the knock policies the plugin registered. */
function knockHost(state: Record<string, Record<string, unknown>> = {}) {
  const fake = fakePluginHost((roomId, type) => state[`${roomId}|${type}`]);
  return { ...fake, policies: fake.knockPolicies };
}


async function policyFor(config: KnockPolicyConfig, state: Record<string, Record<string, unknown>> = {}) {
  const fake = knockHost(state);
  await knockPolicyPlugin.register(fake.host, config);
  expect(fake.policies).toHaveLength(1);
  const policy = fake.policies[0]!;
  const decide = (userId: string, reason?: string, extra: Partial<KnockRequest> = {}) =>
    policy.decideKnock!({ roomId: ROOM, userId, originServer: userId.slice(userId.indexOf(":") + 1), reason, local: true, ...extra }) as Promise<Decision>;
  return { ...fake, decide };
}

const ALLOW: Decision = { kind: "allow" };
const ACCEPT: Decision = { kind: "accept" };
const SHADOW: Decision = { kind: "shadow" };
const denied = (message: string | RegExp): Decision => ({ kind: "deny", errcode: "M_FORBIDDEN", message: typeof message === "string" ? message : expect.stringMatching(message) });

describe("globMatcher", () => {
  test("* is any run of characters, ? exactly one; the whole name; case-insensitive", () => {
    expect(globMatcher("*.example.org")("matrix.example.org")).toBe(true);
    expect(globMatcher("*.example.org")("example.org")).toBe(false);
    expect(globMatcher("*.example.org")("a.example.org.evil")).toBe(false);
    expect(globMatcher("@bot?:*")("@bot1:x.org")).toBe(true);
    expect(globMatcher("@bot?:*")("@bot12:x.org")).toBe(false);
    expect(globMatcher("Spam.EXAMPLE")("spam.example")).toBe(true);
    expect(globMatcher("*")("")).toBe(true);
  });

  test("other characters are literal: a dot is a dot, brackets and pluses are not syntax", () => {
    expect(globMatcher("a.b")("axb")).toBe(false);
    expect(globMatcher("@a+b:[x](y)")("@a+b:[x](y)")).toBe(true);
    expect(globMatcher("@a+b:x")("@aab:x")).toBe(false);
    expect(globMatcher("^$|\\")("^$|\\")).toBe(true);
  });
});

describe("decisions", () => {
  test("no config: every knock is allowed, and the room's state is still read for overrides", async () => {
    const p = await policyFor({});
    expect(await p.decide("@anyone:home.example")).toEqual(ALLOW);
    expect(p.reads).toEqual([[ROOM, "org.portier.knock_policy", ""]]);
  });

  test("deny lists by server (glob) and by user pattern, each with its own message", async () => {
    const p = await policyFor({ deny: { servers: ["spam.example", "*.badhost.example"], users: ["@bot*:*"] } });
    expect(await p.decide("@a:spam.example")).toEqual(denied("Knocks from users of spam.example are not accepted here"));
    expect(await p.decide("@a:eu.badhost.example")).toEqual(denied("Knocks from users of eu.badhost.example are not accepted here"));
    expect(await p.decide("@bot7:home.example")).toEqual(denied("You may not knock on this room"));
    expect(await p.decide("@robot:home.example")).toEqual(ALLOW);
    expect(await p.decide("@a:badhost.example")).toEqual(ALLOW);
  });

  test("a federated knock is checked against the origin server as well as the knocker's", async () => {
    const p = await policyFor({ deny: { servers: ["relay.example"] }, allow: { servers: ["friends.example"] } });
    expect(await p.decide("@a:friends.example", undefined, { originServer: "relay.example", local: false })).toEqual(denied(/relay\.example/));
    expect(await p.decide("@a:friends.example", undefined, { originServer: "other.example", local: false })).toEqual(denied(/not among them/));
    expect(await p.decide("@a:friends.example", undefined, { local: false })).toEqual(ALLOW);
  });

  test("allow lists: when set, only the servers and users they name may knock; empty lists restrict nothing", async () => {
    const p = await policyFor({ allow: { servers: ["friends.example"], users: ["@guest:*"] } });
    expect(await p.decide("@a:friends.example")).toEqual(ALLOW);
    expect(await p.decide("@guest:elsewhere.example")).toEqual(ALLOW);
    expect(await p.decide("@a:elsewhere.example")).toEqual(denied("This room only takes knocks from the users and servers it lists, and you are not among them"));
    const open = await policyFor({ allow: { servers: [], users: [] } });
    expect(await open.decide("@a:elsewhere.example")).toEqual(ALLOW);
  });

  test("require_reason: a missing or blank reason is refused", async () => {
    const p = await policyFor({ require_reason: true });
    expect(await p.decide("@a:home.example")).toEqual(denied(/asks for a reason/));
    expect(await p.decide("@a:home.example", " \n\t ")).toEqual(denied(/asks for a reason/));
    expect(await p.decide("@a:home.example", "I'm Alice from the meetup")).toEqual(ALLOW);
  });

  test("max_reason_length counts characters, not UTF-16 units; no reason is fine", async () => {
    const p = await policyFor({ max_reason_length: 3 });
    expect(await p.decide("@a:home.example", "🙂🙂🙂")).toEqual(ALLOW);
    expect(await p.decide("@a:home.example", "abcd")).toEqual(denied("Your reason is too long: at most 3 characters, please"));
    expect(await p.decide("@a:home.example")).toEqual(ALLOW);
  });

  test("auto_accept accepts matching knockers that pass every other rule", async () => {
    const p = await policyFor({ auto_accept: { users: ["@staff*:home.example"], servers: ["partner.example"] }, require_reason: true });
    expect(await p.decide("@staff1:home.example", "hi")).toEqual(ACCEPT);
    expect(await p.decide("@x:partner.example", "hi")).toEqual(ACCEPT);
    expect(await p.decide("@x:home.example", "hi")).toEqual(ALLOW);
    expect((await p.decide("@staff1:home.example")).kind).toBe("deny");
  });

  test("order: shadow before deny (the shadowed never learn), deny before auto_accept", async () => {
    const p = await policyFor({ shadow: { users: ["@sneaky:*"] }, deny: { servers: ["bad.example"] }, auto_accept: { servers: ["bad.example"] }, require_reason: true });
    expect(await p.decide("@sneaky:bad.example")).toEqual(SHADOW);
    expect((await p.decide("@other:bad.example", "hi")).kind).toBe("deny");
  });

  test("decisions other than allow are logged with the rule that made them", async () => {
    const p = await policyFor({ deny: { users: ["@bot*:*"] } });
    await p.decide("@bot1:home.example");
    await p.decide("@human:home.example");
    expect(p.logs).toEqual([{ level: "info", message: "knock denied", fields: { room_id: ROOM, user_id: "@bot1:home.example", origin: "home.example", rule: "deny.users" } }]);
  });
});

describe("per-room overrides", () => {
  const room = (content: Record<string, unknown>, type = "org.portier.knock_policy") => ({ [`${ROOM}|${type}`]: content });

  test("a room adds to the deny and shadow lists", async () => {
    const p = await policyFor({ deny: { servers: ["spam.example"] } }, room({ deny: { users: ["@carol:*"] }, shadow: { servers: ["quiet.example"] } }));
    expect((await p.decide("@a:spam.example")).kind).toBe("deny");
    expect(await p.decide("@carol:home.example")).toEqual(denied("You may not knock on this room"));
    expect(await p.decide("@a:quiet.example")).toEqual(SHADOW);
    expect(await p.decide("@dave:home.example")).toEqual(ALLOW);
  });

  test("a room narrows the allow lists (both must admit) and cannot widen them", async () => {
    const p = await policyFor({ allow: { servers: ["home.example", "friends.example"] } }, room({ allow: { servers: ["friends.example", "elsewhere.example"] } }));
    expect(await p.decide("@a:friends.example")).toEqual(ALLOW);
    expect((await p.decide("@a:home.example")).kind).toBe("deny");
    expect((await p.decide("@a:elsewhere.example")).kind).toBe("deny");
  });

  test("require_reason and max_reason_length only tighten", async () => {
    const loosen = await policyFor({ require_reason: true, max_reason_length: 10 }, room({ require_reason: false, max_reason_length: 100 }));
    expect((await loosen.decide("@a:home.example")).kind).toBe("deny");
    expect((await loosen.decide("@a:home.example", "x".repeat(11))).kind).toBe("deny");
    const tighten = await policyFor({}, room({ require_reason: true, max_reason_length: 2 }));
    expect(await tighten.decide("@a:home.example")).toEqual(denied(/asks for a reason/));
    expect(await tighten.decide("@a:home.example", "abc")).toEqual(denied(/at most 2 characters/));
  });

  test("a room's auto_accept replaces the operator's: it can add its own people, or turn it off", async () => {
    const own = await policyFor({ auto_accept: { users: ["@staff:*"] } }, room({ auto_accept: { users: ["@friend:*"] } }));
    expect(await own.decide("@friend:home.example")).toEqual(ACCEPT);
    expect(await own.decide("@staff:home.example")).toEqual(ALLOW);
    const off = await policyFor({ auto_accept: { users: ["@staff:*"] } }, room({ auto_accept: {} }));
    expect(await off.decide("@staff:home.example")).toEqual(ALLOW);
  });

  test("keys of a room's event that are not valid are ignored and logged; the valid ones apply", async () => {
    const p = await policyFor({}, room({ deny: "everyone", max_reason_length: 0, require_reason: true, colour: "blue" }));
    expect(await p.decide("@a:home.example")).toEqual(denied(/asks for a reason/));
    expect(await p.decide("@a:home.example", "x".repeat(100))).toEqual(ALLOW);
    const warning = p.logs.find((l) => l.level === "warn");
    expect(warning?.fields?.room_id).toBe(ROOM);
    expect(warning?.fields?.problems).toEqual([
      expect.stringContaining("key 'colour': unknown"),
      expect.stringContaining("key 'deny'"),
      expect.stringContaining("key 'max_reason_length'"),
    ]);
  });

  test("room_overrides: false reads nothing; room_state_type changes the event read", async () => {
    const off = await policyFor({ room_overrides: false }, room({ require_reason: true }));
    expect(await off.decide("@a:home.example")).toEqual(ALLOW);
    expect(off.reads).toEqual([]);
    const custom = await policyFor({ room_state_type: "com.example.knocks" }, room({ require_reason: true }, "com.example.knocks"));
    expect((await custom.decide("@a:home.example")).kind).toBe("deny");
    expect(custom.reads).toEqual([[ROOM, "com.example.knocks", ""]]);
  });
});

describe("config", () => {
  // [config, the message register gives, whether the JSON Schema (coarser about pattern shapes) refuses it too]
  const bad: [unknown, string, boolean][] = [
    [{ deny: { servers: ["spam.example"], hosts: [] } }, "key 'deny.hosts': unknown", true],
    [{ deny: ["spam.example"] }, "key 'deny': expected an object", true],
    [{ allow: { users: ["alice"] } }, "key 'allow.users[0]'", false],
    [{ allow: { servers: ["@alice:example.org"] } }, "key 'allow.servers[0]'", false],
    [{ auto_accept: { users: [""] } }, "key 'auto_accept.users[0]'", true],
    [{ max_reason_length: 0 }, "key 'max_reason_length'", true],
    [{ max_reason_length: 2.5 }, "key 'max_reason_length'", true],
    [{ require_reason: "yes" }, "key 'require_reason'", true],
    [{ room_overrides: 1 }, "key 'room_overrides'", true],
    [{ room_state_type: "" }, "key 'room_state_type'", true],
    [{ denylist: [] }, "key 'denylist': unknown", true],
  ];

  test.each(bad)("register refuses %j, naming the key", async (config, message, _schemaToo) => {
    const fake = knockHost();
    expect(() => knockPolicyPlugin.register(fake.host, config as KnockPolicyConfig)).toThrow(message);
    expect(fake.policies).toEqual([]);
  });

  test("the configSchema that Portier checks at start agrees with the plugin on good and bad configs", () => {
    const good: KnockPolicyConfig = {
      allow: { servers: ["a.example"], users: ["@*:a.example"] },
      deny: { servers: ["*.b.example"] },
      shadow: { users: ["@s:*"] },
      auto_accept: { users: ["@vip:*"] },
      require_reason: true,
      max_reason_length: 500,
      room_overrides: true,
      room_state_type: "org.portier.knock_policy",
    };
    expect(configErrors(configSchema, good)).toEqual([]);
    expect(() => parseConfig(good)).not.toThrow();
    for (const [config, , schemaToo] of bad) expect({ config, refused: configErrors(configSchema, config).length > 0 }).toEqual({ config, refused: schemaToo });
  });

  test("its decisions pass the PolicySet unchanged (not counted as errors)", async () => {
    const policies = new PolicySet(silentLogger);
    const fake = knockHost();
    await knockPolicyPlugin.register(fake.host, { deny: { users: ["@bot*:*"] }, shadow: { users: ["@s:*"] }, auto_accept: { users: ["@vip:*"] } });
    policies.addKnockPolicy(fake.policies[0]!, { name: "knock-policy", failMode: "closed", timeoutMs: 1000 });
    const knock = (userId: string): KnockRequest => ({ roomId: ROOM, userId, originServer: "home.example", reason: undefined, local: true });
    expect(await policies.decideKnock(knock("@bot:home.example"))).toEqual(denied("You may not knock on this room"));
    expect(await policies.decideKnock(knock("@s:home.example"))).toEqual(SHADOW);
    expect(await policies.decideKnock(knock("@vip:home.example"))).toEqual(ACCEPT);
    expect(await policies.decideKnock(knock("@a:home.example"))).toEqual(ALLOW);
    expect(policies.stats.get("knock-policy")).toMatchObject({ calls: 4, denials: 1, errors: 0 });
  });
});

describe("the drop-in example (plugins/examples/knock-by-reason.ts)", () => {
  const source = join(import.meta.dir, "../../plugins/examples/knock-by-reason.ts");

  test("imports nothing but types (no Portier source exists beside a drop-in)", () => {
    const imports = [...readFileSync(source, "utf8").matchAll(/^\s*import\b[^;]*;/gm)].map((m) => m[0]);
    expect(imports.length).toBeGreaterThan(0);
    for (const line of imports) expect(line).toMatch(/^\s*import type /);
  });

  test("loads from a folder of its own through the loader and decides by the reason", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portier-dropin-"));
    copyFileSync(source, join(dir, "knock-by-reason.ts"));
    const policies = new PolicySet(silentLogger);
    const loader = new PluginLoader(policies, {
      bundled: {},
      baseDir: dir,
      serverName: "home.example",
      logger: silentLogger,
      clock: { now: () => 0 },
      rooms: { state: async () => undefined, membership: async () => undefined },
    });
    await loader.load([{ path: "knock-by-reason.ts", config: { passphrase: "Open Sesame", blocked_words: ["casino"], min_reason_length: 5 } }]);
    expect(loader.plugins.map((p) => p.name)).toEqual(["knock-by-reason"]);
    const knock = (reason?: string): KnockRequest => ({ roomId: ROOM, userId: "@a:home.example", originServer: "home.example", reason, local: true });
    expect(await policies.decideKnock(knock("well, open sesame!"))).toEqual(ACCEPT);
    expect(await policies.decideKnock(knock("best CASINO deals"))).toEqual(denied("Your reason uses words this server does not accept"));
    expect(await policies.decideKnock(knock("hi"))).toEqual(denied("Please give a reason of at least 5 characters"));
    expect(await policies.decideKnock(knock())).toEqual(denied("Please give a reason of at least 5 characters"));
    expect(await policies.decideKnock(knock("I'm a friend of Bob"))).toEqual(ALLOW);
    // A config that does not match its schema is refused, naming the plugin and the key.
    await expect(loader.load([{ path: "knock-by-reason.ts", config: { min_reason_length: "five" } }])).rejects.toThrow(/knock-by-reason.*min_reason_length/);
  });
});
