// current_state: each room's resolved current state, one row per (type, state_key), with the
// membership of m.room.member events beside it so member lists need no JSON parsing.
import type { Database } from "../database";
import type { Migration } from "../migrations";
import { insertBatches, valueRows } from "../sql-lists";

/** A room a user has a membership in: the membership, its event and that event's stream position. */
export interface MemberOf {
  readonly roomId: string;
  readonly membership: string;
  readonly eventId: string;
  readonly streamOrdering: number | undefined;
}

export const CURRENT_STATE_MIGRATION: Migration = {
  version: 5,
  name: "current_state",
  sqlite: `
    CREATE TABLE current_state (
      room_id TEXT NOT NULL,
      type TEXT NOT NULL,
      state_key TEXT NOT NULL,
      event_id TEXT NOT NULL,
      membership TEXT,
      PRIMARY KEY (room_id, type, state_key)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX current_state_members ON current_state (state_key, membership) WHERE type = 'm.room.member';
    CREATE TABLE room_current_snapshot (room_id TEXT PRIMARY KEY, snapshot_nid INTEGER NOT NULL) STRICT;
  `,
  postgres: `
    CREATE TABLE current_state (
      room_id TEXT NOT NULL,
      type TEXT NOT NULL,
      state_key TEXT NOT NULL,
      event_id TEXT NOT NULL,
      membership TEXT,
      PRIMARY KEY (room_id, type, state_key)
    );
    CREATE INDEX current_state_members ON current_state (state_key, membership) WHERE type = 'm.room.member';
    CREATE TABLE room_current_snapshot (room_id TEXT PRIMARY KEY, snapshot_nid BIGINT NOT NULL);
  `,
};

/** Member rows by membership across rooms (e.g. every pending knock), for moderation and expiry. */
export const CURRENT_STATE_BY_MEMBERSHIP_MIGRATION: Migration = {
  version: 7,
  name: "current_state_by_membership",
  sqlite: "CREATE INDEX current_state_by_membership ON current_state (membership, room_id, state_key) WHERE type = 'm.room.member'",
  postgres: "CREATE INDEX current_state_by_membership ON current_state (membership, room_id, state_key) WHERE type = 'm.room.member'",
};

/** A row to write: type, state_key, event_id, membership. */
export type CurrentStateRow = readonly [type: string, stateKey: string, eventId: string, membership: string | undefined];

const upsert = (n: number) =>
  `INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES ${valueRows(n, 5)}
   ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id, membership = excluded.membership`;
const DELETE = "DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?";
const SELECT_ALL = "SELECT type, state_key, event_id FROM current_state WHERE room_id = ?";
const SELECT_ONE = "SELECT event_id FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?";
const SELECT_MEMBERS = "SELECT state_key, membership FROM current_state WHERE room_id = ? AND type = 'm.room.member'";
const SELECT_ROOMS_FOR = "SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = ? AND membership = ? ORDER BY room_id";
const SELECT_ROOMS_OF = `SELECT c.room_id, c.membership, c.event_id, e.stream_ordering FROM current_state c LEFT JOIN events e ON e.event_id = c.event_id
  WHERE c.type = 'm.room.member' AND c.state_key = ? AND c.membership IN ('join', 'invite', 'knock', 'leave', 'ban') ORDER BY c.room_id`;
// Fine for its callers (admin listings, an expiry pass at most every few minutes).
const SELECT_ALL_WITH_MEMBERSHIP = "SELECT room_id, state_key, event_id FROM current_state WHERE type = 'm.room.member' AND membership = ? ORDER BY room_id, state_key";
const SELECT_SNAPSHOT = "SELECT snapshot_nid FROM room_current_snapshot WHERE room_id = ?";
const UPSERT_SNAPSHOT = "INSERT INTO room_current_snapshot (room_id, snapshot_nid) VALUES (?, ?) ON CONFLICT (room_id) DO UPDATE SET snapshot_nid = excluded.snapshot_nid";

export class CurrentStateTable {
  constructor(private readonly db: Database) {}

  async set(roomId: string, type: string, stateKey: string, eventId: string, membership: string | undefined): Promise<void> {
    await this.setMany(roomId, [[type, stateKey, eventId, membership]]);
  }

  /** Writes many keys in a few statements (each (type, state_key) at most once). */
  async setMany(roomId: string, rows: readonly CurrentStateRow[]): Promise<void> {
    for (const batch of insertBatches(rows, 128)) {
      await this.db.run(upsert(batch.length), ...batch.flatMap(([type, stateKey, eventId, membership]) => [roomId, type, stateKey, eventId, membership ?? null]));
    }
  }

  async delete(roomId: string, type: string, stateKey: string): Promise<void> {
    await this.db.run(DELETE, roomId, type, stateKey);
  }

  async all(roomId: string): Promise<{ type: string; state_key: string; event_id: string }[]> {
    return this.db.all(SELECT_ALL, roomId);
  }

  /** Several (type, state_key) entries in one query: key "type\0state_key" -> event id, for those present. */
  async getMany(roomId: string, keys: readonly (readonly [string, string])[]): Promise<Map<string, string>> {
    if (keys.length === 0) return new Map();
    // A list of whole primary keys: each is one index search (an OR of (type AND state_key) pairs
    // is planned as a multi-index OR, about ten times slower on SQLite).
    const rows = await this.db.all<{ type: string; state_key: string; event_id: string }>(
      `SELECT type, state_key, event_id FROM current_state WHERE (room_id, type, state_key) IN (VALUES ${keys.map(() => "(?, ?, ?)").join(", ")})`,
      ...keys.flatMap(([type, stateKey]) => [roomId, type, stateKey]),
    );
    return new Map(rows.map((r) => [`${r.type}\0${r.state_key}`, r.event_id]));
  }

  async get(roomId: string, type: string, stateKey: string): Promise<string | undefined> {
    return (await this.db.get<{ event_id: string }>(SELECT_ONE, roomId, type, stateKey))?.event_id;
  }

  async memberships(roomId: string): Promise<Map<string, string>> {
    return new Map((await this.db.all<{ state_key: string; membership: string }>(SELECT_MEMBERS, roomId)).map((r) => [r.state_key, r.membership]));
  }

  async roomsWithMembership(userId: string, membership: string): Promise<string[]> {
    return (await this.db.all<{ room_id: string }>(SELECT_ROOMS_FOR, userId, membership)).map((r) => r.room_id);
  }

  async roomsOf(userId: string): Promise<MemberOf[]> {
    const rows = await this.db.all<{ room_id: string; membership: string; event_id: string; stream_ordering: number | string | null }>(SELECT_ROOMS_OF, userId);
    return rows.map((r) => ({ roomId: r.room_id, membership: r.membership, eventId: r.event_id, streamOrdering: r.stream_ordering === null ? undefined : Number(r.stream_ordering) }));
  }

  async membersWithMembership(membership: string): Promise<{ roomId: string; userId: string; eventId: string }[]> {
    const rows = await this.db.all<{ room_id: string; state_key: string; event_id: string }>(SELECT_ALL_WITH_MEMBERSHIP, membership);
    return rows.map((r) => ({ roomId: r.room_id, userId: r.state_key, eventId: r.event_id }));
  }

  async snapshot(roomId: string): Promise<number | undefined> {
    return (await this.db.get<{ snapshot_nid: number }>(SELECT_SNAPSHOT, roomId))?.snapshot_nid;
  }

  async setSnapshot(roomId: string, snapshot: number): Promise<void> {
    await this.db.run(UPSERT_SNAPSHOT, roomId, snapshot);
  }
}
