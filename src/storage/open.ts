// Opens the database the config names (SQLite by default, or PostgreSQL), runs the migrations, and
// builds the store implementations over it. The stores are the same on every engine.
import type { Database } from "./database";
import { openSqlite, type SqliteDriverName } from "./sqlite/driver";
import { openPostgres, type PostgresOptions } from "./postgres/driver";
import { runMigrations, type Migration } from "./migrations";
import { SERVER_META_MIGRATION, SqlServerMetaStore } from "./tables/server-meta";
import { ROOMS_MIGRATION } from "./tables/rooms";
import { EVENTS_DROP_ROOM_DEPTH_MIGRATION, EVENTS_MEMBER_CHANGES_MIGRATION, EVENTS_MIGRATION } from "./tables/events";
import { STATE_SNAPSHOTS_MIGRATION, STATE_SNAPSHOT_SIZES_MIGRATION } from "./tables/state-snapshots";
import { CURRENT_STATE_BY_MEMBERSHIP_MIGRATION, CURRENT_STATE_MIGRATION } from "./tables/current-state";
import { SqlRoomEventStore } from "./room-event-store";
import { ACCOUNTS_MIGRATION, SqlAccountStore, USERS_IS_GUEST_MIGRATION } from "./tables/accounts";
import { PROFILES_MIGRATION, SqlProfileStore } from "./tables/profiles";
import { FILTERS_MIGRATION, SqlFilterStore } from "./tables/filters";
import { ACCOUNT_DATA_MIGRATION, SqlAccountDataStore } from "./tables/account-data";
import { PUSH_RULES_MIGRATION, SqlPushRuleStore } from "./tables/push-rules";
import { CLIENT_TRANSACTIONS_IN_EVENTS_MIGRATION, CLIENT_TRANSACTIONS_MIGRATION } from "./tables/client-transactions";
import { REDACTIONS_MIGRATION } from "./tables/redactions";
import { FORGOTTEN_ROOMS_MIGRATION } from "./tables/forgotten-rooms";
import { RECEIPTS_MIGRATION, RECEIPTS_STREAM_INDEX_MIGRATION } from "./tables/receipts";
import { SqlRoomClientStore } from "./room-client-store";
import { PUBLISHED_ROOMS_MIGRATION, ROOM_ALIASES_MIGRATION, SqlRoomDirectoryStore } from "./tables/room-directory";
import { SERVER_KEYS_MIGRATION, SqlServerKeyStore, type ServerKeyStore } from "./tables/server-keys";
import { FEDERATION_OUTBOX_MIGRATION, SqlFederationOutboxStore, type FederationOutboxStore } from "./tables/federation-outbox";
import { OUT_OF_BAND_MEMBERSHIPS_MIGRATION, SqlOutOfBandMembershipStore, type OutOfBandMembershipStore } from "./tables/out-of-band-memberships";
import { DEVICE_KEYS_MIGRATION, REMOTE_DEVICE_LISTS_MIGRATION, SqlDeviceKeyStore, type DeviceKeyStore } from "./tables/device-keys";
import { ONE_TIME_KEYS_MIGRATION, SqlOneTimeKeyStore, type OneTimeKeyStore } from "./tables/one-time-keys";
import { CROSS_SIGNING_MIGRATION, SqlCrossSigningStore, type CrossSigningStore } from "./tables/cross-signing";
import { TO_DEVICE_MIGRATION, SqlToDeviceStore, type ToDeviceStore } from "./tables/to-device";
import { KEY_BACKUP_MIGRATION, SqlKeyBackupStore, type KeyBackupStore } from "./tables/key-backup";
import { PUSHERS_MIGRATION, SqlPusherStore, type PusherStore } from "./tables/pushers";
import { NOTIFICATIONS_MIGRATION, NOTIFICATIONS_UNIQUE_POSITION_MIGRATION, SqlNotificationStore, type NotificationStore } from "./tables/notifications";
import { MEDIA_MIGRATION, MEDIA_THUMBNAILS_MIGRATION, SqlMediaStore, type MediaStore } from "./tables/media";
import { SqlSlidingSyncRoomStore, type SlidingSyncRoomStore } from "./tables/sliding-sync-rooms";
import { THREEPID_BINDINGS_MIGRATION, SqlThreepidBindingStore, type ThreepidBindingStore } from "./tables/threepid-bindings";
import { LOCAL_THREEPIDS_MIGRATION, SqlLocalThreepidStore, type LocalThreepidStore } from "./tables/local-threepids";
import { SqlStreamHeadStore, type StreamHeadStore } from "./stream-heads";
import { APPSERVICE_QUEUE_MIGRATION, SqlAppServiceQueueStore, type AppServiceQueueStore } from "./tables/appservice-queue";
import { APPSERVICE_ROOM_LISTS_MIGRATION, SqlAppServiceRoomListStore, type AppServiceRoomListStore } from "./tables/appservice-room-lists";
import { FEDERATION_INBOUND_TRANSACTIONS_MIGRATION, SqlInboundTransactionStore, type InboundTransactionStore } from "./tables/federation-inbound-transactions";
import { ERASED_USERS_MIGRATION, SqlErasedUserStore, type ErasedUserStore } from "./tables/erased-users";
import type { AccountDataStore, AccountStore, FilterStore, ProfileStore, PushRuleStore, RoomClientStore, RoomDirectoryStore, RoomEventStore, ServerMetaStore } from "./stores";

