// users, devices and access_tokens. Tokens are kept only as SHA-256 hashes: a copy of the database
// does not hand out sessions.
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";
import type { AccountStore, DeviceRecord, UserRecord } from "../../stores";

export const ACCOUNTS_MIGRATION: Migration = {
  version: 10,
  name: "accounts",
  up: `
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
};

interface UserRow {
  user_id: string;
  password_hash: string | null;
  created_ts: number;
  is_admin: number;
  deactivated: number;
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

export class SqliteAccountStore implements AccountStore {
  private readonly s;

  constructor(private readonly db: SqlDatabase) {
    this.s = {
      insertUser: db.prepare("INSERT OR IGNORE INTO users (user_id, password_hash, created_ts, is_admin) VALUES (?, ?, ?, ?)"),
      user: db.prepare<UserRow>("SELECT * FROM users WHERE user_id = ?"),
      setPassword: db.prepare("UPDATE users SET password_hash = ? WHERE user_id = ?"),
      insertDevice: db.prepare("INSERT OR IGNORE INTO devices (user_id, device_id, display_name, last_seen_ts) VALUES (?, ?, ?, ?)"),
      renameDevice: db.prepare("UPDATE devices SET display_name = ? WHERE user_id = ? AND device_id = ?"),
      device: db.prepare<DeviceRow>("SELECT * FROM devices WHERE user_id = ? AND device_id = ?"),
      devices: db.prepare<DeviceRow>("SELECT * FROM devices WHERE user_id = ? ORDER BY device_id"),
      touch: db.prepare("UPDATE devices SET last_seen_ts = ?, last_seen_ip = coalesce(?, last_seen_ip) WHERE user_id = ? AND device_id = ?"),
      deleteDevice: db.prepare("DELETE FROM devices WHERE user_id = ? AND device_id = ?"),
      deleteDeviceTokens: db.prepare("DELETE FROM access_tokens WHERE user_id = ? AND device_id = ?"),
      insertToken: db.prepare("INSERT INTO access_tokens (token_hash, user_id, device_id, created_ts) VALUES (?, ?, ?, ?)"),
      token: db.prepare<{ user_id: string; device_id: string }>("SELECT user_id, device_id FROM access_tokens WHERE token_hash = ?"),
      deleteToken: db.prepare("DELETE FROM access_tokens WHERE token_hash = ?"),
      deleteTokens: db.prepare("DELETE FROM access_tokens WHERE user_id = ? AND device_id != ?"),
    };
  }

  createUser(user: { userId: string; passwordHash: string | undefined; createdTs: number; isAdmin: boolean }): boolean {
    return this.s.insertUser.run(user.userId, user.passwordHash ?? null, user.createdTs, user.isAdmin ? 1 : 0).changes === 1;
  }

  getUser(userId: string): UserRecord | undefined {
    const r = this.s.user.get(userId);
    return r && { userId: r.user_id, passwordHash: r.password_hash ?? undefined, createdTs: r.created_ts, isAdmin: r.is_admin === 1, deactivated: r.deactivated === 1 };
  }

  setPasswordHash(userId: string, passwordHash: string): void {
    this.s.setPassword.run(passwordHash, userId);
  }

  upsertDevice(userId: string, deviceId: string, displayName: string | undefined, ts: number): void {
    this.db.transaction(() => {
      if (this.s.insertDevice.run(userId, deviceId, displayName ?? null, ts).changes === 0 && displayName !== undefined) {
        this.s.renameDevice.run(displayName, userId, deviceId);
      }
    });
  }

  getDevice(userId: string, deviceId: string): DeviceRecord | undefined {
    const r = this.s.device.get(userId, deviceId);
    return r && toDevice(r);
  }

  listDevices(userId: string): DeviceRecord[] {
    return this.s.devices.all(userId).map(toDevice);
  }

  setDeviceDisplayName(userId: string, deviceId: string, displayName: string): boolean {
    return this.s.renameDevice.run(displayName, userId, deviceId).changes === 1;
  }

  touchDevice(userId: string, deviceId: string, ts: number, ip: string | undefined): void {
    this.s.touch.run(ts, ip ?? null, userId, deviceId);
  }

  deleteDevice(userId: string, deviceId: string): boolean {
    return this.db.transaction(() => {
      this.s.deleteDeviceTokens.run(userId, deviceId);
      return this.s.deleteDevice.run(userId, deviceId).changes === 1;
    });
  }

  addAccessToken(tokenHash: string, userId: string, deviceId: string, createdTs: number): void {
    this.s.insertToken.run(tokenHash, userId, deviceId, createdTs);
  }

  findAccessToken(tokenHash: string): { userId: string; deviceId: string } | undefined {
    const r = this.s.token.get(tokenHash);
    return r && { userId: r.user_id, deviceId: r.device_id };
  }

  deleteAccessToken(tokenHash: string): void {
    this.s.deleteToken.run(tokenHash);
  }

  deleteAccessTokens(userId: string, exceptDeviceId?: string): void {
    // "" never names a device, so without an exception every token goes.
    this.s.deleteTokens.run(userId, exceptDeviceId ?? "");
  }
}
