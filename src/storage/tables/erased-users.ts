// erased_users: local users whose account was deactivated with `erase: true` (client-server-api
// "Account deactivation"). Their events stay in the DAG as they are; what reads them checks this
// list to serve pruned copies to those who joined later, and to other servers. An erasure is never
// undone: the account cannot come back.
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const ERASED_USERS_MIGRATION: Migration = {
  version: 98,
  name: "erased_users",
  sqlite: "CREATE TABLE erased_users (user_id TEXT PRIMARY KEY, erased_ts INTEGER NOT NULL) STRICT, WITHOUT ROWID",
  postgres: "CREATE TABLE erased_users (user_id TEXT PRIMARY KEY, erased_ts BIGINT NOT NULL)",
};

/** The users erased on deactivation. */
export interface ErasedUserStore {
  /** Records the erasure; erasing again keeps the first time. */
  markErased(userId: string, ts: number): Promise<void>;
  /** Every erased user (loaded once at start: the list only grows, and only through this server). */
  allErased(): Promise<string[]>;
}

const INSERT = "INSERT INTO erased_users (user_id, erased_ts) VALUES (?, ?) ON CONFLICT (user_id) DO NOTHING";
const SELECT_ALL = "SELECT user_id FROM erased_users ORDER BY user_id";

export class SqlErasedUserStore implements ErasedUserStore {
  constructor(private readonly db: Database) {}

  async markErased(userId: string, ts: number): Promise<void> {
    await this.db.run(INSERT, userId, ts);
  }

  async allErased(): Promise<string[]> {
    return (await this.db.all<{ user_id: string }>(SELECT_ALL)).map((r) => r.user_id);
  }
}
