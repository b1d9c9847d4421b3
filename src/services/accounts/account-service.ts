// Accounts, devices and access tokens (client-server-api "Account registration and management",
// "Login", "Relationship between access tokens and devices").
//
// Registration passes the plugins' spam policies when one is registered (issue 9): checkRegistration
// with the wanted username and the client's address, then checkUsernameForSpam with the new user's
// ID and the display name it would start with, before anything is stored. Registrations made by an
// operator are not checked, as in Synapse: shared-secret registration passes `byAdmin`, and the CLI
// builds its AccountService without policies.
import { createHash, randomBytes } from "node:crypto";
import { MatrixError, limitExceeded } from "../../protocol/errors";
import { parseUserId, validateNewUserLocalpart } from "../../protocol/identifiers";
import type { AccountStore, DeviceRecord, ProfileStore } from "../../storage/stores";
import type { PolicySet } from "../plugins/policies";
import { requireSpamAllowed, type SpamChecks } from "../plugins/spam-decisions";
import type { Clock } from "../runtime";

/** The rate limits a password login asks (the plugins' PolicySet). */
export type LoginRateLimits = Pick<PolicySet, "takeRateLimit" | "refundRateLimit">;

/** What accounts ask of the plugins' policies (the PolicySet): login rate limits, and spam checks when given. */
export type AccountPolicies = LoginRateLimits & Partial<SpamChecks>;

export interface Session {
  readonly userId: string;
  readonly deviceId: string;
  readonly accessToken: string;
}

/** Who an access token belongs to; isGuest only for a guest account (client-server-api "Guest Access"). */
export interface TokenOwner {
  readonly userId: string;
  readonly deviceId: string;
  readonly isGuest?: boolean;
  /** Set when an application service's as_token made the request (application-service-api "Identity assertion"). */
  readonly appServiceId?: string;
}

/** What a request names besides its token: the user_id and device_id an application service asserts. */
export type IdentityAssertion = () => { userId: string | null; deviceId: string | null };

/** Application services' part in accounts (set by the composition root when any is registered). */
export interface AccountAppServices {
  /** The owner an as_token makes; undefined when the token is not an application service's. */
  authenticate(accessToken: string, assertion: IdentityAssertion | undefined): Promise<TokenOwner> | undefined;
  /** Throws 400 M_EXCLUSIVE when the user ID is not the registering party's to take (appServiceId: the service registering, if any). */
  checkMayRegister(userId: string, appServiceId: string | undefined): void;
  /** Whether the user lies in one of the service's user namespaces (or is its sender). */
  isInNamespace(appServiceId: string, userId: string): boolean;
  /** Asks the services whose namespace holds the user to create it ("Querying"); true when one did. */
  queryUser(userId: string): Promise<boolean>;
}

export interface GuestUpgradeInput {
  /** The guest's access token, which proves the client holds the guest account. */
  guestAccessToken: string;
  /** Must be the guest's own localpart (the spec makes username required here). */
  username: string | undefined;
  password?: string;
  deviceId?: string;
  initialDeviceDisplayName?: string;
  inhibitLogin?: boolean;
}

export interface RegisterInput {
  /** Localpart wanted; a random one when absent. */
  username?: string;
  password?: string;
  deviceId?: string;
  initialDeviceDisplayName?: string;
  inhibitLogin?: boolean;
  admin?: boolean;
  /** The client's address, for the spam policies' checkRegistration. */
  address?: string;
  /** Made by an operator (shared-secret registration, the CLI): the spam policies are not asked. */
  byAdmin?: boolean;
  /** The display name the user starts with (single sign-on's); default: the localpart. */
  displayName?: string;
  /** Registered by this application service (m.login.application_service): inside its namespace, no spam checks. */
  appServiceId?: string;
}

const hashToken = (token: string) => createHash("sha256").update(token).digest("base64url");

/** Opaque random identifiers in the alphabet of device IDs clients already see from Synapse. */
const randomId = (length: number) => {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  return [...randomBytes(length)].map((b) => alphabet[b % alphabet.length]).join("");
};

/**
 * Called inside the transaction that deletes a device, and awaited: what belongs to the device (its
 * E2EE keys, its to-device messages) goes with it, or the device stays too. It may only write to the
 * database (no network, nobody woken: the transaction may still roll back); a function it returns
 * is called once the deletion has committed (to announce it).
 */
