// The outbound federation queue (server-server-api "Transactions"): one sender per destination.
//
// - queuePdu / queueEdu persist the unit for every destination (FederationOutboxStore) before they
//   resolve, then wake each destination's loop.
// - A destination's loop claims a transaction (the oldest ≤ 50 PDUs and ≤ 100 EDUs, in arrival
//   order) and PUTs it to /_matrix/federation/v1/send/{txnId}; one transaction in flight per
//   destination, destinations independent of each other.
// - 2xx: the rows are deleted and the next transaction goes. Errors the receiver reports for single
//   PDUs are its verdict on them: logged, not retried.
// - No answer, 5xx or 429: the same transaction (same rows, same txnId, which the receiver
//   deduplicates by) is retried after an exponential backoff, persisted so it survives a restart.
//   Meanwhile new units only queue up: the spec wants a 200 before a different txnId is sent.
// - Any other 4xx refuses the whole transaction: retrying it would block the destination forever,
//   so it is logged and dropped, and the queue moves on.
// - An inbound request from a destination proves it is up: markReachable retries it at once.
// - Stale EDUs: an EDU type listed in staleEduAfterMs (by default m.typing, 30 s) is left out of
//   a transaction when it was queued longer ago than that. The federation m.typing EDU carries no
//   timeout: receivers expire a remote user's typing on their own after a short while, so an old
//   "typing: true" would only flash a stale notice, and an old "typing: false" says what the
//   receiver has already concluded. Every other EDU (receipts, device lists, to-device...) is kept.
import { AsyncResource } from "node:async_hooks";
import { parseJson } from "../../protocol/canonical-json";
import { isValidServerName } from "../../protocol/identifiers";
import { isJsonObject, type JsonObject, type JsonValue } from "../../protocol/json";
import type { Clock, Logger, Service } from "../runtime";
import type { FederationOutboxStore, OutboxEntry, OutboxTransaction } from "../../storage/stores";
import { RemoteMatrixError, type FederationClient, type FederationSender } from "./contracts";

// The store (stores.federationOutbox); tests may hand the sender anything of the same shape.
export type FederationOutbox = Omit<FederationOutboxStore, "queuedCount">;
export type { OutboxEntry, OutboxTransaction };

/** setTimeout in an injectable shape: tests fire the callbacks themselves. */
export interface Timer {
  /** Calls `fire` once after `delayMs`, unless cancelled first. */
  schedule(delayMs: number, fire: () => void): { cancel(): void };
}

export const systemTimer: Timer = {
  schedule(delayMs, fire) {
    const handle = setTimeout(fire, delayMs);
    return { cancel: () => clearTimeout(handle) };
  },
};

export interface BackoffSettings {
  /** The delay after the first failure. */
  readonly initialMs: number;
  /** Each further consecutive failure multiplies the delay by this. */
  readonly multiplier: number;
  /** The delay never exceeds this. */
  readonly maxMs: number;
  /** 0..1: each delay is shortened by up to this fraction, at random (options.random). 0: none. */
  readonly jitter: number;
}

export const DEFAULT_BACKOFF: BackoffSettings = { initialMs: 2_000, multiplier: 2, maxMs: 3_600_000, jitter: 0 };

/** EDU types left out of a transaction once queued longer than this many ms (see the head comment). */
export const DEFAULT_STALE_EDU_AFTER_MS: Readonly<Record<string, number>> = { "m.typing": 30_000 };

export interface FederationSenderOptions {
  store: FederationOutbox;
  client: FederationClient;
  ownServerName: string;
  clock: Clock;
  timer: Timer;
  logger: Logger;
  /** The spec's limit is 50. */
  maxPdusPerTransaction?: number;
  /** The spec's limit is 100. */
  maxEdusPerTransaction?: number;
  backoff?: Partial<BackoffSettings>;
  /** For the jitter: uniform in [0, 1). Default Math.random. */
  random?: () => number;
  staleEduAfterMs?: Readonly<Record<string, number>>;
  /** How long stop() waits for requests in flight before it gives up on them (their results are then ignored). Default 10 s. */
  stopTimeoutMs?: number;
}

/** Running totals, for tests, metrics and the bench. */
export interface FederationSenderCounters {
  /** Units persisted, counted once per destination. */
  pdusQueued: number;
  edusQueued: number;
  /** Transactions the destination accepted (2xx). */
  transactionsSent: number;
  pdusSent: number;
  edusSent: number;
  /** Transactions dropped because the destination refused them (4xx other than 429). */
  transactionsRefused: number;
  /** Attempts that will be retried (unreachable, 5xx, 429, or an error of ours). */
  failedAttempts: number;
  /** EDUs left out as stale. */
  staleEdusDropped: number;
}

