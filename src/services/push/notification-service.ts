// Notifications (client-server-api "Push Notifications": Server behaviour, Receiving notifications,
// Marking notifications as read, Listing Notifications). When an event enters a room's timeline,
// the push rules of each local user in the room (but the sender) are evaluated against it; a rule
// that says notify records a notification. The unread counts of /sync and the `unread` count sent to
// push gateways count the notifications after the user's read position in each room.
import { notificationLevel, userPowerLevel } from "../../protocol/auth";
import { MatrixError } from "../../protocol/errors";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { evaluatePushRules, type PushContext } from "../../protocol/push-evaluator";
import type { PushRuleset } from "../../protocol/push-rules";
import type { NewNotification, NotificationStore, RoomClientStore, RoomEventStore, StoredEvent, UnreadCounts } from "../../storage/stores";
import type { PushRuleService } from "../accounts/push-rule-service";
import { ClientEventFormatter, type ClientEvent } from "../rooms/client-events";
import type { RoomAccess } from "../rooms/room-access";
import type { EventCompanion } from "../rooms/room-engine";
import type { Timer } from "../federation/sender";
import type { RoomVersion } from "../../protocol/room-versions";
import type { AuthStateLookup } from "../../protocol/auth";
import type { Clock, Logger, Service } from "../runtime";
import { PairMap } from "./pair-map";

export interface NotificationServiceDeps {
  serverName: string;
  access: RoomAccess;
  store: RoomEventStore;
  clientStore: RoomClientStore;
  notifications: NotificationStore;
  pushRules: Pick<PushRuleService, "ruleset">;
  clock: Clock;
  timer: Timer;
  logger: Logger;
  /** Read notifications older than this are deleted (30 days by default, as long as Synapse keeps them). */
  keepReadMs?: number;
  /** Settles when the room's write running now has (RoomWriteQueue.running): its events' notifications are written inside it. */
  roomWriteRunning?: (roomId: string) => Promise<void> | undefined;
}

/** The unread_notifications object of a joined room in /sync. */
export interface UnreadNotificationCounts {
  notification_count: number;
  highlight_count: number;
}

/** One entry of GET /notifications (notifications.yaml). */
export interface NotificationEntry {
  actions: unknown[];
  event: ClientEvent;
  profile_tag: string;
  read: boolean;
  room_id: string;
  ts: number;
}

/** Told a user has new notifications (for their pushers). */
export type NotifiedListener = (userId: string) => void;
/** Told a user's read position moved other than by a receipt (their own event, their leaving). */
export type ReadListener = (userId: string) => void;

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 1000;
const PRUNE_EVERY_MS = 60 * 60 * 1000;
const THIRTY_DAYS_MS = 30 * 24 * 60 * 60 * 1000;
const DEPARTED = new Set(["leave", "ban"]);

const serverOf = (userId: string) => userId.slice(userId.indexOf(":") + 1);

/** Whether any enabled rule of the ruleset has a condition of this kind (to skip loading what nothing reads). */
/** Rulesets are frozen and cached per user, so what each one uses is worked out once. */
const displayNameUse = new WeakMap<PushRuleset, boolean>();

function usesDisplayName(ruleset: PushRuleset): boolean {
  let uses = displayNameUse.get(ruleset);
  if (uses === undefined) {
    uses = Object.values(ruleset).some((rules) => rules.some((r) => r.enabled && r.conditions?.some((c) => c.kind === "contains_display_name")));
    displayNameUse.set(ruleset, uses);
  }
  return uses;
}

/** At most this many (user, room) pairs are remembered as having nothing unread. */
const MAX_NOTHING_UNREAD = 100_000;
/** At most this many (user, room) unread counts are kept. */
const MAX_COUNTED = 100_000;
/** Rooms whose members are kept (the busiest, by last use). */
const MAX_ROOM_MEMBERS = 100;

/**
 * At most this many notifications taken into a kept count one by one are remembered with it: enough
 * for a /sync whose position was taken just before the newest ones (a count of every kept pair is
 * held, so each remembered one costs memory a hundred thousand times over).
 */
