// room_aliases and published_rooms: the room directory (client-server-api "Room aliases" and
// "Published room directory") — which local alias points at which room and who created it, and
// which rooms this server lists in GET/POST /publicRooms.
import type { Database } from "../database";
import type { Migration } from "../migrations";
import type { PublishedRoom, RoomAliasRecord, RoomDirectoryStore } from "../stores";

export const ROOM_ALIASES_MIGRATION: Migration = {
  version: 40,
  name: "room_aliases",
  sqlite: `
    CREATE TABLE room_aliases (
      alias TEXT PRIMARY KEY,
      room_id TEXT NOT NULL,
      creator TEXT NOT NULL,
      created_ts INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX room_aliases_room ON room_aliases (room_id);
  `,
  postgres: `
    CREATE TABLE room_aliases (
      alias TEXT PRIMARY KEY,
      room_id TEXT NOT NULL,
      creator TEXT NOT NULL,
      created_ts BIGINT NOT NULL
    );
    CREATE INDEX room_aliases_room ON room_aliases (room_id);
  `,
};

export const PUBLISHED_ROOMS_MIGRATION: Migration = {
  version: 41,
  name: "published_rooms",
  sqlite: "CREATE TABLE published_rooms (room_id TEXT PRIMARY KEY, published_ts INTEGER NOT NULL) STRICT, WITHOUT ROWID",
  postgres: "CREATE TABLE published_rooms (room_id TEXT PRIMARY KEY, published_ts BIGINT NOT NULL)",
};

const INSERT_ALIAS = "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?, ?, ?, ?) ON CONFLICT (alias) DO NOTHING";
const SELECT_ALIAS = "SELECT alias, room_id, creator, created_ts FROM room_aliases WHERE alias = ?";
const DELETE_ALIAS = "DELETE FROM room_aliases WHERE alias = ?";
const SELECT_ALIASES_OF_ROOM = "SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias";
const PUBLISH = "INSERT INTO published_rooms (room_id, published_ts) VALUES (?, ?) ON CONFLICT (room_id) DO NOTHING";
const UNPUBLISH = "DELETE FROM published_rooms WHERE room_id = ?";
const SELECT_PUBLISHED = "SELECT 1 AS one FROM published_rooms WHERE room_id = ?";
// The joined count comes from current_state's membership column (its primary key starts with room_id).
const SELECT_PUBLISHED_ROOMS = `SELECT p.room_id AS room_id,
    (SELECT count(*) FROM current_state c WHERE c.room_id = p.room_id AND c.type = 'm.room.member' AND c.membership = 'join') AS joined
  FROM published_rooms p`;

interface AliasRow {
  alias: string;
  room_id: string;
  creator: string;
  created_ts: number;
}

export class SqlRoomDirectoryStore implements RoomDirectoryStore {
  constructor(private readonly db: Database) {}

  async createAlias(record: RoomAliasRecord): Promise<boolean> {
    return (await this.db.run(INSERT_ALIAS, record.alias, record.roomId, record.creator, record.createdTs)).changes === 1;
  }

  async getAlias(alias: string): Promise<RoomAliasRecord | undefined> {
    const row = await this.db.get<AliasRow>(SELECT_ALIAS, alias);
    return row && { alias: row.alias, roomId: row.room_id, creator: row.creator, createdTs: row.created_ts };
  }

  async deleteAlias(alias: string): Promise<boolean> {
    return (await this.db.run(DELETE_ALIAS, alias)).changes === 1;
  }

  async aliasesOfRoom(roomId: string): Promise<string[]> {
    return (await this.db.all<{ alias: string }>(SELECT_ALIASES_OF_ROOM, roomId)).map((r) => r.alias);
  }

  async setPublished(roomId: string, published: boolean, ts: number): Promise<void> {
    if (published) await this.db.run(PUBLISH, roomId, ts);
    else await this.db.run(UNPUBLISH, roomId);
  }

  async isPublished(roomId: string): Promise<boolean> {
    return (await this.db.get(SELECT_PUBLISHED, roomId)) !== undefined;
  }

  async publishedRooms(): Promise<PublishedRoom[]> {
    return (await this.db.all<{ room_id: string; joined: number }>(SELECT_PUBLISHED_ROOMS)).map((r) => ({ roomId: r.room_id, joinedMembers: r.joined }));
  }
}
