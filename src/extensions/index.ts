// The plugin API: the one module a plugin imports, and only its types (a drop-in plugin file next to
// the shipped binary has no Portier source beside it, so `import type` is all it may do; definePlugin
// is an identity function a plugin may also leave out, exporting the object itself).
//
// A plugin module's default export is a PortierPlugin. Portier calls `register(host, config)` once
// at start (and again on each reload), after the core's defaults are in place and before anything
// is resolved: a plugin adds policies to the chains below, or replaces the rate limiter.
//
// Decisions are values, never exceptions. Several policies of one contract run in config order and
// the first denial wins. Every call has a timeout; a policy that throws or hangs is logged and
// treated by its plugin's fail mode (open: allow; closed: deny), never a 500 and never a crash.

/** What a policy may answer. Not every contract takes every kind; see each method. */
export type Decision =
  | { readonly kind: "allow" }
  | { readonly kind: "deny"; readonly errcode: string; readonly message: string }
  /** Answer the client as if it worked, but store and send nothing. */
  | { readonly kind: "shadow" }
  /** Knocks only: let the knocker in at once (an invite from the room). */
  | { readonly kind: "accept" };

export const allow: Decision = Object.freeze({ kind: "allow" });
export const shadow: Decision = Object.freeze({ kind: "shadow" });
export const accept: Decision = Object.freeze({ kind: "accept" });
export function deny(errcode: string, message: string): Decision {
  return { kind: "deny", errcode, message };
}

export type MaybePromise<T> = T | Promise<T>;

export interface KnockRequest {
  readonly roomId: string;
  readonly userId: string;
  /** The knocker's server: this server for local knocks, the origin for federated ones. */
  readonly originServer: string;
  readonly reason: string | undefined;
  /** true when the knocker is a user of this server (client API), false over federation. */
  readonly local: boolean;
}

export type KnockOutcome = "accepted" | "rejected" | "rescinded" | "banned" | "expired";

/** Decides knocks before anything is signed or stored: allow | deny | accept | shadow. */
export interface KnockPolicy {
  decideKnock?(knock: KnockRequest): MaybePromise<Decision>;
  /** A knock arrived and was stored. */
  onKnock?(knock: KnockRequest): MaybePromise<void>;
  /** A pending knock ended. */
  onKnockResolved?(knock: { roomId: string; userId: string; outcome: KnockOutcome; by?: string }): MaybePromise<void>;
}

/** A request counted against a named token bucket, e.g. ("login.address", "127.0.0.1"). */
export interface RateLimitCheck {
  readonly bucket: string;
  readonly key: string;
  /** Tokens it costs (1 unless said). */
  readonly cost?: number;
}

export type RateLimitResult = { readonly allowed: true } | { readonly allowed: false; readonly retryAfterMs: number };

/** Token buckets by name; one limiter is active at a time (a plugin may replace the default). */
export interface RateLimiter {
  /** Takes the tokens if there are enough, else says when to try again. */
  take(check: RateLimitCheck): RateLimitResult;
  /** Gives back what `take` took (a failed login counts, a successful one may be refunded). */
  refund?(check: RateLimitCheck): void;
}

/** An event about to be sent or received, as a spam policy sees it. */
export interface SpamEvent {
  readonly roomId: string;
  readonly sender: string;
  readonly type: string;
  readonly stateKey?: string;
  readonly content: Readonly<Record<string, unknown>>;
  readonly local: boolean;
}

/** The callbacks Synapse spam-checker modules know; each may answer allow | deny | shadow where it fits. */
export interface SpamPolicy {
  checkEventForSpam?(event: SpamEvent): MaybePromise<Decision>;
  userMayJoinRoom?(userId: string, roomId: string, isInvited: boolean): MaybePromise<Decision>;
  userMayInvite?(inviter: string, invitee: string, roomId: string): MaybePromise<Decision>;
  userMayCreateRoom?(userId: string): MaybePromise<Decision>;
  userMayPublishRoom?(userId: string, roomId: string): MaybePromise<Decision>;
  userMayCreateAlias?(userId: string, alias: string): MaybePromise<Decision>;
  userMayKnock?(userId: string, roomId: string): MaybePromise<Decision>;
  checkUsernameForSpam?(profile: { userId: string; displayName?: string; avatarUrl?: string }): MaybePromise<Decision>;
  checkRegistration?(request: { username: string | undefined; address: string | undefined }): MaybePromise<Decision>;
}

export interface PluginLogger {
  log(level: "debug" | "info" | "warn" | "error", message: string, fields?: Record<string, unknown>): void;
}

/** What Portier offers a plugin while it registers. Room lookups are read-only. */
export interface PluginHost {
  readonly serverName: string;
  readonly logger: PluginLogger;
  readonly clock: { now(): number };
  readonly rooms: {
    /** Content of a current state event, or undefined. */
    state(roomId: string, type: string, stateKey?: string): Promise<Record<string, unknown> | undefined>;
    /** A user's current membership in a room, or undefined. */
    membership(roomId: string, userId: string): Promise<string | undefined>;
  };
  addKnockPolicy(policy: KnockPolicy): void;
  addSpamPolicy(policy: SpamPolicy): void;
  /** Replaces the active rate limiter (the bundled one by default). */
  setRateLimiter(limiter: RateLimiter): void;
}

export interface PortierPlugin<Config = Record<string, unknown>> {
  readonly name: string;
  readonly version: string;
  /**
   * A JSON Schema (TypeBox schemas are JSON Schema) the plugin's config must match; it is checked
   * at start and on reload with a message naming the plugin and the key.
   */
  readonly configSchema?: unknown;
  register(host: PluginHost, config: Config): MaybePromise<void>;
}

/** Types a plugin's default export; it returns its argument unchanged. */
export function definePlugin<Config = Record<string, unknown>>(plugin: PortierPlugin<Config>): PortierPlugin<Config> {
  return plugin;
}
