// Typed DI tokens: symbols that carry the type they resolve to, so `resolve(container, Tokens.Config)`
// is typed without strings or casts at the call site.
import type { DependencyContainer } from "tsyringe";
import type { Config } from "../config/schema";
import type { Database } from "../storage/database";
import type { RoomEventStore, ServerMetaStore } from "../storage/stores";
import type { RoomEngine } from "../services/rooms/room-engine";
import type { PduReceiver } from "../services/rooms/pdu-receiver";
import type { RoomService } from "../services/rooms/room-service";
import type { MembershipService } from "../services/rooms/membership";
import type { ReceiptService, TypingService } from "../services/rooms/ephemeral";
import type { RoomAccess } from "../services/rooms/room-access";
import type { DirectoryService } from "../services/directory/directory-service";
import type { ServerKeyService } from "../services/keys/server-keys";
import type { AccountService } from "../services/accounts/account-service";
import type { UserInteractiveAuth } from "../services/accounts/user-interactive-auth";
import type { ProfileService } from "../services/accounts/profile-service";
import type { AccountDataService } from "../services/accounts/account-data-service";
import type { ErasedUsers } from "../services/accounts/erased-users";
import type { FilterService } from "../services/accounts/filter-service";
import type { PasswordConfirmation } from "../services/accounts/password-confirmation";
import type { ClientConnections } from "../services/accounts/client-connections";
import type { SharedSecretRegistration } from "../services/accounts/shared-secret-registration";
import type { PushRuleService } from "../services/accounts/push-rule-service";
import type { PusherService } from "../services/push/pusher-service";
import type { NotificationService } from "../services/push/notification-service";
import type { PushGatewaySender } from "../services/push/push-gateway-sender";
import type { SyncService } from "../services/sync/sync-service";
import type { SlidingSyncService } from "../services/sync/sliding-sync-service";
import type { SyncNotifier } from "../services/sync/notifier";
import type { KnockModerationService } from "../services/knocks/knock-moderation";
import type { OutOfBandMemberships } from "../services/rooms/out-of-band";
import type { Clock, Logger } from "../services/runtime";
import type { PolicySet } from "../services/plugins/policies";
import type { PluginLoader } from "../services/plugins/loader";
import type { FederationClient, ServerKeyRing } from "../services/federation/contracts";
import type { FederationSenderService } from "../services/federation/sender";
import type { FederationEventIngest } from "../services/federation/event-ingest";
import type { ResidentMembershipService } from "../services/federation/membership-handshake";
import type { RemoteMembershipService } from "../services/federation/remote-membership";
import type { FederatedMembershipService } from "../services/federation/federated-membership";
import type { TransactionReceiver } from "../services/federation/transaction-receiver";
import type { FederationRoomReader } from "../services/federation/room-reader";
import type { FederationQueries } from "../services/federation/queries";
import type { FederationKeyRing } from "../services/federation/key-ring";
import type { PolicyServerService } from "../services/federation/policy-server";
import type { UserDirectoryService } from "../services/directory/user-directory";
import type { PresenceService } from "../services/presence/presence-service";
import type { DeviceListService } from "../services/e2ee/device-lists";
import type { EndToEndKeyService } from "../services/e2ee/e2ee-keys";
import type { ToDeviceService } from "../services/e2ee/to-device";
import type { KeyBackupService } from "../services/e2ee/key-backup";
import type { E2eeSyncSection } from "../services/e2ee/e2ee-sync";
import type { E2eeFederation } from "../services/e2ee/federation-edus";
import type { MetricsRegistry } from "../services/metrics/metrics";

declare const tokenType: unique symbol;
export type Token<T> = symbol & { readonly [tokenType]?: T };
export const token = <T>(description: string): Token<T> => Symbol(description) as Token<T>;