const MAX_RECENT = 4;
const NO_COUNTS: UnreadCounts = { notifications: 0, highlights: 0, newest: 0 };

/**
 * A kept unread count of one (user, room), and the notifications taken into it since it was counted
 * (oldest first, at most MAX_RECENT): a count up to an earlier position than the newest of them is
 * the same less those after the position, without a query. `base` is the newest notification of
 * the count as it was before them.
 */
export interface KeptCounts {
  readonly roomVersion: number;
  readonly counts: UnreadCounts;
  readonly recent: readonly { readonly ordering: number; readonly highlight: boolean }[];
  readonly base: number;
}

/** The count of a kept entry up to a position, when its recent notifications tell it. */
export function keptUpTo(kept: KeptCounts, upTo: number | undefined): UnreadCounts | undefined {
  const { counts, recent } = kept;
  if (upTo === undefined || upTo >= counts.newest) return counts;
  let notifications = counts.notifications;
  let highlights = counts.highlights;
  for (let i = recent.length - 1; i >= 0; i--) {
    const r = recent[i]!;
    if (r.ordering <= upTo) return { notifications, highlights, newest: r.ordering };
    notifications--;
    if (r.highlight) highlights--;
  }
  return kept.base <= upTo ? { notifications, highlights, newest: kept.base } : undefined;
}

/** What notifying needs of a room's members: who of this server is joined, and how many are. */
interface RoomMembers {
  readonly snapshot: number | undefined;
  readonly localJoined: readonly string[];
  readonly joined: number;
}

/** An event whose notifications are worked out: as stored, or about to be. */
interface PlannedEvent {
  readonly eventId: string;
  readonly sender: string;
  readonly type: string;
  readonly stateKey: string | undefined;
  readonly pdu: JsonObject;
}

/** What a batch of events of one room changes: events are referred to by their index in the batch. */
interface NotificationPlan {
  readonly roomId: string;
  readonly eventIds: readonly string[];
  /** Per user, the event their read mark moves to. */
  readonly marks: Map<string, number>;
  readonly notified: { userId: string; event: number; ts: number; actions: unknown[]; highlight: boolean }[];
  /** Who `notified` holds (a reader of a later event with a notification in this batch has one unread). */
  readonly notifiedUsers: Set<string>;
  /** Recipients that had nothing unread in the room before their first notification of the batch, with the room's version then. */
  readonly fromNothing: Map<string, number>;
}

/** Notifications (rows) from which one event's are written in a database transaction of their own. */
export const BULK_NOTIFICATIONS = 1_000;

export class NotificationService implements Service {
  readonly name = "notifications";
  private readonly notifiedListeners: NotifiedListener[] = [];
  private readonly readListeners: ReadListener[] = [];
  /**
   * (user, room) pairs known to have nothing unread, so that their own next event, and /sync's
   * unread counts, cost no count query (one was the dearest statement of a send). A pair leaves the
   * set before a notification for it is added; both happen only here, in the room's write queue, so
   * the set cannot go stale.
   */
  private readonly nothingUnread = new PairMap<true>();
  /**
   * Unread counts as last counted per (user, room) — every /sync asks them for every room it shows —
   * with the newest notification counted. What can change them bumps a version: a notification or a
   * read mark for the pair (here), a receipt in the room (receiptsChanged); a count that raced such a
   * change is not kept.
   */
  private readonly counted = new PairMap<KeptCounts>();
  private readonly pairVersions = new PairMap<number>();
  private readonly roomVersions = new Map<string, number>();
  private countsEpoch = 0;
  private readonly members = new Map<string, RoomMembers>();
  private readonly formatter: ClientEventFormatter;
  private pruning: { cancel(): void } | undefined;
  private pruneRun: Promise<void> | undefined;

