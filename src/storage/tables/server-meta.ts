// server_meta: key/value facts about this server.
import type { Database } from "../database";
import type { Migration } from "../migrations";
import type { ServerMetaStore } from "../stores";

export const SERVER_META_MIGRATION: Migration = {
  version: 1,
  name: "server_meta",
  sqlite: "CREATE TABLE server_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT",
  postgres: "CREATE TABLE server_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
};

const SELECT = "SELECT value FROM server_meta WHERE key = ?";
const UPSERT = "INSERT INTO server_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value";

export class SqlServerMetaStore implements ServerMetaStore {
  constructor(private readonly db: Database) {}

  async get(key: string): Promise<string | undefined> {
    return (await this.db.get<{ value: string }>(SELECT, key))?.value;
  }

  async set(key: string, value: string): Promise<void> {
    await this.db.run(UPSERT, key, value);
  }
}
