// rooms: one row per room this server knows, with its version.
import type { Database } from "../database";
import type { Migration } from "../migrations";
import type { RoomRecord } from "../stores";

export const ROOMS_MIGRATION: Migration = {
  version: 2,
  name: "rooms",
  sqlite: "CREATE TABLE rooms (room_id TEXT PRIMARY KEY, room_version TEXT NOT NULL, creator TEXT NOT NULL, created_ts INTEGER NOT NULL) STRICT",
  postgres: "CREATE TABLE rooms (room_id TEXT PRIMARY KEY, room_version TEXT NOT NULL, creator TEXT NOT NULL, created_ts BIGINT NOT NULL)",
};

interface Row {
  room_id: string;
  room_version: string;
  creator: string;
  created_ts: number;
}

const INSERT = "INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?)";
const SELECT = "SELECT room_id, room_version, creator, created_ts FROM rooms WHERE room_id = ?";

export class RoomsTable {
  constructor(private readonly db: Database) {}

  async create(room: RoomRecord): Promise<void> {
    await this.db.run(INSERT, room.roomId, room.roomVersion, room.creator, room.createdTs);
  }

  async get(roomId: string): Promise<RoomRecord | undefined> {
    const row = await this.db.get<Row>(SELECT, roomId);
    return row && { roomId: row.room_id, roomVersion: row.room_version, creator: row.creator, createdTs: row.created_ts };
  }
}
