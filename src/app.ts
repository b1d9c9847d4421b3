// buildServer(config): one Portier instance — its DI container, storage, services and HTTP app.
// Nothing listens until start(); tests drive `app.handle(new Request(...))` or start on port 0.
import "reflect-metadata";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { container as rootContainer, type DependencyContainer } from "tsyringe";
import type { Config } from "./config/schema";
import { Tokens, registerValue, resolve } from "./di/tokens";
import { registerCoreServices } from "./di/composition";
import { registerFederationServices } from "./di/federation";
import { federationAuthenticator } from "./api/middleware/x-matrix";
import { federationMembershipRoutes } from "./api/federation/membership";
import { federationRoomRoutes } from "./api/federation/rooms";
import { thirdPartyInviteFederationRoutes } from "./api/federation/third-party-invites";
import { federationQueryRoutes } from "./api/federation/queries";
import { policyServerRoutes } from "./api/federation/policy";
import { RoomEngine } from "./services/rooms/room-engine";
import { RoomAccess } from "./services/rooms/room-access";
import { RoomPeeks } from "./services/rooms/room-peek";
import { roomRoutes } from "./api/client/rooms";
import { roomUpgradeRoutes } from "./api/client/room-upgrade";
import { RoomUpgradeService } from "./services/rooms/room-upgrade";
import { membershipRoutes } from "./api/client/membership";
import { receiptRoutes } from "./api/client/receipts";
import { directoryRoutes } from "./api/client/directory";
import { knockRoutes } from "./api/client/knock";
import { roomSummaryRoutes } from "./api/client/room-summary";
import { RoomSummaryService } from "./services/directory/room-summary";
import { consoleLogger, systemClock, type Clock, type Logger, type Service } from "./services/runtime";
import { openStores, type DatabaseSettings, type Stores } from "./storage/open";
import { loadOrCreateSigningKey } from "./services/keys/signing-key-file";
import { createHttpApp } from "./api/middleware/http";
import { rateLimitStep } from "./api/middleware/rate-limit";
import { clientConnectionStep } from "./api/middleware/client-connections";
import { whoisRoutes } from "./api/client/admin-whois";
import { versionsRoutes } from "./api/client/versions";
import { federationVersionRoutes } from "./api/federation/version";
import { wellKnownRoutes } from "./api/well-known/well-known";
import { serverKeyRoutes } from "./api/keys/server-key";
import { keyQueryRoutes } from "./api/keys/key-query";
import { accountRoutes } from "./api/client/account";
import { UserInteractiveAuth } from "./services/accounts/user-interactive-auth";
import { capabilitiesRoutes } from "./api/client/capabilities";
import { voipRoutes } from "./api/client/voip";
import { openIdRoutes } from "./api/client/openid";
import { OpenIdTokens } from "./services/accounts/openid-tokens";
import { profileRoutes } from "./api/client/profile";
import { accountDataRoutes } from "./api/client/account-data";
import { filterRoutes } from "./api/client/filters";
import { deviceRoutes } from "./api/client/devices";
import { PasswordConfirmation } from "./services/accounts/password-confirmation";
import { passwordRoutes } from "./api/client/password";
import { sharedSecretRegisterRoutes } from "./api/admin/register";
import { SharedSecretRegistration } from "./services/accounts/shared-secret-registration";
import { pushRuleRoutes } from "./api/client/push-rules";
import { pusherRoutes } from "./api/client/pushers";
import { notificationRoutes } from "./api/client/notifications";
import { syncRoutes } from "./api/client/sync";
import { legacySyncRoutes } from "./api/client/legacy-sync";
import { slidingSyncRoutes } from "./api/client/sliding-sync";
import { userDirectoryRoutes } from "./api/client/user-directory";
import { deactivateRoutes } from "./api/client/deactivate";
import { presenceRoutes } from "./api/client/presence";
import { AccountDeactivation } from "./services/accounts/deactivation";
import { IdentityTokens, registerIdentityServices } from "./di/identity";
import { LoginServiceTokens, registerLoginServices } from "./di/logins";
import { ssoRoutes } from "./api/client/sso";
import { emailValidationRoutes } from "./api/client/email-validation";
import { thirdPartyIdRoutes } from "./api/client/third-party-ids";
import { SyncNotifier } from "./services/sync/notifier";
import { SyncResponseCache } from "./services/sync/sync-response-cache";
import { KnockExpiryService, systemIntervalTimer, type IntervalTimer } from "./services/knocks/knock-expiry";
import { MemoryTrimmer, trimMemory } from "./services/metrics/memory-trimmer";
import { knockAdminRoutes } from "./api/admin/knocks";
import { PluginLoader, type PluginEntry } from "./services/plugins/loader";
import { bundledPlugins } from "../plugins";
import { pluginAdminRoutes } from "./api/admin/plugins";
import { MediaTokens, registerMediaServices } from "./di/media";
import { clientMediaRoutes } from "./api/media/client-media";
import { federationMediaRoutes } from "./api/media/federation-media";
import { keyRoutes } from "./api/client/keys";
import { toDeviceRoutes } from "./api/client/to-device";
import { roomKeyRoutes } from "./api/client/room-keys";
import { instrumentRequests } from "./api/middleware/http-metrics";
import { metricsListener } from "./api/metrics";
import { AppServiceTokens, readAppServiceRegistrations, registerAppServices, wireAppServices } from "./di/appservices";
import { thirdPartyRoutes } from "./api/client/thirdparty";

