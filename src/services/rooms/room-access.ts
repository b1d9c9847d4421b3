// Who may see what in a room (client-server-api "History visibility"), for local reads: the state a
// user may read, whether an event is visible to them, and whether a redaction applies.
import { MatrixError } from "../../protocol/errors";
import type { RoomEvent } from "../../protocol/events";
import type { JsonObject } from "../../protocol/json";
import type { RoomVersion } from "../../protocol/room-versions";
import { type AuthStateLookup, namedLevel, userPowerLevel } from "../../protocol/auth";
import { serverNameOf } from "../../protocol/identifiers";
import type { RoomEventStore, StoredEvent } from "../../storage/stores";
import type { EventLoader } from "./client-events";
import type { RoomEngine } from "./room-engine";

export class RoomAccess implements EventLoader {
  constructor(
    readonly engine: RoomEngine,
    readonly store: RoomEventStore,
    /** Rooms a user forgot: their history up to the leave is no longer theirs to read. */
    private readonly isForgotten: (userId: string, roomId: string) => boolean = () => false,
  ) {}

  /** The users whose current membership is join. */
  joinedMembers(roomId: string): string[] {
    return [...this.store.currentMemberships(roomId)].filter(([, m]) => m === "join").map(([u]) => u);
  }

  /** The room's version; M_NOT_FOUND for a room this server does not know. */
  versionOf(roomId: string): RoomVersion {
    return this.engine.versionOf(roomId);
  }

  load(eventId: string): { stored: StoredEvent; pdu: JsonObject; version: RoomVersion; event: RoomEvent } | undefined {
    const hit = this.engine.loadEvent(eventId);
    return hit && { ...hit, version: this.engine.versionOf(hit.stored.roomId) };
  }

  /** A user's current membership ("join", "leave", ...), undefined when they never had one. */
  membership(roomId: string, userId: string): string | undefined {
    const content = this.engine.currentStateEvent(roomId, "m.room.member", userId)?.content;
    return typeof content?.membership === "string" ? content.membership : undefined;
  }

  /** Looks up current state as the auth rules do. */
  currentAuthState(roomId: string): AuthStateLookup {
    return (type, stateKey) => this.engine.currentStateEvent(roomId, type, stateKey);
  }

  /** Looks up the state of a snapshot. */
  snapshotLookup(snapshot: number | undefined): AuthStateLookup {
    return (type, stateKey) => {
      if (snapshot === undefined) return undefined;
      const id = this.store.stateEntryAt(snapshot, type, stateKey);
      return id === undefined ? undefined : this.engine.loadEvent(id)?.event;
    };
  }

  historyVisibility(lookup: AuthStateLookup): string {
    const value = lookup("m.room.history_visibility", "")?.content.history_visibility;
    return typeof value === "string" ? value : "shared";
  }

  /**
   * The state a user may read: the current state while joined (or in a world_readable room); for a
   * user who left or was kicked or banned after being joined, the state when they left. Otherwise 403.
   */
  readableStateSnapshot(roomId: string, userId: string): { snapshot: number | undefined; current: boolean } {
    this.versionOf(roomId);
    const membership = this.membership(roomId, userId);
    if (membership === "join" || this.historyVisibility(this.currentAuthState(roomId)) === "world_readable") {
      return { snapshot: this.store.currentStateSnapshot(roomId), current: true };
    }
    const departure = this.departureOf(roomId, userId);
    if (departure && !this.isForgotten(userId, roomId)) return { snapshot: departure.stateSnapshot, current: false };
    throw new MatrixError("M_FORBIDDEN", `You are not a member of the room ${roomId}`);
  }

  /** The state map (type\0state_key -> event id) a user may read. */
  readableState(roomId: string, userId: string): Map<string, string> {
    const { snapshot, current } = this.readableStateSnapshot(roomId, userId);
    if (current) return this.store.currentState(roomId);
    return snapshot === undefined ? new Map() : this.store.stateAt(snapshot);
  }

  readableStateEntry(roomId: string, userId: string, type: string, stateKey: string): string | undefined {
    const { snapshot, current } = this.readableStateSnapshot(roomId, userId);
    if (current) return this.store.currentStateEvent(roomId, type, stateKey);
    return snapshot === undefined ? undefined : this.store.stateEntryAt(snapshot, type, stateKey);
  }

  /** The user's current leave/ban event when it ended a join (not a rejected invite or a withdrawn knock). */
  departureOf(roomId: string, userId: string): StoredEvent | undefined {
    const id = this.store.currentStateEvent(roomId, "m.room.member", userId);
    const current = id === undefined ? undefined : this.store.getEvent(id);
    if (!current) return undefined;
    const membership = this.engine.loadEvent(current.eventId)?.event.content.membership;
    if (membership !== "leave" && membership !== "ban") return undefined;
    const before = this.membershipBefore(current, userId);
    return before === "join" ? current : undefined;
  }

  /** A user's membership in the state before an event (taken from its first prev event). */
  private membershipBefore(stored: StoredEvent, userId: string): string | undefined {
    const prev = stored.prevEvents[0] !== undefined ? this.store.getEvent(stored.prevEvents[0]) : undefined;
    const membership = this.snapshotLookup(prev?.stateSnapshot)("m.room.member", userId)?.content.membership;
    return typeof membership === "string" ? membership : undefined;
  }

  /**
   * Whether a user may see a timeline event, by the history visibility and their membership in the
   * state at the event; "shared" history is visible while they are joined, and up to their leave.
   */
  canSee(userId: string, stored: StoredEvent): boolean {
    if (stored.stateSnapshot === undefined || stored.rejectedReason !== undefined) return false;
    if (stored.type === "m.room.member" && stored.stateKey === userId) return true;
    const atEvent = this.snapshotLookup(stored.stateSnapshot);
    const visibility = this.historyVisibility(atEvent);
    if (visibility === "world_readable") return true;
    const membershipAt = atEvent("m.room.member", userId)?.content.membership;
    if (membershipAt === "join") return true;
    if (visibility === "invited" && membershipAt === "invite") return true;
    if (visibility !== "shared") return false;
    const current = this.membership(stored.roomId, userId);
    if (current === "join") return true;
    const departure = this.departureOf(stored.roomId, userId);
    if (departure && this.isForgotten(userId, stored.roomId)) return false;
    return departure?.streamOrdering !== undefined && stored.streamOrdering !== undefined && stored.streamOrdering <= departure.streamOrdering;
  }

  /** May this user read the room's timeline at all (now or up to their departure)? 403 otherwise. */
  requireTimelineAccess(roomId: string, userId: string): void {
    this.readableStateSnapshot(roomId, userId);
  }

  /** v3+: a redaction applies when its sender's server sent the target, or the sender may redact (by the state at the redaction). */
  redactionApplies(redaction: StoredEvent, target: StoredEvent): boolean {
    if (redaction.roomId !== target.roomId) return false;
    if (target.type === "m.room.create") return false;
    if (serverNameOf(redaction.sender) === serverNameOf(target.sender)) return true;
    const version = this.versionOf(redaction.roomId);
    const lookup = this.snapshotLookup(redaction.stateSnapshot);
    return userPowerLevel(redaction.sender, lookup, version) >= namedLevel("redact", lookup, version);
  }
}

