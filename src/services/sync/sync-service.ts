// GET /sync (client-server-api "Syncing"): the initial snapshot of a user's rooms and account data,
// then, from a `since` token, what changed — room timelines (limited by the filter, with the state
// at the timeline's start when limited), invites, knocks, leaves, typing, receipts and account data.
// A sync with a timeout waits on the notifier until something concerns the user.
//
// One answer first reads the positions it will put in next_batch, then the data. Writes may land
// in between, so the data is taken as of those positions where it can be: timelines, receipts and
// account data are cut there, the user's rooms are listed with their membership at the event
// position, and a member event of the user written later waits for the next sync. What cannot be
// cut (a room's current state) may run ahead of the token: a change can then come twice, never
// not at all.
//
// Rooms this server does not hold (a federation invite, a knock through a resident server, and their
// end) come from the out-of-band memberships (rooms/out-of-band.ts), whose stream the token also
// carries. Where the user also has a membership in a held room of that id, the newer of the two is
// listed: a record holds the event stream's position when it was written, which orders it against
// the user's member events.
//
// End-to-end encryption (e2ee/): to-device messages for the syncing device, the users whose device
// lists changed, and the device's one-time and fallback key state come from the e2ee section, whose
// stream position the token also carries. A device's messages up to its `since` position are
// acknowledged and deleted; when more are waiting than one answer gives, the token stops at the
// last message given, and the next sync brings the rest.
import { randomBytes } from "node:crypto";
import { MatrixError } from "../../protocol/errors";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { roomEventFromPdu } from "../../protocol/pdu";
import { stateKey } from "../../protocol/events";
import { roomVersion, type RoomVersion } from "../../protocol/room-versions";
import type { RoomClientStore, RoomEventStore, StoredEvent, StreamHeadStore } from "../../storage/stores";
import { mapLimited, type Clock } from "../runtime";
import type { AccountDataService } from "../accounts/account-data-service";
import type { Filter, FilterService } from "../accounts/filter-service";
import type { PushRuleService } from "../accounts/push-rule-service";
import { type ClientEvent, ClientEventFormatter, clientEventFromPdu, type FormatOptions, type Viewer } from "../rooms/client-events";
import type { ReceiptService, TypingService } from "../rooms/ephemeral";
import { VisibilityMemo, type RoomAccess } from "../rooms/room-access";
import type { OutOfBandMembership, OutOfBandMemberships } from "../rooms/out-of-band";
import type { RoomEngine } from "../rooms/room-engine";
import { streamToken } from "../rooms/stream-token";
import type { SyncNotifier } from "./notifier";
import { syncFilter, type SectionFilter, type SyncFilter } from "./sync-filter";
import { formatSyncToken, parseSyncToken, type SyncPosition } from "./sync-token";
import { newestOrdering, timelineWindow, type TimelineWindow } from "./timeline-window";
import { heldStrippedState, outOfBandStrippedState } from "./stripped-state";
import { SentMembers } from "./sent-members";

/** The longest a sync may wait; a longer timeout is cut to this. */
export const MAX_SYNC_TIMEOUT_MS = 120_000;
/** How often /sync reads the user's room lists when events keep landing meanwhile, before it takes the last reading. */
const ROOM_LIST_READS = 3;
/** Joined rooms put together at the same time in one answer. */
const ROOMS_AT_ONCE = 8;

import type { NotificationService } from "../push/notification-service";
import type { PresenceService, PresenceState, PresenceStatus } from "../presence/presence-service";
import { STRIPPED_STATE_TYPES, type StrippedState } from "../rooms/client-events";
export { STRIPPED_STATE_TYPES };

export interface SyncRequest {
  userId: string;
  deviceId?: string;
  since?: string;
  /** An uploaded filter's id, or a filter the caller has parsed and validated. */
  filter?: string | Filter;
  fullState?: boolean;
  timeoutMs?: number;
  /** Aborted when the client goes away: a waiting sync then ends at once. */
  signal?: AbortSignal;
  /** set_presence: what syncing says of the user (online when absent). */
  setPresence?: PresenceState;
}

type SyncEvent = Omit<ClientEvent, "room_id">;

export interface JoinedRoomSync {
  summary?: { "m.heroes"?: string[]; "m.joined_member_count": number; "m.invited_member_count": number };
  timeline: { events: SyncEvent[]; limited: boolean; prev_batch: string };
  state: { events: SyncEvent[] };
  ephemeral: { events: { type: string; content: JsonObject }[] };
  account_data: { events: { type: string; content: Record<string, unknown> }[] };
  unread_notifications: { notification_count: number; highlight_count: number };
}

export interface LeftRoomSync {
  /** prev_batch is left out when there is nothing earlier to ask /messages for (a room we do not hold). */
  timeline: { events: SyncEvent[]; limited: boolean; prev_batch?: string };
  state: { events: SyncEvent[] };
  account_data: { events: { type: string; content: Record<string, unknown> }[] };
}

export interface SyncResponse {
  next_batch: string;
  rooms: {
    join: Record<string, JoinedRoomSync>;
    invite: Record<string, { invite_state: { events: StrippedState[] } }>;
    knock: Record<string, { knock_state: { events: StrippedState[] } }>;
    leave: Record<string, LeftRoomSync>;
  };
  account_data: { events: { type: string; content: Record<string, unknown> }[] };
  presence: { events: { type: "m.presence"; sender: string; content: PresenceStatus }[] };
  to_device: { events: JsonObject[] };
  device_lists: { changed: string[]; left: string[] };
  device_one_time_keys_count: Record<string, number>;
  device_unused_fallback_key_types: string[];
}