  /** Per room, the newest stream position whose notifications have been worked out (since this start). */
  private readonly processedUpTo = new Map<string, number>();
  private readonly isLocal = (userId: string) => serverOf(userId) === this.deps.serverName;
  /** Events whose notifications were written in their own transaction (eventCompanion), until eventsPersisted hears of them. */
  private readonly writtenWithEvent = new Set<string>();
  /**
   * The newest stream position when this service was made (at the server's start): every event up
   * to it had its notifications worked out before, or never will (lost with a crash).
   */
  private readonly processedAtStart: Promise<number>;

  constructor(private readonly deps: NotificationServiceDeps) {
    this.formatter = new ClientEventFormatter(deps.store, deps.clientStore, deps.access, deps.clock);
    this.processedAtStart = deps.store.maxStreamOrdering().catch(() => 0);
  }

  onNotified(listener: NotifiedListener): void {
    this.notifiedListeners.push(listener);
  }

  onReadMoved(listener: ReadListener): void {
    this.readListeners.push(listener);
  }

  /** A read receipt was stored in the room: its members' unread counts may have changed. */
  receiptsChanged(roomId: string): void {
    this.roomVersions.set(roomId, (this.roomVersions.get(roomId) ?? 0) + 1);
  }

  private pairChanged(userId: string, roomId: string): void {
    this.counted.delete(userId, roomId);
    this.pairVersions.set(userId, roomId, (this.pairVersions.get(userId, roomId) ?? 0) + 1);
    if (this.pairVersions.size > MAX_COUNTED) this.forgetCounts();
  }

  /**
   * A notification for the pair was committed: a kept count takes it in (one more, the newest
   * now), so that a room busy with messages is not counted again at every /sync.
   */
  private pairNotified(userId: string, roomId: string, highlight: boolean, ordering: number, nothingAtVersion: number | undefined): void {
    const roomVersion = this.roomVersions.get(roomId) ?? 0;
    // A pair that had nothing unread before this batch counts from zero (its first notification of
    // the batch): no query needed for it. Zero as of the room version when that was known: a receipt
    // since makes it a count to take again.
    const kept = nothingAtVersion !== undefined ? { roomVersion: nothingAtVersion, counts: NO_COUNTS, recent: [], base: 0 } : this.counted.get(userId, roomId);
    this.pairChanged(userId, roomId);
    if (!kept || kept.roomVersion !== roomVersion) return;
    const counts = kept.counts;
    // A count taken after the commit may hold this notification already (a room's notifications
    // come in stream order, so it would be its newest): then it is counted again when asked.
    if (counts.newest >= ordering) return;
    const recent = [...kept.recent, { ordering, highlight }];
    // Past the cap, the oldest ones fold into the base: a count before them needs a query again.
    const base = recent.length > MAX_RECENT ? recent.shift()!.ordering : kept.base;
    this.counted.set(userId, roomId, {
      roomVersion,
      counts: { notifications: counts.notifications + 1, highlights: counts.highlights + (highlight ? 1 : 0), newest: ordering },
      recent,
      base,
    });
  }

  private noteNothingUnread(userId: string, roomId: string): void {
    if (this.nothingUnread.size >= MAX_NOTHING_UNREAD) this.nothingUnread.clear();
    this.nothingUnread.set(userId, roomId, true);
  }

  private forgetCounts(): void {
    this.counted.clear();
    this.pairVersions.clear();
    this.roomVersions.clear();
    this.countsEpoch++;
  }

  start(): void {
    this.schedulePrune();
  }

  async stop(): Promise<void> {
    this.pruning?.cancel();
    this.pruning = undefined;
    await this.pruneRun;
  }

  /**
   * The room engine's listener: runs after the event is committed and before the write that made it
   * resolves, so the counts are stored before the /sync the event wakes reads them.
   */
  eventPersisted(roomId: string, stored: StoredEvent, pdu: JsonObject): Promise<void> {
    return this.eventsPersisted(roomId, [{ stored, pdu }]);
  }

