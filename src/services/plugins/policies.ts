// The running policies of the plugins: knock and spam policy chains and the active rate limiter.
// Services ask these, never a plugin directly, so that every call has a timeout, a plugin's failure
// is handled by its fail mode, and calls, denials, errors and latency are counted per plugin.
import type { Decision, KnockOutcome, KnockPolicy, KnockRequest, RateLimitCheck, RateLimiter, RateLimitResult, SpamPolicy } from "../../extensions";
import type { Logger } from "../runtime";

export interface PluginSettings {
  readonly name: string;
  /** "open": a failing or slow policy allows; "closed": it denies. */
  readonly failMode: "open" | "closed";
  readonly timeoutMs: number;
}

export interface PluginStats {
  calls: number;
  denials: number;
  errors: number;
  /** The most recent call latencies in ms (a bounded window, for p99). */
  latencies: number[];
}

interface Registered<P> {
  readonly policy: P;
  readonly plugin: PluginSettings;
}

const LATENCY_WINDOW = 1000;
const ALLOW: Decision = { kind: "allow" };

/** Which decisions a call may return; anything else from a plugin counts as allow (and is logged). */
type Allowed = ReadonlySet<Decision["kind"]>;
const KNOCK_DECISIONS: Allowed = new Set(["allow", "deny", "accept", "shadow"]);
const SPAM_DECISIONS: Allowed = new Set(["allow", "deny", "shadow"]);

class Timeout extends Error {}

export class PolicySet {
  private knock: Registered<KnockPolicy>[] = [];
  private spam: Registered<SpamPolicy>[] = [];
  private limiter: { limiter: RateLimiter; plugin: PluginSettings } | undefined;
  readonly stats = new Map<string, PluginStats>();

  constructor(private readonly logger: Logger) {}

  /** Everything registered by plugins, cleared (before a reload registers them again). */
  clear(): void {
    this.knock = [];
    this.spam = [];
    this.limiter = undefined;
  }

  /** Takes over what another set registered (a reload that loaded completely); stats are kept. */
  adopt(other: PolicySet): void {
    this.knock = [...other.knock];
    this.spam = [...other.spam];
    this.limiter = other.limiter;
  }

  addKnockPolicy(policy: KnockPolicy, plugin: PluginSettings): void {
    this.knock.push({ policy, plugin });
  }

  addSpamPolicy(policy: SpamPolicy, plugin: PluginSettings): void {
    this.spam.push({ policy, plugin });
  }

  setRateLimiter(limiter: RateLimiter, plugin: PluginSettings): void {
    this.limiter = { limiter, plugin };
  }

  /** Takes the tokens of a check from the active limiter; without one, or when it fails, by its fail mode. */
  takeRateLimit(check: RateLimitCheck): RateLimitResult {
    const active = this.limiter;
    if (!active) return { allowed: true };
    const stats = this.statsOf(active.plugin.name);
    const started = performance.now();
    stats.calls++;
    try {
      const result = active.limiter.take(check);
      if (!result.allowed) stats.denials++;
      return result;
    } catch (error) {
      stats.errors++;
      this.logger.log("error", "rate limiter failed", { plugin: active.plugin.name, error: String(error) });
      return active.plugin.failMode === "open" ? { allowed: true } : { allowed: false, retryAfterMs: 1000 };
    } finally {
      this.record(stats, performance.now() - started);
    }
  }

  refundRateLimit(check: RateLimitCheck): void {
    try {
      this.limiter?.limiter.refund?.(check);
    } catch (error) {
      this.logger.log("error", "rate limiter refund failed", { plugin: this.limiter?.plugin.name, error: String(error) });
    }
  }

  /** The knock policies in order; the first denial (or accept/shadow) decides. */
  decideKnock(knock: KnockRequest): Promise<Decision> {
    return this.firstDecision(this.knock, (p) => p.decideKnock?.(knock), KNOCK_DECISIONS);
  }

  /** Tells every knock policy, each isolated: a failing listener is logged and never fails the caller. */
  async knockArrived(knock: KnockRequest): Promise<void> {
    await this.notifyAll(this.knock, (p) => p.onKnock?.(knock));
  }

  async knockResolved(resolved: { roomId: string; userId: string; outcome: KnockOutcome; by?: string }): Promise<void> {
    await this.notifyAll(this.knock, (p) => p.onKnockResolved?.(resolved));
  }

  /** A spam callback across the spam policies in order; the first non-allow decision wins. */
  spamCheck(call: (policy: SpamPolicy) => Promise<Decision> | Decision | undefined): Promise<Decision> {
    return this.firstDecision(this.spam, call, SPAM_DECISIONS);
  }

  get hasSpamPolicies(): boolean {
    return this.spam.length > 0;
  }

  private async firstDecision<P>(chain: readonly Registered<P>[], call: (policy: P) => Promise<Decision> | Decision | undefined, allowed: Allowed): Promise<Decision> {
    for (const { policy, plugin } of chain) {
      const decision = await this.guarded(plugin, () => call(policy));
      if (decision.kind === "allow") continue;
      if (!allowed.has(decision.kind)) {
        this.logger.log("warn", "a plugin answered a decision this call does not take; allowing", { plugin: plugin.name, decision: decision.kind });
        continue;
      }
      return decision;
    }
    return ALLOW;
  }

  /** One call with the plugin's timeout and fail mode; counted in its stats. */
  private async guarded(plugin: PluginSettings, call: () => Promise<Decision> | Decision | undefined): Promise<Decision> {
    const stats = this.statsOf(plugin.name);
    stats.calls++;
    const started = performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Timeout(`timed out after ${plugin.timeoutMs} ms`)), plugin.timeoutMs)));
      const decision = (await Promise.race([Promise.resolve().then(call), timeout])) ?? ALLOW;
      if (!isDecision(decision)) throw new Error(`not a decision: ${JSON.stringify(decision)}`);
      if (decision.kind === "deny") stats.denials++;
      return decision;
    } catch (error) {
      stats.errors++;
      this.logger.log("error", "plugin call failed", { plugin: plugin.name, fail_mode: plugin.failMode, error: String((error as Error)?.message ?? error) });
      if (plugin.failMode === "open") return ALLOW;
      stats.denials++;
      return { kind: "deny", errcode: "M_FORBIDDEN", message: "This request cannot be checked right now; try again later" };
    } finally {
      clearTimeout(timer);
      this.record(stats, performance.now() - started);
    }
  }

  private async notifyAll<P>(chain: readonly Registered<P>[], call: (policy: P) => Promise<void> | void | undefined): Promise<void> {
    for (const { policy, plugin } of chain) {
      await this.guarded(plugin, async () => {
        await call(policy);
        return ALLOW;
      });
    }
  }

  private statsOf(name: string): PluginStats {
    let stats = this.stats.get(name);
    if (!stats) this.stats.set(name, (stats = { calls: 0, denials: 0, errors: 0, latencies: [] }));
    return stats;
  }

  private record(stats: PluginStats, ms: number): void {
    stats.latencies.push(ms);
    if (stats.latencies.length > LATENCY_WINDOW) stats.latencies.splice(0, stats.latencies.length - LATENCY_WINDOW);
  }
}

function isDecision(value: unknown): value is Decision {
  const kind = (value as { kind?: unknown })?.kind;
  if (kind === "deny") {
    const d = value as { errcode?: unknown; message?: unknown };
    return typeof d.errcode === "string" && /^M_[A-Z_]+$/.test(d.errcode) && typeof d.message === "string";
  }
  return kind === "allow" || kind === "shadow" || kind === "accept";
}
