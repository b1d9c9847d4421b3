// The bundled rate limiter: named token buckets, one per (bucket, key) — e.g. ("message", a user id),
// ("login.address", an IP address), ("knock.reknock", "<user id> <room id>"). A bucket holds up to
// `burst` tokens and refills at `per_second`; a request takes one, and when there is none it is told
// how long to wait (429 M_LIMIT_EXCEEDED with retry_after_ms, answered by the request pipeline).
//
// Time is the host's clock, never Date.now(), so tests move it by hand. Memory is bounded: a bucket
// that has refilled is the same as no bucket and is dropped (swept once a minute of clock time), and
// beyond `max_keys` buckets the least recently used are forgotten (a forgotten bucket starts full).
//
// Config (every key optional):
//   message: { per_second: 0.5, burst: 20 }   # any bucket below: override either field, or `false` to turn it off
//   exempt_users: ["@bot:example.org"]        # never limited in what they do themselves (see EXEMPTABLE)
//   max_keys: 100000
import type { PortierPlugin, PluginHost, RateLimitCheck, RateLimiter, RateLimitResult } from "../../src/extensions";

export interface BucketSettings {
  /** Tokens added per second. */
  readonly per_second: number;
  /** Tokens a full bucket holds: how many requests may come at once. */
  readonly burst: number;
}

/**
 * The defaults. Those taken from Synapse are its documented defaults (docs/usage/configuration/
 * config_documentation.md, "Ratelimiting", and synapse/config/ratelimiting.py), so that an operator
 * moving from Synapse sees the same limits; the knock buckets are Portier's own.
 */
export const DEFAULT_BUCKETS: Readonly<Record<string, BucketSettings>> = Object.freeze({
  /** rc_message: events a user sends (messages, state, redactions). Per user. */
  message: { per_second: 0.2, burst: 10 },
  /** rc_login.address: every login attempt. Per client address. */
  "login.address": { per_second: 0.003, burst: 5 },
  /** rc_login.account: successful logins (each makes a device). Per account. */
  "login.account": { per_second: 0.003, burst: 5 },
  /** rc_login.failed_attempts: wrong passwords. Per account; when empty, the password is not even checked. */
  "login.failed": { per_second: 0.17, burst: 3 },
  /** rc_registration: registrations. Per client address. */
  registration: { per_second: 0.17, burst: 3 },
  /** rc_joins.local: rooms a user joins. Per user. */
  join: { per_second: 0.1, burst: 10 },
  /** rc_invites.per_room / per_user (the invitee) / per_issuer (the inviter). */
  "invite.room": { per_second: 0.3, burst: 10 },
  "invite.user": { per_second: 0.003, burst: 5 },
  "invite.issuer": { per_second: 0.3, burst: 10 },
  /** rc_room_creation: rooms a user creates. Per user. */
  room_creation: { per_second: 0.016, burst: 10 },
  /** rc_3pid_validation: 3PID validation attempts (no endpoint uses it yet). */
  "3pid": { per_second: 0.003, burst: 5 },
  /** Knocks a user makes, on any rooms: 5 at once, then one every 20 s. */
  "knock.user": { per_second: 0.05, burst: 5 },
  /** Knocks a room receives, from anyone: what its moderators are asked to review. */
  "knock.room": { per_second: 0.2, burst: 20 },
  /** Knocks arriving from one remote server (for the federation endpoints). */
  "knock.origin": { per_second: 0.5, burst: 30 },
  /** Knocking again on the same room: one knock per user and room per minute. */
  "knock.reknock": { per_second: 1 / 60, burst: 1 },
});

/**
 * Buckets keyed by what a user does themselves (the key is their user id, or starts with it and a
 * space): `exempt_users` skip these. Buckets that protect others — an account from password
 * guessing, a room from a knock flood, an invitee from invite spam — and per-address ones still apply.
 * (Server admins are exempt from everything: the request pipeline does not refuse them.)
 */
export const EXEMPTABLE: ReadonlySet<string> = new Set(["message", "login.account", "join", "invite.issuer", "room_creation", "knock.user", "knock.reknock"]);