/** What /sync needs of end-to-end encryption (e2ee/e2ee-sync.ts). */
export interface SyncE2ee {
  section(input: {
    userId: string;
    deviceId: string | undefined;
    since: { events: number; e2ee: number } | undefined;
    now: { events: number; e2ee: number };
    /** `moved`: when known, the rooms with anything new since `since` (the others cannot hold a member event in between). */
    rooms: { join: readonly string[]; left: readonly string[]; moved?: ReadonlySet<string> };
  }): Promise<{ position: number; toDevice: JsonObject[]; changed: string[]; left: string[]; oneTimeKeyCounts: Record<string, number>; unusedFallbackKeyTypes: string[] }>;
}

export interface SyncDeps {
  engine: RoomEngine;
  store: RoomEventStore;
  /** Every stream's present position in one read. */
  heads: StreamHeadStore;
  clientStore: RoomClientStore;
  access: RoomAccess;
  typing: TypingService;
  receipts: ReceiptService;
  accountData: AccountDataService;
  pushRules: PushRuleService;
  /** Unread notification and highlight counts per room (push rules evaluated as events arrive). */
  notifications?: Pick<NotificationService, "unreadCounts">;
  filters: FilterService;
  notifier: SyncNotifier;
  /** Memberships in rooms this server does not hold; without it, /sync lists held rooms only. */
  outOfBand?: Pick<OutOfBandMemberships, "forUser">;
  /** To-device messages, device lists and key counts; without it those sections stay empty. */
  e2ee?: SyncE2ee;
  presence?: Pick<PresenceService, "status" | "changedSince" | "currentSerial" | "synced">;
  clock: Clock;
}

/** What one answer is computed from: the positions now, the `since` positions, the user and filter. */
interface SyncContext {
  viewer: Viewer & { userId: string };
  now: SyncPosition;
  since: Omit<SyncPosition, "boot"> | undefined;
  fullState: boolean;
  filter: SyncFilter;
  /** All of the user's account data, read once when a newly joined room needs it. */
  allAccountData?: ReturnType<AccountDataService["since"]>;
  /** Users in the viewer's m.ignored_user_list: their events and invites are left out. */
  ignored: ReadonlySet<string>;
  /** The stream position of the user's current membership event per room, as the room lists were read. */
  memberOrderings?: ReadonlyMap<string, number | undefined>;
  /**
   * Users whose presence an incremental answer gives even when it did not change: the members of
   * rooms the user newly joined, and those who newly joined the user's rooms (filled per room).
   */
  presenceOf: Set<string>;
  /** History visibility looked up once per state snapshot and room for all of this answer's timelines. */
  visibility: VisibilityMemo;
}

type TimelineSlice = TimelineWindow;

export class SyncService {
  /** Names this process in tokens: typing serials of another boot mean nothing here. */
  readonly boot = randomBytes(6).readUIntBE(0, 6).toString(36);
  private readonly formatter: ClientEventFormatter;
  private readonly sentMembers = new SentMembers();

  constructor(private readonly deps: SyncDeps) {
    this.formatter = new ClientEventFormatter(deps.store, deps.clientStore, deps.access, deps.clock);
  }

  async sync(request: SyncRequest): Promise<SyncResponse> {
    const since = request.since === undefined ? undefined : parseSyncToken(request.since);
    const filter = syncFilter(await this.resolveFilter(request.userId, request.filter));
    const fullState = request.fullState === true;
    // full_state answers at once; so does an initial sync (there is always something to say).
    const timeout = since === undefined || fullState ? 0 : Math.max(0, Math.min(MAX_SYNC_TIMEOUT_MS, request.timeoutMs ?? 0));
    const viewer = { userId: request.userId, deviceId: request.deviceId };
    this.deps.presence?.synced(request.userId, request.setPresence);
    const compute = () => this.compute(viewer, since, filter, fullState);
    if (timeout === 0) return compute();

    const deadline = performance.now() + timeout;
    for (;;) {
      // Register before computing, so that a change landing in between wakes this wait.
      const waiter = this.deps.notifier.waitFor(request.userId, deadline - performance.now(), request.signal);
      const response = await compute();
      if (!isEmpty(response)) {
        waiter.cancel();
        return response;
      }
      const outcome = await waiter.promise;
      if (outcome === "aborted" || outcome === "stopped") return response;
      if (outcome === "timeout" || deadline - performance.now() <= 0) return compute();
    }
  }

  /** The filter a request names: an uploaded one by id (400 M_INVALID_PARAM when unknown) or inline. */
  private async resolveFilter(userId: string, filter: string | Filter | undefined): Promise<Filter | undefined> {
    if (filter === undefined || typeof filter === "object") return filter;
    try {
      return await this.deps.filters.get(userId, userId, filter);
    } catch (error) {
      if (error instanceof MatrixError && error.errcode === "M_NOT_FOUND") throw new MatrixError("M_INVALID_PARAM", "No such filter");
      throw error;
    }
  }

