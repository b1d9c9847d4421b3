// account_data: global (room_id '') and per-room account data of users. Every write takes the next
// position of one server-wide stream, so /sync can ask what changed since a token.
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";
import type { AccountDataEntry, AccountDataStore } from "../../stores";

export const ACCOUNT_DATA_MIGRATION: Migration = {
  version: 13,
  name: "account_data",
  up: `
    CREATE TABLE account_data (
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      type TEXT NOT NULL,
      content_json TEXT NOT NULL,
      stream_position INTEGER NOT NULL,
      PRIMARY KEY (user_id, room_id, type)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX account_data_user_stream ON account_data (user_id, stream_position);
    CREATE INDEX account_data_stream ON account_data (stream_position);
  `,
};

interface AccountDataRow {
  room_id: string;
  type: string;
  content_json: string;
  stream_position: number;
}

export class SqliteAccountDataStore implements AccountDataStore {
  private readonly s;

  constructor(private readonly db: SqlDatabase) {
    this.s = {
      get: db.prepare<{ content_json: string }>("SELECT content_json FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?"),
      max: db.prepare<{ max: number }>("SELECT coalesce(max(stream_position), 0) AS max FROM account_data"),
      upsert: db.prepare(
        `INSERT INTO account_data (user_id, room_id, type, content_json, stream_position) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (user_id, room_id, type) DO UPDATE SET content_json = excluded.content_json, stream_position = excluded.stream_position`,
      ),
      since: db.prepare<AccountDataRow>(
        "SELECT room_id, type, content_json, stream_position FROM account_data WHERE user_id = ? AND stream_position > ? ORDER BY stream_position",
      ),
    };
  }

  getAccountData(userId: string, roomId: string | undefined, type: string): Record<string, unknown> | undefined {
    const r = this.s.get.get(userId, roomId ?? "", type);
    return r && JSON.parse(r.content_json);
  }

  putAccountData(userId: string, roomId: string | undefined, type: string, content: Record<string, unknown>): number {
    return this.db.transaction(() => {
      const position = this.maxAccountDataStream() + 1;
      this.s.upsert.run(userId, roomId ?? "", type, JSON.stringify(content), position);
      return position;
    });
  }

  accountDataSince(userId: string, sinceStream: number): { global: AccountDataEntry[]; rooms: Map<string, AccountDataEntry[]> } {
    const global: AccountDataEntry[] = [];
    const rooms = new Map<string, AccountDataEntry[]>();
    for (const r of this.s.since.all(userId, sinceStream)) {
      const entry: AccountDataEntry = { type: r.type, roomId: r.room_id || undefined, content: JSON.parse(r.content_json), streamPosition: r.stream_position };
      if (r.room_id === "") global.push(entry);
      else {
        let list = rooms.get(r.room_id);
        if (!list) rooms.set(r.room_id, (list = []));
        list.push(entry);
      }
    }
    return { global, rooms };
  }

  maxAccountDataStream(): number {
    return this.s.max.get()!.max;
  }
}
