// Simplified sliding sync (MSC4186), POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync:
// the client names windows ("lists": ranges over the user's rooms sorted by recent activity, with
// filters) and rooms ("room_subscriptions"), each with a room config (timeline_limit,
// required_state); the answer holds the rooms of those windows and subscriptions that are new to
// the connection or changed since its `pos`, plus the extensions asked for (to-device, e2ee,
// account data, receipts, typing). With `pos` and a timeout, an answer with nothing new waits on the
// notifier like /sync.
//
// What each room was last sent with lives per connection in memory (sliding-sync-connections.ts).
// A room new to the connection (or joined since) comes whole, with `initial`; otherwise only what
// changed since it was last sent: newer timeline events, state that changed, fields whose value
// changed. A room that leaves the windows keeps the position it was sent up to, so when it comes
// back it brings what happened meanwhile (Synapse's "previously sent" rooms).
//
// Which rooms: those the user is joined to, invited to, has knocked on, or was kicked or banned
// from; a room the user left themself only when they left it since the connection's last answer
// (the MSC's rule, as Synapse). Timelines go through the history visibility check of /messages.
import type { JsonObject } from "../../protocol/json";
import type { RoomClientStore, RoomEventStore, SlidingSyncRoomStore, StoredEvent, StreamHeadStore, UserRoomActivity } from "../../storage/stores";
import type { Clock } from "../runtime";
import type { AccountDataService } from "../accounts/account-data-service";
import type { PushRuleService } from "../accounts/push-rule-service";
import type { NotificationService } from "../push/notification-service";
import type { PresenceService, PresenceState } from "../presence/presence-service";
import { ClientEventFormatter, type ClientEvent, type FormatOptions, type StrippedState } from "../rooms/client-events";
import type { ReceiptContent, ReceiptService, TypingService } from "../rooms/ephemeral";
import type { OutOfBandMembership, OutOfBandMemberships } from "../rooms/out-of-band";
import { VisibilityMemo, type RoomAccess } from "../rooms/room-access";
import type { RoomEngine } from "../rooms/room-engine";
import { streamToken } from "../rooms/stream-token";
import type { SyncNotifier } from "./notifier";
import { SlidingSyncConnections, type ConnectionLimits, type ConnectionState, type SentRoom, type StreamPositions } from "./sliding-sync-connections";
import {
  checkBody,
  combineConfigs,
  listRanges,
  namedKeys,
  needsWholeState,
  requiredStateKey,
  roomConfig,
  stateWanted,
  type ListFilters,
  type RoomConfig,
  type SlidingSyncBody,
} from "./sliding-sync-request";
import { heldStrippedState, outOfBandStrippedState } from "./stripped-state";
import { MAX_SYNC_TIMEOUT_MS } from "./sync-service";
import { newestOrdering, timelineWindow } from "./timeline-window";

/** Event types that move a room's bump_stamp (MSC4186 "bump_stamp"). */
export const BUMP_EVENT_TYPES = ["m.room.create", "m.room.message", "m.room.encrypted", "m.sticker", "m.call.invite", "m.poll.start", "m.beacon_info"];
/** Member events $LAZY loading remembers having sent per room (Synapse remembers 100 too). */
const MAX_LAZY_MEMBERS_REMEMBERED = 100;
const MAX_HEROES = 5;
const MEMBERSHIPS = ["join", "invite", "knock", "leave", "ban"];
/** The state behind a room's name and avatar fields. */
const META_KEYS: readonly (readonly [string, string])[] = [
  ["m.room.name", ""],
  ["m.room.avatar", ""],
];

type SyncEvent = Omit<ClientEvent, "room_id">;

export interface StrippedHero {
  user_id: string;
  displayname?: string;
  avatar_url?: string;
}

/** One room of the answer; every field may be absent (MSC4186 "RoomResult"). */
export interface SlidingRoom {
  notification_count?: number;
  highlight_count?: number;
  bump_stamp?: number;
  joined_count?: number;
  invited_count?: number;
  name?: string | null;
  avatar?: string | null;
  heroes?: StrippedHero[];
  initial?: boolean;
  expanded_timeline?: boolean;
  unstable_expanded_timeline?: boolean;
  required_state?: SyncEvent[];
  timeline?: SyncEvent[];
  limited?: boolean;
  prev_batch?: string;
  num_live?: number;
  is_dm?: boolean;
  membership?: string;
  invite_state?: StrippedState[];
  knock_state?: StrippedState[];
}

export interface SlidingSyncResponse {
  pos: string;
  lists: Record<string, { count: number }>;
  rooms: Record<string, SlidingRoom>;
  extensions: SlidingSyncExtensions;
}

export interface SlidingSyncExtensions {
  to_device?: { next_batch: string; events: JsonObject[] };
  e2ee?: { device_one_time_keys_count: Record<string, number>; device_unused_fallback_key_types: string[]; device_lists?: { changed: string[]; left: string[] } };
  account_data?: { global: { type: string; content: Record<string, unknown> }[]; rooms: Record<string, { type: string; content: Record<string, unknown> }[]> };
  receipts?: { rooms: Record<string, { type: "m.receipt"; content: ReceiptContent }> };
  typing?: { rooms: Record<string, { type: "m.typing"; content: { user_ids: string[] } }> };
}