export interface BuildOptions {
  clock?: Clock;
  logger?: Logger;
  /** Drives periodic jobs (the knock expiry); tests pass one they tick by hand. */
  timer?: IntervalTimer;
  /** Where relative plugin paths start: the config file's folder (the working directory by default). */
  pluginBaseDir?: string;
  /** The plugin entries a reload loads (re-reading the config file); the start's entries by default. */
  pluginEntries?: () => readonly PluginEntry[];
  /** The first retry delay of application service transactions (tests: short). */
  appServiceRetryBaseMs?: number;
}

export interface PortierServer {
  readonly config: Readonly<Config>;
  readonly container: DependencyContainer;
  readonly app: ReturnType<typeof createApp>;
  /**
   * Starts the services and listens on config.bind (port 0 picks a free port), and on
   * federation.bind when set; `federationUrl` is where other servers reach this one. With metrics on,
   * also on metrics.bind_address:metrics.port (`metricsUrl`, `metricsPort`).
   */
  start(): Promise<{ url: string; port: number; federationUrl: string; federationPort: number; metricsUrl?: string; metricsPort?: number }>;
  /** Loads the plugins again (files and config); when any fails, the running ones stay and the error says why. */
  reloadPlugins(entries?: readonly PluginEntry[]): Promise<void>;
  stop(): Promise<void>;
}