type Outcome = "done" | "retry" | "abandoned";

interface Destination {
  readonly name: string;
  /** Consecutive failed attempts of the transaction in flight. */
  failures: number;
  /** A loop is running (set and cleared synchronously, so a wake is never lost). */
  active: boolean;
  /** The running loop, for stop() and idle(). */
  loop: Promise<void> | undefined;
  /** Units were queued while the loop was looking for work. */
  wokenAgain: boolean;
  /** A retry is scheduled: the destination is backing off. */
  retry: { cancel(): void } | undefined;
}

export class FederationSenderService implements FederationSender, Service {
  readonly name = "federation-sender";
  readonly counters: FederationSenderCounters = { pdusQueued: 0, edusQueued: 0, transactionsSent: 0, pdusSent: 0, edusSent: 0, transactionsRefused: 0, failedAttempts: 0, staleEdusDropped: 0 };

  private readonly store: FederationOutbox;
  private readonly client: FederationClient;
  private readonly ownServerName: string;
  private readonly clock: Clock;
  private readonly timer: Timer;
  private readonly logger: Logger;
  private readonly maxPdus: number;
  private readonly maxEdus: number;
  private readonly backoff: BackoffSettings;
  private readonly random: () => number;
  private readonly staleEduAfterMs: Readonly<Record<string, number>>;
  private readonly stopTimeoutMs: number;

  private readonly destinations = new Map<string, Destination>();
  private state: "stopped" | "running" | "stopping" = "stopped";
  /** Bumped by every start and stop: a loop of an earlier epoch leaves the store alone. */
  private epoch = 0;
  /**
   * The async context the sender was built in. Loops run in it, not in the context of whoever woke
   * them: a loop woken from inside a database transaction (or a request) must not join that
   * transaction, which ends long before the loop does.
   */
  private readonly detached = new AsyncResource("federation-sender");

  constructor(options: FederationSenderOptions) {
    this.store = options.store;
    this.client = options.client;
    this.ownServerName = options.ownServerName;
    this.clock = options.clock;
    this.timer = options.timer;
    this.logger = options.logger;
    this.maxPdus = options.maxPdusPerTransaction ?? 50;
    this.maxEdus = options.maxEdusPerTransaction ?? 100;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
    this.random = options.random ?? Math.random;
    this.staleEduAfterMs = options.staleEduAfterMs ?? DEFAULT_STALE_EDU_AFTER_MS;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  }

  /**
   * Call it once the event is committed (a listener of committed events), not inside a database
   * transaction: there the rows would join that transaction, and the destination's loop, which
   * reads committed rows only, would not see them until its next wake or the next start.
   */
  async queuePdu(destinations: readonly string[], pdu: JsonObject): Promise<void> {
    const targets = this.targets(destinations);
    if (targets.length === 0) return;
    await this.store.enqueue(targets, { json: JSON.stringify(pdu) }, this.clock.now());
    this.counters.pdusQueued += targets.length;
    for (const destination of targets) this.wake(destination);
  }

  async queueEdu(destinations: readonly string[], eduType: string, content: JsonObject): Promise<void> {
    const targets = this.targets(destinations);
    if (targets.length === 0) return;
    await this.store.enqueue(targets, { eduType, json: JSON.stringify(content) }, this.clock.now());
    this.counters.edusQueued += targets.length;
    for (const destination of targets) this.wake(destination);
  }

  /** The destination just sent us a request, so it is up: if it is backing off, retry it now. */
  markReachable(destination: string): void {
    if (this.state !== "running") return;
    const d = this.destinations.get(destination);
    if (!d || d.active || !d.retry) return;
    d.retry.cancel();
    d.retry = undefined;
    d.failures = 0;
    this.logger.log("info", "federation destination is back, retrying now", { destination });
    this.startLoop(d);
  }

  /** Resumes every destination with queued units (after a restart), at its persisted retry time. */
  async start(): Promise<void> {
    if (this.state === "running") return;
    this.state = "running";
    this.epoch++;
    const pending = await this.store.pendingDestinations();
    if (this.state !== "running") return;
    const now = this.clock.now();
    for (const p of pending) {
      const d = this.destination(p.destination);
      if (d.active || d.retry) continue;
      d.failures = p.failures;
      const delay = p.retryAtTs === undefined ? 0 : p.retryAtTs - now;
      if (delay > 0) this.scheduleRetry(d, delay);
      else this.startLoop(d);
    }
    if (pending.length > 0) this.logger.log("info", "federation sender resumed queued destinations", { destinations: pending.length });
  }