  private async compute(viewer: Viewer & { userId: string }, since: SyncPosition | undefined, filter: SyncFilter, fullState: boolean): Promise<SyncResponse> {
    const { store, typing } = this.deps;
    const userId = viewer.userId;
    // Every position before any data (see the top of this file). The user's rooms by membership are
    // read with the event position, and again when an event landed in between, so that the lists
    // are those at that position (a membership change must be listed once, not zero times).
    const heads = await this.deps.heads.heads();
    let events = heads.events;
    let now: SyncPosition = {
      ...heads,
      typing: typing.currentSerial(),
      presence: this.deps.presence?.currentSerial() ?? 0,
      boot: this.boot,
    };
    // Nothing moved in any stream since the token: no room, account data or presence can have
    // changed (a membership change is an event), so only the per-device end-to-end part is read.
    if (since && !fullState && unmoved(since, now)) {
      const response = emptyResponse(now);
      await this.addE2ee(response, viewer, since, now, { join: [], left: [] });
      return response;
    }
    let rooms = await this.roomsByMembership(userId);
    for (let attempt = 1; attempt < ROOM_LIST_READS; attempt++) {
      const after = await store.maxStreamOrdering();
      if (after === events) break;
      now = { ...now, events: (events = after) };
      rooms = await this.roomsByMembership(userId);
    }
    // Positions past ours (a token of a wiped database) read as ours; a typing serial of another
    // boot, or one we never issued, as 0.
    const from = since && {
      events: Math.min(since.events, now.events),
      accountData: Math.min(since.accountData, now.accountData),
      receipts: Math.min(since.receipts, now.receipts),
      typing: since.boot === this.boot && since.typing <= now.typing ? since.typing : 0,
      outOfBand: Math.min(since.outOfBand ?? 0, now.outOfBand ?? 0),
      e2ee: Math.min(since.e2ee ?? 0, now.e2ee ?? 0),
      presence: since.boot === this.boot && (since.presence ?? 0) <= (now.presence ?? 0) ? (since.presence ?? 0) : 0,
    };
    const ctx: SyncContext = { viewer, now, since: from, fullState, filter, ignored: await this.deps.accountData.ignoredUsers(userId), presenceOf: new Set(), memberOrderings: rooms.memberOrderings, visibility: new VisibilityMemo() };
    // An initial sync: the client starts from nothing, whatever it was sent before.
    if (from === undefined) this.sentMembers.reset(userId, viewer.deviceId);
    const response = emptyResponse(now);

    const changedData = await this.accountDataUpTo(viewer.userId, from?.accountData ?? 0, now.accountData);
    for (const entry of changedData.global) {
      if (entry.type === "m.push_rules" && from === undefined) continue; // added fresh below
      if (filter.accountData.allowsType(entry.type)) response.account_data.events.push({ type: entry.type, content: entry.content });
    }
    if (from === undefined && filter.accountData.allowsType("m.push_rules")) {
      response.account_data.events.push({ type: "m.push_rules", content: await this.deps.pushRules.accountDataContent(viewer.userId) });
    }

    // Memberships in rooms we do not hold, and the held rooms where such a membership is the newer one.
    const outOfBand = await this.outOfBandAtNow(ctx, rooms);

    // An incremental sync visits only the joined rooms where something moved since the token: an
    // event (a join, so a newly joined room, included), a receipt, typing, room account data. The
    // rest cost nothing, however many rooms the user is in.
    const moved = from !== undefined && !fullState ? await this.roomsMovedSince(from, now, changedData.rooms) : undefined;
    const visited = rooms.join.filter((roomId) => {
      if (!filter.includesRoom(roomId) || outOfBand.replacesHeld.has(roomId)) return false;
      return !moved || moved.has(roomId) || this.deps.typing.typingSince(roomId, from!.typing);
    });
    // A few rooms at a time: on PostgreSQL each room's reads are round trips, which then overlap
    // (an initial sync of 50 rooms made ~100 of them one after another); SQLite answers at once.
    const joined = await mapLimited(visited, ROOMS_AT_ONCE, (roomId) => this.joinedRoom(ctx, roomId, changedData.rooms.get(roomId) ?? []));
    for (const [i, roomId] of visited.entries()) {
      const room = joined[i];
      if (room) response.rooms.join[roomId] = room;
    }
    for (const membership of ["invite", "knock"] as const) {
      for (const roomId of rooms[membership]) {
        if (!filter.includesRoom(roomId) || outOfBand.replacesHeld.has(roomId)) continue;
        const events = await this.strippedStateIfChanged(ctx, roomId);
        if (!events) continue;
        // An invite from an ignored user is not shown (client-server-api "Ignoring Users").
        if (membership === "invite" && events.some((e) => e.type === "m.room.member" && e.state_key === userId && ctx.ignored.has(e.sender))) continue;
        if (membership === "invite") response.rooms.invite[roomId] = { invite_state: { events } };
        else response.rooms.knock[roomId] = { knock_state: { events } };
      }
    }
    response.presence.events = await this.presenceSince(userId, from?.presence ?? 0, rooms.join, filter, ctx.presenceOf);

    for (const roomId of rooms.left) {
      if (!filter.includesRoom(roomId) || outOfBand.replacesHeld.has(roomId) || (await this.deps.clientStore.isForgotten(userId, roomId))) continue;
      const room = await this.leftRoom(ctx, roomId, changedData.rooms.get(roomId) ?? []);
      if (room) response.rooms.leave[roomId] = room;
    }

    for (const record of outOfBand.standing) {
      const { roomId } = record;
      if (!filter.includesRoom(roomId)) continue;
      const changedSince = from !== undefined && record.streamPosition > from.outOfBand;
      if (record.membership === "invite" || record.membership === "knock") {
        if (from !== undefined && !changedSince && !fullState) continue;
        const events = outOfBandStrippedState(record);
        if (record.membership === "invite") response.rooms.invite[roomId] = { invite_state: { events } };
        else response.rooms.knock[roomId] = { knock_state: { events } };
      } else {
        // As for held rooms: an incremental sync lists those left since; an initial one only on include_leave.
        if (!changedSince && !((from === undefined || fullState) && filter.includeLeave)) continue;
        if (await this.deps.clientStore.isForgotten(userId, roomId)) continue;
        response.rooms.leave[roomId] = await this.outOfBandLeftRoom(ctx, record, changedData.rooms.get(roomId) ?? []);
      }
    }

    await this.addE2ee(response, viewer, from, now, { join: rooms.join, left: rooms.left, moved });
    return response;
  }

