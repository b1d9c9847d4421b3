// push_rules: each user's own push rules and changes to the server-default ones, as one JSON
// document per user (a handful of rules; read and written whole).
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";
import type { PushRuleStore } from "../../stores";

export const PUSH_RULES_MIGRATION: Migration = {
  version: 14,
  name: "push_rules",
  up: "CREATE TABLE push_rules (user_id TEXT PRIMARY KEY, rules_json TEXT NOT NULL) STRICT, WITHOUT ROWID",
};

export class SqlitePushRuleStore implements PushRuleStore {
  private readonly s;

  constructor(db: SqlDatabase) {
    this.s = {
      get: db.prepare<{ rules_json: string }>("SELECT rules_json FROM push_rules WHERE user_id = ?"),
      upsert: db.prepare("INSERT INTO push_rules (user_id, rules_json) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET rules_json = excluded.rules_json"),
    };
  }

  getUserPushRules(userId: string): string | undefined {
    return this.s.get.get(userId)?.rules_json;
  }

  setUserPushRules(userId: string, rulesJson: string): void {
    this.s.upsert.run(userId, rulesJson);
  }
}