  /**
   * The same for several events of one room committed together (a federation transaction's): the
   * members are read once (again after a member event), and one commit holds every mark and
   * notification of the lot. Events whose notifications went into their own transaction
   * (eventCompanion) are passed over.
   */
  async eventsPersisted(roomId: string, events: readonly { stored: StoredEvent; pdu: JsonObject }[]): Promise<void> {
    try {
      const rest = this.writtenWithEvent.size === 0 ? events : events.filter(({ stored }) => !this.writtenWithEvent.delete(stored.eventId));
      if (rest.length === 0) return;
      // Only new events of the timeline notify: not outliers, rejected or soft-failed events, nor
      // history fetched from other servers (stored below stream ordering 1).
      const timeline = rest.filter(({ stored }) => stored.streamOrdering !== undefined && stored.streamOrdering > 0 && !stored.outlier && stored.rejectedReason === undefined && !stored.softFailed);
      const planned = timeline.map(({ stored, pdu }) => ({ eventId: stored.eventId, sender: stored.sender, type: stored.type, stateKey: stored.stateKey, pdu }));
      const orderings = timeline.map(({ stored }) => stored.streamOrdering!);
      const plan = await this.plan(roomId, planned, orderings);
      if (plan.marks.size === 0 && plan.notified.length === 0) return;
      let committed = false;
      try {
        // ~2 index pages a row: a room of thousands of local members commits alone (TransactionOptions).
        await this.deps.store.atomically(async () => this.write(plan, orderings), { alone: plan.notified.length >= BULK_NOTIFICATIONS });
        committed = true;
      } finally {
        this.settle(plan, committed ? orderings : undefined);
      }
    } finally {
      let newest = this.processedUpTo.get(roomId) ?? 0;
      for (const { stored } of events) if (stored.streamOrdering !== undefined && stored.streamOrdering > newest) newest = stored.streamOrdering;
      if (newest > 0) this.processedUpTo.set(roomId, newest);
    }
  }

  /**
   * The room engine's companion (RoomEngine.setCompanion): the notifications of a local event that
   * changes no state, worked out before its transaction (the room's members and rules are the same
   * before and after it) and written inside it, so that the send commits once instead of twice (one
   * fsync less for the sender to wait for; Synapse too writes push actions with the event). A room of
   * thousands of local members is left to eventsPersisted: that is bulk work, committed alone.
   */
  readonly eventCompanion: EventCompanion = {
    prepare: async (roomId, event) => {
      const members = await this.roomMembers(roomId);
      if (members.localJoined.length > BULK_NOTIFICATIONS) return undefined;
      const plan = await this.plan(roomId, [{ ...event, stateKey: undefined }], [undefined], members);
      let ordering: number | undefined;
      return {
        write: async (stored) => {
          // Not in the timeline (no local event is kept otherwise): nothing to notify, as eventsPersisted finds too.
          if (stored.streamOrdering === undefined || stored.streamOrdering <= 0) return;
          ordering = stored.streamOrdering;
          if (plan.marks.size > 0 || plan.notified.length > 0) await this.write(plan, [ordering]);
          this.writtenWithEvent.add(event.eventId);
        },
        settled: (committed) => {
          if (!committed) this.writtenWithEvent.delete(event.eventId);
          this.settle(plan, committed && ordering !== undefined ? [ordering] : undefined);
        },
      };
    },
  };