/** What sliding sync needs of end-to-end encryption (the e2ee services, wired in the composition root). */
export interface SlidingSyncE2ee {
  /** A device's to-device messages after `since` (those up to it acknowledged and deleted). */
  toDevice(userId: string, deviceId: string, since: number | undefined, now: number): Promise<{ events: JsonObject[]; position: number }>;
  deviceListChanges(userId: string, from: { events: number; e2ee: number }, to: { events: number; e2ee: number }, rooms: { join: readonly string[]; left: readonly string[] }): Promise<{ changed: string[]; left: string[] }>;
  oneTimeKeyCounts(userId: string, deviceId: string): Promise<Record<string, number>>;
  unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]>;
}

export interface SlidingSyncDeps {
  engine: RoomEngine;
  store: RoomEventStore;
  /** Every stream's present position in one read. */
  heads: StreamHeadStore;
  clientStore: RoomClientStore;
  rooms: SlidingSyncRoomStore;
  access: RoomAccess;
  typing: TypingService;
  receipts: ReceiptService;
  accountData: AccountDataService;
  pushRules: PushRuleService;
  notifications?: Pick<NotificationService, "unreadCounts">;
  notifier: SyncNotifier;
  outOfBand?: Pick<OutOfBandMemberships, "forUser">;
  e2ee?: SlidingSyncE2ee;
  presence?: Pick<PresenceService, "synced">;
  clock: Clock;
  limits?: ConnectionLimits;
}

export interface SlidingSyncRequest {
  userId: string;
  deviceId?: string;
  /** The `pos` query parameter: absent for a connection's first request. */
  pos?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  body: SlidingSyncBody;
  /** set_presence: what syncing says of the user (online when absent). */
  setPresence?: PresenceState;
}

/** A room the user has a membership in, with what orders it. */
interface UserRoom extends Partial<UserRoomActivity> {
  readonly roomId: string;
  readonly membership: string;
  /** Held rooms: the stream position of the membership; out-of-band ones: the event stream's position when it was recorded. */
  readonly memberPosition: number;
  /** Recency: the last event for a joined room, the membership for the others (Synapse's order). */
  readonly activity: number;
  readonly outOfBand?: OutOfBandMembership;
}

interface Context {
  readonly userId: string;
  readonly deviceId: string | undefined;
  readonly prev: ConnectionState | undefined;
  readonly now: StreamPositions;
  readonly ignored: ReadonlySet<string>;
  readonly dms: ReadonlySet<string>;
  /** Per-request caches of what list filters read. */
  roomAccountData?: Map<string, { type: string; content: Record<string, unknown> }[]>;
  encrypted?: Set<string>;
  roomTypes?: Map<string, string | null>;
}

interface Computed {
  response: Omit<SlidingSyncResponse, "pos">;
  state: ConnectionState;
  /** Something for the client: a waiting request answers. */
  news: boolean;
}

export class SlidingSyncService {
  private readonly formatter: ClientEventFormatter;
  readonly connections: SlidingSyncConnections;

  constructor(private readonly deps: SlidingSyncDeps) {
    this.formatter = new ClientEventFormatter(deps.store, deps.clientStore, deps.access, deps.clock);
    this.connections = new SlidingSyncConnections(deps.clock, deps.limits);
  }

  async sync(request: SlidingSyncRequest): Promise<SlidingSyncResponse> {
    const { userId, deviceId, pos, body } = request;
    checkBody(body);
    const prev = pos === undefined ? undefined : this.connections.stateAt(userId, deviceId, body.conn_id, pos);
    this.deps.presence?.synced(userId, request.setPresence);
    // Without a pos there is always something to say: the timeout applies to incremental requests only.
    const timeout = prev === undefined ? 0 : Math.max(0, Math.min(MAX_SYNC_TIMEOUT_MS, request.timeoutMs ?? 0));
    const finish = (computed: Computed): SlidingSyncResponse => ({ pos: this.connections.save(userId, deviceId, body.conn_id, pos, computed.state), ...computed.response });
    const compute = () => this.compute(userId, deviceId, body, prev);
    if (timeout === 0) return finish(await compute());

    const deadline = performance.now() + timeout;
    for (;;) {
      // Registered before computing, so that a change landing in between wakes this wait.
      const waiter = this.deps.notifier.waitFor(userId, deadline - performance.now(), request.signal);
      const computed = await compute();
      if (computed.news) {
        waiter.cancel();
        return finish(computed);
      }
      const outcome = await waiter.promise;
      if (outcome === "aborted" || outcome === "stopped") return finish(computed);
      if (outcome === "timeout" || deadline - performance.now() <= 0) return finish(await compute());
    }
  }

