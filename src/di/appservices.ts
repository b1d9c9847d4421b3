// The application services part of the composition root: the registrations the config lists
// (`app_services`, or Synapse's `app_service_config_files`), read at start, and the AppServices
// service that authenticates them and pushes them events. Nothing is built without registrations.
import type { DependencyContainer } from "tsyringe";
import { ConfigError } from "../config/loader";
import type { Config } from "../config/schema";
import { AppServices } from "../services/appservices/app-services";
import { loadRegistrations, RegistrationError, type AppServiceRegistration } from "../services/appservices/registration";
import { systemTimer, type Timer } from "../services/federation/sender";
import { clientEventFromPdu } from "../services/rooms/client-events";
import type { Clock, Logger } from "../services/runtime";
import type { JsonObject } from "../protocol/json";
import type { Stores } from "../storage/open";
import { registerFactory } from "./composition";
import { resolve, token, Tokens } from "./tokens";

export const AppServiceTokens = {
  /** undefined when no application service is registered. */
  AppServices: token<AppServices | undefined>("AppServices"),
} as const;

export interface AppServiceParts {
  readonly config: Readonly<Config>;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly stores: Stores;
  /** From readAppServiceRegistrations. */
  readonly registrations: readonly AppServiceRegistration[];
  readonly timer?: Timer;
  /** Tests: a shorter first retry. */
  readonly retryBaseMs?: number;
}

/** The registrations the config lists; a bad file is a ConfigError naming the file and field. Read before anything is opened. */
export function readAppServiceRegistrations(config: Readonly<Config>): AppServiceRegistration[] {
  try {
    return loadRegistrations([...config.app_services, ...config.app_service_config_files]);
  } catch (error) {
    if (error instanceof RegistrationError) throw new ConfigError(error.message);
    throw error;
  }
}

/** Registers the service (undefined without registrations). */
export function registerAppServices(container: DependencyContainer, { config, clock, logger, stores, registrations, timer = systemTimer, retryBaseMs }: AppServiceParts): void {
  if (registrations.length === 0) {
    // A factory, not a value: tsyringe does not take undefined as a registered value.
    container.register(AppServiceTokens.AppServices, { useFactory: () => undefined });
    return;
  }
  registerFactory(container, AppServiceTokens.AppServices, () => {
    const engine = resolve(container, Tokens.RoomEngine);
    const appServices = new AppServices({
      serverName: config.server_name,
      registrations,
      queue: stores.appServiceQueue,
      roomLists: stores.appServiceRoomLists,
      clock,
      timer,
      logger,
      retryBaseMs,
      verifyTls: config.app_service_verify_tls,
      memberships: (roomId) => stores.roomEvents.currentMemberships(roomId),
      aliasesOfRoom: (roomId) => stores.roomDirectory.aliasesOfRoom(roomId),
      userExists: async (userId) => (await stores.accounts.getUser(userId)) !== undefined,
      deviceExists: async (userId, deviceId) => (await stores.accounts.getDevice(userId, deviceId)) !== undefined,
      createUser: async (userId) => {
        // The sender user has no password: only the service's as_token acts as it.
        if (await stores.accounts.createUser({ userId, passwordHash: undefined, createdTs: clock.now(), isAdmin: false })) {
          await stores.profiles.setProfileField(userId, "displayname", userId.slice(1, userId.indexOf(":")));
        }
      },
      clientEvent: async (roomId, stored, pdu) => clientEventFromPdu(pdu, stored, await engine.versionOf(roomId), { now: clock.now() }) as unknown as JsonObject,
    });
    engine.onEvents((roomId, events) => appServices.eventsPersisted(roomId, events));
    return appServices;
  });
}

/**
 * Builds the service when any is registered and lets accounts authenticate its as_tokens; the
 * server starts and stops it with its other services.
 */
export function wireAppServices(container: DependencyContainer): AppServices | undefined {
  const appServices = resolve(container, AppServiceTokens.AppServices);
  if (appServices) {
    resolve(container, Tokens.Accounts).useAppServices(appServices.forAccounts());
    resolve(container, Tokens.Directory).useAppServices(appServices.forDirectory());
  }
  return appServices;
}