  /** To-device messages, device list changes and key counts for the viewer's device. */
  private async addE2ee(response: SyncResponse, viewer: Viewer & { userId: string }, from: Pick<SyncPosition, "events" | "e2ee"> | undefined, now: SyncPosition, rooms: { join: string[]; left: string[]; moved?: ReadonlySet<string> }): Promise<void> {
    if (!this.deps.e2ee) return;
    const e2ee = await this.deps.e2ee.section({
      userId: viewer.userId,
      deviceId: viewer.deviceId,
      since: from && { events: from.events, e2ee: from.e2ee ?? 0 },
      now: { events: now.events, e2ee: now.e2ee ?? 0 },
      rooms,
    });
    response.to_device.events = e2ee.toDevice;
    response.device_lists = { changed: e2ee.changed, left: e2ee.left };
    response.device_one_time_keys_count = e2ee.oneTimeKeyCounts;
    response.device_unused_fallback_key_types = e2ee.unusedFallbackKeyTypes;
    // Stops short of `now` when more to-device messages wait than one answer gives.
    response.next_batch = formatSyncToken({ ...now, e2ee: e2ee.position });
  }

  /**
   * The user's out-of-band memberships as of the answer's position, less those a membership in a
   * held room of the same id has replaced since (the user joined the room for real); and the held
   * rooms where the out-of-band membership is the newer one, which are listed by it instead.
   */
  private async outOfBandAtNow(
    ctx: SyncContext,
    held: Awaited<ReturnType<SyncService["roomsByMembership"]>>,
  ): Promise<{ standing: OutOfBandMembership[]; replacesHeld: Set<string> }> {
    const standing: OutOfBandMembership[] = [];
    const replacesHeld = new Set<string>();
    const source = this.deps.outOfBand;
    const end = ctx.now.outOfBand ?? 0;
    if (!source || end === 0) return { standing, replacesHeld };
    const heldRooms = new Set([...held.join, ...held.invite, ...held.knock, ...held.left]);
    for (const record of await source.forUser(ctx.viewer.userId)) {
      // Written after this answer's position: the next sync lists it.
      if (record.streamPosition > end) continue;
      if (heldRooms.has(record.roomId)) {
        const member = await this.memberEventAtNow(ctx, record.roomId);
        if (member?.streamOrdering !== undefined && member.streamOrdering > record.eventStreamPosition) continue;
        replacesHeld.add(record.roomId);
      }
      standing.push(record);
    }
    return { standing, replacesHeld };
  }

  /**
   * A left room we do not hold: no state (the user never joined it here) and a timeline of just the
   * leave (or ban) event, with nothing earlier to paginate to.
   */
  private async outOfBandLeftRoom(ctx: SyncContext, record: OutOfBandMembership, changedRoomData: { type: string; content: Record<string, unknown> }[]): Promise<LeftRoomSync> {
    const events: SyncEvent[] = [];
    let limited = false;
    const version = roomVersion(record.roomVersion);
    const stored = version && storedOutOfBandEvent(record, version);
    const section = ctx.filter.timeline;
    if (version && stored && section.includesRoom(record.roomId) && (await section.allows(stored, async () => record.event.content as Record<string, unknown>))) {
      if (ctx.filter.timelineLimit === 0) limited = true;
      else {
        const { room_id: _roomId, ...event } = clientEventFromPdu(record.event, stored, version, { now: this.deps.clock.now() });
        events.push(event);
      }
    }
    const accountData = ctx.filter.roomAccountData.includesRoom(record.roomId)
      ? changedRoomData.filter((e) => ctx.filter.roomAccountData.allowsType(e.type)).map((e) => ({ type: e.type, content: e.content }))
      : [];
    return { timeline: { events, limited }, state: { events: [] }, account_data: { events: accountData } };
  }

  /** The user's rooms by current membership (left: leave and ban), with the stream position of each membership, from one read. */
  private async roomsByMembership(userId: string): Promise<{ join: string[]; invite: string[]; knock: string[]; left: string[]; memberOrderings: Map<string, number | undefined> }> {
    const lists = { join: [] as string[], invite: [] as string[], knock: [] as string[], left: [] as string[], memberOrderings: new Map<string, number | undefined>() };
    for (const { roomId, membership, streamOrdering } of await this.deps.store.roomsOfMember(userId)) {
      if (membership === "join" || membership === "invite" || membership === "knock") lists[membership].push(roomId);
      else lists.left.push(roomId);
      lists.memberOrderings.set(roomId, streamOrdering);
    }
    return lists;
  }

  /** Account data written in (sinceExclusive, untilInclusive]; a later write of an entry waits for the next sync. */
  private async accountDataUpTo(userId: string, sinceExclusive: number, untilInclusive: number): Promise<Awaited<ReturnType<AccountDataService["since"]>>> {
    const all = await this.deps.accountData.since(userId, sinceExclusive);
    const upTo = <T extends { streamPosition: number }>(entries: T[]) => entries.filter((e) => e.streamPosition <= untilInclusive);
    const rooms = new Map<string, (typeof all.global)[number][]>();
    for (const [roomId, entries] of all.rooms) {
      const kept = upTo(entries);
      if (kept.length > 0) rooms.set(roomId, kept);
    }
    return { global: upTo(all.global), rooms };
  }

  /**
   * The user's member event as of the answer's event position: the current one, or, when that was
   * written after the position (it waits for the next sync), the one in the room's state there.
   */
  private async memberEventAtNow(ctx: SyncContext, roomId: string): Promise<StoredEvent | undefined> {
    const { userId } = ctx.viewer;
    const current = await this.currentMemberEvent(roomId, userId);
    if (current?.streamOrdering === undefined || current.streamOrdering <= ctx.now.events) return current;
    const snapshot = await this.snapshotAt(roomId, ctx.now.events);
    const id = snapshot === undefined ? undefined : await this.deps.store.stateEntryAt(snapshot, "m.room.member", userId);
    return id === undefined ? undefined : this.deps.store.getEvent(id);
  }

