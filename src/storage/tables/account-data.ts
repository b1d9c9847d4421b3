// account_data: global (room_id '') and per-room account data of users. Every write takes the next
// position of one server-wide stream, so /sync can ask what changed since a token.
// room_id is NOT NULL ('' for global, never NULL) so that the primary key, and the upsert on it,
// match global entries on PostgreSQL as well (its unique keys never match NULLs).
import type { Database } from "../database";
import type { Migration } from "../migrations";
import type { AccountDataEntry, AccountDataStore } from "../stores";

export const ACCOUNT_DATA_MIGRATION: Migration = {
  version: 13,
  name: "account_data",
  sqlite: `
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
  postgres: `
    CREATE TABLE account_data (
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      type TEXT NOT NULL,
      content_json TEXT NOT NULL,
      stream_position BIGINT NOT NULL,
      PRIMARY KEY (user_id, room_id, type)
    );
    CREATE INDEX account_data_user_stream ON account_data (user_id, stream_position);
    CREATE INDEX account_data_stream ON account_data (stream_position);
  `,
};

const SELECT = "SELECT content_json FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?";
const SELECT_MAX = "SELECT coalesce(max(stream_position), 0) AS max FROM account_data";
const UPSERT = `INSERT INTO account_data (user_id, room_id, type, content_json, stream_position) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (user_id, room_id, type) DO UPDATE SET content_json = excluded.content_json, stream_position = excluded.stream_position`;
const DELETE_USER = "DELETE FROM account_data WHERE user_id = ?";
const SELECT_SINCE = "SELECT room_id, type, content_json, stream_position FROM account_data WHERE user_id = ? AND stream_position > ? ORDER BY stream_position";

interface AccountDataRow {
  room_id: string;
  type: string;
  content_json: string;
  stream_position: number;
}

export class SqlAccountDataStore implements AccountDataStore {
  constructor(private readonly db: Database) {}

  async getAccountData(userId: string, roomId: string | undefined, type: string): Promise<Record<string, unknown> | undefined> {
    const r = await this.db.get<{ content_json: string }>(SELECT, userId, roomId ?? "", type);
    return r && JSON.parse(r.content_json);
  }

  async putAccountData(userId: string, roomId: string | undefined, type: string, content: Record<string, unknown>): Promise<number> {
    return this.db.transaction(async () => {
      const position = (await this.maxAccountDataStream()) + 1;
      await this.db.run(UPSERT, userId, roomId ?? "", type, JSON.stringify(content), position);
      return position;
    });
  }

  async accountDataSince(userId: string, sinceStream: number): Promise<{ global: AccountDataEntry[]; rooms: Map<string, AccountDataEntry[]> }> {
    const global: AccountDataEntry[] = [];
    const rooms = new Map<string, AccountDataEntry[]>();
    for (const r of await this.db.all<AccountDataRow>(SELECT_SINCE, userId, sinceStream)) {
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

  async maxAccountDataStream(): Promise<number> {
    return (await this.db.get<{ max: number }>(SELECT_MAX))!.max;
  }

  async deleteAllAccountData(userId: string): Promise<number> {
    return this.db.transaction(async () => {
      const head = await this.maxAccountDataStream();
      const { changes } = await this.db.run(DELETE_USER, userId);
      // The stream's head is the highest position a row holds: had it gone down with the deleted
      // rows, the next write would take a position that sync tokens already passed, and be missed.
      // It stays on a row of no user ('' is no user ID), which no user's read returns.
      if (changes > 0 && (await this.maxAccountDataStream()) < head) await this.db.run(UPSERT, "", "", "", "{}", head);
      return changes;
    });
  }
}
