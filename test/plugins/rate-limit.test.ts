// The bundled rate limiter's token buckets, on a clock the test moves by hand: refill math, burst,
// per-key and per-bucket isolation, refunds, exemptions, the memory bound, and config overrides
// (checked both by the plugin and, through the loader, by its JSON Schema).
import { describe, expect, test } from "bun:test";
import rateLimit, { DEFAULT_BUCKETS, EXEMPTABLE, TokenBuckets, parseConfig } from "../../plugins/rate-limit";
import type { PluginHost, RateLimiter } from "../../src/extensions";
import { PluginLoader } from "../../src/services/plugins/loader";
import { PolicySet } from "../../src/services/plugins/policies";
import { silentLogger } from "../helpers/server";

class ManualClock {
  constructor(public t = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

function limiter(config: Record<string, unknown> = {}, clock = new ManualClock()) {
  return { buckets: new TokenBuckets(parseConfig(config), clock), clock };
}

const take = (l: RateLimiter, bucket: string, key: string, cost?: number) => l.take({ bucket, key, cost });

/** Takes until refused; how many were allowed (at most `max`). */
function drain(l: RateLimiter, bucket: string, key: string, max = 1000): number {
  for (let n = 0; n < max; n++) if (!take(l, bucket, key).allowed) return n;
  return max;
}

describe("token buckets", () => {
  test("a full bucket allows `burst` at once, then refuses with the time until the next token", () => {
    const { buckets, clock } = limiter({ message: { per_second: 2, burst: 4 } });
    expect(drain(buckets, "message", "@a:x")).toBe(4);
    expect(take(buckets, "message", "@a:x")).toEqual({ allowed: false, retryAfterMs: 500 });
    clock.advance(200);
    expect(take(buckets, "message", "@a:x")).toEqual({ allowed: false, retryAfterMs: 300 });
    clock.advance(300);
    expect(take(buckets, "message", "@a:x").allowed).toBe(true);
    expect(take(buckets, "message", "@a:x").allowed).toBe(false);
  });

  test("refills at per_second, never beyond burst", () => {
    const { buckets, clock } = limiter({ message: { per_second: 2, burst: 4 } });
    drain(buckets, "message", "@a:x");
    clock.advance(1000); // two tokens
    expect(drain(buckets, "message", "@a:x")).toBe(2);
    clock.advance(3_600_000); // an hour: still only a burst's worth
    expect(drain(buckets, "message", "@a:x")).toBe(4);
  });

  test("a client that waits exactly retry_after_ms gets its token, with rates that are not exact in binary", () => {
    for (const per_second of [0.17, 0.2, 0.003, 1 / 60, 0.1, 0.3, 7]) {
      const { buckets, clock } = limiter({ message: { per_second, burst: 3 } });
      drain(buckets, "message", "@a:x");
      for (let i = 0; i < 5; i++) {
        const refused = take(buckets, "message", "@a:x");
        if (refused.allowed) throw new Error("expected a refusal");
        // At most one token's time (less when part of a token is left from the previous wait).
        expect(refused.retryAfterMs).toBeGreaterThanOrEqual(1);
        expect(refused.retryAfterMs).toBeLessThanOrEqual(Math.ceil(1000 / per_second));
        clock.advance(refused.retryAfterMs - 1);
        expect(take(buckets, "message", "@a:x").allowed).toBe(false);
        clock.advance(1);
        expect(take(buckets, "message", "@a:x").allowed).toBe(true);
      }
    }
  });

  test("keys and buckets are independent", () => {
    const { buckets } = limiter({ message: { per_second: 1, burst: 2 }, join: { per_second: 1, burst: 2 } });
    expect(drain(buckets, "message", "@a:x")).toBe(2);
    expect(drain(buckets, "message", "@b:x")).toBe(2);
    expect(drain(buckets, "join", "@a:x")).toBe(2);
  });

  test("cost takes several tokens; a cost above the burst takes a full bucket", () => {
    const { buckets, clock } = limiter({ message: { per_second: 1, burst: 5 } });
    expect(take(buckets, "message", "@a:x", 3).allowed).toBe(true);
    expect(take(buckets, "message", "@a:x", 3)).toEqual({ allowed: false, retryAfterMs: 1000 });
    expect(take(buckets, "message", "@a:x", 2).allowed).toBe(true);
    clock.advance(10_000);
    expect(take(buckets, "message", "@a:x", 50).allowed).toBe(true);
    expect(take(buckets, "message", "@a:x").allowed).toBe(false);
  });

  test("a refund gives back what was taken, never beyond burst", () => {
    const { buckets } = limiter({ "login.failed": { per_second: 1, burst: 2 } });
    drain(buckets, "login.failed", "@a:x");
    buckets.refund({ bucket: "login.failed", key: "@a:x" });
    expect(drain(buckets, "login.failed", "@a:x")).toBe(1);
    buckets.refund({ bucket: "login.failed", key: "@a:x" });
    buckets.refund({ bucket: "login.failed", key: "@a:x" });
    buckets.refund({ bucket: "login.failed", key: "@a:x" });
    expect(drain(buckets, "login.failed", "@a:x")).toBe(2);
    buckets.refund({ bucket: "login.failed", key: "@never-took:x" }); // nothing to give back
    expect(buckets.size).toBe(1);
  });

  test("a clock set back refills nothing", () => {
    const { buckets, clock } = limiter({ message: { per_second: 1, burst: 1 } });
    take(buckets, "message", "@a:x");
    clock.advance(-60_000);
    expect(take(buckets, "message", "@a:x").allowed).toBe(false);
    clock.advance(60_000 + 1000);
    expect(take(buckets, "message", "@a:x").allowed).toBe(true);
  });

  test("a bucket the limiter does not know, or one turned off, does not limit", () => {
    const { buckets } = limiter({ "knock.room": false });
    expect(drain(buckets, "no.such.bucket", "k", 100)).toBe(100);
    expect(drain(buckets, "knock.room", "!r:x", 100)).toBe(100);
    expect(drain(buckets, "knock.user", "@a:x", 100)).toBe(DEFAULT_BUCKETS["knock.user"].burst);
    expect(buckets.size).toBe(1);
  });

  test("exempt users skip the buckets of what they do themselves, not those that protect others", () => {
    const { buckets } = limiter({ exempt_users: ["@bot:x"] });
    for (const bucket of ["message", "join", "knock.user", "login.account", "room_creation", "invite.issuer"]) expect(drain(buckets, bucket, "@bot:x", 200)).toBe(200);
    expect(drain(buckets, "knock.reknock", "@bot:x !room:x", 50)).toBe(50);
    expect(drain(buckets, "login.failed", "@bot:x", 50)).toBe(DEFAULT_BUCKETS["login.failed"].burst);
    expect(drain(buckets, "knock.room", "!room:x", 50)).toBe(DEFAULT_BUCKETS["knock.room"].burst);
    // Others are limited as usual, including a user whose id merely starts like the exempt one.
    expect(drain(buckets, "message", "@bot:x.evil", 50)).toBe(DEFAULT_BUCKETS.message.burst);
    expect(drain(buckets, "knock.reknock", "@other:x !room:x", 50)).toBe(1);
    expect([...EXEMPTABLE].every((b) => b in DEFAULT_BUCKETS)).toBe(true);
  });
});

describe("memory", () => {
  test("buckets that refilled are forgotten (swept once a minute of clock time)", () => {
    const { buckets, clock } = limiter({ message: { per_second: 1, burst: 3 }, "knock.reknock": { per_second: 1 / 60, burst: 1 } });
    for (let i = 0; i < 500; i++) take(buckets, "message", `@u${i}:x`);
    take(buckets, "knock.reknock", "@a:x !r:x");
    expect(buckets.size).toBe(501);
    clock.advance(59_000);
    take(buckets, "message", "@u0:x"); // before a minute has passed: no sweep yet
    expect(buckets.size).toBe(501);
    clock.advance(1_000);
    take(buckets, "message", "@fresh:x");
    // The message buckets refilled in a second; the reknock cooldown (60 s) just did too.
    expect(buckets.size).toBe(1);
  });

  test("a refund that fills a bucket forgets it", () => {
    const { buckets } = limiter();
    take(buckets, "login.failed", "@a:x");
    expect(buckets.size).toBe(1);
    buckets.refund({ bucket: "login.failed", key: "@a:x" });
    expect(buckets.size).toBe(0);
  });

  test("never more than max_keys; the least recently used go first, and recent ones stay limited", () => {
    const { buckets, clock } = limiter({ max_keys: 100, message: { per_second: 0.001, burst: 2 } });
    drain(buckets, "message", "@victim:x"); // the attacker's own bucket, empty
    for (let i = 0; i < 10_000; i++) {
      take(buckets, "message", `@spray${i}:x`);
      if (i % 50 === 0) {
        clock.advance(1);
        // Still remembered and refused: it keeps being used, so it is never the least recent.
        expect(take(buckets, "message", "@victim:x").allowed).toBe(false);
      }
      expect(buckets.size).toBeLessThanOrEqual(100);
    }
  });
});

describe("config", () => {
  test("the defaults are Synapse's documented rc_* defaults, plus Portier's knock buckets", () => {
    const { buckets } = parseConfig({});
    const expected: Record<string, [number, number]> = {
      message: [0.2, 10], // rc_message
      "login.address": [0.003, 5], // rc_login.address
      "login.account": [0.003, 5], // rc_login.account
      "login.failed": [0.17, 3], // rc_login.failed_attempts
      registration: [0.17, 3], // rc_registration
      join: [0.1, 10], // rc_joins.local
      "invite.room": [0.3, 10],
      "invite.user": [0.003, 5],
      "invite.issuer": [0.3, 10],
      room_creation: [0.016, 10],
      "3pid": [0.003, 5],
    };
    for (const [name, [per_second, burst]] of Object.entries(expected)) expect(buckets.get(name)).toEqual({ per_second, burst });
    for (const name of ["knock.user", "knock.room", "knock.origin", "knock.reknock"]) expect(buckets.has(name)).toBe(true);
    // The re-knock cooldown: one knock per user and room per minute.
    expect(buckets.get("knock.reknock")).toEqual({ per_second: 1 / 60, burst: 1 });
  });

  test("overrides change one field or both, or turn a bucket off", () => {
    const { buckets, exemptUsers, maxKeys } = parseConfig({ message: { burst: 50 }, join: { per_second: 2, burst: 1 }, "knock.origin": false, exempt_users: ["@a:x"], max_keys: 10 });
    expect(buckets.get("message")).toEqual({ per_second: 0.2, burst: 50 });
    expect(buckets.get("join")).toEqual({ per_second: 2, burst: 1 });
    expect(buckets.has("knock.origin")).toBe(false);
    expect([...exemptUsers]).toEqual(["@a:x"]);
    expect(maxKeys).toBe(10);
  });

  test.each([
    [{ mesage: { burst: 1 } }, "key 'mesage': unknown"],
    [{ message: { per_second: 0 } }, "key 'message.per_second': expected a number above 0"],
    [{ message: { per_second: -1 } }, "key 'message.per_second'"],
    [{ message: { per_second: "fast" } }, "key 'message.per_second'"],
    [{ message: { burst: 0 } }, "key 'message.burst': expected an integer of at least 1"],
    [{ message: { burst: 1.5 } }, "key 'message.burst'"],
    [{ message: { burst: 2, rate: 3 } }, "key 'message.rate': unknown"],
    [{ message: true }, "key 'message': expected {per_second, burst} or false"],
    [{ message: 5 }, "key 'message'"],
    [{ exempt_users: "@a:x" }, "key 'exempt_users': expected a list of user ids"],
    [{ exempt_users: ["bob"] }, "key 'exempt_users'"],
    [{ max_keys: 0 }, "key 'max_keys'"],
  ])("the plugin refuses %j", (config, message) => {
    expect(() => parseConfig(config)).toThrow(message);
  });

  test("through the loader: the schema's errors name the plugin and the key", async () => {
    const policies = new PolicySet(silentLogger);
    const loader = new PluginLoader(policies, {
      bundled: { "rate-limit": rateLimit },
      baseDir: "/",
      serverName: "x",
      logger: silentLogger,
      clock: new ManualClock(),
      rooms: { state: async () => undefined, membership: async () => undefined },
    });
    await expect(loader.load([{ name: "rate-limit", config: { message: { burst: 0 } } }])).rejects.toThrow("plugin 'rate-limit' (plugins[0]): config key 'message.burst': must be at least 1");
    await expect(loader.load([{ name: "rate-limit", config: { nope: {} } }])).rejects.toThrow("config key 'nope': unknown");
    await expect(loader.load([{ name: "rate-limit", config: { exempt_users: ["not-a-user"] } }])).rejects.toThrow("config key 'exempt_users[0]': must match");
    await expect(loader.load([{ name: "rate-limit", config: { message: true } }])).rejects.toThrow("plugin 'rate-limit' (plugins[0]): register failed: key 'message'");
    // A good config loads, and its limiter is the running one.
    await loader.load([{ name: "rate-limit", config: { message: { per_second: 1, burst: 1 } } }]);
    expect(policies.takeRateLimit({ bucket: "message", key: "@a:x" }).allowed).toBe(true);
    expect(policies.takeRateLimit({ bucket: "message", key: "@a:x" })).toEqual({ allowed: false, retryAfterMs: 1000 });
  });

  test("register sets a limiter on the host's clock; each registration starts with its own buckets", () => {
    const clock = new ManualClock();
    const limiters: RateLimiter[] = [];
    const host = { clock, logger: silentLogger, setRateLimiter: (l: RateLimiter) => limiters.push(l) } as unknown as PluginHost;
    rateLimit.register(host, { message: { per_second: 1, burst: 1 } });
    rateLimit.register(host, { message: { per_second: 1, burst: 1 } });
    expect(rateLimit.name).toBe("rate-limit");
    expect(limiters).toHaveLength(2);
    expect(take(limiters[0], "message", "@a:x").allowed).toBe(true);
    expect(take(limiters[0], "message", "@a:x").allowed).toBe(false);
    expect(take(limiters[1], "message", "@a:x").allowed).toBe(true);
    clock.advance(1000);
    expect(take(limiters[0], "message", "@a:x").allowed).toBe(true);
  });
});
