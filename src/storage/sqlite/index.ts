// Opens the SQLite database, runs the migrations, and builds the SQLite store implementations.
import { openDatabase, type DriverName, type SqlDatabase } from "./driver";
import { runMigrations, type Migration } from "./migrations";
import { SERVER_META_MIGRATION, SqliteServerMetaStore } from "./tables/server-meta";
import type { ServerMetaStore } from "../stores";

export const MIGRATIONS: readonly Migration[] = [SERVER_META_MIGRATION];

export interface SqliteStores {
  db: SqlDatabase;
  serverMeta: ServerMetaStore;
}

export function openSqliteStores(path: string, driver: DriverName): SqliteStores {
  const db = openDatabase(path, driver);
  runMigrations(db, MIGRATIONS);
  return { db, serverMeta: new SqliteServerMetaStore(db) };
}