  private async compute(userId: string, deviceId: string | undefined, body: SlidingSyncBody, prev: ConnectionState | undefined): Promise<Computed> {
    const { deps } = this;
    // Positions first, then data: what lands in between comes (again) in the next answer.
    const heads = await deps.heads.heads();
    const now: StreamPositions = { events: heads.events, accountData: heads.accountData, receipts: heads.receipts, typing: deps.typing.currentSerial(), e2ee: heads.e2ee };
    const ctx: Context = { userId, deviceId, prev, now, ignored: await deps.accountData.ignoredUsers(userId), dms: await this.directRooms(userId) };
    const all = await this.userRooms(ctx);

    // Lists: filter, sort by recency, cut the ranges; every room in a window takes the list's config.
    const configs = new Map<string, RoomConfig>();
    const take = (roomId: string, config: RoomConfig) => {
      const existing = configs.get(roomId);
      configs.set(roomId, existing ? combineConfigs(existing, config) : config);
    };
    const lists: Record<string, { count: number }> = {};
    const listRooms = new Map<string, string[]>();
    const listable = [...all.values()].filter((r) => this.listable(ctx, r)).sort((a, b) => b.activity - a.activity || (a.roomId < b.roomId ? -1 : a.roomId > b.roomId ? 1 : 0));
    for (const [name, list] of Object.entries(body.lists ?? {})) {
      const filtered = list.filters ? await this.applyFilters(ctx, listable, list.filters) : listable;
      lists[name] = { count: filtered.length };
      const config = roomConfig(list, userId);
      const inWindow: string[] = [];
      // A list without ranges gives its count only (as Synapse).
      for (const [start, end] of listRanges(list)) {
        for (const room of filtered.slice(start, end + 1)) {
          take(room.roomId, config);
          inWindow.push(room.roomId);
        }
      }
      listRooms.set(name, inWindow);
    }
    // Subscriptions: any room the user may see (a left one too); others are ignored (MSC4186 "Subscriptions").
    const subscribed: string[] = [];
    for (const [roomId, subscription] of Object.entries(body.room_subscriptions ?? {})) {
      if (!all.has(roomId)) continue;
      take(roomId, roomConfig(subscription, userId));
      subscribed.push(roomId);
    }

    const rooms: Record<string, SlidingRoom> = {};
    const sentRooms = new Map<string, SentRoom>();
    if (prev) for (const [roomId, sent] of prev.rooms) if (all.has(roomId)) sentRooms.set(roomId, sent);
    const timelines = new Map<string, Set<string>>();
    const initialRooms = new Set<string>();
    for (const [roomId, config] of configs) {
      const result = await this.roomResult(ctx, all.get(roomId)!, config);
      sentRooms.set(roomId, result.sent);
      if (!result.json) continue;
      rooms[roomId] = result.json;
      if (result.json.initial) initialRooms.add(roomId);
      timelines.set(roomId, new Set(result.timelineIds));
    }

    const extensions = await this.extensions(ctx, body, all, { lists: listRooms, subscribed }, initialRooms, timelines);
    const listCounts = new Map(Object.entries(lists).map(([name, list]) => [name, list.count]));
    const news =
      Object.keys(rooms).length > 0 ||
      [...listCounts].some(([name, count]) => prev?.listCounts.get(name) !== count) ||
      (extensions.to_device?.events.length ?? 0) > 0 ||
      (extensions.e2ee?.device_lists?.changed.length ?? 0) > 0 ||
      (extensions.e2ee?.device_lists?.left.length ?? 0) > 0 ||
      (extensions.account_data !== undefined && (extensions.account_data.global.length > 0 || Object.keys(extensions.account_data.rooms).length > 0)) ||
      Object.keys(extensions.receipts?.rooms ?? {}).length > 0 ||
      Object.keys(extensions.typing?.rooms ?? {}).length > 0;
    return { response: { lists, rooms, extensions }, state: { streams: now, rooms: sentRooms, listCounts }, news };
  }

  // ------------------------------------------------------------------------------------------------
  // Which rooms

  /** The user's rooms by current membership: held ones in one query, then out-of-band invites and knocks. */
  private async userRooms(ctx: Context): Promise<Map<string, UserRoom>> {
    const { userId } = ctx;
    const out = new Map<string, UserRoom>();
    const left: UserRoom[] = [];
    for (const row of await this.deps.rooms.userRooms(userId, MEMBERSHIPS, BUMP_EVENT_TYPES)) {
      // An invite from an ignored user is not shown (client-server-api "Ignoring Users").
      if (row.membership === "invite" && ctx.ignored.has(row.memberSender)) continue;
      const memberPosition = row.memberStream ?? row.lastStream ?? 0;
      const room: UserRoom = { ...row, memberPosition, activity: row.membership === "join" ? (row.lastStream ?? 0) : memberPosition };
      out.set(row.roomId, room);
      if (row.membership === "leave" || row.membership === "ban") left.push(room);
    }
    for (const room of left) if (await this.deps.clientStore.isForgotten(userId, room.roomId)) out.delete(room.roomId);
    for (const record of (await this.deps.outOfBand?.forUser(userId)) ?? []) {
      const held = out.get(record.roomId);
      // The newer of the two stands (a held member event written after the record replaced it).
      if (held && held.memberStream !== undefined && held.memberStream > record.eventStreamPosition) continue;
      if (record.membership !== "invite" && record.membership !== "knock") {
        if (held && held.membership !== "join") out.delete(record.roomId);
        continue;
      }
      if (record.membership === "invite" && typeof record.event.sender === "string" && ctx.ignored.has(record.event.sender)) continue;
      out.set(record.roomId, { roomId: record.roomId, membership: record.membership, memberPosition: record.eventStreamPosition, activity: record.eventStreamPosition, outOfBand: record });
    }
    return out;
  }

  /**
   * Whether a room is in the lists: a room the user left themself only when they left since the
   * connection's last answer (so the client hears of it), as MSC4186 and Synapse say; kicks and
   * bans always.
   */
  private listable(ctx: Context, room: UserRoom): boolean {
    if (room.membership !== "leave" || room.memberSender !== ctx.userId) return true;
    return ctx.prev !== undefined && room.memberPosition > ctx.prev.streams.events;
  }

  /** The rooms of the user's m.direct account data. */
  private async directRooms(userId: string): Promise<Set<string>> {
    const direct = await this.deps.accountData.read(userId, undefined, "m.direct");
    const out = new Set<string>();
    for (const ids of Object.values(direct ?? {})) if (Array.isArray(ids)) for (const id of ids) if (typeof id === "string") out.add(id);
    return out;
  }

