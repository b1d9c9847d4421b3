// rooms: one row per room this server knows, with its version.
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";
import type { RoomRecord } from "../../stores";

export const ROOMS_MIGRATION: Migration = {
  version: 2,
  name: "rooms",
  up: "CREATE TABLE rooms (room_id TEXT PRIMARY KEY, room_version TEXT NOT NULL, creator TEXT NOT NULL, created_ts INTEGER NOT NULL) STRICT",
};

interface Row {
  room_id: string;
  room_version: string;
  creator: string;
  created_ts: number;
}

export class RoomsTable {
  private readonly insert;
  private readonly select;

  constructor(db: SqlDatabase) {
    this.insert = db.prepare("INSERT INTO rooms (room_id, room_version, creator, created_ts) VALUES (?, ?, ?, ?)");
    this.select = db.prepare<Row>("SELECT room_id, room_version, creator, created_ts FROM rooms WHERE room_id = ?");
  }

  create(room: RoomRecord): void {
    this.insert.run(room.roomId, room.roomVersion, room.creator, room.createdTs);
  }

  get(roomId: string): RoomRecord | undefined {
    const row = this.select.get(roomId);
    return row && { roomId: row.room_id, roomVersion: row.room_version, creator: row.creator, createdTs: row.created_ts };
  }
}
