// current_state: each room's resolved current state, one row per (type, state_key), with the
// membership of m.room.member events beside it so member lists need no JSON parsing.
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";

export const CURRENT_STATE_MIGRATION: Migration = {
  version: 5,
  name: "current_state",
  up: `
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
};

/** Member rows by membership across rooms (e.g. every pending knock), for moderation and expiry. */
export const CURRENT_STATE_BY_MEMBERSHIP_MIGRATION: Migration = {
  version: 7,
  name: "current_state_by_membership",
  up: "CREATE INDEX current_state_by_membership ON current_state (membership, room_id, state_key) WHERE type = 'm.room.member'",
};

export class CurrentStateTable {
  private readonly upsert;
  private readonly remove;
  private readonly selectAll;
  private readonly selectOne;
  private readonly selectMembers;
  private readonly selectRoomsFor;
  private readonly selectAllWithMembership;
  private readonly selectSnapshot;
  private readonly upsertSnapshot;

  constructor(db: SqlDatabase) {
    this.upsert = db.prepare(
      `INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_id = excluded.event_id, membership = excluded.membership`,
    );
    this.remove = db.prepare("DELETE FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?");
    this.selectAll = db.prepare<{ type: string; state_key: string; event_id: string }>("SELECT type, state_key, event_id FROM current_state WHERE room_id = ?");
    this.selectOne = db.prepare<{ event_id: string }>("SELECT event_id FROM current_state WHERE room_id = ? AND type = ? AND state_key = ?");
    this.selectMembers = db.prepare<{ state_key: string; membership: string }>(
      "SELECT state_key, membership FROM current_state WHERE room_id = ? AND type = 'm.room.member'",
    );
    this.selectRoomsFor = db.prepare<{ room_id: string }>(
      "SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = ? AND membership = ? ORDER BY room_id",
    );
    // Fine for its callers (admin listings, an expiry pass at most every few minutes).
    this.selectAllWithMembership = db.prepare<{ room_id: string; state_key: string; event_id: string }>(
      "SELECT room_id, state_key, event_id FROM current_state WHERE type = 'm.room.member' AND membership = ? ORDER BY room_id, state_key",
    );
    this.selectSnapshot = db.prepare<{ snapshot_nid: number }>("SELECT snapshot_nid FROM room_current_snapshot WHERE room_id = ?");
    this.upsertSnapshot = db.prepare(
      "INSERT INTO room_current_snapshot (room_id, snapshot_nid) VALUES (?, ?) ON CONFLICT (room_id) DO UPDATE SET snapshot_nid = excluded.snapshot_nid",
    );
  }

  set(roomId: string, type: string, stateKey: string, eventId: string, membership: string | undefined): void {
    this.upsert.run(roomId, type, stateKey, eventId, membership ?? null);
  }

  delete(roomId: string, type: string, stateKey: string): void {
    this.remove.run(roomId, type, stateKey);
  }

  all(roomId: string): { type: string; state_key: string; event_id: string }[] {
    return this.selectAll.all(roomId);
  }

  get(roomId: string, type: string, stateKey: string): string | undefined {
    return this.selectOne.get(roomId, type, stateKey)?.event_id;
  }

  memberships(roomId: string): Map<string, string> {
    return new Map(this.selectMembers.all(roomId).map((r) => [r.state_key, r.membership]));
  }

  roomsWithMembership(userId: string, membership: string): string[] {
    return this.selectRoomsFor.all(userId, membership).map((r) => r.room_id);
  }

  membersWithMembership(membership: string): { roomId: string; userId: string; eventId: string }[] {
    return this.selectAllWithMembership.all(membership).map((r) => ({ roomId: r.room_id, userId: r.state_key, eventId: r.event_id }));
  }

  snapshot(roomId: string): number | undefined {
    return this.selectSnapshot.get(roomId)?.snapshot_nid;
  }

  setSnapshot(roomId: string, snapshot: number): void {
    this.upsertSnapshot.run(roomId, snapshot);
  }
}
