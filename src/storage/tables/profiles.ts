// profiles: one row per profile field of a local user, the value kept as JSON text (custom fields
// may hold any JSON type since v1.16).
import type { Database } from "../database";
import type { Migration } from "../migrations";
import type { ProfileStore } from "../stores";

export const PROFILES_MIGRATION: Migration = {
  version: 11,
  name: "profiles",
  sqlite: `
    CREATE TABLE profiles (
      user_id TEXT NOT NULL,
      field TEXT NOT NULL,
      value_json TEXT NOT NULL,
      PRIMARY KEY (user_id, field)
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE profiles (
      user_id TEXT NOT NULL,
      field TEXT NOT NULL,
      value_json TEXT NOT NULL,
      PRIMARY KEY (user_id, field)
    );
  `,
};

const SELECT_FIELDS = "SELECT field, value_json FROM profiles WHERE user_id = ? ORDER BY field";
const UPSERT_FIELD = "INSERT INTO profiles (user_id, field, value_json) VALUES (?, ?, ?) ON CONFLICT (user_id, field) DO UPDATE SET value_json = excluded.value_json";
const DELETE_FIELD = "DELETE FROM profiles WHERE user_id = ? AND field = ?";

export class SqlProfileStore implements ProfileStore {
  constructor(private readonly db: Database) {}

  async getProfile(userId: string): Promise<Record<string, unknown>> {
    const profile: Record<string, unknown> = {};
    for (const r of await this.db.all<{ field: string; value_json: string }>(SELECT_FIELDS, userId)) profile[r.field] = JSON.parse(r.value_json);
    return profile;
  }

  async setProfileField(userId: string, field: string, value: unknown): Promise<void> {
    await this.db.run(UPSERT_FIELD, userId, field, JSON.stringify(value));
  }

  async deleteProfileField(userId: string, field: string): Promise<void> {
    await this.db.run(DELETE_FIELD, userId, field);
  }
}
