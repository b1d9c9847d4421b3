// filters: sync filters uploaded through POST /user/{userId}/filter. Ids count up per user, as in
// Synapse, so they are short in /sync URLs.
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";
import type { FilterStore } from "../../stores";

export const FILTERS_MIGRATION: Migration = {
  version: 12,
  name: "filters",
  up: `
    CREATE TABLE filters (
      user_id TEXT NOT NULL,
      filter_id INTEGER NOT NULL,
      filter_json TEXT NOT NULL,
      PRIMARY KEY (user_id, filter_id)
    ) STRICT, WITHOUT ROWID;
  `,
};

export class SqliteFilterStore implements FilterStore {
  private readonly s;

  constructor(private readonly db: SqlDatabase) {
    this.s = {
      next: db.prepare<{ next: number }>("SELECT coalesce(max(filter_id), -1) + 1 AS next FROM filters WHERE user_id = ?"),
      insert: db.prepare("INSERT INTO filters (user_id, filter_id, filter_json) VALUES (?, ?, ?)"),
      get: db.prepare<{ filter_json: string }>("SELECT filter_json FROM filters WHERE user_id = ? AND filter_id = ?"),
    };
  }

  createFilter(userId: string, filterJson: string): string {
    return this.db.transaction(() => {
      const id = this.s.next.get(userId)!.next;
      this.s.insert.run(userId, id, filterJson);
      return String(id);
    });
  }

  getFilter(userId: string, filterId: string): string | undefined {
    // Only canonical decimal ids were ever handed out; anything else ("01", "1e0", "{...}") is unknown.
    if (!/^(0|[1-9][0-9]{0,15})$/.test(filterId)) return undefined;
    return this.s.get.get(userId, Number(filterId))?.filter_json;
  }
}
