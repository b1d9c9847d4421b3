// Opens the SQLite database, runs the migrations, and builds the SQLite store implementations.
import { openDatabase, type DriverName, type SqlDatabase } from "./driver";
import { runMigrations, type Migration } from "./migrations";
import { SERVER_META_MIGRATION, SqliteServerMetaStore } from "./tables/server-meta";
import { ROOMS_MIGRATION } from "./tables/rooms";
import { EVENTS_MIGRATION } from "./tables/events";
import { STATE_SNAPSHOTS_MIGRATION, STATE_SNAPSHOT_SIZES_MIGRATION } from "./tables/state-snapshots";
import { CURRENT_STATE_BY_MEMBERSHIP_MIGRATION, CURRENT_STATE_MIGRATION } from "./tables/current-state";
import { SqliteRoomEventStore } from "./room-event-store";
import { ACCOUNTS_MIGRATION, SqliteAccountStore } from "./tables/accounts";
import { PROFILES_MIGRATION, SqliteProfileStore } from "./tables/profiles";
import { FILTERS_MIGRATION, SqliteFilterStore } from "./tables/filters";
import { ACCOUNT_DATA_MIGRATION, SqliteAccountDataStore } from "./tables/account-data";
import { PUSH_RULES_MIGRATION, SqlitePushRuleStore } from "./tables/push-rules";
import type { AccountStore, RoomEventStore, ServerMetaStore } from "../stores";
import { CLIENT_TRANSACTIONS_MIGRATION } from "./tables/client-transactions";
import { REDACTIONS_MIGRATION } from "./tables/redactions";
import { FORGOTTEN_ROOMS_MIGRATION } from "./tables/forgotten-rooms";
import { RECEIPTS_MIGRATION } from "./tables/receipts";
import { SqliteRoomClientStore } from "./room-client-store";
import { PUBLISHED_ROOMS_MIGRATION, ROOM_ALIASES_MIGRATION, SqliteRoomDirectoryStore } from "./tables/room-directory";
import type { RoomDirectoryStore } from "../stores";
import type { RoomClientStore } from "../stores";
import type { AccountDataStore, FilterStore, ProfileStore, PushRuleStore } from "../stores";

export const MIGRATIONS: readonly Migration[] = [SERVER_META_MIGRATION, ROOMS_MIGRATION, EVENTS_MIGRATION, STATE_SNAPSHOTS_MIGRATION, CURRENT_STATE_MIGRATION, STATE_SNAPSHOT_SIZES_MIGRATION, CURRENT_STATE_BY_MEMBERSHIP_MIGRATION, ACCOUNTS_MIGRATION, PROFILES_MIGRATION, FILTERS_MIGRATION, ACCOUNT_DATA_MIGRATION, PUSH_RULES_MIGRATION, CLIENT_TRANSACTIONS_MIGRATION, REDACTIONS_MIGRATION, FORGOTTEN_ROOMS_MIGRATION, RECEIPTS_MIGRATION, ROOM_ALIASES_MIGRATION, PUBLISHED_ROOMS_MIGRATION];

export interface SqliteStores {
  db: SqlDatabase;
  serverMeta: ServerMetaStore;
  roomEvents: RoomEventStore;
  roomClient: RoomClientStore;
  accounts: AccountStore;
  profiles: ProfileStore;
  filters: FilterStore;
  accountData: AccountDataStore;
  pushRules: PushRuleStore;
  roomDirectory: RoomDirectoryStore;
}

export function openSqliteStores(path: string, driver: DriverName): SqliteStores {
  const db = openDatabase(path, driver);
  runMigrations(db, MIGRATIONS);
  return { db, serverMeta: new SqliteServerMetaStore(db), roomEvents: new SqliteRoomEventStore(db), roomClient: new SqliteRoomClientStore(db), accounts: new SqliteAccountStore(db), profiles: new SqliteProfileStore(db), filters: new SqliteFilterStore(db), accountData: new SqliteAccountDataStore(db), pushRules: new SqlitePushRuleStore(db), roomDirectory: new SqliteRoomDirectoryStore(db) };
}
