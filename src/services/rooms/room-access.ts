// Who may see what in a room (client-server-api "History visibility"), for local reads: the state a
// user may read, whether an event is visible to them, and whether a redaction applies.
import { MatrixError } from "../../protocol/errors";
import { stateKey as stateMapKey, type RoomEvent } from "../../protocol/events";
import type { JsonObject } from "../../protocol/json";
import type { RoomVersion } from "../../protocol/room-versions";
import { type AuthStateLookup, type StateTuple, namedLevel, userPowerLevel } from "../../protocol/auth";
import { serverNameOf } from "../../protocol/identifiers";
import type { RoomEventStore, StoredEvent } from "../../storage/stores";
import type { EventLoader } from "./client-events";
import type { RoomEngine } from "./room-engine";

/**
 * The room-wide state the power-level and join-rule helpers of the auth rules read (userPowerLevel,
 * namedLevel, eventSendLevel, joinRuleOf) and historyVisibility.
 */
export const ROOM_AUTH_STATE: readonly StateTuple[] = [
  ["m.room.create", ""],
  ["m.room.power_levels", ""],
  ["m.room.join_rules", ""],
  ["m.room.history_visibility", ""],
];

/**
 * What canSee looks up, kept for one viewer over one request (a /sync's timelines): the history
 * visibility and the viewer's membership at each state snapshot, and their current membership and
 * departure per room. Most events of a timeline share a snapshot (messages change no state), so
 * these are looked up once per snapshot and room instead of once per event.
 */
export class VisibilityMemo {
  readonly visibility = new Map<number | undefined, Promise<string>>();
  readonly membershipAt = new Map<number | undefined, Promise<unknown>>();
  readonly current = new Map<string, Promise<string | undefined>>();
  readonly departure = new Map<string, Promise<StoredEvent | undefined>>();
}

/** The memo's promise for a key, made by `make` the first time (none kept without a memo). */
function remembered<K, V>(memo: Map<K, Promise<V>> | undefined, key: K, make: () => Promise<V>): Promise<V> {
  if (memo === undefined) return make();
  let value = memo.get(key);
  if (value === undefined) memo.set(key, (value = make()));
  return value;
}

export class RoomAccess implements EventLoader {
  constructor(
    readonly engine: RoomEngine,
    readonly store: RoomEventStore,
    /** Rooms a user forgot: their history up to the leave is no longer theirs to read. */
    private readonly isForgotten: (userId: string, roomId: string) => boolean | Promise<boolean> = () => false,
    /** Users erased on deactivation; asked for every event formatted, so answered from memory. */
    private readonly erased: (userId: string) => boolean = () => false,
  ) {}

  isErased(userId: string): boolean {
    return this.erased(userId);
  }

  /** Whether the user was joined to the room in the state at the event (none for an outlier). */
  async joinedAt(userId: string, stored: StoredEvent): Promise<boolean> {
    return (await this.stateEventAt(stored.stateSnapshot, "m.room.member", userId))?.content.membership === "join";
  }

  /** The users whose current membership is join. */
  async joinedMembers(roomId: string): Promise<string[]> {
    return [...(await this.store.currentMemberships(roomId))].filter(([, m]) => m === "join").map(([u]) => u);
  }

  /** The room's version; M_NOT_FOUND for a room this server does not know. */
  versionOf(roomId: string): Promise<RoomVersion> {
    return this.engine.versionOf(roomId);
  }

  async load(eventId: string): Promise<{ stored: StoredEvent; pdu: JsonObject; version: RoomVersion; event: RoomEvent } | undefined> {
    const hit = await this.engine.loadEvent(eventId);
    return hit && { ...hit, version: await this.engine.versionOf(hit.stored.roomId) };
  }

  /** A user's current membership ("join", "leave", ...), undefined when they never had one. */
  async membership(roomId: string, userId: string): Promise<string | undefined> {
    const content = (await this.engine.currentStateEvent(roomId, "m.room.member", userId))?.content;
    return typeof content?.membership === "string" ? content.membership : undefined;
  }