  /**
   * What a batch of events of one room changes (everything read first): the read marks that move
   * and the notifications to add. `orderings`: the events' stream positions, when they are known
   * (committed already); before the commit nothing of the room lies past them. `members`: the room's,
   * when the caller has read them already.
   */
  private async plan(roomId: string, events: readonly PlannedEvent[], orderings: readonly (number | undefined)[], members?: RoomMembers): Promise<NotificationPlan> {
    const local = this.isLocal;
    const plan: NotificationPlan = { roomId, eventIds: events.map((e) => e.eventId), marks: new Map(), notified: [], notifiedUsers: new Set(), fromNothing: new Map() };
    const { marks, notified, notifiedUsers, fromNothing } = plan;
    // Worked out once for the batch (not per event: a federation transaction brings up to 50 events
    // into rooms of thousands of members), again after a state event.
    let rules: { version: RoomVersion; state: AuthStateLookup } | undefined;
    for (let index = 0; index < events.length; index++) {
      const { sender, type, stateKey, pdu } = events[index]!;
      const content = isJsonObject(pdu.content) ? pdu.content : {};

      // Sending an event moves the sender's read receipt to it ("Marking notifications as read"), and
      // a room one has left no longer counts (as Synapse, whose badge counts the rooms one is in).
      const readers: string[] = [];
      if (local(sender)) readers.push(sender);
      if (type === "m.room.member" && stateKey !== undefined && local(stateKey) && DEPARTED.has(String(content.membership))) readers.push(stateKey);
      // Moving a read mark changes a count only when unread notifications lie behind it. A sender
      // with none in the room (the usual case) costs a read, not a write: most sends then commit
      // nothing here, instead of a second commit after their own.
      for (const userId of readers) {
        if (!marks.has(userId) && this.nothingUnread.has(userId, roomId)) continue;
        // A notification of this batch, not committed yet, is unread too: the count cannot see it.
        if (marks.has(userId) || notifiedUsers.has(userId) || (await this.countsOf(userId, roomId, orderings[index])).notifications > 0) marks.set(userId, index);
        else this.noteNothingUnread(userId, roomId);
      }

      members ??= await this.roomMembers(roomId);
      const recipients = members.localJoined.filter((userId) => userId !== sender);
      // An invitee is not in the room yet, but the invite is for them (.m.rule.invite_for_me).
      if (type === "m.room.member" && content.membership === "invite" && stateKey !== undefined && stateKey !== sender && local(stateKey) && !recipients.includes(stateKey)) {
        recipients.push(stateKey);
      }
      if (recipients.length > 0) {
        rules ??= await this.roomRules(roomId);
        const room = await this.roomContext(roomId, sender, members.joined, rules);
        const ts = this.deps.clock.now();
        for (const userId of recipients) {
          const ruleset = await this.deps.pushRules.ruleset(userId);
          const displayName = usesDisplayName(ruleset) ? await this.displayName(roomId, userId) : undefined;
          const evaluation = evaluatePushRules(ruleset, pdu, { ...room, userId, displayName });
          if (!evaluation?.notify) continue;
          notified.push({ userId, event: index, ts, actions: evaluation.actions, highlight: evaluation.highlight });
          notifiedUsers.add(userId);
          if (this.nothingUnread.delete(userId, roomId) && !marks.has(userId)) fromNothing.set(userId, this.roomVersions.get(roomId) ?? 0);
        }
      }
      // Membership (and the power levels the rules read) may change with a state event.
      if (stateKey !== undefined) members = rules = undefined;
    }
    return plan;
  }

  /** A plan's marks and notifications, at the events' positions; in the caller's transaction. */
  private async write(plan: NotificationPlan, orderings: readonly number[]): Promise<void> {
    const { roomId } = plan;
    for (const [userId, index] of plan.marks) await this.deps.notifications.markRead(userId, roomId, orderings[index]!);
    const rows: NewNotification[] = [];
    for (const n of plan.notified) {
      rows.push({ userId: n.userId, roomId, eventId: plan.eventIds[n.event]!, eventStreamOrdering: orderings[n.event]!, ts: n.ts, actions: n.actions, highlight: n.highlight });
    }
    await this.deps.notifications.addNotifications(rows);
  }

