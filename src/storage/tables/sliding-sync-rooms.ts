// Read-only queries for sliding sync (MSC4186) over events and current_state: a user's rooms with
// their membership and activity positions, and a few current state entries of many rooms, each in
// one round trip however many rooms the user is in. No table of its own, so no migration.
import type { Database } from "../database";
import { inLists, placeholders } from "../sql-lists";

/** One room a user has a current membership in, with the stream positions that order it. */
export interface UserRoomActivity {
  readonly roomId: string;
  /** The user's current membership (join, invite, knock, leave, ban). */
  readonly membership: string;
  /** The user's current member event. */
  readonly memberEventId: string;
  readonly memberSender: string;
  /** Stream ordering of that member event (undefined for an outlier, e.g. an invite received over federation). */
  readonly memberStream: number | undefined;
  /** The room's newest timeline event (undefined when it has none). */
  readonly lastStream: number | undefined;
  /** The newest timeline event of one of the bump types (undefined when none). */
  readonly bumpStream: number | undefined;
}

export interface SlidingSyncRoomStore {
  /** Every room where the user's current membership is one of `memberships`, with activity positions. */
  userRooms(userId: string, memberships: readonly string[], bumpTypes: readonly string[]): Promise<UserRoomActivity[]>;
  /** Current state entries (type, state_key) of many rooms: room id -> key (type\0state_key) -> event id. */
  currentStateOfRooms(roomIds: readonly string[], keys: readonly (readonly [type: string, stateKey: string])[]): Promise<Map<string, Map<string, string>>>;
}

// The newest event per room comes from the (room_id, stream_ordering) index, read backwards and
// stopped at the first row that matches: cheap however long the room's history is.
const userRooms = (memberships: number, bumpTypes: number) => `
  SELECT cs.room_id AS room_id, cs.membership AS membership, cs.event_id AS member_event_id, me.sender AS member_sender, me.stream_ordering AS member_stream,
    (SELECT e.stream_ordering FROM events e WHERE e.room_id = cs.room_id AND e.stream_ordering IS NOT NULL ORDER BY e.stream_ordering DESC LIMIT 1) AS last_stream,
    (SELECT e.stream_ordering FROM events e WHERE e.room_id = cs.room_id AND e.stream_ordering IS NOT NULL AND e.type IN (${placeholders(bumpTypes)}) ORDER BY e.stream_ordering DESC LIMIT 1) AS bump_stream
  FROM current_state cs JOIN events me ON me.event_id = cs.event_id
  WHERE cs.type = 'm.room.member' AND cs.state_key = ? AND cs.membership IN (${placeholders(memberships)})`;

const stateOfRooms = (rooms: number, types: number, stateKeys: number) =>
  `SELECT room_id, type, state_key, event_id FROM current_state WHERE room_id IN (${placeholders(rooms)}) AND type IN (${placeholders(types)}) AND state_key IN (${placeholders(stateKeys)})`;

interface UserRoomRow {
  room_id: string;
  membership: string;
  member_event_id: string;
  member_sender: string;
  member_stream: number | string | null;
  last_stream: number | string | null;
  bump_stream: number | string | null;
}

const num = (v: number | string | null): number | undefined => (v === null ? undefined : Number(v));

export class SqlSlidingSyncRoomStore implements SlidingSyncRoomStore {
  constructor(private readonly db: Database) {}

  async userRooms(userId: string, memberships: readonly string[], bumpTypes: readonly string[]): Promise<UserRoomActivity[]> {
    if (memberships.length === 0) return [];
    const types = bumpTypes.length === 0 ? [""] : bumpTypes;
    const rows = await this.db.all<UserRoomRow>(userRooms(memberships.length, types.length), ...types, userId, ...memberships);
    return rows.map((r) => ({
      roomId: r.room_id,
      membership: r.membership,
      memberEventId: r.member_event_id,
      memberSender: r.member_sender,
      memberStream: num(r.member_stream),
      lastStream: num(r.last_stream),
      bumpStream: num(r.bump_stream),
    }));
  }

  async currentStateOfRooms(roomIds: readonly string[], keys: readonly (readonly [string, string])[]): Promise<Map<string, Map<string, string>>> {
    const out = new Map<string, Map<string, string>>();
    if (roomIds.length === 0 || keys.length === 0) return out;
    const wanted = new Set(keys.map(([type, key]) => `${type}\u0000${key}`));
    const types = [...new Set(keys.map(([type]) => type))];
    const stateKeys = [...new Set(keys.map(([, key]) => key))];
    for (const list of inLists([...new Set(roomIds)], 256)) {
      const rows = await this.db.all<{ room_id: string; type: string; state_key: string; event_id: string }>(stateOfRooms(list.length, types.length, stateKeys.length), ...list, ...types, ...stateKeys);
      for (const row of rows) {
        const key = `${row.type}\u0000${row.state_key}`;
        if (!wanted.has(key)) continue;
        let room = out.get(row.room_id);
        if (!room) out.set(row.room_id, (room = new Map()));
        room.set(key, row.event_id);
      }
    }
    return out;
  }
}