  /** The stream position of the user's membership event at the answer's position: as the room lists were read, unless it moved since. */
  private async memberOrderingAtNow(ctx: SyncContext, roomId: string): Promise<number | undefined> {
    const known = ctx.memberOrderings?.get(roomId);
    if (known !== undefined && known <= ctx.now.events) return known;
    return (await this.memberEventAtNow(ctx, roomId))?.streamOrdering;
  }

  // ------------------------------------------------------------------------------------------------
  // Rooms

  /**
   * m.presence of the users whose presence changed after the serial and who share a room with the
   * viewer (the viewer's own included), and of `alsoOf` (who newly share one) changed or not, as
   * the presence filter lets through.
   */
  private async presenceSince(userId: string, since: number, joined: readonly string[], filter: SyncFilter, alsoOf: ReadonlySet<string>): Promise<SyncResponse["presence"]["events"]> {
    const presence = this.deps.presence;
    if (!presence || !filter.presence.allowsType("m.presence")) return [];
    const mine = new Set(joined);
    const events: SyncResponse["presence"]["events"] = [];
    const changed = presence.changedSince(since);
    for (const other of changed) {
      if (!filter.presence.allowsSender(other)) continue;
      if (other !== userId && !alsoOf.has(other) && !(await this.deps.store.roomsWithMembership(other, "join")).some((roomId) => mine.has(roomId))) continue;
      events.push({ type: "m.presence", sender: other, content: presence.status(other) });
    }
    // Those who newly share a room with the user (they share it: no check needed), as Synapse.
    const given = new Set(changed);
    for (const other of alsoOf) {
      if (other === userId || given.has(other) || !filter.presence.allowsSender(other)) continue;
      events.push({ type: "m.presence", sender: other, content: presence.status(other) });
    }
    return events;
  }

  /** Rooms with an event, a receipt or room account data in (from, now] (typing is asked per room: it is in memory). */
  private async roomsMovedSince(from: { events: number; receipts: number }, now: SyncPosition, roomData: ReadonlyMap<string, unknown>): Promise<Set<string>> {
    const moved = new Set<string>(roomData.keys());
    if (now.events > from.events) for (const roomId of await this.deps.store.roomsWithEventsBetween(from.events, now.events)) moved.add(roomId);
    if (now.receipts > from.receipts) for (const roomId of await this.deps.clientStore.roomsWithReceiptsBetween(from.receipts, now.receipts)) moved.add(roomId);
    return moved;
  }

  private async joinedRoom(ctx: SyncContext, roomId: string, changedRoomData: { type: string; content: Record<string, unknown> }[]): Promise<JoinedRoomSync | undefined> {
    const { userId } = ctx.viewer;
    const S = ctx.since?.events;
    // Joined after `since` (and not joined at it): the room is new to the client — send it whole.
    const newlyJoined = S !== undefined && ((await this.memberOrderingAtNow(ctx, roomId)) ?? 0) > S && (await this.membershipAt(roomId, S, userId)) !== "join";
    const full = S === undefined || ctx.fullState || newlyJoined;
    const timelineFrom = S === undefined || newlyJoined ? 0 : S;

    const timeline = await this.timeline(ctx, roomId, timelineFrom, ctx.now.events, true);
    let currentState: Promise<Map<string, string>> | undefined;
    let state = await this.stateEvents(ctx, roomId, timeline, full, S, () => (currentState ??= this.deps.store.currentState(roomId)), true);
    // Lazy-loaded members the device was already sent are not sent again (unless asked for); a room
    // sent whole starts afresh.
    const skipRedundant = ctx.filter.lazyLoadMembers && !ctx.filter.includeRedundantMembers;
    if (skipRedundant && full) this.sentMembers.forgetRoom(userId, ctx.viewer.deviceId, roomId);
    else if (skipRedundant) state = state.filter((e) => e.type !== "m.room.member" || !this.sentMembers.known(userId, ctx.viewer.deviceId, roomId, e.eventId, S!));

    const ephemeral: JoinedRoomSync["ephemeral"]["events"] = [];
    if (ctx.filter.ephemeral.includesRoom(roomId)) {
      const typingSince = newlyJoined ? 0 : (ctx.since?.typing ?? 0);
      const typing = this.deps.typing.typingSince(roomId, typingSince);
      if (typing && (ctx.since !== undefined || typing.userIds.length > 0) && ctx.filter.ephemeral.allowsType("m.typing")) {
        ephemeral.push({ type: "m.typing", content: { user_ids: typing.userIds } });
      }
      const receiptsSince = newlyJoined ? 0 : (ctx.since?.receipts ?? 0);
      const receipts = await this.deps.receipts.receiptsSince(roomId, receiptsSince, userId, ctx.now.receipts);
      if (receipts && ctx.filter.ephemeral.allowsType("m.receipt")) ephemeral.push({ type: "m.receipt", content: receipts as unknown as JsonObject });
    }

    const roomData = newlyJoined ? await this.allRoomAccountData(ctx, roomId) : changedRoomData;
    const accountData = ctx.filter.roomAccountData.includesRoom(roomId)
      ? roomData.filter((e) => ctx.filter.roomAccountData.allowsType(e.type)).map((e) => ({ type: e.type, content: e.content }))
      : [];

    if (!full && timeline.events.length === 0 && state.length === 0 && ephemeral.length === 0 && accountData.length === 0) return undefined;

    const room: JoinedRoomSync = {
      timeline: await this.timelineJson(ctx, timeline, ctx.now.events),
      state: { events: await this.format(ctx, state, { asState: true }) },
      ephemeral: { events: ephemeral },
      account_data: { events: accountData },
      unread_notifications: (await this.deps.notifications?.unreadCounts(userId, roomId, ctx.now.events, newestOrdering(timeline.events))) ?? { notification_count: 0, highlight_count: 0 },
    };
    const membersChanged = full || [...timeline.events, ...state].some((e) => e.type === "m.room.member");
    if (membersChanged) room.summary = await this.summary(roomId, userId, currentState && (await currentState));
    if (skipRedundant) {
      const members = [...state, ...timeline.events].filter((e) => e.type === "m.room.member").map((e) => e.eventId);
      this.sentMembers.remember(userId, ctx.viewer.deviceId, roomId, members, ctx.now.events);
    }
    if (S !== undefined) await this.noteNewlyJoined(ctx, roomId, newlyJoined, [...room.state.events, ...room.timeline.events]);
    return room;
  }