export const Tokens = {
  Config: token<Readonly<Config>>("Config"),
  Clock: token<Clock>("Clock"),
  Logger: token<Logger>("Logger"),
  Database: token<Database>("Database"),
  ServerMetaStore: token<ServerMetaStore>("ServerMetaStore"),
  RoomEventStore: token<RoomEventStore>("RoomEventStore"),
  ServerKeys: token<ServerKeyService>("ServerKeys"),
  RoomEngine: token<RoomEngine>("RoomEngine"),
  PduReceiver: token<PduReceiver>("PduReceiver"),
  RoomAccess: token<RoomAccess>("RoomAccess"),
  Rooms: token<RoomService>("Rooms"),
  Membership: token<MembershipService>("Membership"),
  Typing: token<TypingService>("Typing"),
  Receipts: token<ReceiptService>("Receipts"),
  Directory: token<DirectoryService>("Directory"),
  UserDirectory: token<UserDirectoryService>("UserDirectory"),
  Presence: token<PresenceService>("Presence"),
  Accounts: token<AccountService>("Accounts"),
  UserInteractiveAuth: token<UserInteractiveAuth>("UserInteractiveAuth"),
  Profiles: token<ProfileService>("Profiles"),
  AccountData: token<AccountDataService>("AccountData"),
  ErasedUsers: token<ErasedUsers>("ErasedUsers"),
  Filters: token<FilterService>("Filters"),
  PasswordConfirmation: token<PasswordConfirmation>("PasswordConfirmation"),
  ClientConnections: token<ClientConnections>("ClientConnections"),
  SharedSecretRegistration: token<SharedSecretRegistration>("SharedSecretRegistration"),
  PushRules: token<PushRuleService>("PushRules"),
  Pushers: token<PusherService>("Pushers"),
  Notifications: token<NotificationService>("Notifications"),
  PushGatewaySender: token<PushGatewaySender>("PushGatewaySender"),
  SyncNotifier: token<SyncNotifier>("SyncNotifier"),
  Sync: token<SyncService>("Sync"),
  SlidingSync: token<SlidingSyncService>("SlidingSync"),
  KnockModeration: token<KnockModerationService>("KnockModeration"),
  OutOfBandMemberships: token<OutOfBandMemberships>("OutOfBandMemberships"),
  Policies: token<PolicySet>("Policies"),
  PluginLoader: token<PluginLoader>("PluginLoader"),
  FederationClient: token<FederationClient>("FederationClient"),
  KeyRing: token<ServerKeyRing & FederationKeyRing>("KeyRing"),
  FederationSender: token<FederationSenderService>("FederationSender"),
  EventIngest: token<FederationEventIngest>("EventIngest"),
  ResidentMembership: token<ResidentMembershipService>("ResidentMembership"),
  RemoteMembership: token<RemoteMembershipService>("RemoteMembership"),
  FederatedMembership: token<FederatedMembershipService>("FederatedMembership"),
  TransactionReceiver: token<TransactionReceiver>("TransactionReceiver"),
  FederationRoomReader: token<FederationRoomReader>("FederationRoomReader"),
  FederationQueries: token<FederationQueries>("FederationQueries"),
  PolicyServer: token<PolicyServerService>("PolicyServer"),
  DeviceLists: token<DeviceListService>("DeviceLists"),
  EndToEndKeys: token<EndToEndKeyService>("EndToEndKeys"),
  ToDevice: token<ToDeviceService>("ToDevice"),
  KeyBackups: token<KeyBackupService>("KeyBackups"),
  E2eeSync: token<E2eeSyncSection>("E2eeSync"),
  E2eeFederation: token<E2eeFederation>("E2eeFederation"),
  /** Prometheus metrics; undefined when config.metrics is off (nothing is then counted). */
  Metrics: token<MetricsRegistry | undefined>("Metrics"),
} as const;

export function resolve<T>(container: DependencyContainer, t: Token<T>): T {
  return container.resolve<T>(t);
}

export function registerValue<T>(container: DependencyContainer, t: Token<T>, value: T): void {
  container.register<T>(t, { useValue: value });
}
