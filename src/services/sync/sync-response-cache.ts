// Answers to incremental /syncs kept for a while after they are given, keyed by the whole request
// (user, device, since, filter, full_state, timeout, set_presence), as Synapse does (its
// sync_response_cache_duration, 2 minutes by default; Portier leaves initial syncs out): a client
// that retries after its connection dropped gets the same answer
// without it being computed again, and a retry that arrives while the first is still computing or
// long-polling joins it. The answer to a given request never changes meaning: the client moves on
// with its next_batch either way.
import type { Clock } from "../runtime";
import type { SyncRequest, SyncResponse } from "./sync-service";

export interface SyncAnswerer {
  sync(request: SyncRequest): Promise<SyncResponse>;
}

interface Entry {
  readonly response: Promise<SyncResponse>;
  /** Set once the answer is there; until then the entry is in flight. */
  expiresAt?: number;
}

/**
 * Answers kept per device: a client retries the request it last made, so its older answers are of
 * no use (and a busy server's memory would fill with them).
 */
const PER_DEVICE = 2;

export class SyncResponseCache implements SyncAnswerer {
  private readonly entries = new Map<string, Entry>();
  /** The keys of each device's kept answers, oldest first. */
  private readonly byDevice = new Map<string, string[]>();

  constructor(
    private readonly inner: SyncAnswerer,
    private readonly clock: Clock,
    private readonly ttlMs: number,
    private readonly maxEntries = 1_000,
  ) {}

  sync(request: SyncRequest): Promise<SyncResponse> {
    // Only incremental syncs: an initial sync asked again wants the room as it is now (clients and
    // test suites do that on purpose), and a long-poll, the one a dropped connection loses, has a since.
    if (this.ttlMs <= 0 || request.since === undefined) return this.inner.sync(request);
    const now = this.clock.now();
    this.dropExpired(now);
    const key = JSON.stringify([request.userId, request.deviceId, request.since ?? null, request.filter ?? null, request.fullState ?? false, request.timeoutMs, request.setPresence ?? null]);
    const hit = this.entries.get(key);
    if (hit && (hit.expiresAt === undefined || hit.expiresAt > now)) return hit.response;
    // One computation for every caller of this request: the first caller's connection dropping must
    // not end it for the retry that joins it, so no caller's signal is passed on.
    const { signal: _signal, ...shared } = request;
    const entry: Entry = { response: this.inner.sync(shared) };
    this.entries.delete(key);
    this.entries.set(key, entry);
    const device = JSON.stringify([request.userId, request.deviceId]);
    const keys = (this.byDevice.get(device) ?? []).filter((k) => k !== key && this.entries.has(k));
    keys.push(key);
    while (keys.length > PER_DEVICE) this.entries.delete(keys.shift()!);
    this.byDevice.delete(device);
    this.byDevice.set(device, keys);
    while (this.byDevice.size > this.maxEntries) this.byDevice.delete(this.byDevice.keys().next().value as string);
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    entry.response.then(
      (response) => {
        // Nothing new (the token did not move): not kept, or a client polling with the same since
        // would get this empty answer again and again (Synapse does the same).
        if (response.next_batch === request.since) {
          if (this.entries.get(key) === entry) this.entries.delete(key);
          return;
        }
        entry.expiresAt = this.clock.now() + this.ttlMs;
      },
      () => {
        // A failure is not kept: the next try computes again.
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    return entry.response;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Entries are in the order they were made, so expired ones are mostly at the front. */
  private dropExpired(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt === undefined || entry.expiresAt > now) break;
      this.entries.delete(key);
    }
  }
}