  /** The users whose presence an incremental answer gives for this room (SyncContext.presenceOf). */
  private async noteNewlyJoined(ctx: SyncContext, roomId: string, newlyJoinedRoom: boolean, events: readonly SyncEvent[]): Promise<void> {
    if (!this.deps.presence) return;
    if (newlyJoinedRoom) {
      for (const [member, membership] of await this.deps.store.currentMemberships(roomId)) if (membership === "join") ctx.presenceOf.add(member);
      return;
    }
    for (const e of events) {
      if (e.type !== "m.room.member" || e.state_key === undefined || e.content.membership !== "join") continue;
      const before = (e.unsigned as { prev_content?: { membership?: unknown } } | undefined)?.prev_content?.membership;
      if (before !== "join") ctx.presenceOf.add(e.state_key);
    }
  }

  private async leftRoom(ctx: SyncContext, roomId: string, changedRoomData: { type: string; content: Record<string, unknown> }[]): Promise<LeftRoomSync | undefined> {
    const { userId } = ctx.viewer;
    const S = ctx.since?.events;
    const member = await this.memberEventAtNow(ctx, roomId);
    if (!member || member.streamOrdering === undefined) return undefined;
    // An initial (or full_state) sync lists left rooms only when the filter asks; an incremental one
    // always lists those left since.
    const leftSince = S !== undefined && member.streamOrdering > S;
    if (!leftSince && !((S === undefined || ctx.fullState) && ctx.filter.includeLeave)) return undefined;

    const wasJoined = S !== undefined && (await this.membershipAt(roomId, S, userId)) === "join";
    const full = S === undefined || ctx.fullState || !wasJoined;
    // Someone who never joined (a rejected invite, a withdrawn knock) gets no room state.
    const hadJoined = (await this.deps.access.departureOf(roomId, userId)) !== undefined;
    // An incremental timeline holds only what happened after `since`: for a rejected invite or a
    // withdrawn or refused knock, just the leave, not the invite or knock the client already had.
    // Only a room joined and left again since then is new to the client: like a newly joined room,
    // it is sent from its start (the newest events up to the leave).
    const joinedSince = leftSince && !wasJoined && hadJoined;
    const timeline = await this.timeline(ctx, roomId, S === undefined || joinedSince ? 0 : S, member.streamOrdering, false);
    const state = hadJoined
      ? await this.stateEvents(ctx, roomId, timeline, full, S, async () => (member.stateSnapshot === undefined ? new Map() : this.deps.store.stateAt(member.stateSnapshot)), false)
      : [];
    const accountData = ctx.filter.roomAccountData.includesRoom(roomId)
      ? changedRoomData.filter((e) => ctx.filter.roomAccountData.allowsType(e.type)).map((e) => ({ type: e.type, content: e.content }))
      : [];
    return {
      timeline: await this.timelineJson(ctx, timeline, member.streamOrdering),
      state: { events: await this.format(ctx, state, { asState: true }) },
      account_data: { events: accountData },
    };
  }

  /** Stripped state plus the user's own member event, when it changed after `since` (or always, initially). */
  private async strippedStateIfChanged(ctx: SyncContext, roomId: string): Promise<StrippedState[] | undefined> {
    const member = await this.memberEventAtNow(ctx, roomId);
    if (!member) return undefined;
    const S = ctx.since?.events;
    if (S !== undefined && !ctx.fullState && (member.streamOrdering ?? 0) <= S) return undefined;
    return heldStrippedState(this.deps.engine, roomId, member.eventId);
  }

  // ------------------------------------------------------------------------------------------------
  // Timeline and state

  /**
   * The newest `limit` events of (fromExclusive, toInclusive] the user may see and the timeline
   * filter lets through, oldest first; limited when there are more.
   */
  private async timeline(ctx: SyncContext, roomId: string, fromExclusive: number, toInclusive: number, joined: boolean): Promise<TimelineSlice> {
    const section = ctx.filter.timeline;
    const limit = section.includesRoom(roomId) ? ctx.filter.timelineLimit : 0;
    return timelineWindow(this.deps.store, roomId, fromExclusive, toInclusive, limit, (stored) => this.wantedInTimeline(ctx, section, stored, joined));
  }

  /**
   * `joined`: the user is joined to the room now. Then a state event that is still part of the
   * room's current state is given even where history visibility hides it (it was sent while the
   * user was away): the user may read the current state anyway, and the state section cannot carry
   * a change made after the timeline's start, so without it the client's state would miss it (as
   * Synapse, which lets current state through its visibility filter).
   */
  private async wantedInTimeline(ctx: SyncContext, section: SectionFilter, stored: StoredEvent, joined: boolean): Promise<boolean> {
    if (ctx.ignored.has(stored.sender)) return false;
    if (!(await section.allows(stored, () => this.contentOf(stored)))) return false;
    const { access, store } = this.deps;
    if (await access.canSee(ctx.viewer.userId, stored, ctx.visibility)) return true;
    if (stored.stateKey === undefined || stored.rejectedReason !== undefined) return false;
    return joined && (await store.currentStateEvent(stored.roomId, stored.type, stored.stateKey)) === stored.eventId;
  }

