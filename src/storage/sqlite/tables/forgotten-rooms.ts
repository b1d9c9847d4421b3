// forgotten_rooms: rooms a user has left and asked to forget (client-server-api POST /forget).
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";

export const FORGOTTEN_ROOMS_MIGRATION: Migration = {
  version: 22,
  name: "forgotten_rooms",
  up: "CREATE TABLE forgotten_rooms (user_id TEXT NOT NULL, room_id TEXT NOT NULL, forgotten_ts INTEGER NOT NULL, PRIMARY KEY (user_id, room_id)) STRICT, WITHOUT ROWID",
};

export class ForgottenRoomsTable {
  private readonly insert;
  private readonly remove;
  private readonly select;

  constructor(db: SqlDatabase) {
    this.insert = db.prepare("INSERT OR REPLACE INTO forgotten_rooms (user_id, room_id, forgotten_ts) VALUES (?, ?, ?)");
    this.remove = db.prepare("DELETE FROM forgotten_rooms WHERE user_id = ? AND room_id = ?");
    this.select = db.prepare<{ one: number }>("SELECT 1 AS one FROM forgotten_rooms WHERE user_id = ? AND room_id = ?");
  }

  set(userId: string, roomId: string, forgotten: boolean, ts: number): void {
    if (forgotten) this.insert.run(userId, roomId, ts);
    else this.remove.run(userId, roomId);
  }

  has(userId: string, roomId: string): boolean {
    return this.select.get(userId, roomId) !== undefined;
  }
}