  /**
   * After a plan's writes are committed (`orderings`) or failed (undefined): the counts they change
   * are forgotten or taken forward (a count read before the commit is not kept), and the listeners hear.
   */
  private settle(plan: NotificationPlan, orderings: readonly number[] | undefined): void {
    const { roomId, marks, notified, notifiedUsers, fromNothing } = plan;
    const committed = orderings !== undefined;
    for (const n of notified) {
      const nothingAtVersion = fromNothing.get(n.userId);
      fromNothing.delete(n.userId);
      if (committed) this.pairNotified(n.userId, roomId, n.highlight, orderings[n.event]!, nothingAtVersion);
      else this.pairChanged(n.userId, roomId);
    }
    // After the notifications: a read mark of the batch may lie past some of them, so whatever
    // count they made is not the user's.
    for (const userId of marks.keys()) this.pairChanged(userId, roomId);
    if (!committed) return;
    // A read mark at the room's newest event leaves nothing unread: this runs in the room's write
    // queue, so no later event of the room (nor a notification of one) exists yet. Only for users
    // this batch did not notify.
    for (const userId of marks.keys()) {
      if (!notifiedUsers.has(userId)) this.noteNothingUnread(userId, roomId);
    }
    // Each listener isolated: this runs after a commit, which no listener may turn into a failure.
    const tell = (listener: (userId: string) => void, userId: string) => {
      try {
        listener(userId);
      } catch (error) {
        this.deps.logger.log("error", "a notification listener failed", { room_id: roomId, user_id: userId, error: String((error as Error)?.stack ?? error) });
      }
    };
    for (const userId of marks.keys()) for (const listener of this.readListeners) tell(listener, userId);
    for (const n of notified) for (const listener of this.notifiedListeners) tell(listener, n.userId);
  }

  /**
   * For /sync: the unread notifications of a joined room, and how many of them highlight. With
   * `upToStreamOrdering` (the sync's event position), only events up to it count, so the counts
   * match the timeline the same answer carries.
   */
  async unreadCounts(userId: string, roomId: string, upToStreamOrdering?: number, newestShown?: number): Promise<UnreadNotificationCounts> {
    // An event is committed before its notifications are worked out and written (after the commit,
    // still inside the room's write). A /sync that shows an event whose notifications are not
    // written yet waits for that write to end: counted before, the answer would carry the event
    // without its notification, and the counts would stay wrong until the room's next event.
    if (newestShown !== undefined && (this.processedUpTo.get(roomId) ?? (await this.processedAtStart)) < newestShown) await this.deps.roomWriteRunning?.(roomId);
    // Known to have nothing unread: every /sync asks this for every room it shows.
    if (this.nothingUnread.has(userId, roomId)) return { notification_count: 0, highlight_count: 0 };
    const counts = await this.countsOf(userId, roomId, upToStreamOrdering);
    return { notification_count: counts.notifications, highlight_count: counts.highlights };
  }

  /** The store's count, or the one counted before when nothing changed since and it holds for this position. */
  private async countsOf(userId: string, roomId: string, upToStreamOrdering: number | undefined): Promise<UnreadCounts> {
    const roomVersion = this.roomVersions.get(roomId) ?? 0;
    const hit = this.counted.get(userId, roomId);
    // Counted without a bound: it holds for any position at or after its newest notification, and
    // for a position before the recent notifications it took in one by one, less those.
    if (hit && hit.roomVersion === roomVersion) {
      const counts = keptUpTo(hit, upToStreamOrdering);
      if (counts) return counts;
    }
    const epoch = this.countsEpoch;
    const pairVersion = this.pairVersions.get(userId, roomId) ?? 0;
    const all = await this.deps.notifications.unreadCounts(userId, roomId);
    if (epoch === this.countsEpoch && pairVersion === (this.pairVersions.get(userId, roomId) ?? 0) && roomVersion === (this.roomVersions.get(roomId) ?? 0)) {
      if (this.counted.size >= MAX_COUNTED) this.forgetCounts();
      else this.counted.set(userId, roomId, { roomVersion, counts: all, recent: [], base: all.newest });
    }
    if (upToStreamOrdering === undefined || upToStreamOrdering >= all.newest) return all;
    return this.deps.notifications.unreadCounts(userId, roomId, upToStreamOrdering);
  }

  /** Unread notifications in all rooms together (the `unread` count pushers send). */
  unreadTotal(userId: string): Promise<number> {
    return this.deps.notifications.unreadTotal(userId);
  }