function createApp(container: DependencyContainer, config: Readonly<Config>, logger: Logger, reloadPlugins: () => Promise<void>) {
  const authenticate = federationAuthenticator({
    serverName: config.server_name,
    keyRing: resolve(container, Tokens.KeyRing),
    clock: resolve(container, Tokens.Clock),
    enabled: config.federation.enabled,
    onVerified: (origin) => resolve(container, Tokens.FederationSender).markReachable(origin),
  });
  const logins = resolve(container, LoginServiceTokens.ExternalLogins);
  return createHttpApp({ maxBodyBytes: config.max_request_body_bytes, logger })
    .use(rateLimitStep({
      policies: resolve(container, Tokens.Policies),
      accounts: resolve(container, Tokens.Accounts),
      // Admins, and the users of application services registered with rate_limited: false.
      isExempt: async (userId) => resolve(container, AppServiceTokens.AppServices)?.isRateLimitExempt(userId) === true || (await resolve(container, Tokens.Accounts).isAdmin(userId)),
      resolveRoom: async (alias) => (await resolve(container, Tokens.Directory).resolveRoomIdOrAlias(alias).catch(() => undefined))?.roomId,
      trustedProxies: config.trusted_proxies,
    }))
    .use(clientConnectionStep({ accounts: resolve(container, Tokens.Accounts), connections: resolve(container, Tokens.ClientConnections), trustedProxies: config.trusted_proxies }))
    .use(versionsRoutes())
    .use(federationVersionRoutes())
    .use(wellKnownRoutes(config))
    .use(serverKeyRoutes(resolve(container, Tokens.ServerKeys)))
    .use(keyQueryRoutes(resolve(container, Tokens.ServerKeys), config.server_name, resolve(container, Tokens.KeyRing)))
    .use(federationMembershipRoutes({ authenticate, serverName: config.server_name, resident: resolve(container, Tokens.ResidentMembership), transactions: resolve(container, Tokens.TransactionReceiver) }))
    .use(thirdPartyInviteFederationRoutes({ authenticate, thirdPartyInvites: resolve(container, IdentityTokens.ThirdPartyInvites) }))
    .use(federationRoomRoutes({ authenticate, serverName: config.server_name, clock: resolve(container, Tokens.Clock), reader: resolve(container, Tokens.FederationRoomReader) }))
    .use(federationQueryRoutes({ authenticate, queries: resolve(container, Tokens.FederationQueries) }))
    .use(policyServerRoutes({ authenticate, policyServer: resolve(container, Tokens.PolicyServer) }))
    .use(federationMediaRoutes({ authenticate, media: resolve(container, MediaTokens.Media), serverName: config.server_name }))
    .use(clientMediaRoutes({ accounts: resolve(container, Tokens.Accounts), media: resolve(container, MediaTokens.Media), freezeUnauthenticated: config.media.freeze_unauthenticated }))
    .use(roomRoutes({ accounts: resolve(container, Tokens.Accounts), rooms: resolve(container, Tokens.Rooms), thirdPartyInvites: resolve(container, IdentityTokens.ThirdPartyInvites) }))
    .use(roomUpgradeRoutes({
      accounts: resolve(container, Tokens.Accounts),
      upgrades: new RoomUpgradeService({ engine: resolve(container, Tokens.RoomEngine), store: resolve(container, Tokens.RoomEventStore), access: resolve(container, Tokens.RoomAccess), rooms: resolve(container, Tokens.Rooms),
        directory: resolve(container, Tokens.Directory),
        carryOver: { serverName: config.server_name, pushRules: resolve(container, Tokens.PushRules), accountData: resolve(container, Tokens.AccountData), logger } }),
    }))
    .use(membershipRoutes({ accounts: resolve(container, Tokens.Accounts), membership: resolve(container, Tokens.Membership), directory: resolve(container, Tokens.Directory), federated: resolve(container, Tokens.FederatedMembership), thirdPartyInvites: resolve(container, IdentityTokens.ThirdPartyInvites) }))
    .use(directoryRoutes({ accounts: resolve(container, Tokens.Accounts), directory: resolve(container, Tokens.Directory) }))
    .use(thirdPartyRoutes({ accounts: resolve(container, Tokens.Accounts), appServices: resolve(container, AppServiceTokens.AppServices) }))
    .use(roomSummaryRoutes({ accounts: resolve(container, Tokens.Accounts), access: resolve(container, Tokens.RoomAccess), summaries: new RoomSummaryService(resolve(container, Tokens.RoomAccess), resolve(container, Tokens.Directory)) }))
    .use(knockRoutes({ accounts: resolve(container, Tokens.Accounts), federated: resolve(container, Tokens.FederatedMembership) }))
    .use(receiptRoutes({ accounts: resolve(container, Tokens.Accounts), typing: resolve(container, Tokens.Typing), receipts: resolve(container, Tokens.Receipts) }))
    .use(accountRoutes({ config, accounts: resolve(container, Tokens.Accounts), uia: resolve(container, Tokens.UserInteractiveAuth), thirdPartyIds: resolve(container, IdentityTokens.ThirdPartyIds), ...logins, sso: logins.cas !== undefined }))
    .use(emailValidationRoutes({ config, accounts: resolve(container, Tokens.Accounts), thirdPartyIds: resolve(container, IdentityTokens.ThirdPartyIds), passwordConfirmation: resolve(container, Tokens.PasswordConfirmation), validation: logins.emailValidation }))
    .use(ssoRoutes({ config, accounts: resolve(container, Tokens.Accounts), cas: logins.cas, loginTokens: logins.loginTokens, uia: resolve(container, Tokens.UserInteractiveAuth) }))
    .use(capabilitiesRoutes({ accounts: resolve(container, Tokens.Accounts) }))
    .use(voipRoutes({ accounts: resolve(container, Tokens.Accounts), voip: config.voip, clock: resolve(container, Tokens.Clock) }))
    .use(openIdRoutes({ accounts: resolve(container, Tokens.Accounts), openid: new OpenIdTokens(resolve(container, Tokens.Clock), config.server_name) }))
    .use(profileRoutes({ accounts: resolve(container, Tokens.Accounts), profiles: resolve(container, Tokens.Profiles) }))
    .use(accountDataRoutes({ accounts: resolve(container, Tokens.Accounts), accountData: resolve(container, Tokens.AccountData) }))
    .use(filterRoutes({ accounts: resolve(container, Tokens.Accounts), filters: resolve(container, Tokens.Filters) }))
    .use(deviceRoutes({ accounts: resolve(container, Tokens.Accounts), passwordConfirmation: resolve(container, Tokens.PasswordConfirmation) }))
    .use(passwordRoutes({ accounts: resolve(container, Tokens.Accounts), passwordConfirmation: resolve(container, Tokens.PasswordConfirmation), pushers: resolve(container, Tokens.Pushers) }))
    .use(sharedSecretRegisterRoutes({ registration: resolve(container, Tokens.SharedSecretRegistration), serverName: config.server_name }))
    .use(pushRuleRoutes({ accounts: resolve(container, Tokens.Accounts), pushRules: resolve(container, Tokens.PushRules) }))
    .use(pusherRoutes({ accounts: resolve(container, Tokens.Accounts), pushers: resolve(container, Tokens.Pushers) }))
    .use(notificationRoutes({ accounts: resolve(container, Tokens.Accounts), notifications: resolve(container, Tokens.Notifications) }))
    .use(syncRoutes({ accounts: resolve(container, Tokens.Accounts), sync: new SyncResponseCache(resolve(container, Tokens.Sync), resolve(container, Tokens.Clock), config.sync.response_cache_ms) }))
    .use(slidingSyncRoutes({ accounts: resolve(container, Tokens.Accounts), slidingSync: resolve(container, Tokens.SlidingSync) }))
    .use(legacySyncRoutes({
      accounts: resolve(container, Tokens.Accounts),
      sync: resolve(container, Tokens.Sync),
      directory: resolve(container, Tokens.Directory),
      peeks: new RoomPeeks({ engine: resolve(container, Tokens.RoomEngine), access: resolve(container, Tokens.RoomAccess), rooms: resolve(container, Tokens.Rooms), notifier: resolve(container, Tokens.SyncNotifier), clock: resolve(container, Tokens.Clock) }),
      rooms: resolve(container, Tokens.Rooms),
      access: resolve(container, Tokens.RoomAccess),
      presence: resolve(container, Tokens.Presence),
    }))
    .use(userDirectoryRoutes({ accounts: resolve(container, Tokens.Accounts), users: resolve(container, Tokens.UserDirectory) }))
    .use(presenceRoutes({
      accounts: resolve(container, Tokens.Accounts),
      presence: resolve(container, Tokens.Presence),
      serverName: config.server_name,
      shareRoom: async (a, b) => {
        const store = resolve(container, Tokens.RoomEventStore);
        const mine = new Set(await store.roomsWithMembership(a, "join"));
        return (await store.roomsWithMembership(b, "join")).some((roomId) => mine.has(roomId));
      },
    }))
    .use(deactivateRoutes({
      accounts: resolve(container, Tokens.Accounts),
      passwordConfirmation: resolve(container, Tokens.PasswordConfirmation),
      deactivation: new AccountDeactivation({
        accounts: resolve(container, Tokens.Accounts),
        rooms: resolve(container, Tokens.RoomEventStore),
        membership: resolve(container, Tokens.FederatedMembership),
        profiles: resolve(container, Tokens.Profiles),
        erasure: resolve(container, Tokens.ErasedUsers),
        thirdPartyIds: resolve(container, IdentityTokens.ThirdPartyIds),
        logger,
      }),
    }))
    .use(thirdPartyIdRoutes({ accounts: resolve(container, Tokens.Accounts), thirdPartyIds: resolve(container, IdentityTokens.ThirdPartyIds) }))
    .use(keyRoutes({ accounts: resolve(container, Tokens.Accounts), keys: resolve(container, Tokens.EndToEndKeys), e2eeSync: resolve(container, Tokens.E2eeSync), passwordConfirmation: resolve(container, Tokens.PasswordConfirmation) }))
    .use(toDeviceRoutes({ accounts: resolve(container, Tokens.Accounts), toDevice: resolve(container, Tokens.ToDevice) }))
    .use(roomKeyRoutes({ accounts: resolve(container, Tokens.Accounts), backups: resolve(container, Tokens.KeyBackups) }))
    .use(whoisRoutes({ accounts: resolve(container, Tokens.Accounts), connections: resolve(container, Tokens.ClientConnections), serverName: config.server_name }))
    .use(knockAdminRoutes({ accounts: resolve(container, Tokens.Accounts), knocks: resolve(container, Tokens.KnockModeration) }))
    .use(pluginAdminRoutes({ accounts: resolve(container, Tokens.Accounts), loader: resolve(container, Tokens.PluginLoader), policies: resolve(container, Tokens.Policies), reload: reloadPlugins }));
}

