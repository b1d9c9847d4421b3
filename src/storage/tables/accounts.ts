// users, devices and access_tokens. Tokens are kept only as SHA-256 hashes: a copy of the database
// does not hand out sessions.
import type { Database } from "../database";
import type { Migration } from "../migrations";
import type { AccountStore, DeviceRecord, UserRecord } from "../stores";
import { CommittedCache } from "../row-cache";

export const ACCOUNTS_MIGRATION: Migration = {
  version: 10,
  name: "accounts",
  sqlite: `
    CREATE TABLE users (
      user_id TEXT PRIMARY KEY,
      password_hash TEXT,
      created_ts INTEGER NOT NULL,
      is_admin INTEGER NOT NULL DEFAULT 0,
      deactivated INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE devices (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      display_name TEXT,
      last_seen_ts INTEGER,
      last_seen_ip TEXT,
      PRIMARY KEY (user_id, device_id)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE access_tokens (
      token_hash TEXT PRIMARY KEY,
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      created_ts INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);
  `,
  postgres: `
    CREATE TABLE users (
      user_id TEXT PRIMARY KEY,
      password_hash TEXT,
      created_ts BIGINT NOT NULL,
      is_admin BIGINT NOT NULL DEFAULT 0,
      deactivated BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE devices (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      display_name TEXT,
      last_seen_ts BIGINT,
      last_seen_ip TEXT,
      PRIMARY KEY (user_id, device_id)
    );
    CREATE TABLE access_tokens (
      token_hash TEXT PRIMARY KEY,
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      created_ts BIGINT NOT NULL
    );
    CREATE INDEX access_tokens_device ON access_tokens (user_id, device_id);
  `,
};

/** Guest accounts (client-server-api "Guest Access"): a user registered with kind=guest, until upgraded. */
export const USERS_IS_GUEST_MIGRATION: Migration = {
  version: 64,
  name: "users_is_guest",
  sqlite: "ALTER TABLE users ADD COLUMN is_guest INTEGER NOT NULL DEFAULT 0;",
  postgres: "ALTER TABLE users ADD COLUMN is_guest BIGINT NOT NULL DEFAULT 0;",
};

const INSERT_USER = "INSERT INTO users (user_id, password_hash, created_ts, is_admin, is_guest) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING";
const SELECT_USER = "SELECT user_id, password_hash, created_ts, is_admin, deactivated, is_guest FROM users WHERE user_id = ?";
const UPGRADE_GUEST = "UPDATE users SET is_guest = 0, password_hash = ? WHERE user_id = ? AND is_guest = 1 AND deactivated = 0";
const SET_PASSWORD = "UPDATE users SET password_hash = ? WHERE user_id = ?";
const SET_DEACTIVATED = "UPDATE users SET deactivated = 1, password_hash = NULL WHERE user_id = ?";
const INSERT_DEVICE = "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING";
const RENAME_DEVICE = "UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?";
const DEVICE_COLUMNS = "user_id, device_id, display_name, last_seen_ts, last_seen_ip";
const SELECT_DEVICE = `SELECT ${DEVICE_COLUMNS} FROM devices WHERE user_id = ? AND device_id = ?`;
const SELECT_DEVICES = `SELECT ${DEVICE_COLUMNS} FROM devices WHERE user_id = ? ORDER BY device_id`;
const TOUCH_DEVICE = "UPDATE devices SET last_seen_ts = ?, last_seen_ip = coalesce(?, last_seen_ip) WHERE user_id = ? AND device_id = ?";
const DELETE_DEVICE = "DELETE FROM devices WHERE user_id = ? AND device_id = ?";
const DELETE_DEVICE_TOKENS = "DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?";
const INSERT_TOKEN = "INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)";
// The guest flag comes with the token: every authenticated request asks it (the guests' route allow-list).
const SELECT_TOKEN = "SELECT t.user_id, t.device_id, u.is_guest FROM access_tokens t LEFT JOIN users u ON u.user_id = t.user_id WHERE t.token_hash = ?";
const DELETE_TOKEN = "DELETE FROM access_tokens WHERE token_hash = ?";
const DELETE_TOKENS_EXCEPT = "DELETE FROM access_tokens WHERE user_id = ? AND device_id <> ?";

interface UserRow {
  user_id: string;
  password_hash: string | null;
  created_ts: number;
  is_admin: number;
  deactivated: number;
  is_guest: number;
}
interface DeviceRow {
  user_id: string;
  device_id: string;
  display_name: string | null;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
}

const toDevice = (r: DeviceRow): DeviceRecord => ({
  userId: r.user_id,
  deviceId: r.device_id,
  displayName: r.display_name ?? undefined,
  lastSeenTs: r.last_seen_ts ?? undefined,
  lastSeenIp: r.last_seen_ip ?? undefined,
});

type TokenOwner = { userId: string; deviceId: string; isGuest?: boolean };