  /**
   * GET /notifications: newest first, `from` being the next_token of an earlier page. next_token is
   * given only when there are more.
   */
  async list(userId: string, options: { from?: string; limit?: number; only?: string }): Promise<{ notifications: NotificationEntry[]; next_token?: string }> {
    let before: number | undefined;
    if (options.from !== undefined) {
      if (!/^[0-9]{1,15}$/.test(options.from)) throw new MatrixError("M_INVALID_PARAM", "Invalid 'from' token");
      before = Number(options.from);
    }
    const limit = Math.min(options.limit ?? DEFAULT_LIMIT, MAX_LIMIT);
    const rows = await this.deps.notifications.notificationsBefore(userId, before, limit + 1, options.only === "highlight");
    const page = rows.slice(0, limit);
    const notifications: NotificationEntry[] = [];
    for (const row of page) {
      const stored = await this.deps.store.getEvent(row.eventId);
      const event = stored && (await this.formatter.format(stored, { userId }));
      if (!event) continue;
      // Portier's rules are all global; the key is there because clients (and sytest) look for it.
      notifications.push({ actions: row.actions, event, profile_tag: "", read: row.read, room_id: row.roomId, ts: row.ts });
    }
    return rows.length > limit ? { notifications, next_token: String(page.at(-1)!.streamId) } : { notifications };
  }

  /**
   * The room's joined local users and joined count, as of its current state: kept per room while
   * its current state snapshot stays the same (a busy room's members are not read again for every
   * federation transaction; eventsPersisted runs after the commit, in the room's write queue).
   */
  private async roomMembers(roomId: string): Promise<RoomMembers> {
    const snapshot = await this.deps.store.currentStateSnapshot(roomId);
    const kept = this.members.get(roomId);
    if (kept && snapshot !== undefined && kept.snapshot === snapshot) return kept;
    const memberships = await this.deps.store.currentMemberships(roomId);
    let joined = 0;
    const localJoined: string[] = [];
    for (const [userId, membership] of memberships) {
      if (membership !== "join") continue;
      joined++;
      if (this.isLocal(userId)) localJoined.push(userId);
    }
    const members: RoomMembers = { snapshot, localJoined, joined };
    this.members.delete(roomId);
    if (snapshot !== undefined) this.members.set(roomId, members);
    if (this.members.size > MAX_ROOM_MEMBERS) this.members.delete(this.members.keys().next().value as string);
    return members;
  }

  /** What the conditions need of the room, read once per event for all its recipients. */
  private async roomContext(roomId: string, sender: string, joined: number, cached?: { version: RoomVersion; state: AuthStateLookup }): Promise<Omit<PushContext, "userId" | "displayName">> {
    const { version, state } = cached ?? (await this.roomRules(roomId));
    return {
      roomMemberCount: joined,
      senderPowerLevel: userPowerLevel(sender, state, version),
      notificationPowerLevel: (key) => notificationLevel(key, state, version),
    };
  }

  /** The room's version and the current state the rules read (power levels), for the events of a batch. */
  private async roomRules(roomId: string): Promise<{ version: RoomVersion; state: AuthStateLookup }> {
    return { version: await this.deps.access.versionOf(roomId), state: await this.deps.access.currentAuthState(roomId) };
  }

  private async displayName(roomId: string, userId: string): Promise<string | undefined> {
    const member = await this.deps.access.engine.currentStateEvent(roomId, "m.room.member", userId);
    const name = member?.content.displayname;
    return typeof name === "string" ? name : undefined;
  }

  private schedulePrune(): void {
    this.pruning = this.deps.timer.schedule(PRUNE_EVERY_MS, () => {
      this.pruneRun = this.deps.notifications
        .deleteReadNotificationsBefore(this.deps.clock.now() - (this.deps.keepReadMs ?? THIRTY_DAYS_MS))
        .then(
          () => undefined,
          (error) => this.deps.logger.log("warn", "could not delete old notifications", { error: String(error) }),
        )
        .finally(() => {
          this.pruneRun = undefined;
          if (this.pruning) this.schedulePrune();
        });
    });
  }
}