  private async timelineJson(ctx: SyncContext, timeline: TimelineSlice, end: number): Promise<JoinedRoomSync["timeline"]> {
    const first = timeline.events[0];
    // prev_batch: a /messages token just before the first event (backwards from it: older events).
    const prevBatch = first?.streamOrdering !== undefined ? streamToken(first.streamOrdering - 1) : streamToken(end);
    return { events: await this.format(ctx, timeline.events), limited: timeline.limited, prev_batch: prevBatch };
  }

  /**
   * The `state` section: in a full answer, the state at the start of the timeline; in an incremental
   * one, what changed between `since` and the start of the timeline (nothing to compute when the
   * timeline holds every event since). State events in the timeline are not repeated. With
   * lazy-loaded members, only the members of the timeline's senders (and, in full, the user's own)
   * — but every membership change in the gap.
   */
  private async stateEvents(
    ctx: SyncContext,
    roomId: string,
    timeline: TimelineSlice,
    full: boolean,
    since: number | undefined,
    readEndState: () => Promise<Map<string, string>>,
    current: boolean,
  ): Promise<StoredEvent[]> {
    const section = ctx.filter.state;
    if (!section.includesRoom(roomId)) return [];
    const { store } = this.deps;
    // Read once: every use below sees the same state.
    let endStateRead: Promise<Map<string, string>> | undefined;
    const endState = () => (endStateRead ??= readEndState());
    const inTimeline = new Set(timeline.events.map((e) => e.eventId));
    const first = timeline.events[0];
    // The snapshot before the timeline, read only when needed: an incremental answer whose timeline
    // holds every event since the token needs it only for lazy-loaded members.
    let startSnapshotRead: Promise<number | undefined> | undefined;
    const startSnapshot = () =>
      (startSnapshotRead ??= !first ? Promise.resolve(undefined) : timeline.snapshotBeforeFirst ? Promise.resolve(timeline.snapshotBeforeFirst.value) : this.snapshotAt(roomId, first.streamOrdering! - 1));
    const start = async (): Promise<Map<string, string>> => {
      if (!first) return endState();
      const snapshot = await startSnapshot();
      return snapshot === undefined ? new Map() : store.stateAt(snapshot);
    };

    let ids: string[] = [];
    let gap = new Set<string>();
    if (full) {
      const startState = await start();
      ids = stateChanges(startState, first ? await endState() : startState, new Map(), inTimeline);
    } else if (!timeline.complete) {
      const previousSnapshot = await this.snapshotAt(roomId, since!);
      const previous = previousSnapshot === undefined ? new Map<string, string>() : await store.stateAt(previousSnapshot);
      const startState = await start();
      // The state at the end matters only where no timeline event explains a change (a filtered-out event, a fork).
      ids = stateChanges(startState, current ? await endState() : startState, previous, inTimeline);
      gap = new Set(ids);
    }

    let events = [...(await store.getEvents(ids)).values()];
    if (ctx.filter.lazyLoadMembers) {
      const senders = new Set(timeline.events.map((e) => e.sender));
      if (full) senders.add(ctx.viewer.userId);
      events = events.filter((e) => e.type !== "m.room.member" || gap.has(e.eventId) || senders.has(e.stateKey!));
      const have = new Set(events.filter((e) => e.type === "m.room.member").map((e) => e.stateKey));
      for (const sender of senders) {
        if (have.has(sender)) continue;
        const snapshot = first ? await startSnapshot() : undefined;
        const id = first ? (snapshot === undefined ? undefined : await store.stateEntryAt(snapshot, "m.room.member", sender)) : (await endState()).get(`m.room.member\u0000${sender}`);
        const stored = id === undefined || inTimeline.has(id) ? undefined : await store.getEvent(id);
        if (stored) events.push(stored);
      }
    }
    const allowed: StoredEvent[] = [];
    for (const e of events) if (await section.allows(e, () => this.contentOf(e))) allowed.push(e);
    return allowed.sort((a, b) => (a.streamOrdering ?? 0) - (b.streamOrdering ?? 0));
  }

  /** The state snapshot of the room at a stream position: after its last event at or before it. */
  private async snapshotAt(roomId: string, position: number): Promise<number | undefined> {
    if (position <= 0) return undefined;
    return this.deps.store.snapshotAtPosition(roomId, position);
  }

  private async membershipAt(roomId: string, position: number, userId: string): Promise<string | undefined> {
    const snapshot = await this.snapshotAt(roomId, position);
    if (snapshot === undefined) return undefined;
    const id = await this.deps.store.stateEntryAt(snapshot, "m.room.member", userId);
    const membership = id === undefined ? undefined : (await this.deps.engine.loadEvent(id))?.event.content.membership;
    return typeof membership === "string" ? membership : undefined;
  }

  private async currentMemberEvent(roomId: string, userId: string): Promise<StoredEvent | undefined> {
    const id = await this.deps.store.currentStateEvent(roomId, "m.room.member", userId);
    return id === undefined ? undefined : this.deps.store.getEvent(id);
  }