export type DeviceDeletedListener = (userId: string, deviceId: string) => Promise<void | (() => void)>;
/** Whether a device ID is taken by something other than a device (one of the user's cross-signing keys). */
export type ReservedDeviceIdCheck = (userId: string, deviceId: string) => Promise<boolean>;
/** Runs fn in one database transaction with every store write it makes (the stores' `atomically`). */
export type Atomically = <T>(fn: () => Promise<T>) => Promise<T>;
/** Called after a device is renamed, and awaited (others see the name beside the device's keys). */
export type DeviceRenamedListener = (userId: string, deviceId: string) => Promise<void>;

export class AccountService {
  private readonly deviceDeletedListeners: DeviceDeletedListener[] = [];
  private readonly deviceRenamedListeners: DeviceRenamedListener[] = [];
  private readonly deviceAddedListeners: DeviceRenamedListener[] = [];
  private readonly reservedDeviceIdChecks: ReservedDeviceIdCheck[] = [];
  private appServices: AccountAppServices | undefined;

  constructor(
    private readonly store: AccountStore,
    private readonly serverName: string,
    private readonly clock: Clock,
    /** Where a new user's default display name goes; none in tests that build only accounts. */
    private readonly profiles?: ProfileStore,
    /** Failed and successful logins per account, and spam checks; none: not limited (the CLI, unit tests). */
    private readonly rateLimits?: AccountPolicies,
    /** The transaction a device's deletion and its listeners share; none (the CLI): each write on its own. */
    private readonly atomically: Atomically = (fn) => fn(),
  ) {}

  /** Lets application services authenticate with their as_token and own their exclusive namespaces. */
  useAppServices(appServices: AccountAppServices): void {
    this.appServices = appServices;
  }

  /** Whether any application service is registered (login offers m.login.application_service). */
  get hasAppServices(): boolean {
    return this.appServices !== undefined;
  }

  /**
   * M_INVALID_USERNAME for a localpart the spec's grammar refuses, M_USER_IN_USE when taken,
   * M_EXCLUSIVE inside an application service's exclusive namespace (unless that service asks).
   */
  async checkUsernameAvailable(username: string, appServiceId?: string): Promise<string> {
    // As Synapse: guests are numbered, so all-digit localparts are theirs alone.
    if (/^\d+$/.test(username)) throw new MatrixError("M_INVALID_USERNAME", "Numeric user IDs are reserved for guest users.");
    // The appendices ("User Identifiers") require servers to downcase usernames for new user IDs.
    const valid = validateNewUserLocalpart(username.toLowerCase(), this.serverName);
    if (!valid.ok) throw new MatrixError("M_INVALID_USERNAME", `Invalid username: ${valid.error}`);
    const userId = valid.value;
    this.appServices?.checkMayRegister(userId, appServiceId);
    if (await this.store.getUser(userId)) throw new MatrixError("M_USER_IN_USE", "User ID already taken.");
    return userId;
  }

  async register(input: RegisterInput): Promise<{ userId: string; session?: Session }> {
    const userId = input.username !== undefined ? await this.checkUsernameAvailable(input.username, input.appServiceId) : await this.randomUserId();
    const policies = this.rateLimits;
    if (!input.byAdmin && input.appServiceId === undefined && policies?.hasSpamPolicies && policies.spamCheck) {
      const spam = policies as SpamChecks;
      // No shadow here: an account that seemed made but cannot log in would be noticed at once.
      await requireSpamAllowed(spam, (p) => p.checkRegistration?.({ username: input.username, address: input.address }), "Registration is not allowed");
      if (input.username !== undefined) {
        const displayName = userId.slice(1, userId.indexOf(":"));
        await requireSpamAllowed(spam, (p) => p.checkUsernameForSpam?.({ userId, displayName }), "This username is not allowed");
      }
    }
    const passwordHash = input.password !== undefined ? await Bun.password.hash(input.password, { algorithm: "argon2id" }) : undefined;
    if (!(await this.store.createUser({ userId, passwordHash, createdTs: this.clock.now(), isAdmin: input.admin === true }))) {
      // Another registration took the name while the password was hashing.
      throw new MatrixError("M_USER_IN_USE", "User ID already taken.");
    }
    // As Synapse does: a new user is displayed by their localpart until they choose a name.
    await this.profiles?.setProfileField(userId, "displayname", input.displayName ?? userId.slice(1, userId.indexOf(":")));
    if (input.inhibitLogin) return { userId };
    return { userId, session: await this.startSession(userId, input.deviceId, input.initialDeviceDisplayName) };
  }