  private async applyFilters(ctx: Context, rooms: readonly UserRoom[], filters: ListFilters): Promise<UserRoom[]> {
    let out = [...rooms];
    if (filters.is_dm !== undefined) out = out.filter((r) => ctx.dms.has(r.roomId) === filters.is_dm);
    const invited = filters.is_invite ?? filters.is_invited;
    if (invited !== undefined) out = out.filter((r) => (r.membership === "invite") === invited);
    if (filters.is_encrypted !== undefined) {
      const encrypted = await this.encryptedRooms(ctx, out);
      out = out.filter((r) => encrypted.has(r.roomId) === filters.is_encrypted);
    }
    if (filters.room_types !== undefined || filters.not_room_types !== undefined) {
      const types = await this.roomTypes(ctx, out);
      // not_room_types wins over room_types.
      out = out.filter((r) => {
        const type = types.get(r.roomId) ?? null;
        if (filters.not_room_types?.includes(type)) return false;
        return filters.room_types === undefined || filters.room_types.includes(type);
      });
    }
    if (filters.tags !== undefined || filters.not_tags !== undefined) {
      const data = await this.roomAccountData(ctx);
      const tagsOf = (roomId: string) => {
        const tags = data.get(roomId)?.find((e) => e.type === "m.tag")?.content.tags;
        return tags !== null && typeof tags === "object" ? Object.keys(tags) : [];
      };
      // not_tags wins over tags.
      out = out.filter((r) => {
        const tags = tagsOf(r.roomId);
        if (filters.not_tags?.some((t) => tags.includes(t))) return false;
        return filters.tags === undefined || filters.tags.some((t) => tags.includes(t));
      });
    }
    return out;
  }

  /** Rooms with an m.room.encryption state event (from the stripped state for out-of-band ones). */
  private async encryptedRooms(ctx: Context, rooms: readonly UserRoom[]): Promise<Set<string>> {
    if (!ctx.encrypted) {
      const held = rooms.filter((r) => !r.outOfBand).map((r) => r.roomId);
      const state = await this.deps.rooms.currentStateOfRooms(held, [["m.room.encryption", ""]]);
      ctx.encrypted = new Set(state.keys());
      for (const r of rooms) if (r.outOfBand?.strippedState.some((e) => e.type === "m.room.encryption")) ctx.encrypted.add(r.roomId);
    }
    return ctx.encrypted;
  }

  /** Each room's type (m.room.create content.type, null for none). */
  private async roomTypes(ctx: Context, rooms: readonly UserRoom[]): Promise<Map<string, string | null>> {
    if (!ctx.roomTypes) {
      const types = new Map<string, string | null>();
      const held = rooms.filter((r) => !r.outOfBand).map((r) => r.roomId);
      const state = await this.deps.rooms.currentStateOfRooms(held, [["m.room.create", ""]]);
      const creates = await this.deps.store.getEvents([...state.values()].flatMap((m) => [...m.values()]));
      for (const stored of creates.values()) {
        const type = (JSON.parse(stored.json) as { content?: { type?: unknown } }).content?.type;
        types.set(stored.roomId, typeof type === "string" ? type : null);
      }
      for (const r of rooms) {
        if (!r.outOfBand) continue;
        const type = r.outOfBand.strippedState.find((e) => e.type === "m.room.create")?.content;
        const value = type !== null && typeof type === "object" && !Array.isArray(type) ? (type as JsonObject).type : undefined;
        types.set(r.roomId, typeof value === "string" ? value : null);
      }
      ctx.roomTypes = types;
    }
    return ctx.roomTypes;
  }

  private async roomAccountData(ctx: Context): Promise<Map<string, { type: string; content: Record<string, unknown> }[]>> {
    if (!ctx.roomAccountData) {
      const { rooms } = await this.deps.accountData.since(ctx.userId, 0);
      ctx.roomAccountData = new Map([...rooms].map(([roomId, entries]) => [roomId, entries.filter((e) => e.streamPosition <= ctx.now.accountData)]));
    }
    return ctx.roomAccountData;
  }

  // ------------------------------------------------------------------------------------------------
  // One room

