// profiles: one row per profile field of a local user, the value kept as JSON text (custom fields
// may hold any JSON type since v1.16).
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";
import type { ProfileStore } from "../../stores";

export const PROFILES_MIGRATION: Migration = {
  version: 11,
  name: "profiles",
  up: `
    CREATE TABLE profiles (
      user_id TEXT NOT NULL,
      field TEXT NOT NULL,
      value_json TEXT NOT NULL,
      PRIMARY KEY (user_id, field)
    ) STRICT, WITHOUT ROWID;
  `,
};

export class SqliteProfileStore implements ProfileStore {
  private readonly s;

  constructor(db: SqlDatabase) {
    this.s = {
      fields: db.prepare<{ field: string; value_json: string }>("SELECT field, value_json FROM profiles WHERE user_id = ? ORDER BY field"),
      upsert: db.prepare("INSERT INTO profiles (user_id, field, value_json) VALUES (?, ?, ?) ON CONFLICT (user_id, field) DO UPDATE SET value_json = excluded.value_json"),
      delete: db.prepare("DELETE FROM profiles WHERE user_id = ? AND field = ?"),
    };
  }

  getProfile(userId: string): Record<string, unknown> {
    const profile: Record<string, unknown> = {};
    for (const r of this.s.fields.all(userId)) profile[r.field] = JSON.parse(r.value_json);
    return profile;
  }

  setProfileField(userId: string, field: string, value: unknown): void {
    this.s.upsert.run(userId, field, JSON.stringify(value));
  }

  deleteProfileField(userId: string, field: string): void {
    this.s.delete.run(userId, field);
  }
}