  /**
   * POST /register?kind=guest: a new guest account with a server-chosen, all-digit localpart (as
   * Synapse numbers its guests) and device. Everything the client sent but the device's display
   * name is ignored, as the spec requires.
   */
  async registerGuest(initialDeviceDisplayName: string | undefined): Promise<Session> {
    for (;;) {
      const localpart = String(100_000_000 + (randomBytes(4).readUInt32BE(0) % 900_000_000));
      const userId = `@${localpart}:${this.serverName}`;
      if (!(await this.store.createUser({ userId, passwordHash: undefined, createdTs: this.clock.now(), isAdmin: false, isGuest: true }))) continue;
      await this.profiles?.setProfileField(userId, "displayname", localpart);
      return this.startSession(userId, undefined, initialDeviceDisplayName);
    }
  }

  /**
   * Registration with `guest_access_token` (client-server-api "Guest Access"): the guest becomes a
   * full account under the same user ID, with the given password, and a new session. The token must
   * be a guest's and the username that guest's localpart (403 otherwise: a guest cannot upgrade
   * another user).
   */
  async upgradeGuest(input: GuestUpgradeInput): Promise<{ userId: string; session?: Session }> {
    const userId = await this.guestToUpgrade(input.guestAccessToken, input.username);
    const passwordHash = input.password !== undefined ? await Bun.password.hash(input.password, { algorithm: "argon2id" }) : undefined;
    if (!(await this.store.upgradeGuest(userId, passwordHash))) throw new MatrixError("M_FORBIDDEN", "This account is no longer a guest", 403);
    if (input.inhibitLogin) return { userId };
    return { userId, session: await this.startSession(userId, input.deviceId, input.initialDeviceDisplayName) };
  }

  /** The guest a guest_access_token and username name together; 401 for an unknown token, 403 otherwise. */
  async guestToUpgrade(guestAccessToken: string, username: string | undefined): Promise<string> {
    const owner = await this.authenticate(guestAccessToken);
    if (!owner.isGuest) throw new MatrixError("M_FORBIDDEN", "The access token is not a guest's", 403);
    if (username !== owner.userId.slice(1, owner.userId.indexOf(":"))) throw new MatrixError("M_FORBIDDEN", "A guest may only upgrade its own account", 403);
    return owner.userId;
  }

  /** Whether a user is a guest account of this server (false for full accounts and unknown users). */
  async isGuest(userId: string): Promise<boolean> {
    return (await this.store.getUser(userId))?.isGuest === true;
  }

  private async randomUserId(): Promise<string> {
    for (;;) {
      const userId = `@${randomId(10).toLowerCase()}:${this.serverName}`;
      if (!(await this.store.getUser(userId))) return userId;
    }
  }

  /**
   * A new access token for the device (created when new). A device named again (a login with its
   * device_id) has its earlier tokens revoked: "If the client sets the device_id, the server will
   * invalidate any access and refresh tokens previously assigned to that device" (client-server API,
   * "Relationship between access tokens and devices").
   */
  async startSession(userId: string, deviceId: string | undefined, displayName: string | undefined): Promise<Session> {
    if (deviceId !== undefined) await this.refuseReservedDeviceId(userId, deviceId);
    const device = deviceId ?? randomId(10);
    const accessToken = `pt_${randomBytes(32).toString("base64url")}`;
    const isNew = (await this.store.getDevice(userId, device)) === undefined;
    if (!isNew) await this.store.deleteDeviceTokens(userId, device);
    await this.store.upsertDevice(userId, device, displayName, this.clock.now());
    await this.store.addAccessToken(hashToken(accessToken), userId, device, this.clock.now());
    if (isNew) for (const listener of [...this.deviceAddedListeners]) await listener(userId, device);
    return { userId, deviceId: device, accessToken };
  }

  /**
   * Servers must not let a device take the ID of one of the user's cross-signing keys (the spec's
   * "Cross-signing"). The spec names no error; Synapse, which keeps cross-signing keys as hidden
   * devices, answers 400 M_FORBIDDEN "The device ID is in use", and so does Portier.
   */
  private async refuseReservedDeviceId(userId: string, deviceId: string): Promise<void> {
    for (const reserved of this.reservedDeviceIdChecks) {
      if (await reserved(userId, deviceId)) throw new MatrixError("M_FORBIDDEN", "The device ID is in use", 400);
    }
  }

  /** IDs no new device may take (the user's cross-signing public keys): asked at each login and registration naming a device ID. */
  reserveDeviceIds(check: ReservedDeviceIdCheck): void {
    this.reservedDeviceIdChecks.push(check);
  }