  /**
   * Cancels the scheduled retries and waits for the transactions in flight to settle (their outcome
   * is recorded), at most stopTimeoutMs; a request still unanswered then is abandoned: its rows stay
   * claimed and the next start sends them again under the same txnId.
   */
  async stop(): Promise<void> {
    if (this.state !== "running") return;
    this.state = "stopping";
    for (const d of this.destinations.values()) {
      d.retry?.cancel();
      d.retry = undefined;
    }
    const loops = [...this.destinations.values()].flatMap((d) => (d.loop ? [d.loop] : []));
    if (loops.length > 0) {
      let timeout: { cancel(): void } | undefined;
      const gaveUp = new Promise<"timeout">((resolve) => {
        timeout = this.timer.schedule(this.stopTimeoutMs, () => resolve("timeout"));
      });
      const result = await Promise.race([Promise.all(loops).then(() => "settled" as const), gaveUp]);
      timeout?.cancel();
      if (result === "timeout") this.logger.log("warn", "federation sender stopped with transactions in flight; they will be resent", { destinations: loops.length });
    }
    this.state = "stopped";
    this.epoch++;
    this.destinations.clear();
  }

  /** Resolves when no destination has a loop running (scheduled retries aside). For tests and the bench. */
  async idle(): Promise<void> {
    for (;;) {
      const loops = [...this.destinations.values()].flatMap((d) => (d.loop ? [d.loop] : []));
      if (loops.length === 0) return;
      await Promise.all(loops);
    }
  }

  /** Destinations with pending work: sending now (a loop runs), or backing off until a retry. For metrics. */
  destinationCounts(): { sending: number; backingOff: number } {
    let sending = 0;
    let backingOff = 0;
    for (const d of this.destinations.values()) {
      if (d.active) sending++;
      else if (d.retry) backingOff++;
    }
    return { sending, backingOff };
  }

  /** Destinations waiting for a scheduled retry, with their consecutive failures. */
  backingOff(): { destination: string; failures: number }[] {
    return [...this.destinations.values()].filter((d) => d.retry).map((d) => ({ destination: d.name, failures: d.failures }));
  }

  /** The delay before retrying after `failures` consecutive failures (1 = the first). */
  retryDelay(failures: number): number {
    const { initialMs, multiplier, maxMs, jitter } = this.backoff;
    const base = Math.min(maxMs, initialMs * multiplier ** Math.max(0, failures - 1));
    return Math.round(jitter > 0 ? base * (1 - jitter * this.random()) : base);
  }

  private targets(destinations: readonly string[]): string[] {
    const targets: string[] = [];
    for (const destination of new Set(destinations)) {
      if (destination === this.ownServerName) continue;
      if (!isValidServerName(destination)) {
        this.logger.log("warn", "not queueing for an invalid server name", { destination });
        continue;
      }
      targets.push(destination);
    }
    return targets;
  }

  private destination(name: string): Destination {
    let d = this.destinations.get(name);
    if (!d) {
      d = { name, failures: 0, active: false, loop: undefined, wokenAgain: false, retry: undefined };
      this.destinations.set(name, d);
    }
    return d;
  }

  private wake(destination: string): void {
    if (this.state !== "running") return; // persisted: the next start sends it
    const d = this.destination(destination);
    if (d.active) {
      d.wokenAgain = true;
      return;
    }
    if (d.retry) return; // backing off: it goes with the retry
    this.startLoop(d);
  }

  private startLoop(d: Destination): void {
    d.active = true;
    const epoch = this.epoch;
    const loop = this.detached.runInAsyncScope(() => this.run(d, epoch));
    if (d.active) d.loop = loop;
  }

  private scheduleRetry(d: Destination, delayMs: number): void {
    d.retry?.cancel();
    d.retry = this.timer.schedule(delayMs, () => {
      d.retry = undefined;
      if (this.state === "running" && !d.active) this.startLoop(d);
    });
  }

