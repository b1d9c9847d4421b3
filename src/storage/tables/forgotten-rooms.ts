// forgotten_rooms: rooms a user has left and asked to forget (client-server-api POST /forget).
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const FORGOTTEN_ROOMS_MIGRATION: Migration = {
  version: 22,
  name: "forgotten_rooms",
  sqlite: "CREATE TABLE forgotten_rooms (user_id TEXT NOT NULL, room_id TEXT NOT NULL, forgotten_ts INTEGER NOT NULL, PRIMARY KEY (user_id, room_id)) STRICT, WITHOUT ROWID",
  postgres: "CREATE TABLE forgotten_rooms (user_id TEXT NOT NULL, room_id TEXT NOT NULL, forgotten_ts BIGINT NOT NULL, PRIMARY KEY (user_id, room_id))",
};

const UPSERT = "INSERT INTO forgotten_rooms (user_id, room_id, forgotten_ts) VALUES (?, ?, ?) ON CONFLICT (user_id, room_id) DO UPDATE SET forgotten_ts = excluded.forgotten_ts";
const DELETE = "DELETE FROM forgotten_rooms WHERE user_id = ? AND room_id = ?";
const SELECT = "SELECT 1 AS one FROM forgotten_rooms WHERE user_id = ? AND room_id = ?";

export class ForgottenRoomsTable {
  constructor(private readonly db: Database) {}

  async set(userId: string, roomId: string, forgotten: boolean, ts: number): Promise<void> {
    if (forgotten) await this.db.run(UPSERT, userId, roomId, ts);
    else await this.db.run(DELETE, userId, roomId);
  }

  async has(userId: string, roomId: string): Promise<boolean> {
    return (await this.db.get(SELECT, userId, roomId)) !== undefined;
  }
}