  /** Resolves a user identifier (a localpart or a full user ID of this server) to a user ID. */
  userIdFor(user: string): string | undefined {
    if (!user.startsWith("@")) return `@${user.toLowerCase()}:${this.serverName}`;
    const parsed = parseUserId(user);
    if (!parsed.ok || parsed.value.serverName !== this.serverName) return undefined;
    return user;
  }

  async checkPassword(userId: string, password: string): Promise<boolean> {
    const user = await this.store.getUser(userId);
    if (!user?.passwordHash || user.deactivated) return false;
    return Bun.password.verify(password, user.passwordHash);
  }

  /**
   * Rate limits as Synapse applies them (handlers/auth.py validate_login, rest/client/login.py
   * _complete_login): `login.failed` per account is checked before the password (so a guessed-at
   * account costs no argon2 once its bucket is empty) and charged only when the password is wrong —
   * here taken up front and given back on success; `login.account` is charged only by a successful
   * login, before its device is made, so nothing is refunded then. Unknown users count like known
   * ones, so the answers do not tell which accounts exist.
   */
  async loginWithPassword(user: string, password: string, deviceId?: string, displayName?: string): Promise<Session> {
    const userId = this.userIdFor(user);
    if (!userId) throw new MatrixError("M_FORBIDDEN", "Invalid username or password", 403);
    const account = userId.toLowerCase();
    const failed = { bucket: "login.failed", key: account };
    this.takeRateLimit(failed);
    let valid: boolean;
    try {
      valid = await this.checkPassword(userId, password);
    } catch (error) {
      this.rateLimits?.refundRateLimit(failed); // the server failed, not the guess
      throw error;
    }
    // A wrong password keeps the token it took; the right one gives it back.
    if (!valid) throw new MatrixError("M_FORBIDDEN", "Invalid username or password", 403);
    this.rateLimits?.refundRateLimit(failed);
    this.takeRateLimit({ bucket: "login.account", key: account });
    return this.startSession(userId, deviceId, displayName);
  }

  /**
   * A session for a user who proved who they are another way (a login token from single sign-on):
   * refused for unknown and deactivated accounts; charged to `login.account` like a password login.
   */
  async loginAs(userId: string, deviceId?: string, displayName?: string): Promise<Session> {
    const user = await this.store.getUser(userId);
    if (!user) throw new MatrixError("M_FORBIDDEN", "Invalid login token", 403);
    if (user.deactivated) throw new MatrixError("M_USER_DEACTIVATED", "This account has been deactivated", 403);
    this.takeRateLimit({ bucket: "login.account", key: userId.toLowerCase() });
    return this.startSession(userId, deviceId, displayName);
  }

  /**
   * Login with m.login.application_service (client-server-api "Appservice Login"): a user outside
   * the service's namespaces is 403 M_EXCLUSIVE, one not registered 403 M_FORBIDDEN.
   */
  async loginAsForAppService(appServiceId: string, userId: string, deviceId?: string, displayName?: string): Promise<Session> {
    if (!this.appServices?.isInNamespace(appServiceId, userId)) throw new MatrixError("M_EXCLUSIVE", "The user is not in the application service's namespace", 403);
    const user = await this.store.getUser(userId);
    if (!user) throw new MatrixError("M_FORBIDDEN", "The user has not been registered", 403);
    if (user.deactivated) throw new MatrixError("M_USER_DEACTIVATED", "This account has been deactivated", 403);
    return this.startSession(userId, deviceId, displayName);
  }

  /**
   * The user a single sign-on name maps to: an existing account of that localpart is theirs (as
   * Synapse's CAS login, which lets users of the server move to CAS), else a new account without
   * a password is registered. A deactivated account is 403 M_USER_DEACTIVATED.
   */
  async ssoUser(localpart: string, displayName: string | undefined): Promise<string> {
    const userId = `@${localpart}:${this.serverName}`;
    const existing = await this.store.getUser(userId);
    if (existing) {
      if (existing.deactivated) throw new MatrixError("M_USER_DEACTIVATED", "This account has been deactivated", 403);
      return userId;
    }
    const valid = validateNewUserLocalpart(localpart, this.serverName);
    if (!valid.ok) throw new MatrixError("M_INVALID_USERNAME", `The single sign-on name maps to an invalid user ID: ${valid.error}`, 400);
    try {
      return (await this.register({ username: localpart, inhibitLogin: true, displayName })).userId;
    } catch (error) {
      // Two first logins of one name at once: the other made the account.
      if (error instanceof MatrixError && error.errcode === "M_USER_IN_USE" && (await this.store.getUser(userId))) return userId;
      throw error;
    }
  }

