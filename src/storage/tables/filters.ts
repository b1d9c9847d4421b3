// filters: sync filters uploaded through POST /user/{userId}/filter. Ids count up per user, as in
// Synapse, so they are short in /sync URLs.
import type { Database } from "../database";
import type { Migration } from "../migrations";
import type { FilterStore } from "../stores";

export const FILTERS_MIGRATION: Migration = {
  version: 12,
  name: "filters",
  sqlite: `
    CREATE TABLE filters (
      user_id TEXT NOT NULL,
      filter_id INTEGER NOT NULL,
      filter_json TEXT NOT NULL,
      PRIMARY KEY (user_id, filter_id)
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE filters (
      user_id TEXT NOT NULL,
      filter_id BIGINT NOT NULL,
      filter_json TEXT NOT NULL,
      PRIMARY KEY (user_id, filter_id)
    );
  `,
};

const NEXT_ID = "SELECT coalesce(max(filter_id), -1) + 1 AS next FROM filters WHERE user_id = ?";
const INSERT = "INSERT INTO filters (user_id, filter_id, filter_json) VALUES (?, ?, ?)";
const SELECT = "SELECT filter_json FROM filters WHERE user_id = ? AND filter_id = ?";

export class SqlFilterStore implements FilterStore {
  constructor(private readonly db: Database) {}

  async createFilter(userId: string, filterJson: string): Promise<string> {
    return this.db.transaction(async () => {
      const id = (await this.db.get<{ next: number }>(NEXT_ID, userId))!.next;
      await this.db.run(INSERT, userId, id, filterJson);
      return String(id);
    });
  }

  async getFilter(userId: string, filterId: string): Promise<string | undefined> {
    // Only canonical decimal ids were ever handed out; anything else ("01", "1e0", "{...}") is unknown.
    if (!/^(0|[1-9][0-9]{0,15})$/.test(filterId)) return undefined;
    return (await this.db.get<{ filter_json: string }>(SELECT, userId, Number(filterId)))?.filter_json;
  }
}
