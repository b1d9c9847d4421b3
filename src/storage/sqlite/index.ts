// Opens the SQLite database, runs the migrations, and builds the SQLite store implementations.
import { openDatabase, type DriverName, type SqlDatabase } from "./driver";
import { runMigrations, type Migration } from "./migrations";
import { SERVER_META_MIGRATION, SqliteServerMetaStore } from "./tables/server-meta";
import { ROOMS_MIGRATION } from "./tables/rooms";
import { EVENTS_MIGRATION } from "./tables/events";
import { STATE_SNAPSHOTS_MIGRATION } from "./tables/state-snapshots";
import { CURRENT_STATE_MIGRATION } from "./tables/current-state";
import { SqliteRoomEventStore } from "./room-event-store";
import { ACCOUNTS_MIGRATION, SqliteAccountStore } from "./tables/accounts";
import type { AccountStore, RoomEventStore, ServerMetaStore } from "../stores";

export const MIGRATIONS: readonly Migration[] = [SERVER_META_MIGRATION, ROOMS_MIGRATION, EVENTS_MIGRATION, STATE_SNAPSHOTS_MIGRATION, CURRENT_STATE_MIGRATION, ACCOUNTS_MIGRATION];

export interface SqliteStores {
  db: SqlDatabase;
  serverMeta: ServerMetaStore;
  roomEvents: RoomEventStore;
  accounts: AccountStore;
}

export function openSqliteStores(path: string, driver: DriverName): SqliteStores {
  const db = openDatabase(path, driver);
  runMigrations(db, MIGRATIONS);
  return { db, serverMeta: new SqliteServerMetaStore(db), roomEvents: new SqliteRoomEventStore(db), accounts: new SqliteAccountStore(db) };
}