  /**
   * The current state as the auth rules look it up: the room-wide entries (ROOM_AUTH_STATE), plus
   * the member events of `members`. The rules are synchronous, so these are loaded first; looking
   * up anything else throws (a caller that needs more must name it).
   */
  async currentAuthState(roomId: string, members: readonly string[] = []): Promise<AuthStateLookup> {
    const loaded = new Map<string, RoomEvent | undefined>();
    for (const [type, key] of withMembers(members)) loaded.set(stateMapKey(type, key), await this.engine.currentStateEvent(roomId, type, key));
    return preloadedLookup(loaded);
  }

  /** The state of a snapshot as the auth rules look it up, for the given keys (as currentAuthState). */
  async snapshotLookup(snapshot: number | undefined, keys: readonly StateTuple[]): Promise<AuthStateLookup> {
    const loaded = new Map<string, RoomEvent | undefined>();
    for (const [type, key] of keys) loaded.set(stateMapKey(type, key), await this.stateEventAt(snapshot, type, key));
    return preloadedLookup(loaded);
  }

  historyVisibility(lookup: AuthStateLookup): string {
    const value = lookup("m.room.history_visibility", "")?.content.history_visibility;
    return typeof value === "string" ? value : "shared";
  }

  /**
   * The state a user may read: the current state while joined (or in a world_readable room); for a
   * user who left or was kicked or banned after being joined, the state when they left. Otherwise 403.
   */
  async readableStateSnapshot(roomId: string, userId: string): Promise<{ snapshot: number | undefined; current: boolean }> {
    await this.versionOf(roomId);
    const membership = await this.membership(roomId, userId);
    if (membership === "join" || this.historyVisibility(await this.currentAuthState(roomId)) === "world_readable") {
      return { snapshot: await this.store.currentStateSnapshot(roomId), current: true };
    }
    const departure = await this.departureOf(roomId, userId);
    if (departure && !(await this.isForgotten(userId, roomId))) return { snapshot: departure.stateSnapshot, current: false };
    throw new MatrixError("M_FORBIDDEN", `You are not a member of the room ${roomId}`);
  }

  /** The state map (type\0state_key -> event id) a user may read. */
  async readableState(roomId: string, userId: string): Promise<Map<string, string>> {
    const { snapshot, current } = await this.readableStateSnapshot(roomId, userId);
    if (current) return this.store.currentState(roomId);
    return snapshot === undefined ? new Map() : this.store.stateAt(snapshot);
  }

  async readableStateEntry(roomId: string, userId: string, type: string, stateKey: string): Promise<string | undefined> {
    const { snapshot, current } = await this.readableStateSnapshot(roomId, userId);
    if (current) return this.store.currentStateEvent(roomId, type, stateKey);
    return snapshot === undefined ? undefined : this.store.stateEntryAt(snapshot, type, stateKey);
  }

  /** The user's current leave/ban event when it ended a join (not a rejected invite or a withdrawn knock). */
  async departureOf(roomId: string, userId: string): Promise<StoredEvent | undefined> {
    const id = await this.store.currentStateEvent(roomId, "m.room.member", userId);
    const current = id === undefined ? undefined : await this.store.getEvent(id);
    if (!current) return undefined;
    const membership = (await this.engine.loadEvent(current.eventId))?.event.content.membership;
    if (membership !== "leave" && membership !== "ban") return undefined;
    const before = await this.membershipBefore(current, userId);
    return before === "join" ? current : undefined;
  }

  /** A user's membership in the state before an event (taken from its first prev event). */
  private async membershipBefore(stored: StoredEvent, userId: string): Promise<string | undefined> {
    const prev = stored.prevEvents[0] !== undefined ? await this.store.getEvent(stored.prevEvents[0]) : undefined;
    const membership = (await this.stateEventAt(prev?.stateSnapshot, "m.room.member", userId))?.content.membership;
    return typeof membership === "string" ? membership : undefined;
  }

