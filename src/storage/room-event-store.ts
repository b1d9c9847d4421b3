// The RoomEventStore: the room DAG, its state snapshots and current state, written together in one
// transaction per event so that a persisted event is never half there.
import type { Database, TransactionOptions } from "./database";
import { splitStateKey, stateKey } from "../protocol/events";
import type { StateDelta, PersistEventInput, RoomEventStore, RoomRecord, StoredEvent } from "./stores";
import { RoomsTable } from "./tables/rooms";
import { EventsTable } from "./tables/events";
import { StateSnapshotsTable } from "./tables/state-snapshots";
import { CurrentStateTable, type CurrentStateRow, type MemberOf } from "./tables/current-state";
import { CommittedCache, ImmutableRowCache } from "./row-cache";

/** Events kept parsed into rows: /sync and the receive path read the same recent events again and again. */
const EVENT_CACHE = 20_000;
/** Rooms whose newest timeline events are kept (RoomTail). */
const TAIL_ROOMS = 1_000;
/** The most events a room's tail keeps as writes extend it. */
const TAIL_ROWS = 64;
/** Users whose rooms (with their membership in each) are kept: each /sync that has anything to say reads them. */
const MEMBER_USERS = 1_000;
/**
 * Rooms whose current memberships (user -> membership) are kept: every local send reads them, for
 * the servers it goes to and the members it notifies.
 */
const MEMBERSHIP_ROOMS = 500;
/** Entries of current state kept (a send reads its auth events' entries: create, power levels, join rules, the sender's member event). */
const CURRENT_ENTRIES = 20_000;
const currentEntryKey = (roomId: string, type: string, stateKey: string) => `${roomId}\0${type}\0${stateKey}`;

/**
 * A room's newest timeline events, newest first, as read when nothing was being written to it:
 * every timeline event of the room with a stream ordering above `completeAbove` is in `rows`. Each
 * member's incremental /sync after a message reads the same few events of that room: one read
 * serves them all. Any write to the room drops its tail.
 */
interface RoomTail {
  readonly rows: readonly StoredEvent[];
  readonly completeAbove: number;
}

export class SqlRoomEventStore implements RoomEventStore {
  private readonly rooms: RoomsTable;
  private readonly events: EventsTable;
  private readonly snapshots: StateSnapshotsTable;
  private readonly current: CurrentStateTable;
  private readonly eventCache = new ImmutableRowCache<string, StoredEvent>(EVENT_CACHE);
  /** A room's record never changes once created. */
  private readonly roomCache = new ImmutableRowCache<string, RoomRecord>(10_000);
  /**
   * Events written inside transactions, read back there before they commit: a batch of received
   * events reads each one's prev event, written just before in the same transaction. Read only
   * inside a transaction; any rollback forgets them all (rollbacks are rare: a failed unit or commit).
   */
  private readonly fresh = new ImmutableRowCache<string, StoredEvent>(2_000);
  private readonly tails: CommittedCache<string, RoomTail>;
  /** Per user, the rooms of their current member events: dropped by any write of one. */
  private readonly memberOf: CommittedCache<string, MemberOf[]>;
  /** Entries of current state (currentEntryKey -> event id, null: none), each dropped by a write of it. */
  private readonly currentEntries: CommittedCache<string, string | null>;
  /** Per room, its current memberships: dropped by any write of a member event to its current state. */
  private readonly memberships: CommittedCache<string, ReadonlyMap<string, string>>;
  /**
   * Per room, its current state snapshot and forward extremities as last read or written. Each
   * room's writes go through its write queue, which reads them first; any rollback forgets them all.
   * An entry may go at any moment (evicted, or dropped by the memory trimmer), also while a write of
   * it is open: readers inside the write then read the engine on its own connection, those outside
   * do not use it until the commit (headsWriting).
   */
  private readonly heads = new ImmutableRowCache<string, { snapshot?: number | null; extremities?: readonly string[] }>(10_000);
  /** Moves on every write of them: a read that started before a write must not cache what it read. */
  private headsEpoch = 0;
  /**
   * Rooms whose heads were written, or read, inside a transaction not committed yet: what `heads`
   * holds for them may not be committed. Readers outside a transaction read the engine for them (on
   * PostgreSQL the pool, which sees what is committed) and keep nothing, until the next commit;
   * otherwise such a reader could take an uncommitted snapshot number and keep, for it, state
   * entries read where they do not exist yet. A rollback drops the heads but not these marks: a
   * batch's other units still commit theirs. On SQLite such an outside read waits for the running
   * batch: nothing inside a transaction may await a heads read begun outside it (another async
   * chain), or the batch would wait for itself.
   */
  private readonly headsWriting = new Set<string>();

