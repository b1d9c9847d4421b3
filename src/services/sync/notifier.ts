// Wakes /sync long-polls (client-server-api "Syncing": a sync with `timeout` waits until there is
// something new). Listens to every source a sync reads — room events, typing, receipts, account
// data, out-of-band memberships, to-device messages, device list changes — and wakes only the
// waiting users the change concerns; the sync then recomputes and decides whether the change is
// visible to it.
import type { StoredEvent } from "../../storage/stores";
import type { Service } from "../runtime";

export type WaitOutcome = "woken" | "timeout" | "aborted" | "stopped";

/** The sources a notifier subscribes to (the room engine, typing, receipts, account data). */
export interface NotifierSources {
  onEvent(listener: (roomId: string, stored: StoredEvent) => void): void;
  onTyping(listener: (roomId: string) => void): void;
  onReceipt(listener: (roomId: string) => void): void;
  onAccountData(listener: (userId: string) => void): void;
  /** A user's membership in a room this server does not hold changed (an invite or knock over federation, or its end). */
  onOutOfBandMembership?(listener: (userId: string) => void): void;
  /** A user has new to-device messages. */
  onToDevice?(listener: (userId: string) => void): void;
  /** A user's presence changed: they and everyone sharing a room with them may see it. */
  onPresence?(listener: (userId: string) => void): void;
  /** A user's device list changed: for everyone sharing a room with them, or for `observer` only. */
  onDeviceListChange?(listener: (userId: string, observer: string | undefined) => void): void;
  /** The rooms a user is joined to (who shares a room with a user whose devices changed). */
  joinedRooms?(userId: string): Promise<readonly string[]>;
  /** Current memberships in a room: user id -> membership. */
  memberships(roomId: string): Promise<ReadonlyMap<string, string>>;
}

/** One pending wait: its promise settles once, and `cancel` releases it without waking anything. */
export interface Waiter {
  readonly promise: Promise<WaitOutcome>;
  cancel(): void;
}

/** Memberships whose holders see a room's events (joined) or its invite/knock updates. */
const EVENT_AUDIENCE = new Set(["join", "invite", "knock"]);

export class SyncNotifier implements Service {
  readonly name = "sync-notifier";
  private readonly waiting = new Map<string, Set<(outcome: WaitOutcome) => void>>();
  private stopped = false;
  /** How waits have ended so far (read by the metrics at scrape time). */
  readonly outcomes: Record<WaitOutcome, number> = { woken: 0, timeout: 0, aborted: 0, stopped: 0 };

  constructor(private readonly sources: NotifierSources) {
    sources.onEvent((roomId, stored) => {
      const extra = stored.type === "m.room.member" && stored.stateKey !== undefined ? stored.stateKey : undefined;
      this.wakeRoom(roomId, EVENT_AUDIENCE, extra);
    });
    sources.onTyping((roomId) => this.wakeRoom(roomId, JOINED));
    sources.onReceipt((roomId) => this.wakeRoom(roomId, JOINED));
    sources.onAccountData((userId) => this.wake(userId));
    sources.onOutOfBandMembership?.((userId) => this.wake(userId));
    sources.onToDevice?.((userId) => this.wake(userId));
    sources.onDeviceListChange?.((userId, observer) => {
      if (observer !== undefined) return this.wake(observer);
      this.wakeUserAndRooms(userId);
    });
    sources.onPresence?.((userId) => this.wakeUserAndRooms(userId));
  }

  /** The user, and everyone joined to a room with them. */
  private wakeUserAndRooms(userId: string): void {
    this.wake(userId);
    if (this.waiting.size === 0 || !this.sources.joinedRooms) return;
    void this.sources.joinedRooms(userId).then(
      (rooms) => {
        for (const roomId of rooms) this.wakeRoom(roomId, JOINED);
      },
      () => {
        for (const waiting of [...this.waiting.keys()]) this.wake(waiting);
      },
    );
  }

  /** Users with a pending wait (for tests and metrics). */
  waitingCount(): number {
    let n = 0;
    for (const set of this.waiting.values()) n += set.size;
    return n;
  }

  /**
   * Registers a wait for `userId` before the caller computes its answer, so that a change landing
   * in between is not missed. Settles on a wake-up, the timeout, the signal's abort, or stop().
   */
  waitFor(userId: string, timeoutMs: number, signal?: AbortSignal): Waiter {
    if (this.stopped) return { promise: Promise.resolve("stopped"), cancel: () => {} };
    if (signal?.aborted) return { promise: Promise.resolve("aborted"), cancel: () => {} };
    let settle!: (outcome: WaitOutcome) => void;
    const promise = new Promise<WaitOutcome>((resolve) => {
      let done = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => settle("aborted");
      settle = (outcome) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const set = this.waiting.get(userId);
        set?.delete(settle);
        if (set?.size === 0) this.waiting.delete(userId);
        this.outcomes[outcome]++;
        resolve(outcome);
      };
      timer = setTimeout(() => settle("timeout"), Math.max(0, timeoutMs));
      signal?.addEventListener("abort", onAbort, { once: true });
      const set = this.waiting.get(userId) ?? new Set();
      set.add(settle);
      this.waiting.set(userId, set);
    });
    return { promise, cancel: () => settle("aborted") };
  }

  /** Wakes every wait of one user. */
  wake(userId: string): void {
    const set = this.waiting.get(userId);
    if (!set) return;
    for (const settle of [...set]) settle("woken");
  }

  stop(): void {
    this.stopped = true;
    for (const set of [...this.waiting.values()]) for (const settle of [...set]) settle("stopped");
    this.waiting.clear();
  }

  /**
   * Wakes the waiting users whose membership is in `audience`. The sources call this without waiting
   * for it (a write need not wait for the wake-ups it causes). A wait registered while the
   * memberships are read computes after the change anyway, so it misses nothing.
   */
  private wakeRoom(roomId: string, audience: ReadonlySet<string>, alsoUser?: string): void {
    if (this.waiting.size === 0) return;
    if (alsoUser !== undefined) this.wake(alsoUser);
    void this.sources.memberships(roomId).then(
      (memberships) => {
        for (const userId of [...this.waiting.keys()]) {
          const membership = memberships.get(userId);
          if (membership !== undefined && audience.has(membership)) this.wake(userId);
        }
      },
      // Without the memberships, wake every wait: each recomputes and keeps waiting when nothing is new for it.
      () => {
        for (const userId of [...this.waiting.keys()]) this.wake(userId);
      },
    );
  }
}

const JOINED: ReadonlySet<string> = new Set(["join"]);
