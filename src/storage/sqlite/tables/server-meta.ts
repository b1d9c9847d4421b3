// server_meta: key/value facts about this server.
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";
import type { ServerMetaStore } from "../../stores";

export const SERVER_META_MIGRATION: Migration = {
  version: 1,
  name: "server_meta",
  up: "CREATE TABLE server_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT",
};

export class SqliteServerMetaStore implements ServerMetaStore {
  private readonly select;
  private readonly upsert;

  constructor(db: SqlDatabase) {
    this.select = db.prepare<{ value: string }>("SELECT value FROM server_meta WHERE key = ?");
    this.upsert = db.prepare("INSERT INTO server_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value");
  }

  get(key: string): string | undefined {
    return this.select.get(key)?.value;
  }

  set(key: string, value: string): void {
    this.upsert.run(key, value);
  }
}
