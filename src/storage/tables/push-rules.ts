// push_rules: each user's own push rules and changes to the server-default ones, as one JSON
// document per user (a handful of rules; read and written whole).
import type { Database } from "../database";
import type { Migration } from "../migrations";
import type { PushRuleStore } from "../stores";

export const PUSH_RULES_MIGRATION: Migration = {
  version: 14,
  name: "push_rules",
  sqlite: "CREATE TABLE push_rules (user_id TEXT PRIMARY KEY, rules_json TEXT NOT NULL) STRICT, WITHOUT ROWID",
  postgres: "CREATE TABLE push_rules (user_id TEXT PRIMARY KEY, rules_json TEXT NOT NULL)",
};

const SELECT = "SELECT rules_json FROM push_rules WHERE user_id = ?";
const UPSERT = "INSERT INTO push_rules (user_id, rules_json) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET rules_json = excluded.rules_json";

export class SqlPushRuleStore implements PushRuleStore {
  constructor(private readonly db: Database) {}

  async getUserPushRules(userId: string): Promise<string | undefined> {
    return (await this.db.get<{ rules_json: string }>(SELECT, userId))?.rules_json;
  }

  async setUserPushRules(userId: string, rulesJson: string): Promise<void> {
    await this.db.run(UPSERT, userId, rulesJson);
  }
}
