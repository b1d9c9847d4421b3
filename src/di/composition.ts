// The composition root: every core service registered in the server's container under its typed
// token, as a factory that builds it on first resolution (once per container). Nothing is built
// here; app.ts loads the plugins (which fill the policy chains or replace the rate limiter) before
// it resolves anything, so a plugin is in place before the first service that asks it exists.
import { instanceCachingFactory, type DependencyContainer } from "tsyringe";
import type { Config } from "../config/schema";
import type { Stores } from "../storage/open";
import { Tokens, registerValue, resolve, type Token } from "./tokens";
import type { Clock, Logger } from "../services/runtime";
import type { SigningKey } from "../protocol/signing/keys";
import { RoomEngine } from "../services/rooms/room-engine";
import { PduReceiver } from "../services/rooms/pdu-receiver";
import { RoomAccess } from "../services/rooms/room-access";
import { RoomService } from "../services/rooms/room-service";
import { MembershipService } from "../services/rooms/membership";
import { ReceiptService, TypingService } from "../services/rooms/ephemeral";
import { DirectoryService } from "../services/directory/directory-service";
import { ServerKeyService } from "../services/keys/server-keys";
import { AccountService } from "../services/accounts/account-service";
import { UserInteractiveAuth } from "../services/accounts/user-interactive-auth";
import { ProfileService } from "../services/accounts/profile-service";
import { AccountDataService } from "../services/accounts/account-data-service";
import { ErasedUsers } from "../services/accounts/erased-users";
import { FilterService } from "../services/accounts/filter-service";
import { PasswordConfirmation } from "../services/accounts/password-confirmation";
import { ClientConnections } from "../services/accounts/client-connections";
import { SharedSecretRegistration } from "../services/accounts/shared-secret-registration";
import { PushRuleService } from "../services/accounts/push-rule-service";
import { UserDirectoryService } from "../services/directory/user-directory";
import { PresenceService } from "../services/presence/presence-service";
import { PusherService } from "../services/push/pusher-service";
import { NotificationService } from "../services/push/notification-service";
import { PushGatewaySender } from "../services/push/push-gateway-sender";
import { systemTimer } from "../services/federation/sender";
import { SyncService } from "../services/sync/sync-service";
import { SlidingSyncService } from "../services/sync/sliding-sync-service";
import { SyncNotifier } from "../services/sync/notifier";
import { KnockModerationService } from "../services/knocks/knock-moderation";
import { OutOfBandMemberships } from "../services/rooms/out-of-band";
import { PolicySet } from "../services/plugins/policies";
import type { FederationClient } from "../services/federation/contracts";
import { MatrixError } from "../protocol/errors";
import { isJsonObject } from "../protocol/json";
import { DeviceListService } from "../services/e2ee/device-lists";
import { EndToEndKeyService } from "../services/e2ee/e2ee-keys";
import { RemoteDeviceLists } from "../services/e2ee/remote-device-lists";
import { ToDeviceService } from "../services/e2ee/to-device";
import { KeyBackupService } from "../services/e2ee/key-backup";
import { E2eeSyncSection } from "../services/e2ee/e2ee-sync";
import { MetricsRegistry } from "../services/metrics/metrics";

/**
 * A remote user's profile through their server (server-server-api "Query information": profile).
 * Their server's 404 passes on; a server we cannot ask (or no federation) is "not found" too.
 */
async function remoteProfile(client: FederationClient, userId: string): Promise<Record<string, unknown>> {
  const server = userId.slice(userId.indexOf(":") + 1);
  try {
    const answer = await client.request("GET", server, "/_matrix/federation/v1/query/profile", { query: { user_id: userId } });
    if (!isJsonObject(answer)) throw new MatrixError("M_NOT_FOUND", "Profile not found");
    return answer;
  } catch (error) {
    if (error instanceof MatrixError && error.status !== 404) throw new MatrixError("M_NOT_FOUND", `Profile not found: ${error.message}`);
    throw error;
  }
}

/** Registers a service built on first resolution, once per container. */
export function registerFactory<T>(container: DependencyContainer, t: Token<T>, build: (c: DependencyContainer) => T): void {
  container.register<T>(t, { useFactory: instanceCachingFactory<T>(build) });
}