  private async roomResult(ctx: Context, room: UserRoom, config: RoomConfig): Promise<{ json: SlidingRoom | undefined; sent: SentRoom; timelineIds: string[] }> {
    if (room.membership === "invite" || room.membership === "knock") return this.strippedRoom(ctx, room, config);
    const { deps } = this;
    const { userId } = ctx;
    const { roomId } = room;
    const prev = ctx.prev?.rooms.get(roomId);
    const joined = room.membership === "join";
    // A room new to the connection, or joined since it was sent as an invite or knock, comes whole.
    const initial = !prev || prev.membership === "invite" || prev.membership === "knock" || (joined && prev.membership !== "join");
    // A joined room reaches to now; a left one to the user's leave (or ban).
    const end = joined ? ctx.now.events : Math.min(room.memberPosition, ctx.now.events);
    const lastActivity = joined ? (room.lastStream ?? 0) : room.memberPosition;
    const expanded = !initial && config.timelineLimit > prev.config.timelineLimit;
    const stateConfigChanged = !initial && requiredStateKey(config.requiredState) !== requiredStateKey(prev.config.requiredState);
    const moved = initial || lastActivity > prev.sentAt || prev.membership !== room.membership;
    const sentBase = { sentAt: end, membership: room.membership, config, extensionsAt: extensionPositions(ctx.now) };
    if (!moved && !expanded && !stateConfigChanged) return { json: undefined, sent: { ...prev!, ...sentBase }, timelineIds: [] };

    // A room left without ever being joined (a rejected invite, a withdrawn knock): nothing of it
    // but the leave itself.
    const hadJoined = joined || (await deps.access.departureOf(roomId, userId)) !== undefined;
    const member = joined ? undefined : room.memberEventId !== undefined ? await deps.store.getEvent(room.memberEventId) : undefined;
    const endSnapshot = joined ? undefined : member?.stateSnapshot;
    // State entries at the end, each read once per room (null: absent).
    const entries = new Map<string, string | null>();
    const readEntries = async (keys: readonly (readonly [string, string])[]): Promise<Map<string, string>> => {
      const missing = keys.filter(([type, key]) => !entries.has(`${type}\u0000${key}`));
      if (missing.length > 0) {
        let found = new Map<string, string>();
        if (hadJoined && joined) found = await deps.store.currentStateEvents(roomId, missing);
        else if (hadJoined && endSnapshot !== undefined) {
          for (const [type, key] of missing) {
            const id = await deps.store.stateEntryAt(endSnapshot, type, key);
            if (id !== undefined) found.set(`${type}\u0000${key}`, id);
          }
        }
        for (const [type, key] of missing) entries.set(`${type}\u0000${key}`, found.get(`${type}\u0000${key}`) ?? null);
      }
      const out = new Map<string, string>();
      for (const [type, key] of keys) {
        const id = entries.get(`${type}\u0000${key}`);
        if (id) out.set(`${type}\u0000${key}`, id);
      }
      return out;
    };
    let wholeRead: Promise<Map<string, string>> | undefined;
    const readWhole = () =>
      (wholeRead ??= !hadJoined ? Promise.resolve(new Map()) : joined ? deps.store.currentState(roomId) : endSnapshot === undefined ? Promise.resolve(new Map()) : deps.store.stateAt(endSnapshot));

    // Timeline: the newest events since the room was last sent (all of its history when initial, or
    // when the timeline limit grew: MSC4186 "Changes to timeline_limit").
    const json: SlidingRoom = {};
    let timeline: StoredEvent[] = [];
    let limited = false;
    if (config.timelineLimit > 0) {
      let from = initial || expanded ? 0 : prev.sentAt;
      if (!hadJoined) from = Math.max(from, room.memberPosition - 1);
      const visibility = new VisibilityMemo();
      const window = await timelineWindow(deps.store, roomId, from, end, config.timelineLimit, async (stored) => !ctx.ignored.has(stored.sender) && (await deps.access.canSee(userId, stored, visibility)));
      timeline = window.events;
      limited = window.limited;
      const first = timeline[0];
      json.timeline = await this.format(ctx, timeline);
      json.limited = limited;
      // A /messages token just before the first event (backwards from it: older events).
      json.prev_batch = streamToken(first?.streamOrdering !== undefined ? first.streamOrdering - 1 : end);
      // Events after the request's pos are live (those before it are history the client had not seen).
      json.num_live = ctx.prev ? timeline.filter((e) => (e.streamOrdering ?? 0) > ctx.prev!.streams.events).length : 0;
      if (expanded && timeline.some((e) => (e.streamOrdering ?? 0) <= prev.sentAt)) {
        // The MSC's name, and the unstable one Synapse sends (what clients of the unstable endpoint read).
        json.expanded_timeline = true;
        json.unstable_expanded_timeline = true;
      }
    }

    // required_state: the state asked for, as it stands at the end (current state, or at the leave).
    const rs = config.requiredState;
    const stateIds = new Set<string>();
    const lazyUsers = new Set<string>();
    if (rs.lazyMembers) {
      for (const e of timeline) {
        lazyUsers.add(e.sender);
        if (e.type === "m.room.member" && e.stateKey !== undefined) lazyUsers.add(e.stateKey);
      }
    }
    const remembered = new Set(initial || limited ? [] : prev!.lazyMembers);
    const addLazy = async (users: Iterable<string>) => {
      const wanted = [...users].filter((u) => !remembered.has(u));
      for (const id of (await readEntries(wanted.map((u) => ["m.room.member", u] as const))).values()) stateIds.add(id);
      for (const u of wanted) remembered.add(u);
    };
    let nameChanged = initial;
    let avatarChanged = initial;
    let membersChanged = initial;
    if (initial) {
      // One read for the named state, the room's name and avatar, and the lazy members.
      await readEntries([...namedKeys(rs), ...META_KEYS, ...[...lazyUsers].map((u) => ["m.room.member", u] as const)]);
      if (needsWholeState(rs)) {
        for (const [key, id] of await readWhole()) if (wanted(rs, key)) stateIds.add(id);
      } else for (const id of (await readEntries(namedKeys(rs))).values()) stateIds.add(id);
      await addLazy(lazyUsers);
    } else {
      // What changed since the room was last sent: the state there against the state at the end.
      const delta = lastActivity > prev.sentAt && hadJoined ? await this.stateDelta(roomId, prev.sentAt, joined ? await deps.store.currentStateSnapshot(roomId) : endSnapshot, readWhole) : [];
      const memberDelta: string[] = [];
      for (const [key, id] of delta) {
        const [type, stateKey] = splitKey(key);
        if (type === "m.room.name" && stateKey === "") nameChanged = true;
        if (type === "m.room.avatar" && stateKey === "") avatarChanged = true;
        if (type === "m.room.member") {
          membersChanged = true;
          memberDelta.push(stateKey);
        }
        if (stateWanted(rs, type, stateKey)) stateIds.add(id);
      }
      // State the config asks for now and did not before (MSC4186 "Changes to required_state").
      if (stateConfigChanged) {
        const before = prev.config.requiredState;
        if (needsWholeState(rs)) {
          for (const [key, id] of await readWhole()) if (wanted(rs, key) && !wanted(before, key)) stateIds.add(id);
        } else {
          const added = namedKeys(rs).filter(([type, key]) => !stateWanted(before, type, key));
          for (const id of (await readEntries(added)).values()) stateIds.add(id);
        }
        if (!before.lazyMembers) remembered.clear();
      }
      await addLazy(lazyUsers);
      // Without a gap, every membership change since (MSC4186 "Lazy loaded memberships", point 3).
      if (rs.lazyMembers && !limited) {
        for (const [key, id] of delta) if (splitKey(key)[0] === "m.room.member") stateIds.add(id);
        for (const u of memberDelta) remembered.add(u);
      }
    }
    const stateEvents = [...(await deps.store.getEvents([...stateIds])).values()].sort((a, b) => (a.streamOrdering ?? 0) - (b.streamOrdering ?? 0));
    const requiredState = await this.format(ctx, stateEvents, { asState: true });
    if (requiredState.length > 0) json.required_state = requiredState;

    // Fields: sent whole when initial, otherwise those whose value changed.
    const fields: Record<string, unknown> = {};
    if (nameChanged || avatarChanged || membersChanged) {
      const meta = await readEntries(META_KEYS);
      const metaEvents = await deps.store.getEvents([...meta.values()]);
      const contentOf = (key: string) => contentOfStored(metaEvents.get(meta.get(key) ?? ""));
      const name = contentOf("m.room.name\u0000").name;
      const avatar = contentOf("m.room.avatar\u0000").url;
      fields.name = typeof name === "string" && name !== "" ? name : null;
      fields.avatar = typeof avatar === "string" && avatar !== "" ? avatar : null;
      // Counts and heroes for joined rooms only (as Synapse); heroes only for a room without a name.
      if (joined) {
        const memberships = await deps.store.currentMemberships(roomId);
        let joinedCount = 0;
        let invitedCount = 0;
        const present: string[] = [];
        const gone: string[] = [];
        for (const [member, membership] of memberships) {
          if (membership === "join") joinedCount++;
          if (membership === "invite") invitedCount++;
          if (member === userId) continue;
          if (membership === "join" || membership === "invite") present.push(member);
          else if (membership === "leave" || membership === "ban") gone.push(member);
        }
        fields.joined_count = joinedCount;
        fields.invited_count = invitedCount;
        fields.heroes = fields.name === null ? await this.heroes(roomId, (present.length > 0 ? present : gone).sort().slice(0, MAX_HEROES), readEntries) : [];
      }
    } else if (prev) {
      for (const key of ["name", "avatar", "joined_count", "invited_count", "heroes"]) if (prev.fields[key] !== undefined) fields[key] = JSON.parse(prev.fields[key]!);
    }
    fields.bump_stamp = Math.max(0, joined ? (room.bumpStream ?? 0) : room.memberPosition);
    fields.is_dm = ctx.dms.has(roomId);
    fields.membership = room.membership;
    const sentFields: Record<string, string> = {};
    for (const [key, value] of Object.entries(fields)) sentFields[key] = JSON.stringify(value);
    const changed = (key: string) => initial || prev!.fields[key] !== sentFields[key];

    const out: SlidingRoom = {};
    const counts = joined ? await deps.notifications?.unreadCounts(userId, roomId, ctx.now.events, newestOrdering(timeline)) : undefined;
    out.notification_count = counts?.notification_count ?? 0;
    out.highlight_count = counts?.highlight_count ?? 0;
    if (changed("bump_stamp")) out.bump_stamp = fields.bump_stamp as number;
    if (fields.joined_count !== undefined && changed("joined_count")) out.joined_count = fields.joined_count as number;
    if (fields.invited_count !== undefined && changed("invited_count")) out.invited_count = fields.invited_count as number;
    // Initially an absent name means none; later, null says it was removed.
    if (fields.name !== undefined && changed("name") && (fields.name !== null || !initial)) out.name = fields.name as string | null;
    if (fields.avatar !== undefined && changed("avatar") && (fields.avatar !== null || !initial)) out.avatar = fields.avatar as string | null;
    const heroes = fields.heroes as StrippedHero[] | undefined;
    if (heroes !== undefined && heroes.length > 0 && changed("heroes")) out.heroes = heroes;
    if (initial) out.initial = true;
    Object.assign(out, json);
    if (fields.is_dm === true ? changed("is_dm") : !initial && changed("is_dm")) out.is_dm = fields.is_dm as boolean;
    if (changed("membership")) out.membership = room.membership;

    const sent: SentRoom = { ...sentBase, fields: sentFields, lazyMembers: [...remembered].slice(-MAX_LAZY_MEMBERS_REMEMBERED) };
    // An incremental answer leaves out a room where nothing the client sees changed.
    const news =
      initial ||
      timeline.length > 0 ||
      requiredState.length > 0 ||
      out.expanded_timeline === true ||
      ["name", "avatar", "heroes", "joined_count", "invited_count", "membership", "is_dm"].some((k) => k in out);
    return { json: news ? out : undefined, sent, timelineIds: timeline.map((e) => e.eventId) };
  }

