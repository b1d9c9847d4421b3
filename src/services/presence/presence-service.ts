// Presence (client-server-api "Presence"): online, unavailable or offline, with a status message,
// set by PUT /presence/{userId}/status and by syncing (set_presence, online unless said otherwise).
// Kept in memory, as typing is: a restart shows everyone offline until they sync again. A user who
// stops syncing goes unavailable after IDLE_MS and offline after OFFLINE_MS, as in Synapse (its
// idle timer is five minutes; offline follows the end of syncing). Each change takes the next
// serial, which /sync tokens carry (with the process's boot, like the typing serial).
import type { Clock, Service } from "../runtime";

export type PresenceState = "online" | "unavailable" | "offline";
export const PRESENCE_STATES: readonly PresenceState[] = ["online", "unavailable", "offline"];

export interface PresenceStatus {
  presence: PresenceState;
  last_active_ago?: number;
  status_msg?: string;
  currently_active?: boolean;
}

interface Entry {
  presence: PresenceState;
  statusMsg?: string;
  lastActiveTs: number;
  /** Set by the user (PUT): syncing does not turn unavailable back into online. */
  explicit: boolean;
  /** Another server's user: its server keeps the presence current. */
  remote?: boolean;
  serial: number;
}

const IDLE_MS = 5 * 60_000;
const OFFLINE_MS = 30 * 60_000;
const SWEEP_MS = 60_000;
/** Active within this long: currently_active (Synapse's granularity). */
const ACTIVE_MS = 60_000;

export class PresenceService implements Service {
  readonly name = "presence";
  private serial = 0;
  private readonly users = new Map<string, Entry>();
  private readonly listeners: ((userId: string) => void)[] = [];
  private sweeper: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly clock: Clock,
    readonly enabled: boolean,
  ) {}

  async start(): Promise<void> {
    if (!this.enabled) return;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    (this.sweeper as { unref?: () => void }).unref?.();
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  onChange(listener: (userId: string) => void): void {
    this.listeners.push(listener);
  }

  currentSerial(): number {
    return this.serial;
  }

  /** PUT /presence/{userId}/status. status_msg: a string sets it, null clears it, undefined keeps it. */
  set(userId: string, presence: PresenceState, statusMsg: string | null | undefined): void {
    if (!this.enabled) return;
    const before = this.users.get(userId);
    const msg = statusMsg === undefined ? before?.statusMsg : statusMsg ?? undefined;
    this.write(userId, { presence, statusMsg: msg, lastActiveTs: presence === "online" ? this.clock.now() : (before?.lastActiveTs ?? this.clock.now()), explicit: presence !== "online" });
  }

  /** A /sync with set_presence (online when absent): the user is there. */
  synced(userId: string, setPresence: PresenceState | undefined): void {
    if (!this.enabled) return;
    const before = this.users.get(userId);
    const wanted = setPresence ?? "online";
    if (wanted === "offline") return; // "offline": the client syncs without being shown online
    const now = this.clock.now();
    if (before && (before.presence === wanted || (before.explicit && before.presence === "unavailable" && wanted === "online"))) {
      before.lastActiveTs = now;
      return;
    }
    this.write(userId, { presence: wanted, statusMsg: before?.statusMsg, lastActiveTs: now, explicit: false });
  }

  /**
   * Another server's word on one of its users (an m.presence EDU): taken as it is; that server
   * keeps it current, so its entry is never swept here.
   */
  setRemote(userId: string, status: { presence: PresenceState; status_msg?: string; last_active_ago?: number }): void {
    if (!this.enabled) return;
    this.write(userId, { presence: status.presence, statusMsg: status.status_msg, lastActiveTs: this.clock.now() - Math.max(0, status.last_active_ago ?? 0), explicit: true, remote: true });
  }

  status(userId: string): PresenceStatus {
    const entry = this.users.get(userId);
    if (!entry) return { presence: "offline" };
    const ago = Math.max(0, this.clock.now() - entry.lastActiveTs);
    return {
      presence: entry.presence,
      last_active_ago: ago,
      ...(entry.statusMsg !== undefined ? { status_msg: entry.statusMsg } : {}),
      ...(entry.presence === "online" ? { currently_active: ago < ACTIVE_MS } : {}),
    };
  }

  /** Users whose presence changed after `sinceSerial` (all known ones for 0). */
  changedSince(sinceSerial: number): string[] {
    const out: string[] = [];
    for (const [userId, entry] of this.users) if (entry.serial > sinceSerial) out.push(userId);
    return out;
  }

  /** Online users quiet for IDLE_MS become unavailable, and anyone quiet for OFFLINE_MS offline. */
  sweep(): void {
    const now = this.clock.now();
    for (const [userId, entry] of this.users) {
      if (entry.remote) continue;
      const quiet = now - entry.lastActiveTs;
      if (entry.presence !== "offline" && quiet >= OFFLINE_MS) this.write(userId, { ...entry, presence: "offline", explicit: false });
      else if (entry.presence === "online" && quiet >= IDLE_MS) this.write(userId, { ...entry, presence: "unavailable", explicit: false });
    }
  }

  private write(userId: string, entry: Omit<Entry, "serial">): void {
    this.users.set(userId, { ...entry, serial: ++this.serial });
    for (const listener of this.listeners) listener(userId);
  }
}