/** Where the config says the data lives: SQLite in data_dir by default, or PostgreSQL. */
export function databaseSettings(config: Readonly<Config>): DatabaseSettings {
  const db = config.database;
  if (db.driver === "postgres") return { driver: "postgres", url: db.url!, poolSize: db.pool_size };
  return { driver: db.driver, path: db.path ?? join(config.data_dir, "portier.db"), walPreallocateBytes: db.wal_preallocate_mb * 1024 * 1024 };
}

/**
 * Opens the configured database and checks it belongs to this server: the server name is part of
 * every user and room id already stored, so a database of another server is refused.
 */
export async function openServerStores(config: Readonly<Config>): Promise<Stores> {
  const stores = await openStores(databaseSettings(config));
  const recordedName = await stores.serverMeta.get("server_name");
  if (recordedName === undefined) await stores.serverMeta.set("server_name", config.server_name);
  else if (recordedName !== config.server_name) {
    await stores.db.close();
    throw new Error(`this database belongs to server '${recordedName}', but the config says server_name '${config.server_name}'`);
  }
  return stores;
}

/** The federation listener's certificate and key (PEM files), when both are configured. */
function federationTls(config: Readonly<Config>): { cert: string; key: string } | undefined {
  const { tls_certificate_path: cert, tls_private_key_path: key } = config.federation;
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined || key === undefined) throw new Error("federation.tls_certificate_path and federation.tls_private_key_path must be given together");
  return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
}

