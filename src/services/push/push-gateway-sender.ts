// HTTP pushers (push-gateway-api, POST /_matrix/push/v1/notify): each pusher sends its user's
// notifications to its push gateway, in order, one request per notification; and after a receipt
// (or the user's own message) lowers the user's unread count, a request with just the counts, so
// the app's badge follows.
//
// The notifications table is the queue: a pusher remembers (on disk) the stream id of the last
// notification it sent, so what was due when the server stopped goes out after it starts again.
// A failed request (network error, 5xx, 429) is retried with a doubling delay; once the delay
// would pass the maximum, that notification is given up and the next one tried, as Synapse does.
// A gateway that lists the pushkey in `rejected` has the pusher removed.
import { isJsonObject, type JsonObject, type JsonValue } from "../../protocol/json";
import { tweaksOf } from "../../protocol/push-evaluator";
import type { PushAction } from "../../protocol/push-rules";
import type { NotificationRecord, NotificationStore, PusherRecord } from "../../storage/stores";
import type { Timer } from "../federation/sender";
import type { RoomAccess } from "../rooms/room-access";
import type { Clock, Logger, Service } from "../runtime";
import type { PusherService } from "./pusher-service";

export interface PushGatewaySenderOptions {
  pushers: PusherService;
  notifications: Pick<NotificationStore, "notificationsAfter" | "unreadTotal">;
  access: RoomAccess;
  /** Current memberships of a room (whose users' badges a receipt may change). */
  memberships(roomId: string): Promise<ReadonlyMap<string, string>>;
  clock: Clock;
  timer: Timer;
  logger: Logger;
  fetch?: typeof fetch;
  /** Delay after the first failed attempt (1 s); doubled after each further one. */
  initialBackoffMs?: number;
  /** A notification whose next delay would pass this is given up (1 hour). */
  maxBackoffMs?: number;
  /** Time allowed for one request (20 s). */
  requestTimeoutMs?: number;
  /** Whether gateways' TLS certificates are verified (true; off only for tests with their own certificates). */
  verifyTls?: boolean;
}

/** What became of one notification. */
type Outcome = "sent" | "given-up" | "retry" | "rejected";

interface PusherState {
  pusher: PusherRecord;
  /** Stream id of the last notification sent or given up. */
  cursor: number;
  running: Promise<void> | undefined;
  /** Another pass is wanted after the running one (new notifications arrived meanwhile). */
  again: boolean;
  failures: number;
  retry: { cancel(): void } | undefined;
  /** The `unread` count the gateway was last told. */
  lastUnread: number | undefined;
  removed: boolean;
}

const BATCH = 20;
const keyOf = (p: Pick<PusherRecord, "userId" | "appId" | "pushkey">) => `${p.userId}\u0000${p.appId}\u0000${p.pushkey}`;

export class PushGatewaySender implements Service {
  readonly name = "push-gateway-sender";
  private readonly byUser = new Map<string, Map<string, PusherState>>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly abort = new AbortController();
  private stopped = false;
  private started = false;

  constructor(private readonly options: PushGatewaySenderOptions) {}