  private takeRateLimit(check: { bucket: string; key: string }): void {
    const result = this.rateLimits?.takeRateLimit(check);
    if (result && !result.allowed) throw limitExceeded(Math.max(1, Math.ceil(result.retryAfterMs)));
  }

  /** The session behind an access token; M_UNKNOWN_TOKEN (401, soft_logout false) otherwise. */
  async authenticate(accessToken: string, assertion?: IdentityAssertion): Promise<TokenOwner> {
    const appService = this.appServices?.authenticate(accessToken, assertion);
    if (appService !== undefined) return appService;
    const found = await this.store.findAccessToken(hashToken(accessToken));
    if (!found) throw new MatrixError("M_UNKNOWN_TOKEN", "Invalid access token passed.", 401, { soft_logout: false });
    return found;
  }

  async logout(accessToken: string): Promise<void> {
    const found = await this.authenticate(accessToken);
    // Logging out deletes the device too (client-server-api "Logout").
    await this.removeDevice(found.userId, found.deviceId);
  }

  async logoutAll(userId: string): Promise<void> {
    for (const device of await this.store.listDevices(userId)) await this.removeDevice(userId, device.deviceId);
  }

  /** With logoutDevices, every device but keepDeviceId (the requester's, when logged in) is logged out. */
  async changePassword(userId: string, newPassword: string, logoutDevices: boolean, keepDeviceId: string | undefined): Promise<void> {
    await this.store.setPasswordHash(userId, await Bun.password.hash(newPassword, { algorithm: "argon2id" }));
    if (logoutDevices) {
      for (const device of await this.store.listDevices(userId)) if (device.deviceId !== keepDeviceId) await this.removeDevice(userId, device.deviceId);
    }
  }

  /**
   * POST /account/deactivate, the account's part: it can never log in again (the password is
   * forgotten) and every device is logged out (their keys, messages and pushers go with them).
   */
  async deactivate(userId: string): Promise<void> {
    await this.store.deactivate(userId);
    await this.logoutAll(userId);
  }

  devices(userId: string): Promise<DeviceRecord[]> {
    return this.store.listDevices(userId);
  }

  device(userId: string, deviceId: string): Promise<DeviceRecord | undefined> {
    return this.store.getDevice(userId, deviceId);
  }

  async renameDevice(userId: string, deviceId: string, displayName: string): Promise<boolean> {
    const renamed = await this.store.setDeviceDisplayName(userId, deviceId, displayName);
    if (renamed) for (const listener of [...this.deviceRenamedListeners]) await listener(userId, deviceId);
    return renamed;
  }

  /** Hears each new device (a login or registration that made one), after it is stored. */
  onDeviceAdded(listener: DeviceRenamedListener): void {
    this.deviceAddedListeners.push(listener);
  }

  onDeviceRenamed(listener: DeviceRenamedListener): void {
    this.deviceRenamedListeners.push(listener);
  }

  deleteDevice(userId: string, deviceId: string): Promise<boolean> {
    return this.removeDevice(userId, deviceId);
  }

  onDeviceDeleted(listener: DeviceDeletedListener): void {
    this.deviceDeletedListeners.push(listener);
  }

  /**
   * Every deletion of a device goes through here, so that its listeners hear of each. The device and
   * what its listeners delete go in one transaction: a failure half way leaves both (no keys of a
   * device that is gone), and the request fails.
   */
  private async removeDevice(userId: string, deviceId: string): Promise<boolean> {
    const committed = await this.atomically(async () => {
      if (!(await this.store.deleteDevice(userId, deviceId))) return undefined;
      const afterCommit: (() => void)[] = [];
      for (const listener of [...this.deviceDeletedListeners]) {
        const then = await listener(userId, deviceId);
        if (then) afterCommit.push(then);
      }
      return afterCommit;
    });
    if (!committed) return false;
    for (const then of committed) then();
    return true;
  }

  /** Whether a local user exists; one of an application service's namespace that does not is asked of the service first. */
  async userExists(userId: string): Promise<boolean> {
    if ((await this.store.getUser(userId)) !== undefined) return true;
    return this.appServices !== undefined && (await this.appServices.queryUser(userId)) && (await this.store.getUser(userId)) !== undefined;
  }

  /** Whether a local user is an admin of this server (false for unknown users). */
  async isAdmin(userId: string): Promise<boolean> {
    return (await this.store.getUser(userId))?.isAdmin === true;
  }
}
