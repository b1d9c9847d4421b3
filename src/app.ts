// buildServer(config): one Portier instance — its DI container, storage, services and HTTP app.
// Nothing listens until start(); tests drive `app.handle(new Request(...))` or start on port 0.
import "reflect-metadata";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { container as rootContainer, type DependencyContainer } from "tsyringe";
import type { Config } from "./config/schema";
import { Tokens, registerValue, resolve } from "./di/tokens";
import { RoomEngine } from "./services/rooms/room-engine";
import { PduReceiver } from "./services/rooms/pdu-receiver";
import { RoomAccess } from "./services/rooms/room-access";
import { RoomService } from "./services/rooms/room-service";
import { MembershipService } from "./services/rooms/membership";
import { ReceiptService, TypingService } from "./services/rooms/ephemeral";
import { roomRoutes } from "./api/client/rooms";
import { membershipRoutes } from "./api/client/membership";
import { receiptRoutes } from "./api/client/receipts";
import { directoryRoutes } from "./api/client/directory";
import { knockRoutes } from "./api/client/knock";
import { roomSummaryRoutes } from "./api/client/room-summary";
import { RoomSummaryService } from "./services/directory/room-summary";
import { DirectoryService } from "./services/directory/directory-service";
import { consoleLogger, systemClock, type Clock, type Logger, type Service } from "./services/runtime";
import { openStores, type DatabaseSettings } from "./storage/open";
import { ServerKeyService } from "./services/keys/server-keys";
import { loadOrCreateSigningKey } from "./services/keys/signing-key-file";
import { createHttpApp } from "./api/middleware/http";
import { rateLimitStep } from "./api/middleware/rate-limit";
import { versionsRoutes } from "./api/client/versions";
import { federationVersionRoutes } from "./api/federation/version";
import { wellKnownRoutes } from "./api/well-known/well-known";
import { serverKeyRoutes } from "./api/keys/server-key";
import { keyQueryRoutes } from "./api/keys/key-query";
import { accountRoutes } from "./api/client/account";
import { AccountService } from "./services/accounts/account-service";
import { UserInteractiveAuth } from "./services/accounts/user-interactive-auth";
import { capabilitiesRoutes } from "./api/client/capabilities";
import { profileRoutes } from "./api/client/profile";
import { ProfileService } from "./services/accounts/profile-service";
import { accountDataRoutes } from "./api/client/account-data";
import { AccountDataService } from "./services/accounts/account-data-service";
import { filterRoutes } from "./api/client/filters";
import { FilterService } from "./services/accounts/filter-service";
import { deviceRoutes } from "./api/client/devices";
import { PasswordConfirmation } from "./services/accounts/password-confirmation";
import { passwordRoutes } from "./api/client/password";
import { sharedSecretRegisterRoutes } from "./api/admin/register";
import { SharedSecretRegistration } from "./services/accounts/shared-secret-registration";
import { pushRuleRoutes } from "./api/client/push-rules";
import { PushRuleService } from "./services/accounts/push-rule-service";
import { syncRoutes } from "./api/client/sync";
import { SyncService } from "./services/sync/sync-service";
import { SyncNotifier } from "./services/sync/notifier";
import { KnockModerationService } from "./services/knocks/knock-moderation";
import { KnockExpiryService, systemIntervalTimer, type IntervalTimer } from "./services/knocks/knock-expiry";
import { knockAdminRoutes } from "./api/admin/knocks";
import { PolicySet } from "./services/plugins/policies";
import { PluginLoader, type PluginEntry } from "./services/plugins/loader";
import { bundledPlugins } from "../plugins";
import { pluginAdminRoutes } from "./api/admin/plugins";

export interface BuildOptions {
  clock?: Clock;
  logger?: Logger;
  /** Drives periodic jobs (the knock expiry); tests pass one they tick by hand. */
  timer?: IntervalTimer;
  /** Where relative plugin paths start: the config file's folder (the working directory by default). */
  pluginBaseDir?: string;
  /** The plugin entries a reload loads (re-reading the config file); the start's entries by default. */
  pluginEntries?: () => readonly PluginEntry[];
}

export interface PortierServer {
  readonly config: Readonly<Config>;
  readonly container: DependencyContainer;
  readonly app: ReturnType<typeof createApp>;
  /** Starts the services and listens on config.bind (port 0 picks a free port). */
  start(): Promise<{ url: string; port: number }>;
  /** Loads the plugins again (files and config); when any fails, the running ones stay and the error says why. */
  reloadPlugins(entries?: readonly PluginEntry[]): Promise<void>;
  stop(): Promise<void>;
}