export function splitBind(bind: string): { hostname: string; port: number } {
  const at = bind.lastIndexOf(":");
  const host = bind.slice(0, at);
  return { hostname: host.startsWith("[") ? host.slice(1, -1) : host, port: Number(bind.slice(at + 1)) };
}

export async function buildServer(config: Readonly<Config>, options: BuildOptions = {}): Promise<PortierServer> {
  const container = rootContainer.createChildContainer();
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? consoleLogger(config.log_level, config.log_format);

  const inMemory = config.database.path === ":memory:" || config.database.driver === "postgres";
  if (!inMemory || !config.signing_key_path) mkdirSync(config.data_dir, { recursive: true });
  // Read once, first: a certificate that cannot be read stops the start before anything is opened.
  const tls = federationTls(config);
  const appServiceRegistrations = readAppServiceRegistrations(config);
  const stores = await openServerStores(config);

  const { key, created } = loadOrCreateSigningKey(config.signing_key_path ?? join(config.data_dir, "signing.key"));
  if (created) logger.log("info", "generated a new signing key", { key_id: key.keyId });
  registerCoreServices(container, { config, clock, logger, stores, signingKey: key });
  registerFederationServices(container, { config, clock, logger, stores });
  registerMediaServices(container, { config, clock, logger, stores });
  registerIdentityServices(container, { config, clock, logger, stores });
  registerLoginServices(container, { config, clock, logger });
  registerAppServices(container, { config, clock, logger, stores, registrations: appServiceRegistrations, retryBaseMs: options.appServiceRetryBaseMs });
  // Who was erased is asked for every event served: read once, before anything is served.
  await resolve(container, Tokens.ErasedUsers).load().catch(async (error) => {
    await stores.db.close();
    throw error;
  });

  // Plugins register at one moment: after the core's services are registered and before any of them
  // is built, so the policy chains and the rate limiter are in place before the first request.
  const plugins = new PluginLoader(resolve(container, Tokens.Policies), {
    bundled: bundledPlugins,
    baseDir: options.pluginBaseDir ?? process.cwd(),
    serverName: config.server_name,
    logger,
    clock,
    rooms: {
      state: async (roomId, type, stateKey = "") => (await resolve(container, Tokens.RoomEngine).currentStateEvent(roomId, type, stateKey))?.content as Record<string, unknown> | undefined,
      membership: (roomId, userId) => resolve(container, Tokens.RoomAccess).membership(roomId, userId),
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
  // Push is built first: its listener on the room engine then runs before /sync's notifier wakes
  // anyone, so an event's unread counts are stored before a sync it wakes reads them.
  const pushSender = resolve(container, Tokens.PushGatewaySender);
  const app = createApp(container, config, logger, () => reloadPlugins());

  const roomEngine = resolve(container, Tokens.RoomEngine);
  const syncNotifier = resolve(container, Tokens.SyncNotifier);
  // Resolved after push and /sync, whose order on the room engine matters (metrics only count).
  const metrics = resolve(container, Tokens.Metrics);
  const handled = metrics ? instrumentRequests((request) => app.handle(request), () => app.routes, metrics) : (request: Request) => app.handle(request);
  const trimmer = new MemoryTrimmer(config.memory.trim_interval_ms, systemIntervalTimer, trimMemory(() => stores.db.releaseMemory?.()));
  const handle = (request: Request) => {
    trimmer.noteActivity();
    return handled(request);
  };
  const services: Service[] = [resolve(container, Tokens.Typing), syncNotifier, trimmer];
  services.push(resolve(container, Tokens.Notifications), pushSender, resolve(container, Tokens.Presence));
  const appServices = wireAppServices(container);
  if (appServices) services.push(appServices);
  if (config.federation.enabled) services.push(resolve(container, Tokens.FederationSender));
  // Ends the thumbnail worker on stop.
  services.push(resolve(container, MediaTokens.MediaLifecycle));
  if (config.knocks.expire_after_ms !== undefined) {
    const expiry = new KnockExpiryService(resolve(container, Tokens.KnockModeration), { expireAfterMs: config.knocks.expire_after_ms, reason: config.knocks.expire_reason }, options.timer ?? systemIntervalTimer, logger);
    services.push(expiry);
  }
  let listening: ReturnType<typeof Bun.serve>[] = [];

  return {
    config,
    container,
    app,
    async start() {
      for (const s of services) await s.start?.();
      const serve = (bind: string, withTls: boolean) => {
        const { hostname, port } = splitBind(bind);
        return Bun.serve({
          hostname,
          port,
          // Our own check answers oversized bodies with M_TOO_LARGE; Bun's limit is only a backstop.
          // Media uploads stream up to media.max_upload_size and are refused past it by their route.
          maxRequestBodySize: Math.max(config.max_request_body_bytes * 2, config.media.max_upload_size) + 65536,
          // /sync long-polls hold a request for up to two minutes; Bun's default idle limit is 10 s.
          idleTimeout: 255,
          ...(withTls && tls ? { tls } : {}),
          fetch: handle,
        });
      };
      // Without a federation listener of its own, federation shares the main one (and its TLS).
      const main = serve(config.bind, config.federation.bind === undefined);
      listening = [main];
      app.server = main;
      const federation = config.federation.bind === undefined ? main : serve(config.federation.bind, true);
      if (federation !== main) listening.push(federation);
      const metricsServer = metrics ? metricsListener(metrics, config.metrics.bind_address, config.metrics.port) : undefined;
      if (metricsServer) listening.push(metricsServer);
      const urlOf = (server: ReturnType<typeof Bun.serve>) => server.url.toString().replace(/\/$/, "");
      logger.log("info", "listening", { url: urlOf(main), federation_url: urlOf(federation), server_name: config.server_name });
      if (metricsServer) logger.log("info", "serving metrics", { url: `${urlOf(metricsServer)}/metrics` });
      return {
        url: urlOf(main),
        port: main.port ?? 0,
        federationUrl: urlOf(federation),
        federationPort: federation.port ?? 0,
        ...(metricsServer ? { metricsUrl: urlOf(metricsServer), metricsPort: metricsServer.port ?? 0 } : {}),
      };
    },
    reloadPlugins,
    async stop() {
      // Waiting /sync long-polls answer at once, so that they do not hold the shutdown.
      syncNotifier.stop();
      // Let requests in flight finish (their writes are on disk; their answers should go out too),
      // then close whatever is left after a short grace period.
      await Promise.all(listening.map((server) => Promise.race([server.stop(false), Bun.sleep(2000)]).then(() => server.stop(true))));
      listening = [];
      // Let queued room writes finish before the database closes: an accepted write is never lost.
      await roomEngine.queue.drain();
      for (const s of [...services].reverse()) await s.stop?.();
      await stores.db.close();
    },
  };
}