  /** Sends the destination's transactions one after another until its queue is empty or an attempt fails. */
  private async run(d: Destination, epoch: number): Promise<void> {
    const current = () => this.epoch === epoch && this.state !== "stopped";
    try {
      while (this.state === "running" && current()) {
        d.wokenAgain = false;
        const txn = await this.store.claimTransaction(d.name, { maxPdus: this.maxPdus, maxEdus: this.maxEdus }, (seq) => `${this.clock.now()}-${seq}`);
        if (!current()) return;
        if (!txn) {
          if (d.wokenAgain) continue;
          // Nothing queued: forget the destination (the map holds only busy or backing-off ones).
          d.failures = 0;
          if (this.state === "running") this.destinations.delete(d.name);
          return;
        }
        const outcome = await this.attempt(d, txn, current);
        if (outcome !== "done") return;
      }
    } catch (error) {
      // Our own failure (the store, most likely): keep the destination alive with an in-memory backoff.
      if (!current()) return;
      d.failures++;
      this.counters.failedAttempts++;
      const delay = this.retryDelay(d.failures);
      this.logger.log("error", "federation sender failed", { destination: d.name, error: String(error), retry_in_ms: delay });
      if (this.state === "running") this.scheduleRetry(d, delay);
    } finally {
      if (this.epoch === epoch) {
        d.active = false;
        d.loop = undefined;
      }
    }
  }

  private async attempt(d: Destination, txn: OutboxTransaction, current: () => boolean): Promise<Outcome> {
    const now = this.clock.now();
    const edus = txn.edus.filter((e) => !this.isStale(e, now));
    const stale = txn.edus.length - edus.length;
    if (stale > 0) this.counters.staleEdusDropped += stale;
    if (txn.pdus.length === 0 && edus.length === 0) {
      await this.store.completeTransaction(d.name, txn.txnId);
      return "done";
    }
    const body: JsonObject = {
      origin: this.ownServerName,
      origin_server_ts: now,
      pdus: txn.pdus.map((p) => parseJson(p.json, { lossless: true })),
      edus: edus.map((e) => ({ edu_type: e.eduType!, content: parseJson(e.json, { lossless: true }) })),
    };
    let response: unknown;
    try {
      response = await this.client.request("PUT", d.name, `/_matrix/federation/v1/send/${encodeURIComponent(txn.txnId)}`, { body });
    } catch (error) {
      if (!current()) return "abandoned";
      if (isRefusal(error)) {
        this.logger.log("warn", "federation transaction refused, dropping it", {
          destination: d.name,
          txn_id: txn.txnId,
          status: error.status,
          errcode: error.errcode,
          error: error.message,
          pdus: txn.pdus.length,
          edus: edus.length,
        });
        await this.store.completeTransaction(d.name, txn.txnId);
        d.failures = 0;
        this.counters.transactionsRefused++;
        return "done";
      }
      d.failures++;
      this.counters.failedAttempts++;
      const delay = Math.min(this.backoff.maxMs, Math.max(this.retryDelay(d.failures), retryAfterMs(error)));
      this.logger.log("warn", "federation transaction failed, will retry", { destination: d.name, txn_id: txn.txnId, failures: d.failures, retry_in_ms: delay, error: describe(error) });
      await this.store.setRetryState(d.name, d.failures, this.clock.now() + delay);
      if (this.state === "running" && current()) this.scheduleRetry(d, delay);
      return "retry";
    }
    if (!current()) return "abandoned";
    this.logPduErrors(d.name, txn.txnId, response);
    await this.store.completeTransaction(d.name, txn.txnId);
    d.failures = 0;
    this.counters.transactionsSent++;
    this.counters.pdusSent += txn.pdus.length;
    this.counters.edusSent += edus.length;
    return "done";
  }

  private isStale(edu: OutboxEntry, now: number): boolean {
    const ttl = edu.eduType === undefined ? undefined : this.staleEduAfterMs[edu.eduType];
    return ttl !== undefined && now - edu.queuedTs > ttl;
  }

  /** The receiver's verdicts on single PDUs: final, so logged and not retried. */
  private logPduErrors(destination: string, txnId: string, response: unknown): void {
    const results = isJsonObject(response) ? response.pdus : undefined;
    if (!isJsonObject(results)) return;
    for (const [eventId, result] of Object.entries(results)) {
      const error: JsonValue | undefined = isJsonObject(result) ? result.error : undefined;
      if (error !== undefined) this.logger.log("info", "remote server rejected a PDU", { destination, txn_id: txnId, event_id: eventId, error: String(error) });
    }
  }
}

/** A 4xx other than 429: the destination refuses this transaction, and would refuse it again. */
function isRefusal(error: unknown): error is RemoteMatrixError {
  return error instanceof RemoteMatrixError && error.status >= 400 && error.status < 500 && error.status !== 429;
}

function retryAfterMs(error: unknown): number {
  if (!(error instanceof RemoteMatrixError) || error.status !== 429) return 0;
  const value = error.extra.retry_after_ms;
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0;
}

function describe(error: unknown): string {
  if (error instanceof RemoteMatrixError) return `${error.status} ${error.errcode}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