function createApp(container: DependencyContainer, config: Readonly<Config>, logger: Logger, reloadPlugins: () => Promise<void>) {
  return createHttpApp({ maxBodyBytes: config.max_request_body_bytes, logger })
    .use(rateLimitStep({
      policies: resolve(container, Tokens.Policies),
      accounts: resolve(container, Tokens.Accounts),
      isExempt: (userId) => resolve(container, Tokens.Accounts).isAdmin(userId),
      resolveRoom: async (alias) => (await resolve(container, Tokens.Directory).resolveRoomIdOrAlias(alias).catch(() => undefined))?.roomId,
      trustedProxies: config.trusted_proxies,
    }))
    .use(versionsRoutes())
    .use(federationVersionRoutes())
    .use(wellKnownRoutes(config))
    .use(serverKeyRoutes(resolve(container, Tokens.ServerKeys)))
    .use(keyQueryRoutes(resolve(container, Tokens.ServerKeys), config.server_name))
    .use(roomRoutes({ accounts: resolve(container, Tokens.Accounts), rooms: resolve(container, Tokens.Rooms) }))
    .use(membershipRoutes({ accounts: resolve(container, Tokens.Accounts), membership: resolve(container, Tokens.Membership), directory: resolve(container, Tokens.Directory) }))
    .use(directoryRoutes({ accounts: resolve(container, Tokens.Accounts), directory: resolve(container, Tokens.Directory) }))
    .use(roomSummaryRoutes({ accounts: resolve(container, Tokens.Accounts), access: resolve(container, Tokens.RoomAccess), summaries: new RoomSummaryService(resolve(container, Tokens.RoomAccess), resolve(container, Tokens.Directory)) }))
    .use(knockRoutes({ accounts: resolve(container, Tokens.Accounts), membership: resolve(container, Tokens.Membership), directory: resolve(container, Tokens.Directory) }))
    .use(receiptRoutes({ accounts: resolve(container, Tokens.Accounts), typing: resolve(container, Tokens.Typing), receipts: resolve(container, Tokens.Receipts) }))
    .use(accountRoutes({ config, accounts: resolve(container, Tokens.Accounts), uia: resolve(container, Tokens.UserInteractiveAuth) }))
    .use(capabilitiesRoutes({ accounts: resolve(container, Tokens.Accounts) }))
    .use(profileRoutes({ accounts: resolve(container, Tokens.Accounts), profiles: resolve(container, Tokens.Profiles) }))
    .use(accountDataRoutes({ accounts: resolve(container, Tokens.Accounts), accountData: resolve(container, Tokens.AccountData) }))
    .use(filterRoutes({ accounts: resolve(container, Tokens.Accounts), filters: resolve(container, Tokens.Filters) }))
    .use(deviceRoutes({ accounts: resolve(container, Tokens.Accounts), passwordConfirmation: resolve(container, Tokens.PasswordConfirmation) }))
    .use(passwordRoutes({ accounts: resolve(container, Tokens.Accounts), passwordConfirmation: resolve(container, Tokens.PasswordConfirmation) }))
    .use(sharedSecretRegisterRoutes({ registration: resolve(container, Tokens.SharedSecretRegistration), serverName: config.server_name }))
    .use(pushRuleRoutes({ accounts: resolve(container, Tokens.Accounts), pushRules: resolve(container, Tokens.PushRules) }))
    .use(syncRoutes({ accounts: resolve(container, Tokens.Accounts), sync: resolve(container, Tokens.Sync) }))
    .use(knockAdminRoutes({ accounts: resolve(container, Tokens.Accounts), knocks: resolve(container, Tokens.KnockModeration) }))
    .use(pluginAdminRoutes({ accounts: resolve(container, Tokens.Accounts), loader: resolve(container, Tokens.PluginLoader), policies: resolve(container, Tokens.Policies), reload: reloadPlugins }));
}

/** Where the config says the data lives: SQLite in data_dir by default, or PostgreSQL. */
export function databaseSettings(config: Readonly<Config>): DatabaseSettings {
  const db = config.database;
  if (db.driver === "postgres") return { driver: "postgres", url: db.url!, poolSize: db.pool_size };
  return { driver: db.driver, path: db.path ?? join(config.data_dir, "portier.db") };
}

export function splitBind(bind: string): { hostname: string; port: number } {
  const at = bind.lastIndexOf(":");
  const host = bind.slice(0, at);
  return { hostname: host.startsWith("[") ? host.slice(1, -1) : host, port: Number(bind.slice(at + 1)) };
}