/**
 * Access tokens looked up, kept per token hash (null: no such token): every authenticated request
 * asks, and a send's query for its token was a sixth of its SQLite time. Every write that can end or
 * change a token goes through this store and drops what is kept of it: one token's by its hash, the
 * others (a device's tokens, all of a user's, a guest's flag) by dropping every kept token, so a
 * token logged out is refused from the moment its deletion is durable.
 */
const KEPT_TOKENS = 10_000;

export class SqlAccountStore implements AccountStore {
  private readonly tokens: CommittedCache<string, TokenOwner | null>;

  constructor(private readonly db: Database) {
    this.tokens = new CommittedCache(db, KEPT_TOKENS);
  }

  async createUser(user: { userId: string; passwordHash: string | undefined; createdTs: number; isAdmin: boolean; isGuest?: boolean }): Promise<boolean> {
    const create = async () => (await this.db.run(INSERT_USER, user.userId, user.passwordHash ?? null, user.createdTs, user.isAdmin ? 1 : 0, user.isGuest ? 1 : 0)).changes === 1;
    // A token looked up before its user existed was kept without the guest flag.
    return user.isGuest ? this.tokens.writeAll(create) : create();
  }

  async getUser(userId: string): Promise<UserRecord | undefined> {
    const r = await this.db.get<UserRow>(SELECT_USER, userId);
    return r && { userId: r.user_id, passwordHash: r.password_hash ?? undefined, createdTs: r.created_ts, isAdmin: r.is_admin === 1, deactivated: r.deactivated === 1, ...(r.is_guest === 1 ? { isGuest: true } : {}) };
  }

  async upgradeGuest(userId: string, passwordHash: string | undefined): Promise<boolean> {
    return this.tokens.writeAll(async () => (await this.db.run(UPGRADE_GUEST, passwordHash ?? null, userId)).changes === 1);
  }

  async setPasswordHash(userId: string, passwordHash: string): Promise<void> {
    await this.db.run(SET_PASSWORD, passwordHash, userId);
  }

  async deactivate(userId: string): Promise<void> {
    await this.db.run(SET_DEACTIVATED, userId);
  }

  async upsertDevice(userId: string, deviceId: string, displayName: string | undefined, ts: number): Promise<void> {
    await this.db.transaction(async () => {
      if ((await this.db.run(INSERT_DEVICE, userId, deviceId, displayName ?? null, ts)).changes === 0 && displayName !== undefined) {
        await this.db.run(RENAME_DEVICE, displayName, userId, deviceId);
      }
    });
  }

  async getDevice(userId: string, deviceId: string): Promise<DeviceRecord | undefined> {
    const r = await this.db.get<DeviceRow>(SELECT_DEVICE, userId, deviceId);
    return r && toDevice(r);
  }

  async listDevices(userId: string): Promise<DeviceRecord[]> {
    return (await this.db.all<DeviceRow>(SELECT_DEVICES, userId)).map(toDevice);
  }

  async setDeviceDisplayName(userId: string, deviceId: string, displayName: string): Promise<boolean> {
    return (await this.db.run(RENAME_DEVICE, displayName, userId, deviceId)).changes === 1;
  }

  async touchDevice(userId: string, deviceId: string, ts: number, ip: string | undefined): Promise<void> {
    await this.db.run(TOUCH_DEVICE, ts, ip ?? null, userId, deviceId);
  }

  async deleteDevice(userId: string, deviceId: string): Promise<boolean> {
    return this.db.transaction(async () => {
      await this.deleteDeviceTokens(userId, deviceId);
      return (await this.db.run(DELETE_DEVICE, userId, deviceId)).changes === 1;
    });
  }

  async addAccessToken(tokenHash: string, userId: string, deviceId: string, createdTs: number): Promise<void> {
    await this.tokens.write(tokenHash, () => this.db.run(INSERT_TOKEN, tokenHash, userId, deviceId, createdTs));
  }

  async findAccessToken(tokenHash: string): Promise<TokenOwner | undefined> {
    const owner = await this.tokens.read(tokenHash, async () => {
      const r = await this.db.get<{ user_id: string; device_id: string; is_guest: number | null }>(SELECT_TOKEN, tokenHash);
      return r ? { userId: r.user_id, deviceId: r.device_id, ...(r.is_guest === 1 ? { isGuest: true } : {}) } : null;
    });
    // A copy: callers may add to what they are given.
    return owner === null ? undefined : { ...owner };
  }

  async deleteAccessToken(tokenHash: string): Promise<void> {
    await this.tokens.write(tokenHash, () => this.db.run(DELETE_TOKEN, tokenHash));
  }

  async deleteDeviceTokens(userId: string, deviceId: string): Promise<void> {
    await this.tokens.writeAll(() => this.db.run(DELETE_DEVICE_TOKENS, userId, deviceId));
  }

  async deleteAccessTokens(userId: string, exceptDeviceId?: string): Promise<void> {
    // "" never names a device, so without an exception every token goes.
    await this.tokens.writeAll(() => this.db.run(DELETE_TOKENS_EXCEPT, userId, exceptDeviceId ?? ""));
  }
}