  constructor(private readonly db: Database) {
    this.rooms = new RoomsTable(db);
    this.events = new EventsTable(db);
    this.snapshots = new StateSnapshotsTable(db);
    this.current = new CurrentStateTable(db);
    // Snapshots cached inside a rolled-back transaction (or savepoint) must not linger in the cache.
    this.tails = new CommittedCache(db, TAIL_ROOMS);
    this.memberOf = new CommittedCache(db, MEMBER_USERS);
    this.memberships = new CommittedCache(db, MEMBERSHIP_ROOMS);
    this.currentEntries = new CommittedCache(db, CURRENT_ENTRIES);
    db.onRollback(() => {
      this.snapshots.forgetUncommitted();
      this.fresh.clear();
      this.heads.clear();
      this.headsEpoch++;
    });
    db.onCommit(() => this.headsWriting.clear());
  }

  async createRoom(room: RoomRecord): Promise<void> {
    await this.rooms.create(room);
  }

  async getRoom(roomId: string): Promise<RoomRecord | undefined> {
    const hit = this.roomCache.get(roomId);
    if (hit) return hit;
    const room = await this.rooms.get(roomId);
    if (room && !this.db.inTransaction()) this.roomCache.set(roomId, room);
    return room;
  }

  // Event rows change once at most (an outlier that backfill moves into the timeline, which drops it
  // from this cache): otherwise a committed one can be served from memory for good.
  async getEvent(eventId: string): Promise<StoredEvent | undefined> {
    const inTransaction = this.db.inTransaction();
    const hit = this.eventCache.get(eventId) ?? (inTransaction ? this.fresh.get(eventId) : undefined);
    if (hit) return hit;
    const stored = await this.events.get(eventId);
    if (stored && !inTransaction) this.eventCache.set(eventId, stored);
    return stored;
  }

  async getEvents(eventIds: readonly string[]): Promise<Map<string, StoredEvent>> {
    // The hits are taken now: the cache may evict them while the misses load.
    const hits = new Map<string, StoredEvent>();
    const missing: string[] = [];
    const inTransaction = this.db.inTransaction();
    for (const id of eventIds) {
      const hit = this.eventCache.get(id) ?? (inTransaction ? this.fresh.get(id) : undefined);
      if (hit) hits.set(id, hit);
      else missing.push(id);
    }
    const loaded = missing.length > 0 ? await this.events.getMany(missing) : new Map<string, StoredEvent>();
    const cacheable = !inTransaction;
    // In the order asked for, as the table returns them.
    const found = new Map<string, StoredEvent>();
    for (const id of eventIds) {
      const stored = hits.get(id) ?? loaded.get(id);
      if (!stored) continue;
      found.set(id, stored);
      if (cacheable && loaded.has(id)) this.eventCache.set(id, stored);
    }
    return found;
  }

  async persistEvent(input: PersistEventInput): Promise<StoredEvent> {
    // The room's tail takes the new event in once it is durable (a busy room's tail stays in memory
    // for every member's next /sync); anything else it cannot be sure of drops it.
    return this.tails.writeExtending(input.event.roomId, () => this.persistInTransaction(input), (tail, stored) => (input.event.promoteOutlier ? undefined : extendTail(tail, stored)));
  }