  /**
   * Whether a user may see a timeline event, by the history visibility and their membership in the
   * state at the event; "shared" history is visible while they are joined, and up to their leave.
   */
  async canSee(userId: string, stored: StoredEvent, memo?: VisibilityMemo): Promise<boolean> {
    if (stored.stateSnapshot === undefined || stored.rejectedReason !== undefined) return false;
    if (stored.type === "m.room.member" && stored.stateKey === userId) return true;
    const visibility = await this.visibilityAt(stored.stateSnapshot, memo);
    if (await this.visibleUnder(visibility, userId, stored, memo)) return true;
    // A history_visibility event is visible when the visibility before it or after it allows
    // (history_visibility.md, "Server behaviour"): a change to "joined" is seen by those it shuts out.
    if (stored.type !== "m.room.history_visibility" || stored.stateKey !== "") return false;
    const prev = stored.prevEvents[0] !== undefined ? await this.store.getEvent(stored.prevEvents[0]) : undefined;
    const before = await this.visibilityAt(prev?.stateSnapshot, memo);
    return before !== visibility && (await this.visibleUnder(before, userId, stored, memo));
  }

  private visibilityAt(snapshot: number | undefined, memo: VisibilityMemo | undefined): Promise<string> {
    return remembered(memo?.visibility, snapshot, async () => this.historyVisibility(await this.snapshotLookup(snapshot, [["m.room.history_visibility", ""]])));
  }

  /** The rules of history visibility for one event (its state snapshot) under a given visibility. */
  private async visibleUnder(visibility: string, userId: string, stored: StoredEvent, memo: VisibilityMemo | undefined): Promise<boolean> {
    if (visibility === "world_readable") return true;
    const membershipAt = await remembered(memo?.membershipAt, stored.stateSnapshot, async () => (await this.stateEventAt(stored.stateSnapshot, "m.room.member", userId))?.content.membership);
    if (membershipAt === "join") return true;
    if (visibility === "invited" && membershipAt === "invite") return true;
    if (visibility !== "shared") return false;
    const current = await remembered(memo?.current, stored.roomId, () => this.membership(stored.roomId, userId));
    if (current === "join") return true;
    const departure = await remembered(memo?.departure, stored.roomId, () => this.departureOf(stored.roomId, userId));
    if (departure && (await this.isForgotten(userId, stored.roomId))) return false;
    return departure?.streamOrdering !== undefined && stored.streamOrdering !== undefined && stored.streamOrdering <= departure.streamOrdering;
  }

  /** May this user read the room's timeline at all (now or up to their departure)? 403 otherwise. */
  async requireTimelineAccess(roomId: string, userId: string): Promise<void> {
    await this.readableStateSnapshot(roomId, userId);
  }

  /** v3+: a redaction applies when its sender's server sent the target, or the sender may redact (by the state at the redaction). */
  async redactionApplies(redaction: StoredEvent, target: StoredEvent): Promise<boolean> {
    if (redaction.roomId !== target.roomId) return false;
    if (target.type === "m.room.create") return false;
    if (serverNameOf(redaction.sender) === serverNameOf(target.sender)) return true;
    const version = await this.versionOf(redaction.roomId);
    const lookup = await this.snapshotLookup(redaction.stateSnapshot, ROOM_AUTH_STATE);
    return userPowerLevel(redaction.sender, lookup, version) >= namedLevel("redact", lookup, version);
  }

  /** One entry of a snapshot's state, parsed; undefined without a snapshot. */
  private async stateEventAt(snapshot: number | undefined, type: string, stateKey: string): Promise<RoomEvent | undefined> {
    if (snapshot === undefined) return undefined;
    const id = await this.store.stateEntryAt(snapshot, type, stateKey);
    return id === undefined ? undefined : (await this.engine.loadEvent(id))?.event;
  }
}

function withMembers(members: readonly string[]): StateTuple[] {
  return [...ROOM_AUTH_STATE, ...members.map((m): StateTuple => ["m.room.member", m])];
}

function preloadedLookup(loaded: ReadonlyMap<string, RoomEvent | undefined>): AuthStateLookup {
  return (type, stateKey) => {
    const key = stateMapKey(type, stateKey);
    if (!loaded.has(key)) throw new Error(`state (${type}, ${JSON.stringify(stateKey)}) was not loaded for this lookup`);
    return loaded.get(key);
  };
}