  /** An invited or knocked room: its stripped state, whenever the membership is new to the connection. */
  private async strippedRoom(ctx: Context, room: UserRoom, config: RoomConfig): Promise<{ json: SlidingRoom | undefined; sent: SentRoom; timelineIds: string[] }> {
    const prev = ctx.prev?.rooms.get(room.roomId);
    // Sent again when the member event is another (a new invite or knock): out-of-band ones move no stream position.
    const memberEvent = JSON.stringify(room.outOfBand?.eventId ?? room.memberEventId ?? null);
    const sent: SentRoom = { sentAt: ctx.now.events, membership: room.membership, config, fields: { member_event: memberEvent }, lazyMembers: [], extensionsAt: extensionPositions(ctx.now) };
    if (prev && prev.membership === room.membership && prev.fields.member_event === memberEvent) return { json: undefined, sent, timelineIds: [] };
    const stripped = room.outOfBand ? outOfBandStrippedState(room.outOfBand) : room.memberEventId !== undefined ? await heldStrippedState(this.deps.engine, room.roomId, room.memberEventId) : [];
    const json: SlidingRoom = { notification_count: 0, highlight_count: 0, bump_stamp: Math.max(0, room.memberPosition) };
    const contentOf = (type: string) => stripped.find((e) => e.type === type && e.state_key === "")?.content;
    const name = contentOf("m.room.name")?.name;
    const avatar = contentOf("m.room.avatar")?.url;
    if (typeof name === "string" && name !== "") json.name = name;
    if (typeof avatar === "string" && avatar !== "") json.avatar = avatar;
    json.initial = true;
    if (room.membership === "invite") json.invite_state = stripped;
    else {
      json.knock_state = stripped;
      // Synapse sends a knock's stripped state as invite_state too: clients of the unstable endpoint read that.
      json.invite_state = stripped;
    }
    if (ctx.dms.has(room.roomId)) json.is_dm = true;
    json.membership = room.membership;
    return { json, sent, timelineIds: [] };
  }