const DEFAULT_MAX_KEYS = 100_000;
const SWEEP_EVERY_MS = 60_000;
/** Float slack: a client that waits exactly retry_after_ms must find its token there. */
const EPSILON = 1e-9;

export interface RateLimitConfig {
  readonly buckets: ReadonlyMap<string, BucketSettings>;
  readonly exemptUsers: ReadonlySet<string>;
  readonly maxKeys: number;
}

const bucketSchema = {
  type: ["object", "boolean"],
  properties: {
    per_second: { type: "number", minimum: 0.000001, maximum: 1_000_000 },
    burst: { type: "integer", minimum: 1, maximum: 1_000_000 },
  },
  additionalProperties: false,
};

/** JSON Schema of the config: the loader checks it at start and reload, naming the key. */
export const configSchema = {
  type: "object",
  properties: {
    ...Object.fromEntries(Object.keys(DEFAULT_BUCKETS).map((name) => [name, bucketSchema])),
    exempt_users: { type: "array", items: { type: "string", pattern: "^@[^:]+:.+$" } },
    max_keys: { type: "integer", minimum: 1, maximum: 10_000_000 },
  },
  additionalProperties: false,
};

class ConfigError extends Error {}

/** Reads and checks a config (also when register is called without the loader's schema check). */
export function parseConfig(raw: unknown): RateLimitConfig {
  const config = (raw ?? {}) as Record<string, unknown>;
  if (typeof config !== "object" || Array.isArray(config)) throw new ConfigError("config: expected an object");
  const buckets = new Map<string, BucketSettings>(Object.entries(DEFAULT_BUCKETS));
  let exemptUsers = new Set<string>();
  let maxKeys = DEFAULT_MAX_KEYS;
  for (const [key, value] of Object.entries(config)) {
    if (key === "exempt_users") {
      if (!Array.isArray(value) || value.some((u) => typeof u !== "string" || !/^@[^:]+:.+$/.test(u))) throw new ConfigError("key 'exempt_users': expected a list of user ids");
      exemptUsers = new Set(value as string[]);
    } else if (key === "max_keys") {
      if (!Number.isInteger(value) || (value as number) < 1) throw new ConfigError("key 'max_keys': expected an integer of at least 1");
      maxKeys = value as number;
    } else if (key in DEFAULT_BUCKETS) {
      if (value === false) buckets.delete(key);
      else buckets.set(key, bucketOverride(key, DEFAULT_BUCKETS[key], value));
    } else {
      throw new ConfigError(`key '${key}': unknown (buckets: ${Object.keys(DEFAULT_BUCKETS).join(", ")}; or exempt_users, max_keys)`);
    }
  }
  return { buckets, exemptUsers, maxKeys };
}

function bucketOverride(name: string, defaults: BucketSettings, value: unknown): BucketSettings {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new ConfigError(`key '${name}': expected {per_second, burst} or false`);
  const { per_second = defaults.per_second, burst = defaults.burst, ...rest } = value as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) throw new ConfigError(`key '${name}.${unknown}': unknown (per_second, burst)`);
  if (typeof per_second !== "number" || !Number.isFinite(per_second) || per_second <= 0) throw new ConfigError(`key '${name}.per_second': expected a number above 0`);
  if (!Number.isInteger(burst) || (burst as number) < 1) throw new ConfigError(`key '${name}.burst': expected an integer of at least 1`);
  return { per_second, burst: burst as number };
}

interface Bucket {
  readonly name: string;
  readonly burst: number;
  /** Tokens per millisecond. */
  readonly rate: number;
  readonly exemptable: boolean;
}

interface Level {
  tokens: number;
  /** When `tokens` was computed (clock ms). */
  at: number;
}