  private persistInTransaction(input: PersistEventInput): Promise<StoredEvent> {
    const { event } = input;
    return this.snapshots.transaction(async () => {
      if (input.createRoom) await this.rooms.create(input.createRoom);
      const outlier = event.outlier === true || input.stateAfter === undefined;
      const snapshot = outlier ? undefined : await this.snapshots.write(event.roomId, input.stateAfter!.parent, input.stateAfter!.delta);
      // Only events that belong in the timeline get a stream position.
      const inTimeline = !outlier && !event.rejectedReason && !event.softFailed;
      const advance = input.updateForwardExtremities === true && inTimeline;
      const { stored, extremity } = await this.events.insert(event, inTimeline, snapshot, input.historicalOrdering, advance, input.createdHere === true);
      // The one change an event row ever sees: the outlier served from memory is stale now (and the
      // stream position of a member event among a user's rooms).
      if (event.promoteOutlier) {
        this.eventCache.delete(stored.eventId);
        if (event.type === "m.room.member" && event.stateKey !== undefined) await this.memberOf.write(event.stateKey, async () => undefined);
      }
      this.fresh.set(stored.eventId, stored);
      if (advance) {
        this.headsEpoch++;
        this.headsWriting.add(event.roomId);
        const heads = this.heads.get(event.roomId);
        if (heads?.extremities) {
          const next = heads.extremities.filter((id) => !event.prevEvents.includes(id));
          if (extremity && !next.includes(event.eventId)) next.push(event.eventId);
          // In the table's order (ORDER BY event_id: ASCII IDs compare the same in both).
          heads.extremities = next.sort();
        }
      }
      const current = input.updateCurrentState;
      // The event's own JSON is at hand: no need to read it back for its membership.
      const known = new Map([[event.eventId, event.json]]);
      if (current === true && snapshot !== undefined) {
        // The usual case — the new state is the current state plus this event's delta — costs
        // only the delta; anything else (a fork, a resolution) compares the two states.
        const onCurrent = input.stateAfter?.parent !== undefined && input.stateAfter.parent === (await this.currentSnapshotOf(event.roomId));
        // A snapshot equal to its parent means the delta changed nothing (a message): nothing to write.
        if (onCurrent) {
          if (snapshot !== input.stateAfter!.parent) await this.applyCurrentStateDelta(event.roomId, snapshot, input.stateAfter!.delta, known);
        }
        else await this.replaceCurrentState(event.roomId, snapshot, known);
      } else if (typeof current === "object") await this.replaceCurrentState(event.roomId, await this.snapshots.write(event.roomId, current.parent, current.delta), known);
      return stored;
    });
  }

  private async applyCurrentStateDelta(roomId: string, snapshot: number, delta: StateDelta, known: ReadonlyMap<string, string>): Promise<void> {
    for (const [key, eventId] of delta) {
      const [type, stateKey] = splitStateKey(key);
      const member = type === "m.room.member";
      if (eventId === null) await this.stateWrite(roomId, [[type, stateKey]], () => this.current.delete(roomId, type, stateKey));
      else if ((await this.current.get(roomId, type, stateKey)) !== eventId) {
        const membership = member ? (await this.membershipsOf([eventId], known)).get(eventId) : undefined;
        await this.stateWrite(roomId, [[type, stateKey]], () => this.current.set(roomId, type, stateKey, eventId, membership));
      }
    }
    await this.setCurrentSnapshot(roomId, snapshot);
  }

  /** A write of these (type, state_key) entries of the room's current state: what is kept of them (and of its members, for member events) is dropped. */
  private stateWrite<T>(roomId: string, entries: readonly (readonly [type: string, stateKey: string])[], fn: () => Promise<T>): Promise<T> {
    const users = entries.flatMap(([type, key]) => (type === "m.room.member" ? [key] : []));
    const write = () => this.currentEntries.writeMany(entries.map(([type, key]) => currentEntryKey(roomId, type, key)), fn);
    return users.length === 0 ? write() : this.memberOf.writeMany(users, () => this.memberships.write(roomId, write));
  }

  /** The room's kept heads, for this caller: none outside a transaction while one not committed has touched them. */
  private headsFor(roomId: string): { kept?: { snapshot?: number | null; extremities?: readonly string[] }; keep: boolean } {
    // The mark first: asking the transaction context costs more, and a room is rarely marked.
    if (this.headsWriting.has(roomId) && !this.db.inTransaction()) return { keep: false };
    return { kept: this.heads.get(roomId), keep: true };
  }

  /** Keeps heads just read (unless a write of heads began meanwhile); inside a transaction, marks them uncommitted. */
  private keepHeads(roomId: string, epoch: number, read: { snapshot?: number | null; extremities?: readonly string[] }): void {
    if (epoch !== this.headsEpoch) return;
    if (this.db.inTransaction()) this.headsWriting.add(roomId);
    this.heads.set(roomId, { ...this.heads.get(roomId), ...read });
  }

  private async currentSnapshotOf(roomId: string): Promise<number | undefined> {
    const { kept, keep } = this.headsFor(roomId);
    if (kept?.snapshot !== undefined) return kept.snapshot ?? undefined;
    const epoch = this.headsEpoch;
    const snapshot = await this.current.snapshot(roomId);
    if (keep) this.keepHeads(roomId, epoch, { snapshot: snapshot ?? null });
    return snapshot;
  }

  private async setCurrentSnapshot(roomId: string, snapshot: number): Promise<void> {
    await this.current.setSnapshot(roomId, snapshot);
    this.headsEpoch++;
    if (this.db.inTransaction()) this.headsWriting.add(roomId);
    this.heads.set(roomId, { ...this.heads.get(roomId), snapshot });
  }