export interface CoreParts {
  readonly config: Readonly<Config>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly stores: Stores;
  readonly signingKey: SigningKey;
}

export function registerCoreServices(container: DependencyContainer, { config, clock, logger, stores, signingKey }: CoreParts): void {
  const get = <T>(t: Token<T>): T => resolve(container, t);
  registerValue(container, Tokens.Config, config);
  registerValue(container, Tokens.Clock, clock);
  registerValue(container, Tokens.Logger, logger);
  registerValue(container, Tokens.Database, stores.db);
  registerValue(container, Tokens.ServerMetaStore, stores.serverMeta);
  registerValue(container, Tokens.RoomEventStore, stores.roomEvents);
  // The running policies of the plugins; services ask them at call time.
  registerFactory(container, Tokens.Policies, () => new PolicySet(logger));
  const isServerAdmin = (userId: string) => get(Tokens.Accounts).isAdmin(userId);
  const userExists = (userId: string) => get(Tokens.Accounts).userExists(userId);
  // Member events carry the user's displayname/avatar_url from their profile.
  const profileOf = async (userId: string) => {
    const p = await get(Tokens.Profiles).profile(userId);
    return { displayname: typeof p.displayname === "string" ? p.displayname : undefined, avatar_url: typeof p.avatar_url === "string" ? p.avatar_url : undefined };
  };
  const localUser = { serverName: config.server_name, userExists, profileOf };

  // Accounts.
  registerFactory(container, Tokens.Accounts, () => {
    const accounts = new AccountService(stores.accounts, config.server_name, clock, stores.profiles, get(Tokens.Policies), (fn) => stores.db.transaction(fn));
    // A deleted device's E2EE keys and waiting to-device messages go with it, in the same transaction;
    // the device list change is announced once it has committed.
    accounts.onDeviceDeleted(async (userId, deviceId) => {
      const announce = await get(Tokens.EndToEndKeys).deleteDevice(userId, deviceId);
      await get(Tokens.ToDevice).deleteDevice(userId, deviceId);
      return announce;
    });
    // No device may take the ID of one of the user's cross-signing keys.
    accounts.reserveDeviceIds((userId, deviceId) => get(Tokens.EndToEndKeys).isCrossSigningKey(userId, deviceId));
    // A device's name is shown beside its keys (/keys/query unsigned.device_display_name).
    accounts.onDeviceRenamed((userId, deviceId) => get(Tokens.EndToEndKeys).deviceRenamed(userId, deviceId));
    // A new device is a device list change (as in Synapse): the user's room mates and their other
    // devices learn of it before its keys are uploaded.
    accounts.onDeviceAdded((userId, deviceId) => get(Tokens.DeviceLists).change({ kind: "device", userId, deviceId, deleted: false }));
    return accounts;
  });
  registerFactory(container, Tokens.Profiles, () => {
    const profiles = new ProfileService(stores.profiles, get(Tokens.Accounts), config.server_name, logger, {
      policies: get(Tokens.Policies),
      remoteProfile: (userId) => remoteProfile(get(Tokens.FederationClient), userId),
    });
    profiles.onProfileChange(async (userId, _profile, field) => {
      if (field !== "displayname" && field !== "avatar_url") return;
      return get(Tokens.Membership).propagateProfile(userId, await stores.roomEvents.roomsWithMembership(userId, "join"));
    });
    return profiles;
  });
  registerFactory(container, Tokens.AccountData, () => new AccountDataService(stores.accountData));
  // Loaded by buildServer before the first request (app.ts).
  registerFactory(container, Tokens.ErasedUsers, () => new ErasedUsers(stores.erasedUsers, stores.accountData, (fn) => stores.db.transaction(fn), clock));
  registerFactory(container, Tokens.Filters, () => new FilterService(stores.filters));
  registerFactory(container, Tokens.PushRules, () => new PushRuleService(stores.pushRules, get(Tokens.AccountData)));
  registerFactory(container, Tokens.UserInteractiveAuth, () => new UserInteractiveAuth(clock));
  registerFactory(container, Tokens.PasswordConfirmation, () => new PasswordConfirmation(get(Tokens.Accounts), get(Tokens.UserInteractiveAuth), config.cas !== undefined));
  registerFactory(container, Tokens.ClientConnections, () => new ClientConnections({
    devices: (userId) => stores.accounts.listDevices(userId),
    touchDevice: (userId, deviceId, ts, ip) => stores.accounts.touchDevice(userId, deviceId, ts, ip),
    clock,
    onError: (error) => logger.log("warn", "a device's last-seen time could not be stored", { error: String(error) }),
  }));
  registerFactory(container, Tokens.SharedSecretRegistration, () => new SharedSecretRegistration(config.registration.shared_secret, get(Tokens.Accounts), get(Tokens.Profiles), clock));

  // Rooms.
  registerFactory(container, Tokens.ServerKeys, () => new ServerKeyService(config, clock, signingKey));
  registerFactory(container, Tokens.RoomEngine, () => new RoomEngine(stores.roomEvents, get(Tokens.ServerKeys), clock, undefined, logger));
  registerFactory(container, Tokens.PduReceiver, () => new PduReceiver(stores.roomEvents, get(Tokens.RoomEngine)));
  registerFactory(container, Tokens.RoomAccess, () => {
    const erased = get(Tokens.ErasedUsers);
    return new RoomAccess(get(Tokens.RoomEngine), stores.roomEvents, (userId, roomId) => stores.roomClient.isForgotten(userId, roomId), (userId) => erased.has(userId));
  });
  registerFactory(container, Tokens.Presence, () => new PresenceService(clock, config.presence.enabled));
  registerFactory(container, Tokens.UserDirectory, () => new UserDirectoryService({ serverName: config.server_name, store: stores.roomEvents, engine: get(Tokens.RoomEngine), directory: stores.roomDirectory, profiles: stores.profiles }));
  registerFactory(container, Tokens.Directory, () => new DirectoryService(stores.roomDirectory, get(Tokens.RoomAccess), clock, { serverName: config.server_name, isServerAdmin, policies: get(Tokens.Policies), remote: () => get(Tokens.FederatedMembership) }));
  registerFactory(container, Tokens.Rooms, () => new RoomService(get(Tokens.RoomEngine), stores.roomEvents, stores.roomClient, get(Tokens.RoomAccess), clock, { ...localUser, directory: get(Tokens.Directory), policies: get(Tokens.Policies), logger,
    backfill: (roomId, limit) => get(Tokens.EventIngest).backfill(roomId, limit),
    ignoredUsers: (userId) => get(Tokens.AccountData).ignoredUsers(userId),
  }));
  registerFactory(container, Tokens.Membership, () => new MembershipService(get(Tokens.RoomEngine), get(Tokens.RoomAccess), stores.roomClient, clock, {
    ...localUser,
    autoJoinKnockersOnInvite: config.knocks.auto_join_on_invite,
    policies: get(Tokens.Policies),
    logger,
    // Resolved at call time: the moderation service depends on this one.
    acceptKnock: (roomId, userId) => get(Tokens.KnockModeration).acceptKnock(roomId, userId),
    inviteRemote: (roomId, sender, target, reason) => get(Tokens.FederatedMembership).invite(roomId, sender, target, reason),
    isGuest: (userId) => get(Tokens.Accounts).isGuest(userId),
  }));
  registerFactory(container, Tokens.KnockModeration, () => new KnockModerationService(get(Tokens.RoomAccess), stores.roomEvents, get(Tokens.Membership), clock, {
    serverName: config.server_name,
    isServerAdmin,
    userExists,
    expireAfterMs: config.knocks.expire_after_ms,
    expireReason: config.knocks.expire_reason,
  }));
  // Memberships in rooms this server does not hold (federation invites, knocks, and their end).
  registerFactory(container, Tokens.OutOfBandMemberships, () => new OutOfBandMemberships(stores.outOfBandMemberships, logger));
  registerFactory(container, Tokens.Typing, () => new TypingService(get(Tokens.RoomAccess), clock));
  registerFactory(container, Tokens.Receipts, () => new ReceiptService(stores.roomEvents, stores.roomClient, get(Tokens.RoomAccess), clock, {
    // The fully-read marker is also room account data (m.fully_read), which clients read from /sync.
    onFullyRead: (userId, roomId, eventId) => get(Tokens.AccountData).write(userId, roomId, "m.fully_read", { event_id: eventId }),
  }));

  // End-to-end encryption: device keys and lists, cross-signing, to-device messages, key backups.
  registerFactory(container, Tokens.DeviceLists, () => new DeviceListService(stores.deviceKeys, stores.roomEvents));
  registerFactory(container, Tokens.EndToEndKeys, () => new EndToEndKeyService({
    serverName: config.server_name,
    deviceKeys: stores.deviceKeys,
    oneTimeKeys: stores.oneTimeKeys,
    crossSigning: stores.crossSigning,
    deviceLists: get(Tokens.DeviceLists),
    accounts: get(Tokens.Accounts),
    federation: get(Tokens.FederationClient),
    remoteLists: new RemoteDeviceLists({ serverName: config.server_name, store: stores.deviceKeys, rooms: stores.roomEvents, deviceLists: get(Tokens.DeviceLists), federation: get(Tokens.FederationClient), logger }),
    logger,
  }));
  registerFactory(container, Tokens.ToDevice, () => new ToDeviceService({ serverName: config.server_name, store: stores.toDevice, positions: stores.deviceKeys, accounts: get(Tokens.Accounts), clock, logger }));
  registerFactory(container, Tokens.KeyBackups, () => new KeyBackupService(stores.keyBackup));
  registerFactory(container, Tokens.E2eeSync, () => new E2eeSyncSection(get(Tokens.EndToEndKeys), get(Tokens.ToDevice), get(Tokens.DeviceLists), stores.roomEvents));

  // Push: notifications are recorded as events enter rooms (the room engine's listener), pushers
  // deliver them to push gateways, and receipts or the user's own events lower the counts.
  registerFactory(container, Tokens.Pushers, () => {
    const pushers = new PusherService(stores.pushers, stores.notifications, clock);
    get(Tokens.Accounts).onDeviceDeleted((userId, deviceId) => pushers.removeDevicePushers(userId, deviceId));
    return pushers;
  });
  registerFactory(container, Tokens.Notifications, () => {
    const notifications = new NotificationService({
      serverName: config.server_name,
      access: get(Tokens.RoomAccess),
      store: stores.roomEvents,
      clientStore: stores.roomClient,
      notifications: stores.notifications,
      pushRules: get(Tokens.PushRules),
      clock,
      timer: systemTimer,
      logger,
      roomWriteRunning: (roomId) => get(Tokens.RoomEngine).queue.running(roomId),
    });
    get(Tokens.RoomEngine).onEvents((roomId, events) => notifications.eventsPersisted(roomId, events));
    get(Tokens.RoomEngine).setCompanion(notifications.eventCompanion);
    get(Tokens.Receipts).onChange((roomId) => notifications.receiptsChanged(roomId));
    return notifications;
  });
  registerFactory(container, Tokens.PushGatewaySender, () => {
    const sender = new PushGatewaySender({
      pushers: get(Tokens.Pushers),
      notifications: stores.notifications,
      access: get(Tokens.RoomAccess),
      memberships: (roomId) => stores.roomEvents.currentMemberships(roomId),
      clock,
      timer: systemTimer,
      logger,
      verifyTls: config.push.verify_tls,
      requestTimeoutMs: config.push.request_timeout_ms,
    });
    get(Tokens.Notifications).onNotified((userId) => sender.notified(userId));
    get(Tokens.Notifications).onReadMoved((userId) => sender.readMoved(userId));
    get(Tokens.Pushers).onChange((userId) => sender.pushersChanged(userId));
    get(Tokens.Receipts).onChange((roomId) => sender.receiptsChanged(roomId));
    return sender;
  });

  // /sync: the notifier wakes long-polls on every source a sync reads; stopping it releases them.
  registerFactory(container, Tokens.SyncNotifier, () => new SyncNotifier({
    onEvent: (listener) => get(Tokens.RoomEngine).onEvent(listener),
    onTyping: (listener) => get(Tokens.Typing).onChange(listener),
    onReceipt: (listener) => get(Tokens.Receipts).onChange(listener),
    onAccountData: (listener) => get(Tokens.AccountData).onChange(listener),
    onOutOfBandMembership: (listener) => get(Tokens.OutOfBandMemberships).onChange(listener),
    onToDevice: (listener) => get(Tokens.ToDevice).onMessage(listener),
    onPresence: (listener) => get(Tokens.Presence).onChange(listener),
    onDeviceListChange: (listener) => get(Tokens.DeviceLists).onChange((update) => listener(update.userId, update.kind === "signature" ? update.observer : undefined)),
    joinedRooms: (userId) => stores.roomEvents.roomsWithMembership(userId, "join"),
    memberships: (roomId) => stores.roomEvents.currentMemberships(roomId),
  }));
  registerFactory(container, Tokens.Sync, () => new SyncService({
    engine: get(Tokens.RoomEngine),
    store: stores.roomEvents,
    heads: stores.streamHeads,
    clientStore: stores.roomClient,
    access: get(Tokens.RoomAccess),
    typing: get(Tokens.Typing),
    receipts: get(Tokens.Receipts),
    accountData: get(Tokens.AccountData),
    pushRules: get(Tokens.PushRules),
    notifications: get(Tokens.Notifications),
    filters: get(Tokens.Filters),
    notifier: get(Tokens.SyncNotifier),
    outOfBand: get(Tokens.OutOfBandMemberships),
    e2ee: get(Tokens.E2eeSync),
    presence: get(Tokens.Presence),
    clock,
  }));
  // Simplified sliding sync (MSC4186): the same sources as /sync, its connections in memory.
  registerFactory(container, Tokens.SlidingSync, () => new SlidingSyncService({
    engine: get(Tokens.RoomEngine),
    store: stores.roomEvents,
    heads: stores.streamHeads,
    clientStore: stores.roomClient,
    rooms: stores.slidingSyncRooms,
    access: get(Tokens.RoomAccess),
    typing: get(Tokens.Typing),
    receipts: get(Tokens.Receipts),
    accountData: get(Tokens.AccountData),
    pushRules: get(Tokens.PushRules),
    notifications: get(Tokens.Notifications),
    notifier: get(Tokens.SyncNotifier),
    outOfBand: get(Tokens.OutOfBandMemberships),
    e2ee: {
      toDevice: (userId, deviceId, since, now) => get(Tokens.ToDevice).forSync(userId, deviceId, since, now),
      deviceListChanges: (userId, from, to, rooms) => get(Tokens.DeviceLists).changesBetween(userId, from, to, rooms),
      oneTimeKeyCounts: (userId, deviceId) => get(Tokens.EndToEndKeys).oneTimeKeyCounts(userId, deviceId),
      unusedFallbackKeyTypes: (userId, deviceId) => get(Tokens.EndToEndKeys).unusedFallbackKeyTypes(userId, deviceId),
    },
    presence: get(Tokens.Presence),
    clock,
  }));

  // Metrics (config.metrics): counters on the hot paths, and what the services already keep read at
  // scrape time, through getters, so that building this builds no service before its turn.
  registerFactory(container, Tokens.Metrics, () => {
    if (!config.metrics.enabled) return undefined;
    const metrics = new MetricsRegistry();
    stores.db.setTimings?.(metrics.database);
    get(Tokens.RoomEngine).onEvents((_roomId, events) => metrics.eventsPersisted(events.length));
    metrics.watchRoomWriteQueue(get(Tokens.RoomEngine).queue);
    metrics.watchSync({ waitingCount: () => get(Tokens.SyncNotifier).waitingCount(), get outcomes() { return get(Tokens.SyncNotifier).outcomes; } });
    if (config.federation.enabled) {
      metrics.watchFederationSender({
        destinationCounts: () => get(Tokens.FederationSender).destinationCounts(),
        backingOff: () => get(Tokens.FederationSender).backingOff(),
        get counters() { return get(Tokens.FederationSender).counters; },
        queuedUnits: (destination) => stores.federationOutbox.queuedCount(destination),
      });
    }
    return metrics;
  });
}