/** Token buckets on a clock; one instance per registration (a server, or a reload), never shared. */
export class TokenBuckets implements RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  /** "<bucket> <key>" -> level, in least-recently-used order (a take moves an entry to the end). */
  private readonly levels = new Map<string, Level>();
  private lastSweep: number;
  private warnedFull = false;

  constructor(
    private readonly config: RateLimitConfig,
    private readonly clock: { now(): number },
    private readonly logger?: PluginHost["logger"],
  ) {
    for (const [name, s] of config.buckets) this.buckets.set(name, { name, burst: s.burst, rate: s.per_second / 1000, exemptable: EXEMPTABLE.has(name) });
    this.lastSweep = clock.now();
  }

  /** How many (bucket, key) pairs are remembered: the memory bound's measure. */
  get size(): number {
    return this.levels.size;
  }

  take(check: RateLimitCheck): RateLimitResult {
    const bucket = this.buckets.get(check.bucket);
    // A bucket this limiter does not know (or one turned off) does not limit.
    if (!bucket || this.exempt(bucket, check.key)) return { allowed: true };
    const cost = Math.min(bucket.burst, check.cost ?? 1);
    if (!(cost > 0)) return { allowed: true };
    const now = this.clock.now();
    if (now - this.lastSweep >= SWEEP_EVERY_MS) this.sweep(now);
    const id = `${bucket.name} ${check.key}`;
    const level = this.levels.get(id);
    const tokens = this.tokensAt(bucket, level, now);
    // Either way the bucket was just used, so it moves to the recent end: a client that keeps
    // knocking on its empty bucket is never the least recently used one that max_keys forgets.
    this.levels.delete(id);
    if (tokens + EPSILON < cost) {
      this.levels.set(id, level!);
      return { allowed: false, retryAfterMs: Math.max(1, Math.ceil((cost - tokens - EPSILON) / bucket.rate)) };
    }
    if (this.levels.size >= this.config.maxKeys) this.makeRoom(now);
    this.levels.set(id, { tokens: Math.max(0, tokens - cost), at: now });
    return { allowed: true };
  }

  refund(check: RateLimitCheck): void {
    const bucket = this.buckets.get(check.bucket);
    if (!bucket || this.exempt(bucket, check.key)) return;
    const id = `${bucket.name} ${check.key}`;
    const level = this.levels.get(id);
    // No entry: the bucket is full already (or was forgotten, which is the same).
    if (!level) return;
    const now = this.clock.now();
    const tokens = Math.min(bucket.burst, this.tokensAt(bucket, level, now) + Math.min(bucket.burst, check.cost ?? 1));
    if (tokens >= bucket.burst) this.levels.delete(id);
    else {
      level.tokens = tokens;
      level.at = now;
    }
  }

  private exempt(bucket: Bucket, key: string): boolean {
    if (!bucket.exemptable || this.config.exemptUsers.size === 0) return false;
    const space = key.indexOf(" ");
    return this.config.exemptUsers.has(space === -1 ? key : key.slice(0, space));
  }

  private tokensAt(bucket: Bucket, level: Level | undefined, now: number): number {
    if (!level) return bucket.burst;
    // A clock set back refills nothing (and takes nothing back).
    return Math.min(bucket.burst, level.tokens + Math.max(0, now - level.at) * bucket.rate);
  }

  private isFull(id: string, level: Level, now: number): boolean {
    const bucket = this.buckets.get(id.slice(0, id.indexOf(" ")))!;
    return this.tokensAt(bucket, level, now) + EPSILON >= bucket.burst;
  }

  /** Drops buckets that have refilled: remembering a full bucket changes nothing. */
  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [id, level] of this.levels) if (this.isFull(id, level, now)) this.levels.delete(id);
  }

  /** At max_keys: drop the full buckets, then the least recently used, down to 90% (so this is rare). */
  private makeRoom(now: number): void {
    this.sweep(now);
    if (this.levels.size < this.config.maxKeys) return;
    const target = Math.floor(this.config.maxKeys * 0.9);
    if (!this.warnedFull) {
      this.warnedFull = true;
      this.logger?.log("warn", "rate limiter reached max_keys; forgetting the least recently used buckets (they start full again)", { max_keys: this.config.maxKeys });
    }
    for (const id of this.levels.keys()) {
      if (this.levels.size <= target) break;
      this.levels.delete(id);
    }
  }
}

const plugin: PortierPlugin<Record<string, unknown>> = {
  name: "rate-limit",
  version: "1.0.0",
  configSchema,
  register(host, config) {
    host.setRateLimiter(new TokenBuckets(parseConfig(config), host.clock, host.logger));
  },
};

export default plugin;