  /** Moves current_state to a snapshot, writing only the keys that differ. */
  private async replaceCurrentState(roomId: string, snapshot: number, known: ReadonlyMap<string, string>): Promise<void> {
    const before = await this.currentSnapshotOf(roomId);
    if (before === snapshot) return;
    const oldState = before === undefined ? new Map<string, string>() : await this.snapshots.read(before);
    const newState = await this.snapshots.read(snapshot);
    const changed: [type: string, stateKey: string, eventId: string][] = [];
    for (const [key, eventId] of newState) {
      if (oldState.get(key) !== eventId) changed.push([...splitStateKey(key), eventId]);
    }
    // The memberships of all changed member events in a few queries, not one per member (a join to
    // a large room changes thousands of keys at once).
    const memberships = await this.membershipsOf(changed.filter(([type]) => type === "m.room.member").map(([, , eventId]) => eventId), known);
    const rows = changed.map(([type, stateKey, eventId]): CurrentStateRow => [type, stateKey, eventId, type === "m.room.member" ? memberships.get(eventId) : undefined]);
    await this.stateWrite(roomId, changed.map(([type, key]) => [type, key] as const), () => this.current.setMany(roomId, rows));
    for (const key of oldState.keys()) {
      if (newState.has(key)) continue;
      const [type, stateKey] = splitStateKey(key);
      await this.stateWrite(roomId, [[type, stateKey]], () => this.current.delete(roomId, type, stateKey));
    }
    await this.setCurrentSnapshot(roomId, snapshot);
  }