  /** State entries (key -> event id) that differ between the room's state at a stream position and at the end. */
  private async stateDelta(roomId: string, position: number, endSnapshot: number | undefined, readEnd: () => Promise<Map<string, string>>): Promise<[string, string][]> {
    const startSnapshot = position <= 0 ? undefined : (await this.deps.store.roomEventsBackwards(roomId, position, Number.MIN_SAFE_INTEGER, 1))[0]?.stateSnapshot;
    if (startSnapshot !== undefined && startSnapshot === endSnapshot) return [];
    const before = startSnapshot === undefined ? new Map<string, string>() : await this.deps.store.stateAt(startSnapshot);
    const out: [string, string][] = [];
    for (const [key, id] of await readEnd()) if (before.get(key) !== id) out.push([key, id]);
    return out;
  }

  private async heroes(roomId: string, userIds: readonly string[], readEntries: (keys: readonly (readonly [string, string])[]) => Promise<Map<string, string>>): Promise<StrippedHero[]> {
    const ids = await readEntries(userIds.map((u) => ["m.room.member", u] as const));
    const events = await this.deps.store.getEvents([...ids.values()]);
    return userIds.map((userId) => {
      const content = contentOfStored(events.get(ids.get(`m.room.member\u0000${userId}`) ?? ""));
      const hero: StrippedHero = { user_id: userId };
      if (typeof content.displayname === "string") hero.displayname = content.displayname;
      if (typeof content.avatar_url === "string") hero.avatar_url = content.avatar_url;
      return hero;
    });
  }