  /** `current`: the room's current state when the caller has read it already. */
  private async summary(roomId: string, userId: string, current?: ReadonlyMap<string, string>): Promise<NonNullable<JoinedRoomSync["summary"]>> {
    let joined = 0;
    let invited = 0;
    const heroes: string[] = [];
    for (const [member, membership] of await this.deps.store.currentMemberships(roomId)) {
      if (membership === "join") joined++;
      else if (membership === "invite") invited++;
      else continue;
      if (member !== userId) heroes.push(member);
    }
    // Heroes name a room that has no name of its own; a named room gets none (as Synapse: the spec
    // requires them only when m.room.name and m.room.canonical_alias are unset).
    const named = async (type: string, key: string) => {
      const id = current ? current.get(stateKey(type, "")) : undefined;
      const event = current ? (id === undefined ? undefined : (await this.deps.engine.loadEvent(id))?.event) : await this.deps.engine.currentStateEvent(roomId, type, "");
      const value = event?.content[key];
      return typeof value === "string" && value !== "";
    };
    if ((await named("m.room.name", "name")) || (await named("m.room.canonical_alias", "alias"))) return { "m.joined_member_count": joined, "m.invited_member_count": invited };
    return { "m.heroes": heroes.sort().slice(0, 5), "m.joined_member_count": joined, "m.invited_member_count": invited };
  }

  private async allRoomAccountData(ctx: SyncContext, roomId: string): Promise<{ type: string; content: Record<string, unknown> }[]> {
    // One read, shared by the rooms that ask at the same time.
    ctx.allAccountData ??= this.accountDataUpTo(ctx.viewer.userId, 0, ctx.now.accountData);
    return (await ctx.allAccountData).rooms.get(roomId) ?? [];
  }

  private async contentOf(stored: StoredEvent): Promise<Record<string, unknown>> {
    return ((await this.deps.engine.loadEvent(stored.eventId))?.event.content ?? {}) as Record<string, unknown>;
  }

  /**
   * Client events without room_id (client_event_without_room_id.yaml); with the filter's event_format
   * "federation", the PDUs as stored (room_id kept), each with its event_id, the content as the
   * client format gives it (pruned once redacted) and the client format's unsigned (as Synapse).
   */
  private async format(ctx: SyncContext, events: readonly StoredEvent[], options: FormatOptions = {}): Promise<SyncEvent[]> {
    const out: SyncEvent[] = [];
    const formatted = await this.formatter.formatMany(events, ctx.viewer, options);
    for (const [i, event] of formatted.entries()) {
      if (!event) continue;
      if (ctx.filter.federationFormat && events[i]!.json !== "") {
        const pdu = JSON.parse(events[i]!.json) as JsonObject;
        out.push({ ...pdu, event_id: event.event_id, content: event.content, ...(event.unsigned ? { unsigned: event.unsigned } : {}) } as unknown as SyncEvent);
        continue;
      }
      const { room_id: _roomId, ...rest } = event;
      out.push(rest);
    }
    return out;
  }
}

/**
 * State entries of `start` that differ from `previous`, plus entries of `end` that `start` lacks and
 * `previous` did not have either — each once, none that the timeline holds.
 */
function stateChanges(start: Map<string, string>, end: Map<string, string>, previous: Map<string, string>, inTimeline: Set<string>): string[] {
  const out = new Set<string>();
  for (const [key, id] of start) if (previous.get(key) !== id && !inTimeline.has(id)) out.add(id);
  if (end !== start) for (const [key, id] of end) if (!start.has(key) && previous.get(key) !== id && !inTimeline.has(id)) out.add(id);
  return [...out];
}


/** An out-of-band member event seen as a stored one (for the timeline filter and the client format); never in a held timeline. */
function storedOutOfBandEvent(record: OutOfBandMembership, version: RoomVersion): StoredEvent | undefined {
  let event;
  try {
    event = roomEventFromPdu(record.event, version, record.eventId);
  } catch {
    return undefined;
  }
  return {
    eventId: record.eventId,
    roomId: record.roomId,
    json: "",
    type: event.type,
    stateKey: event.state_key,
    sender: event.sender,
    depth: event.depth,
    originServerTs: event.origin_server_ts,
    streamOrdering: undefined,
    rejectedReason: undefined,
    outlier: true,
    softFailed: false,
    stateSnapshot: undefined,
    prevEvents: event.prev_events,
    authEvents: event.auth_events,
  };
}

/** Nothing for the client: a long-poll keeps waiting. */
function emptyResponse(now: SyncPosition): SyncResponse {
  return {
    next_batch: formatSyncToken(now),
    rooms: { join: {}, invite: {}, knock: {}, leave: {} },
    account_data: { events: [] },
    presence: { events: [] },
    to_device: { events: [] },
    device_lists: { changed: [], left: [] },
    device_one_time_keys_count: {},
    device_unused_fallback_key_types: [],
  };
}

/** Whether a token is at every stream's present position (typing and presence of this boot). */
function unmoved(since: SyncPosition, now: SyncPosition): boolean {
  return (
    since.boot === now.boot &&
    since.events === now.events &&
    since.accountData === now.accountData &&
    since.receipts === now.receipts &&
    since.typing === now.typing &&
    (since.outOfBand ?? 0) === (now.outOfBand ?? 0) &&
    (since.e2ee ?? 0) === (now.e2ee ?? 0) &&
    (since.presence ?? 0) === (now.presence ?? 0)
  );
}

function isEmpty(r: SyncResponse): boolean {
  const { join, invite, knock, leave } = r.rooms;
  return (
    r.account_data.events.length === 0 &&
    r.presence.events.length === 0 &&
    r.to_device.events.length === 0 &&
    r.device_lists.changed.length === 0 &&
    r.device_lists.left.length === 0 &&
    Object.keys(join).length === 0 &&
    Object.keys(invite).length === 0 &&
    Object.keys(knock).length === 0 &&
    Object.keys(leave).length === 0
  );
}