export async function buildServer(config: Readonly<Config>, options: BuildOptions = {}): Promise<PortierServer> {
  const container = rootContainer.createChildContainer();
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? consoleLogger(config.log_level);
  registerValue(container, Tokens.Config, config);
  registerValue(container, Tokens.Clock, clock);
  registerValue(container, Tokens.Logger, logger);

  const inMemory = config.database.path === ":memory:" || config.database.driver === "postgres";
  if (!inMemory || !config.signing_key_path) mkdirSync(config.data_dir, { recursive: true });
  const stores = await openStores(databaseSettings(config));
  registerValue(container, Tokens.Database, stores.db);
  registerValue(container, Tokens.ServerMetaStore, stores.serverMeta);
  registerValue(container, Tokens.RoomEventStore, stores.roomEvents);
  // The running policies of the plugins (loaded below); services ask them at call time.
  const policies = new PolicySet(logger);
  registerValue(container, Tokens.Policies, policies);
  registerValue(container, Tokens.Accounts, new AccountService(stores.accounts, config.server_name, clock, stores.profiles, policies));
  registerValue(container, Tokens.Profiles, new ProfileService(stores.profiles, resolve(container, Tokens.Accounts), config.server_name, logger));
  registerValue(container, Tokens.AccountData, new AccountDataService(stores.accountData));
  registerValue(container, Tokens.Filters, new FilterService(stores.filters));
  registerValue(container, Tokens.PushRules, new PushRuleService(stores.pushRules, resolve(container, Tokens.AccountData)));
  registerValue(container, Tokens.UserInteractiveAuth, new UserInteractiveAuth(clock));
  registerValue(container, Tokens.PasswordConfirmation, new PasswordConfirmation(resolve(container, Tokens.Accounts), resolve(container, Tokens.UserInteractiveAuth)));
  registerValue(container, Tokens.SharedSecretRegistration, new SharedSecretRegistration(config.registration.shared_secret, resolve(container, Tokens.Accounts), resolve(container, Tokens.Profiles), clock));

  // The server name is part of every user and room id already stored: refuse to start under another.
  const recordedName = await stores.serverMeta.get("server_name");
  if (recordedName === undefined) await stores.serverMeta.set("server_name", config.server_name);
  else if (recordedName !== config.server_name) {
    await stores.db.close();
    throw new Error(`this database belongs to server '${recordedName}', but the config says server_name '${config.server_name}'`);
  }

  const { key, created } = loadOrCreateSigningKey(config.signing_key_path ?? join(config.data_dir, "signing.key"));
  if (created) logger.log("info", "generated a new signing key", { key_id: key.keyId });
  const serverKeys = new ServerKeyService(config, clock, key);
  registerValue(container, Tokens.ServerKeys, serverKeys);
  const roomEngine = new RoomEngine(stores.roomEvents, serverKeys, clock, undefined, logger);
  registerValue(container, Tokens.RoomEngine, roomEngine);
  registerValue(container, Tokens.PduReceiver, new PduReceiver(stores.roomEvents, roomEngine));
  // Client room services; member events carry the user's displayname/avatar_url from their profile.
  const roomAccess = new RoomAccess(roomEngine, stores.roomEvents, (userId, roomId) => stores.roomClient.isForgotten(userId, roomId));
  const profiles = resolve(container, Tokens.Profiles);
  const profileOf = async (userId: string) => {
    const p = await profiles.profile(userId);
    return { displayname: typeof p.displayname === "string" ? p.displayname : undefined, avatar_url: typeof p.avatar_url === "string" ? p.avatar_url : undefined };
  };
  const localUser = { serverName: config.server_name, userExists: (userId: string) => resolve(container, Tokens.Accounts).userExists(userId), profileOf };
  const typing = new TypingService(roomAccess, clock);
  registerValue(container, Tokens.RoomAccess, roomAccess);
  const directory = new DirectoryService(stores.roomDirectory, roomAccess, clock, {
    serverName: config.server_name,
    isServerAdmin: async (userId) => (await stores.accounts.getUser(userId))?.isAdmin === true,
  });
  registerValue(container, Tokens.Directory, directory);
  registerValue(container, Tokens.Rooms, new RoomService(roomEngine, stores.roomEvents, stores.roomClient, roomAccess, clock, { ...localUser, directory }));
  registerValue(container, Tokens.Membership, new MembershipService(roomEngine, roomAccess, stores.roomClient, clock, {
    ...localUser,
    autoJoinKnockersOnInvite: config.knocks.auto_join_on_invite,
    policies,
    logger,
    // Resolved at call time: the moderation service is built after this one.
    acceptKnock: (roomId, userId) => resolve(container, Tokens.KnockModeration).acceptKnock(roomId, userId),
  }));
  const knockModeration = new KnockModerationService(roomAccess, stores.roomEvents, resolve(container, Tokens.Membership), clock, {
    serverName: config.server_name,
    isServerAdmin: async (userId) => (await stores.accounts.getUser(userId))?.isAdmin === true,
    userExists: localUser.userExists,
    expireAfterMs: config.knocks.expire_after_ms,
    expireReason: config.knocks.expire_reason,
  });
  registerValue(container, Tokens.KnockModeration, knockModeration);
  registerValue(container, Tokens.Typing, typing);
  registerValue(container, Tokens.Receipts, new ReceiptService(stores.roomEvents, stores.roomClient, roomAccess, clock, {
    // The fully-read marker is also room account data (m.fully_read), which clients read from /sync.
    onFullyRead: (userId, roomId, eventId) => resolve(container, Tokens.AccountData).write(userId, roomId, "m.fully_read", { event_id: eventId }),
  }));
  profiles.onProfileChange(async (userId, _profile, field) => {
    if (field !== "displayname" && field !== "avatar_url") return;
    return resolve(container, Tokens.Membership).propagateProfile(userId, await stores.roomEvents.roomsWithMembership(userId, "join"));
  });

  // /sync: the notifier wakes long-polls on every source a sync reads; stopping it releases them.
  const receipts = resolve(container, Tokens.Receipts);
  const accountData = resolve(container, Tokens.AccountData);
  const syncNotifier = new SyncNotifier({
    onEvent: (listener) => roomEngine.onEvent(listener),
    onTyping: (listener) => typing.onChange(listener),
    onReceipt: (listener) => receipts.onChange(listener),
    onAccountData: (listener) => accountData.onChange(listener),
    memberships: (roomId) => stores.roomEvents.currentMemberships(roomId),
  });
  registerValue(container, Tokens.SyncNotifier, syncNotifier);
  registerValue(container, Tokens.Sync, new SyncService({
    engine: roomEngine,
    store: stores.roomEvents,
    clientStore: stores.roomClient,
    access: roomAccess,
    typing,
    receipts,
    accountData,
    pushRules: resolve(container, Tokens.PushRules),
    filters: resolve(container, Tokens.Filters),
    notifier: syncNotifier,
    clock,
  }));

  const services: Service[] = [typing, syncNotifier];
  if (config.knocks.expire_after_ms !== undefined) {
    const expiry = new KnockExpiryService(knockModeration, { expireAfterMs: config.knocks.expire_after_ms, reason: config.knocks.expire_reason }, options.timer ?? systemIntervalTimer, logger);
    services.push(expiry);
  }
  // Plugins register once the core's services exist and before the first request: a plugin adds
  // policies to the chains or replaces the default rate limiter.
  const plugins = new PluginLoader(policies, {
    bundled: bundledPlugins,
    baseDir: options.pluginBaseDir ?? process.cwd(),
    serverName: config.server_name,
    logger,
    clock,
    rooms: {
      state: async (roomId, type, stateKey = "") => (await roomEngine.currentStateEvent(roomId, type, stateKey))?.content as Record<string, unknown> | undefined,
      membership: (roomId, userId) => roomAccess.membership(roomId, userId),
    },
  });
  registerValue(container, Tokens.PluginLoader, plugins);
  try {
    await plugins.load(config.plugins);
  } catch (error) {
    await stores.db.close();
    throw error;
  }
  const reloadPlugins = async (entries: readonly PluginEntry[] = options.pluginEntries?.() ?? config.plugins) => {
    await plugins.load(entries);
    logger.log("info", "plugins reloaded", { plugins: plugins.plugins.map((p) => `${p.name}@${p.version}`) });
  };
  const app = createApp(container, config, logger, () => reloadPlugins());
  let listening: ReturnType<typeof Bun.serve> | undefined;

  return {
    config,
    container,
    app,
    async start() {
      for (const s of services) await s.start?.();
      const { hostname, port } = splitBind(config.bind);
      listening = Bun.serve({
        hostname,
        port,
        // Our own check answers oversized bodies with M_TOO_LARGE; Bun's limit is only a backstop.
        maxRequestBodySize: config.max_request_body_bytes * 2 + 65536,
        // /sync long-polls hold a request for up to two minutes; Bun's default idle limit is 10 s.
        idleTimeout: 255,
        fetch: (request) => app.handle(request),
      });
      app.server = listening;
      logger.log("info", "listening", { url: listening.url.toString(), server_name: config.server_name });
      return { url: listening.url.toString().replace(/\/$/, ""), port: listening.port ?? port };
    },
    reloadPlugins,
    async stop() {
      // Waiting /sync long-polls answer at once, so that they do not hold the shutdown.
      syncNotifier.stop();
      // Let requests in flight finish (their writes are on disk; their answers should go out too),
      // then close whatever is left after a short grace period.
      const server = listening;
      if (server) await Promise.race([server.stop(false), Bun.sleep(2000)]).then(() => server.stop(true));
      listening = undefined;
      // Let queued room writes finish before the database closes: an accepted write is never lost.
      await roomEngine.queue.drain();
      for (const s of [...services].reverse()) await s.stop?.();
      await stores.db.close();
    },
  };
}