  /** content.membership of the given events (those stored with a string membership); `known` holds JSON already at hand, by event id. */
  private async membershipsOf(eventIds: readonly string[], known: ReadonlyMap<string, string>): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    const toRead = eventIds.filter((id) => !known.has(id));
    const json = toRead.length === 0 ? new Map<string, string>() : await this.events.jsonOf(toRead);
    for (const eventId of eventIds) {
      const text = known.get(eventId) ?? json.get(eventId);
      if (text === undefined) continue;
      const membership = (JSON.parse(text) as { content?: { membership?: unknown } }).content?.membership;
      if (typeof membership === "string") found.set(eventId, membership);
    }
    return found;
  }

  async forwardExtremities(roomId: string): Promise<string[]> {
    const { kept, keep } = this.headsFor(roomId);
    if (kept?.extremities) return [...kept.extremities];
    const epoch = this.headsEpoch;
    const extremities = await this.events.forwardExtremities(roomId);
    if (keep) this.keepHeads(roomId, epoch, { extremities });
    return [...extremities];
  }

  async stateAt(snapshot: number): Promise<Map<string, string>> {
    return new Map(await this.snapshots.read(snapshot));
  }

  async stateEntryAt(snapshot: number, type: string, key: string): Promise<string | undefined> {
    return this.snapshots.entry(snapshot, stateKey(type, key));
  }

  async currentStateSnapshot(roomId: string): Promise<number | undefined> {
    return this.currentSnapshotOf(roomId);
  }

  async currentState(roomId: string): Promise<Map<string, string>> {
    return new Map((await this.current.all(roomId)).map((r) => [stateKey(r.type, r.state_key), r.event_id]));
  }

  async currentStateEvents(roomId: string, keys: readonly (readonly [string, string])[]): Promise<Map<string, string>> {
    const byEntry = new Map(keys.map(([type, key]) => [currentEntryKey(roomId, type, key), [type, key] as const]));
    const found = await this.currentEntries.readMany(
      [...byEntry.keys()],
      async (missing) => {
        const read = await this.current.getMany(roomId, missing.map((entry) => byEntry.get(entry)!));
        return new Map(missing.map((entry) => [entry, read.get(stateKey(...byEntry.get(entry)!)) ?? null]));
      },
      null,
    );
    const result = new Map<string, string>();
    for (const [entry, eventId] of found) if (eventId !== null) result.set(stateKey(...byEntry.get(entry)!), eventId);
    return result;
  }

  async currentStateEvent(roomId: string, type: string, stateKey: string): Promise<string | undefined> {
    return (await this.currentEntries.read(currentEntryKey(roomId, type, stateKey), async () => (await this.current.get(roomId, type, stateKey)) ?? null)) ?? undefined;
  }

  async currentMemberships(roomId: string): Promise<ReadonlyMap<string, string>> {
    return this.memberships.read(roomId, () => this.current.memberships(roomId));
  }

  async roomsOfMember(userId: string): Promise<MemberOf[]> {
    // A copy: callers may sort or change what they get.
    return [...(await this.memberOf.read(userId, () => this.current.roomsOf(userId)))];
  }

  async roomsWithMembership(userId: string, membership: string): Promise<string[]> {
    return this.current.roomsWithMembership(userId, membership);
  }

  async membersWithMembership(membership: string): Promise<{ roomId: string; userId: string; eventId: string }[]> {
    return this.current.membersWithMembership(membership);
  }

  async authChain(eventIds: readonly string[]): Promise<Set<string>> {
    return this.events.authChain(eventIds);
  }

  async maxStreamOrdering(): Promise<number> {
    return this.events.maxStreamOrdering();
  }

  async minStreamOrdering(): Promise<number> {
    return this.events.minStreamOrdering();
  }

  roomsWithEventsBetween(fromExclusive: number, toInclusive: number): Promise<string[]> {
    return this.events.roomsBetween(fromExclusive, toInclusive);
  }

  async roomEventsBetween(roomId: string, fromExclusive: number, toInclusive: number, limit: number): Promise<StoredEvent[]> {
    return this.remembered(await this.events.between(roomId, fromExclusive, toInclusive, limit));
  }

  async roomEventsBackwards(roomId: string, beforeInclusive: number, afterExclusive: number, limit: number): Promise<StoredEvent[]> {
    const kept = this.tails.get(roomId);
    const hit = kept && fromTail(kept, beforeInclusive, afterExclusive, limit);
    if (hit) return this.remembered(hit);
    // A read that starts at a known position (an incremental /sync's, a page) fills the room's tail
    // first, outside transactions: the next reads of the room's newest events need no query.
    // It reads what the request would, from the room's newest event on: later readers whose
    // position is at or past this one's are served from it.
    if (afterExclusive > 0 && !this.db.inTransaction()) {
      const tail = await this.tails.load(roomId, async () => {
        const rows = this.remembered(await this.events.backwards(roomId, Number.MAX_SAFE_INTEGER, afterExclusive, limit));
        return { rows, completeAbove: rows.length < limit ? afterExclusive : rows[rows.length - 1]!.streamOrdering! - 1 };
      });
      const served = fromTail(tail, beforeInclusive, afterExclusive, limit);
      if (served) return served;
    }
    return this.remembered(await this.events.backwards(roomId, beforeInclusive, afterExclusive, limit));
  }



  /** Committed events read by range go into the event cache: whoever formats them next loads them by id. */
  private remembered(rows: StoredEvent[]): StoredEvent[] {
    if (!this.db.inTransaction()) for (const stored of rows) this.eventCache.set(stored.eventId, stored);
    return rows;
  }

  async snapshotAtPosition(roomId: string, position: number): Promise<number | undefined> {
    return this.events.snapshotAt(roomId, position);
  }

  /** this.db.transaction(fn), with the snapshot cache kept to committed maps (StateSnapshotsTable.transaction). */
  atomically<T>(fn: () => Promise<T>, options?: TransactionOptions): Promise<T> {
    return this.snapshots.transaction(fn, options);
  }
}

/**
 * A room's tail with a newly written event: at its head when it entered the timeline above
 * everything the tail holds (the newest TAIL_ROWS kept); the same tail when it did not enter the
 * timeline; undefined (dropped) when it entered below its head.
 */
function extendTail(tail: RoomTail, stored: StoredEvent): RoomTail | undefined {
  const ordering = stored.streamOrdering;
  if (ordering === undefined) return tail;
  const head = tail.rows[0]?.streamOrdering ?? tail.completeAbove;
  if (ordering <= head) return undefined;
  const rows = [stored, ...tail.rows];
  if (rows.length <= TAIL_ROWS) return { rows, completeAbove: tail.completeAbove };
  rows.length = TAIL_ROWS;
  return { rows, completeAbove: rows[TAIL_ROWS - 1]!.streamOrdering! - 1 };
}

/** The read served from a room's tail, when the tail holds all of it. */
function fromTail(tail: RoomTail, beforeInclusive: number, afterExclusive: number, limit: number): StoredEvent[] | undefined {
  const out: StoredEvent[] = [];
  for (const row of tail.rows) {
    const ordering = row.streamOrdering!;
    if (ordering > beforeInclusive) continue;
    if (ordering <= afterExclusive) break;
    out.push(row);
    if (out.length >= limit) return out;
  }
  // Fewer than the limit: the answer only when the tail holds every event down to afterExclusive.
  return afterExclusive >= tail.completeAbove ? out : undefined;
}