export const MIGRATIONS: readonly Migration[] = [SERVER_META_MIGRATION, ROOMS_MIGRATION, EVENTS_MIGRATION, STATE_SNAPSHOTS_MIGRATION, CURRENT_STATE_MIGRATION, STATE_SNAPSHOT_SIZES_MIGRATION, CURRENT_STATE_BY_MEMBERSHIP_MIGRATION, ACCOUNTS_MIGRATION, PROFILES_MIGRATION, FILTERS_MIGRATION, ACCOUNT_DATA_MIGRATION, PUSH_RULES_MIGRATION, CLIENT_TRANSACTIONS_MIGRATION, REDACTIONS_MIGRATION, FORGOTTEN_ROOMS_MIGRATION, RECEIPTS_MIGRATION, ROOM_ALIASES_MIGRATION, PUBLISHED_ROOMS_MIGRATION, SERVER_KEYS_MIGRATION, FEDERATION_OUTBOX_MIGRATION, OUT_OF_BAND_MEMBERSHIPS_MIGRATION, DEVICE_KEYS_MIGRATION, ONE_TIME_KEYS_MIGRATION, CROSS_SIGNING_MIGRATION, TO_DEVICE_MIGRATION, KEY_BACKUP_MIGRATION, PUSHERS_MIGRATION, NOTIFICATIONS_MIGRATION, MEDIA_MIGRATION, MEDIA_THUMBNAILS_MIGRATION, RECEIPTS_STREAM_INDEX_MIGRATION, USERS_IS_GUEST_MIGRATION, THREEPID_BINDINGS_MIGRATION, FEDERATION_INBOUND_TRANSACTIONS_MIGRATION, LOCAL_THREEPIDS_MIGRATION, APPSERVICE_QUEUE_MIGRATION, APPSERVICE_ROOM_LISTS_MIGRATION, REMOTE_DEVICE_LISTS_MIGRATION, ERASED_USERS_MIGRATION, EVENTS_MEMBER_CHANGES_MIGRATION, NOTIFICATIONS_UNIQUE_POSITION_MIGRATION, EVENTS_DROP_ROOM_DEPTH_MIGRATION, CLIENT_TRANSACTIONS_IN_EVENTS_MIGRATION];

export interface Stores {
  db: Database;
  serverMeta: ServerMetaStore;
  roomEvents: RoomEventStore;
  roomClient: RoomClientStore;
  accounts: AccountStore;
  profiles: ProfileStore;
  filters: FilterStore;
  accountData: AccountDataStore;
  pushRules: PushRuleStore;
  roomDirectory: RoomDirectoryStore;
  outOfBandMemberships: OutOfBandMembershipStore;
  serverKeys: ServerKeyStore;
  federationOutbox: FederationOutboxStore;
  pushers: PusherStore;
  notifications: NotificationStore;
  deviceKeys: DeviceKeyStore;
  oneTimeKeys: OneTimeKeyStore;
  crossSigning: CrossSigningStore;
  toDevice: ToDeviceStore;
  keyBackup: KeyBackupStore;
  media: MediaStore;
  slidingSyncRooms: SlidingSyncRoomStore;
  threepidBindings: ThreepidBindingStore;
  localThreepids: LocalThreepidStore;
  inboundTransactions: InboundTransactionStore;
  streamHeads: StreamHeadStore;
  appServiceQueue: AppServiceQueueStore;
  appServiceRoomLists: AppServiceRoomListStore;
  erasedUsers: ErasedUserStore;
}

export type DatabaseSettings =
  | { driver: SqliteDriverName; path: string; walPreallocateBytes?: number }
  | ({ driver: "postgres" } & PostgresOptions);

export async function openDatabase(settings: DatabaseSettings): Promise<Database> {
  return settings.driver === "postgres" ? openPostgres(settings) : openSqlite(settings.path, settings.driver, { walPreallocateBytes: settings.walPreallocateBytes });
}

/** The stores over an open database whose migrations have run. */
export function storesOver(db: Database): Stores {
  return {
    db,
    serverMeta: new SqlServerMetaStore(db),
    roomEvents: new SqlRoomEventStore(db),
    roomClient: new SqlRoomClientStore(db),
    accounts: new SqlAccountStore(db),
    profiles: new SqlProfileStore(db),
    filters: new SqlFilterStore(db),
    accountData: new SqlAccountDataStore(db),
    pushRules: new SqlPushRuleStore(db),
    roomDirectory: new SqlRoomDirectoryStore(db),
    outOfBandMemberships: new SqlOutOfBandMembershipStore(db),
    serverKeys: new SqlServerKeyStore(db),
    federationOutbox: new SqlFederationOutboxStore(db),
    pushers: new SqlPusherStore(db),
    notifications: new SqlNotificationStore(db),
    deviceKeys: new SqlDeviceKeyStore(db),
    oneTimeKeys: new SqlOneTimeKeyStore(db),
    crossSigning: new SqlCrossSigningStore(db),
    toDevice: new SqlToDeviceStore(db),
    keyBackup: new SqlKeyBackupStore(db),
    media: new SqlMediaStore(db),
    slidingSyncRooms: new SqlSlidingSyncRoomStore(db),
    threepidBindings: new SqlThreepidBindingStore(db),
    localThreepids: new SqlLocalThreepidStore(db),
    inboundTransactions: new SqlInboundTransactionStore(db),
    streamHeads: new SqlStreamHeadStore(db),
    appServiceQueue: new SqlAppServiceQueueStore(db),
    appServiceRoomLists: new SqlAppServiceRoomListStore(db),
    erasedUsers: new SqlErasedUserStore(db),
  };
}

export async function openStores(settings: DatabaseSettings): Promise<Stores> {
  const db = await openDatabase(settings);
  try {
    await runMigrations(db, MIGRATIONS);
  } catch (error) {
    await db.close();
    throw error;
  }
  return storesOver(db);
}