  /** Client events without room_id. */
  private async format(ctx: Context, events: readonly StoredEvent[], options: FormatOptions = {}): Promise<SyncEvent[]> {
    const out: SyncEvent[] = [];
    const viewer = { userId: ctx.userId, deviceId: ctx.deviceId };
    for (const stored of events) {
      const event = options.asState ? await this.formatter.formatState(stored, viewer) : await this.formatter.format(stored, viewer);
      if (!event) continue;
      const { room_id: _roomId, ...rest } = event;
      out.push(rest);
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------------
  // Extensions

  private async extensions(
    ctx: Context,
    body: SlidingSyncBody,
    all: ReadonlyMap<string, UserRoom>,
    windows: { lists: ReadonlyMap<string, string[]>; subscribed: readonly string[] },
    initialRooms: ReadonlySet<string>,
    timelines: ReadonlyMap<string, ReadonlySet<string>>,
  ): Promise<SlidingSyncExtensions> {
    const { deps } = this;
    const { userId, deviceId, prev, now } = ctx;
    const requested = body.extensions ?? {};
    const out: SlidingSyncExtensions = {};
    // The rooms an extension covers: those of the named lists' windows and of the named subscriptions
    // ("*" for all, the default), as Synapse.
    const scope = (ext: { lists?: string[]; rooms?: string[] }): string[] => {
      const rooms = new Set<string>();
      for (const name of ext.lists ?? ["*"]) for (const [list, ids] of windows.lists) if (name === "*" || name === list) for (const id of ids) rooms.add(id);
      for (const name of ext.rooms ?? ["*"]) for (const id of windows.subscribed) if (name === "*" || name === id) rooms.add(id);
      return [...rooms];
    };
    // The room is new to the client in this answer (or the connection is): its extension data comes whole.
    const fresh = (roomId: string) => !prev || initialRooms.has(roomId);
    // Otherwise what changed since the room's extension data was last given (before it left the windows, maybe).
    const sinceFor = (roomId: string) => prev!.rooms.get(roomId)?.extensionsAt ?? prev!.streams;

    if (requested.to_device?.enabled && deviceId !== undefined && deps.e2ee) {
      const since = requested.to_device.since === undefined ? undefined : Number(requested.to_device.since);
      const messages = await deps.e2ee.toDevice(userId, deviceId, since, now.e2ee);
      out.to_device = { next_batch: String(messages.position), events: messages.events };
    }
    if (requested.e2ee?.enabled && deviceId !== undefined && deps.e2ee) {
      out.e2ee = {
        device_one_time_keys_count: await deps.e2ee.oneTimeKeyCounts(userId, deviceId),
        device_unused_fallback_key_types: await deps.e2ee.unusedFallbackKeyTypes(userId, deviceId),
      };
      // Device list changes only after a first answer (after an initial sync, clients query keys).
      if (prev) {
        const joined = [...all.values()].filter((r) => r.membership === "join").map((r) => r.roomId);
        const left = [...all.values()].filter((r) => r.membership === "leave" || r.membership === "ban").map((r) => r.roomId);
        out.e2ee.device_lists = await deps.e2ee.deviceListChanges(userId, { events: prev.streams.events, e2ee: prev.streams.e2ee }, { events: now.events, e2ee: now.e2ee }, { join: joined, left });
      }
    }
    if (requested.account_data?.enabled) {
      const rooms = scope(requested.account_data);
      const from = Math.min(prev?.streams.accountData ?? 0, ...rooms.filter((id) => !fresh(id)).map((id) => sinceFor(id).accountData));
      const changed = await deps.accountData.since(userId, from);
      const upTo = <T extends { streamPosition: number }>(entries: T[], after: number) => entries.filter((e) => e.streamPosition > after && e.streamPosition <= now.accountData);
      const global = upTo(changed.global, prev?.streams.accountData ?? 0)
        .filter((e) => prev || e.type !== "m.push_rules")
        .map((e) => ({ type: e.type, content: e.content }));
      // The push rules come whole in a first answer (as in /sync).
      if (!prev) global.push({ type: "m.push_rules", content: (await deps.pushRules.accountDataContent(userId)) as unknown as Record<string, unknown> });
      const byRoom: Record<string, { type: string; content: Record<string, unknown> }[]> = {};
      for (const roomId of rooms) {
        const entries = fresh(roomId) ? (await this.roomAccountData(ctx)).get(roomId) : upTo(changed.rooms.get(roomId) ?? [], sinceFor(roomId).accountData);
        if (entries && entries.length > 0) byRoom[roomId] = entries.map((e) => ({ type: e.type, content: e.content }));
      }
      out.account_data = { global, rooms: byRoom };
    }
    if (requested.receipts?.enabled) {
      const rooms: NonNullable<SlidingSyncExtensions["receipts"]>["rooms"] = {};
      const moved = prev && now.receipts > prev.streams.receipts ? new Set(await deps.clientStore.roomsWithReceiptsBetween(prev.streams.receipts, now.receipts)) : new Set<string>();
      for (const roomId of scope(requested.receipts)) {
        if (all.get(roomId)?.membership !== "join") continue;
        let content: ReceiptContent | undefined;
        if (fresh(roomId)) {
          // A room new to the client: the receipts on the events it is given and the user's own (as Synapse).
          const given = timelines.get(roomId) ?? new Set<string>();
          const allReceipts = await deps.receipts.receiptsSince(roomId, 0, userId, now.receipts);
          content = allReceipts && pickReceipts(allReceipts, (eventId, user) => given.has(eventId) || user === userId);
        } else {
          const since = sinceFor(roomId).receipts;
          // Rooms given up to the last answer changed only if a receipt landed since (one query for all).
          if (since < prev!.streams.receipts || moved.has(roomId)) content = await deps.receipts.receiptsSince(roomId, since, userId, now.receipts);
        }
        if (content && Object.keys(content).length > 0) rooms[roomId] = { type: "m.receipt", content };
      }
      out.receipts = { rooms };
    }
    if (requested.typing?.enabled) {
      const rooms: NonNullable<SlidingSyncExtensions["typing"]>["rooms"] = {};
      for (const roomId of scope(requested.typing)) {
        if (all.get(roomId)?.membership !== "join") continue;
        const isFresh = fresh(roomId);
        const typing = deps.typing.typingSince(roomId, isFresh ? 0 : sinceFor(roomId).typing);
        if (typing && (!isFresh || typing.userIds.length > 0)) rooms[roomId] = { type: "m.typing", content: { user_ids: typing.userIds } };
      }
      out.typing = { rooms };
    }
    return out;
  }
}

function extensionPositions(now: StreamPositions): SentRoom["extensionsAt"] {
  return { accountData: now.accountData, receipts: now.receipts, typing: now.typing };
}

function splitKey(key: string): [string, string] {
  const at = key.indexOf("\u0000");
  return [key.slice(0, at), key.slice(at + 1)];
}

function wanted(rs: RoomConfig["requiredState"], key: string): boolean {
  const [type, stateKey] = splitKey(key);
  return stateWanted(rs, type, stateKey);
}

function contentOfStored(stored: StoredEvent | undefined): Record<string, unknown> {
  if (!stored) return {};
  const content = (JSON.parse(stored.json) as { content?: unknown }).content;
  return content !== null && typeof content === "object" && !Array.isArray(content) ? (content as Record<string, unknown>) : {};
}

/** The part of an m.receipt content whose (event, user) pairs `keep` accepts. */
function pickReceipts(content: ReceiptContent, keep: (eventId: string, userId: string) => boolean): ReceiptContent {
  const out: ReceiptContent = {};
  for (const [eventId, byType] of Object.entries(content)) {
    for (const [type, byUser] of Object.entries(byType)) {
      for (const [user, receipt] of Object.entries(byUser)) {
        if (!keep(eventId, user)) continue;
        ((out[eventId] ??= {})[type] ??= {})[user] = receipt;
      }
    }
  }
  return out;
}
