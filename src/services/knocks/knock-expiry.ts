// The knock expiry job (knocks.expire_after_ms): every min(expire_after_ms / 4, 1 hour) it denies
// the knocks that are at least expire_after_ms old, so a knock waits at most 1.25 × that age.
// The timer is injected so that tests drive the passes; the ages come from the injected clock.
import type { Logger, Service } from "../runtime";
import type { ExpireResult, KnockModerationService } from "./knock-moderation";

/** Runs `tick` every `intervalMs` until cancelled. */
export interface IntervalTimer {
  every(intervalMs: number, tick: () => Promise<unknown>): { cancel(): void };
}

export const systemIntervalTimer: IntervalTimer = {
  every(intervalMs, tick) {
    const handle = setInterval(() => void tick(), intervalMs);
    return { cancel: () => clearInterval(handle) };
  },
};

const HOUR_MS = 3600_000;

export const knockExpiryInterval = (expireAfterMs: number) => Math.min(Math.floor(expireAfterMs / 4), HOUR_MS);

export class KnockExpiryService implements Service {
  readonly name = "knock-expiry";
  readonly intervalMs: number;
  private schedule: { cancel(): void } | undefined;
  private running: Promise<ExpireResult | undefined> | undefined;
  private abort = new AbortController();

  constructor(
    private readonly knocks: KnockModerationService,
    private readonly settings: { expireAfterMs: number; reason: string },
    private readonly timer: IntervalTimer,
    private readonly logger: Logger,
  ) {
    this.intervalMs = knockExpiryInterval(settings.expireAfterMs);
  }

  start(): void {
    this.abort = new AbortController();
    this.schedule = this.timer.every(this.intervalMs, () => this.runOnce());
  }

  /** One pass; undefined when the previous pass is still running (passes never overlap) or after stop. */
  runOnce(): Promise<ExpireResult | undefined> {
    if (this.running || this.abort.signal.aborted) return Promise.resolve(undefined);
    const pass = this.pass().finally(() => {
      this.running = undefined;
    });
    this.running = pass;
    return pass;
  }

  private async pass(): Promise<ExpireResult | undefined> {
    try {
      const result = await this.knocks.expireOlderThan(this.settings.expireAfterMs, this.settings.reason, this.abort.signal);
      if (result.expired.length > 0) this.logger.log("info", "expired knocks", { count: result.expired.length });
      for (const f of result.failed) this.logger.log("warn", "could not expire a knock", { room_id: f.room_id, user_id: f.user_id, errcode: f.errcode, error: f.error });
      return result;
    } catch (error) {
      // A failed pass must not stop the job: the next one tries again.
      this.logger.log("error", "knock expiry pass failed", { error: String(error) });
      return undefined;
    }
  }

  /** Stops the schedule; a pass in flight stops after its current kick and is waited for. */
  async stop(): Promise<void> {
    this.schedule?.cancel();
    this.schedule = undefined;
    this.abort.abort();
    await this.running;
  }
}
