// room_aliases and published_rooms: the room directory (client-server-api "Room aliases" and
// "Published room directory") — which local alias points at which room and who created it, and
// which rooms this server lists in GET/POST /publicRooms.
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";
import type { PublishedRoom, RoomAliasRecord, RoomDirectoryStore } from "../../stores";

export const ROOM_ALIASES_MIGRATION: Migration = {
  version: 40,
  name: "room_aliases",
  up: `
    CREATE TABLE room_aliases (
      alias TEXT PRIMARY KEY,
      room_id TEXT NOT NULL,
      creator TEXT NOT NULL,
      created_ts INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX room_aliases_room ON room_aliases (room_id);
  `,
};

export const PUBLISHED_ROOMS_MIGRATION: Migration = {
  version: 41,
  name: "published_rooms",
  up: "CREATE TABLE published_rooms (room_id TEXT PRIMARY KEY, published_ts INTEGER NOT NULL) STRICT, WITHOUT ROWID",
};

interface AliasRow {
  alias: string;
  room_id: string;
  creator: string;
  created_ts: number;
}

export class SqliteRoomDirectoryStore implements RoomDirectoryStore {
  private readonly s;

  constructor(db: SqlDatabase) {
    this.s = {
      insertAlias: db.prepare("INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?, ?, ?, ?) ON CONFLICT (alias) DO NOTHING"),
      selectAlias: db.prepare<AliasRow>("SELECT alias, room_id, creator, created_ts FROM room_aliases WHERE alias = ?"),
      deleteAlias: db.prepare("DELETE FROM room_aliases WHERE alias = ?"),
      aliasesOfRoom: db.prepare<{ alias: string }>("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias"),
      publish: db.prepare("INSERT INTO published_rooms (room_id, published_ts) VALUES (?, ?) ON CONFLICT (room_id) DO NOTHING"),
      unpublish: db.prepare("DELETE FROM published_rooms WHERE room_id = ?"),
      isPublished: db.prepare<{ one: number }>("SELECT 1 AS one FROM published_rooms WHERE room_id = ?"),
      // The joined count comes from current_state's membership column (its primary key starts with room_id).
      published: db.prepare<{ room_id: string; joined: number }>(
        `SELECT p.room_id AS room_id,
                (SELECT count(*) FROM current_state c WHERE c.room_id = p.room_id AND c.type = 'm.room.member' AND c.membership = 'join') AS joined
         FROM published_rooms p`,
      ),
    };
  }

  createAlias(record: RoomAliasRecord): boolean {
    return this.s.insertAlias.run(record.alias, record.roomId, record.creator, record.createdTs).changes === 1;
  }

  getAlias(alias: string): RoomAliasRecord | undefined {
    const row = this.s.selectAlias.get(alias);
    return row && { alias: row.alias, roomId: row.room_id, creator: row.creator, createdTs: row.created_ts };
  }

  deleteAlias(alias: string): boolean {
    return this.s.deleteAlias.run(alias).changes === 1;
  }

  aliasesOfRoom(roomId: string): string[] {
    return this.s.aliasesOfRoom.all(roomId).map((r) => r.alias);
  }

  setPublished(roomId: string, published: boolean, ts: number): void {
    if (published) this.s.publish.run(roomId, ts);
    else this.s.unpublish.run(roomId);
  }

  isPublished(roomId: string): boolean {
    return this.s.isPublished.get(roomId) !== undefined;
  }

  publishedRooms(): PublishedRoom[] {
    return this.s.published.all().map((r) => ({ roomId: r.room_id, joinedMembers: r.joined }));
  }
}