  async start(): Promise<void> {
    this.started = true;
    for (const pusher of await this.options.pushers.allRecords()) this.follow(pusher);
    for (const states of this.byUser.values()) for (const state of states.values()) this.kick(state);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    for (const states of this.byUser.values()) for (const state of states.values()) state.retry?.cancel();
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** The user has new notifications. */
  notified(userId: string): void {
    for (const state of this.byUser.get(userId)?.values() ?? []) this.kick(state);
  }

  /** The user's pushers changed: picks up new and changed ones, forgets removed ones. */
  pushersChanged(userId: string): void {
    if (!this.started || this.stopped) return;
    this.background(this.options.pushers.records(userId).then((records) => {
      const states = this.byUser.get(userId) ?? new Map<string, PusherState>();
      const keep = new Set(records.map(keyOf));
      for (const [key, state] of states) {
        if (keep.has(key)) continue;
        state.removed = true;
        state.retry?.cancel();
        states.delete(key);
      }
      if (states.size === 0) this.byUser.delete(userId);
      for (const record of records) this.follow(record);
    }));
  }

  /** Receipts changed in a room: the members with pushers may have fewer unread notifications now. */
  receiptsChanged(roomId: string): void {
    if (this.byUser.size === 0 || this.stopped) return;
    this.background(this.options.memberships(roomId).then((memberships) => {
      for (const userId of this.byUser.keys()) if (memberships.get(userId) === "join") this.readMoved(userId);
    }));
  }

  /** The user's read position moved: tells their gateways the new count, when it changed. */
  readMoved(userId: string): void {
    for (const state of this.byUser.get(userId)?.values() ?? []) this.background(this.sendCounts(state));
  }

  /** Pushers being delivered for (for tests and metrics). */
  get pusherCount(): number {
    let n = 0;
    for (const states of this.byUser.values()) n += states.size;
    return n;
  }

  /** Starts following a pusher, or takes its new settings. */
  private follow(pusher: PusherRecord): void {
    let states = this.byUser.get(pusher.userId);
    if (!states) this.byUser.set(pusher.userId, (states = new Map()));
    const existing = states.get(keyOf(pusher));
    if (existing) {
      existing.pusher = pusher;
      existing.cursor = Math.max(existing.cursor, pusher.lastNotification);
      return;
    }
    states.set(keyOf(pusher), { pusher, cursor: pusher.lastNotification, running: undefined, again: false, failures: 0, retry: undefined, lastUnread: undefined, removed: false });
  }

  /** Runs a background task until stop() waits for it; its failure is logged, never thrown. */
  private background(task: Promise<unknown>): void {
    const tracked = task.catch((error) => this.options.logger.log("warn", "push delivery task failed", { error: String((error as Error)?.stack ?? error) }));
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }

  private kick(state: PusherState): void {
    if (this.stopped || state.removed || state.retry) return;
    if (state.running) {
      state.again = true;
      return;
    }
    const run = this.drain(state).finally(() => {
      state.running = undefined;
      if (state.again && !state.retry) this.kick(state);
    });
    state.running = run;
    this.background(run);
  }

  /** Sends the pusher's due notifications in order until none is left, a retry is scheduled, or it is removed. */
  private async drain(state: PusherState): Promise<void> {
    do {
      state.again = false;
      const due = await this.options.notifications.notificationsAfter(state.pusher.userId, state.cursor, BATCH);
      for (const notification of due) {
        if (this.stopped || state.removed) return;
        const outcome = await this.deliver(state, notification);
        if (this.stopped || state.removed) return;
        if (outcome === "rejected") return this.remove(state);
        if (outcome === "retry") {
          state.failures++;
          const delay = (this.options.initialBackoffMs ?? 1000) * 2 ** (state.failures - 1);
          if (delay <= (this.options.maxBackoffMs ?? 3_600_000)) {
            state.retry = this.options.timer.schedule(delay, () => {
              state.retry = undefined;
              this.kick(state);
            });
            return;
          }
          this.options.logger.log("warn", "giving up on a push notification", { user_id: state.pusher.userId, app_id: state.pusher.appId, event_id: notification.eventId, attempts: state.failures });
        }
        state.failures = 0;
        state.cursor = notification.streamId;
        await this.options.pushers.advance(state.pusher, notification.streamId);
      }
      if (due.length === BATCH) state.again = true;
    } while (state.again && !this.stopped && !state.removed);
  }

  private async remove(state: PusherState): Promise<void> {
    state.removed = true;
    this.options.logger.log("info", "push gateway rejected a pushkey; removing the pusher", { user_id: state.pusher.userId, app_id: state.pusher.appId });
    await this.options.pushers.removeRejected(state.pusher.userId, state.pusher.appId, state.pusher.pushkey);
  }

  private async deliver(state: PusherState, notification: NotificationRecord): Promise<Outcome> {
    const body = await this.eventNotification(state.pusher, notification);
    if (body === undefined) return "given-up";
    const outcome = await this.post(state.pusher, body.request);
    if (outcome === "sent") state.lastUnread = body.unread;
    return outcome;
  }

  /** A counts-only request, when the count differs from the one the gateway last had. Not retried: the next change sends the count again. */
  private async sendCounts(state: PusherState): Promise<void> {
    const unread = await this.options.notifications.unreadTotal(state.pusher.userId);
    if (this.stopped || state.removed || unread === state.lastUnread) return;
    state.lastUnread = unread;
    // The count is the message here, so it is sent even when it is zero (the badge must clear); in
    // notifications about an event, zero counts are left out as the spec recommends.
    const outcome = await this.post(state.pusher, { notification: { counts: { unread }, devices: [this.device(state.pusher, {})] } });
    if (outcome === "rejected") await this.remove(state);
    else if (outcome !== "sent") state.lastUnread = undefined;
  }

  /** The request for a notification about an event; undefined when the event is gone. */
  private async eventNotification(pusher: PusherRecord, n: NotificationRecord): Promise<{ request: JsonObject; unread: number } | undefined> {
    const loaded = await this.options.access.load(n.eventId);
    if (!loaded) return undefined;
    const { stored, pdu } = loaded;
    const unread = await this.options.notifications.unreadTotal(pusher.userId);
    const tweaks = tweaksOf(n.actions as PushAction[]);
    const notification: JsonObject = {
      event_id: n.eventId,
      room_id: n.roomId,
      // The spec leaves the priority to the server: high when the notification makes a sound or
      // highlights, or may (an encrypted event's rules run on the device), low otherwise (as Synapse).
      prio: stored.type === "m.room.encrypted" || tweaks.sound || tweaks.highlight ? "high" : "low",
      counts: unread > 0 ? { unread } : {},
      devices: [this.device(pusher, tweaks)],
    };
    if (pusher.data.format !== "event_id_only") {
      // `id` is the event id's name from before the spec's `event_id`, which Synapse still sends and
      // sytest checks; gateways ignore what they do not know.
      notification.id = n.eventId;
      notification.type = stored.type;
      notification.sender = stored.sender;
      if (isJsonObject(pdu.content)) notification.content = pdu.content;
      if (stored.type === "m.room.member" && stored.stateKey !== undefined) {
        notification.user_is_target = stored.stateKey === pusher.userId;
        // Not in the spec; Synapse sends it and sytest checks it.
        if (isJsonObject(pdu.content) && typeof pdu.content.membership === "string") notification.membership = pdu.content.membership;
      }
      Object.assign(notification, await this.roomDetails(n.roomId, stored.sender));
    }
    return { request: { notification }, unread };
  }

  /**
   * sender_display_name, and room_name as the room's display name would start ("Calculating the
   * display name for a room": m.room.name, else the canonical alias), with room_alias.
   */
  private async roomDetails(roomId: string, sender: string): Promise<JsonObject> {
    const engine = this.options.access.engine;
    const out: JsonObject = {};
    const member = await engine.currentStateEvent(roomId, "m.room.member", sender);
    if (typeof member?.content.displayname === "string") out.sender_display_name = member.content.displayname;
    const name = (await engine.currentStateEvent(roomId, "m.room.name", ""))?.content.name;
    const alias = (await engine.currentStateEvent(roomId, "m.room.canonical_alias", ""))?.content.alias;
    if (typeof alias === "string") out.room_alias = alias;
    if (typeof name === "string" && name !== "") out.room_name = name;
    else if (typeof alias === "string") out.room_name = alias;
    return out;
  }

  /** The devices entry: the pusher's data without its url (pusher.yaml: "excluding url"). */
  private device(pusher: PusherRecord, tweaks: Record<string, JsonValue>): JsonObject {
    const { url: _url, ...data } = pusher.data;
    return { app_id: pusher.appId, pushkey: pusher.pushkey, pushkey_ts: Math.floor(pusher.pushkeyTs / 1000), data: data as JsonObject, tweaks };
  }

  private async post(pusher: PusherRecord, body: JsonObject): Promise<Outcome> {
    const url = pusher.data.url as string;
    let response: Response;
    try {
      response = await (this.options.fetch ?? fetch)(url, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.options.requestTimeoutMs ?? 20_000)]),
        // Bun's fetch option; the default verifies.
        ...(this.options.verifyTls === false ? { tls: { rejectUnauthorized: false } } : {}),
      } as RequestInit);
    } catch (error) {
      if (!this.stopped) this.options.logger.log("warn", "push gateway unreachable", { url, error: String(error) });
      return "retry";
    }
    if (response.status === 429 || response.status >= 500) {
      await response.body?.cancel();
      this.options.logger.log("warn", "push gateway failed", { url, status: response.status });
      return "retry";
    }
    if (!response.ok) {
      // The gateway refuses this request itself: sending it again would not change that.
      await response.body?.cancel();
      this.options.logger.log("warn", "push gateway refused a notification", { url, status: response.status });
      return "given-up";
    }
    const answer = (await response.json().catch(() => undefined)) as { rejected?: unknown } | undefined;
    return Array.isArray(answer?.rejected) && answer.rejected.includes(pusher.pushkey) ? "rejected" : "sent";
  }
}
