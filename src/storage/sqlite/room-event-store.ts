// The SQLite RoomEventStore: the room DAG, its state snapshots and current state, written together
// in one transaction per event so that a persisted event is never half there.
import type { SqlDatabase } from "./driver";
import { splitStateKey, stateKey } from "../../protocol/events";
import type { StateDelta, PersistEventInput, RoomEventStore, RoomRecord, StoredEvent } from "../stores";
import { RoomsTable } from "./tables/rooms";
import { EventsTable } from "./tables/events";
import { StateSnapshotsTable } from "./tables/state-snapshots";
import { CurrentStateTable } from "./tables/current-state";


export class SqliteRoomEventStore implements RoomEventStore {
  private readonly rooms: RoomsTable;
  private readonly events: EventsTable;
  private readonly snapshots: StateSnapshotsTable;
  private readonly current: CurrentStateTable;

  constructor(private readonly db: SqlDatabase) {
    this.rooms = new RoomsTable(db);
    this.events = new EventsTable(db);
    this.snapshots = new StateSnapshotsTable(db);
    this.current = new CurrentStateTable(db);
  }

  createRoom(room: RoomRecord): void {
    this.rooms.create(room);
  }

  getRoom(roomId: string): RoomRecord | undefined {
    return this.rooms.get(roomId);
  }

  getEvent(eventId: string): StoredEvent | undefined {
    return this.events.get(eventId);
  }

  getEvents(eventIds: readonly string[]): Map<string, StoredEvent> {
    const found = new Map<string, StoredEvent>();
    for (const id of eventIds) {
      const e = this.events.get(id);
      if (e) found.set(id, e);
    }
    return found;
  }

  persistEvent(input: PersistEventInput): StoredEvent {
    const { event } = input;
    try {
      return this.db.transaction(() => {
        if (input.createRoom) this.rooms.create(input.createRoom);
        const outlier = event.outlier === true || input.stateAfter === undefined;
        const snapshot = outlier ? undefined : this.snapshots.write(event.roomId, input.stateAfter!.parent, input.stateAfter!.delta);
        // Only events that belong in the timeline get a stream position.
        const inTimeline = !outlier && !event.rejectedReason && !event.softFailed;
        const streamOrdering = inTimeline ? this.events.maxStreamOrdering() + 1 : undefined;
        this.events.insert(event, streamOrdering, snapshot);
        if (input.updateForwardExtremities && inTimeline) this.events.advanceExtremities(event.roomId, event.eventId, event.prevEvents);
        const current = input.updateCurrentState;
        if (current === true && snapshot !== undefined) {
          // The usual case — the new state is the current state plus this event's delta — costs
          // only the delta; anything else (a fork, a resolution) compares the two states.
          const onCurrent = input.stateAfter?.parent !== undefined && input.stateAfter.parent === this.current.snapshot(event.roomId);
          if (onCurrent) this.applyCurrentStateDelta(event.roomId, snapshot, input.stateAfter!.delta);
          else this.replaceCurrentState(event.roomId, snapshot);
        }
        else if (typeof current === "object") this.replaceCurrentState(event.roomId, this.snapshots.write(event.roomId, current.parent, current.delta));
        return this.events.get(event.eventId)!;
      });
    } catch (error) {
      this.snapshots.clearCache();
      throw error;
    }
  }

  private applyCurrentStateDelta(roomId: string, snapshot: number, delta: StateDelta): void {
    for (const [key, eventId] of delta) {
      const [type, stateKey] = splitStateKey(key);
      if (eventId === null) this.current.delete(roomId, type, stateKey);
      else if (this.current.get(roomId, type, stateKey) !== eventId) {
        this.current.set(roomId, type, stateKey, eventId, type === "m.room.member" ? this.membershipOf(eventId) : undefined);
      }
    }
    this.current.setSnapshot(roomId, snapshot);
  }

  /** Moves current_state to a snapshot, writing only the keys that differ. */
  private replaceCurrentState(roomId: string, snapshot: number): void {
    const before = this.current.snapshot(roomId);
    if (before === snapshot) return;
    const oldState = before === undefined ? new Map<string, string>() : this.snapshots.read(before);
    const newState = this.snapshots.read(snapshot);
    for (const [key, eventId] of newState) {
      if (oldState.get(key) === eventId) continue;
      const [type, stateKey] = splitStateKey(key);
      this.current.set(roomId, type, stateKey, eventId, type === "m.room.member" ? this.membershipOf(eventId) : undefined);
    }
    for (const key of oldState.keys()) {
      if (!newState.has(key)) this.current.delete(roomId, ...splitStateKey(key));
    }
    this.current.setSnapshot(roomId, snapshot);
  }

  private membershipOf(eventId: string): string | undefined {
    const stored = this.events.get(eventId);
    if (!stored) return undefined;
    const membership = (JSON.parse(stored.json) as { content?: { membership?: unknown } }).content?.membership;
    return typeof membership === "string" ? membership : undefined;
  }

  forwardExtremities(roomId: string): string[] {
    return this.events.forwardExtremities(roomId);
  }

  stateAt(snapshot: number): Map<string, string> {
    return new Map(this.snapshots.read(snapshot));
  }

  stateEntryAt(snapshot: number, type: string, key: string): string | undefined {
    return this.snapshots.entry(snapshot, stateKey(type, key));
  }

  currentStateSnapshot(roomId: string): number | undefined {
    return this.current.snapshot(roomId);
  }

  currentState(roomId: string): Map<string, string> {
    return new Map(this.current.all(roomId).map((r) => [stateKey(r.type, r.state_key), r.event_id]));
  }

  currentStateEvent(roomId: string, type: string, stateKey: string): string | undefined {
    return this.current.get(roomId, type, stateKey);
  }

  currentMemberships(roomId: string): Map<string, string> {
    return this.current.memberships(roomId);
  }

  roomsWithMembership(userId: string, membership: string): string[] {
    return this.current.roomsWithMembership(userId, membership);
  }

  membersWithMembership(membership: string): { roomId: string; userId: string; eventId: string }[] {
    return this.current.membersWithMembership(membership);
  }

  authChain(eventIds: readonly string[]): Set<string> {
    return this.events.authChain(eventIds);
  }

  maxStreamOrdering(): number {
    return this.events.maxStreamOrdering();
  }

  roomEventsBetween(roomId: string, fromExclusive: number, toInclusive: number, limit: number): StoredEvent[] {
    return this.events.between(roomId, fromExclusive, toInclusive, limit);
  }

  roomEventsBackwards(roomId: string, beforeInclusive: number, afterExclusive: number, limit: number): StoredEvent[] {
    return this.events.backwards(roomId, beforeInclusive, afterExclusive, limit);
  }

  atomically<T>(fn: () => T): T {
    try {
      return this.db.transaction(fn);
    } catch (error) {
      // Snapshots written inside the rolled-back transaction must not linger in the cache.
      this.snapshots.clearCache();
      throw error;
    }
  }
}
