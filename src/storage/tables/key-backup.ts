// Server-side key backups (client-server-api "Server-side key backups").
//
// room_key_backup_versions: each backup version a user created, with its algorithm and auth_data
// (JSON text) and an etag counter that every change of its keys moves on. A deleted version keeps
// its row (deleted = 1) so that version numbers are never handed out twice, as in Synapse.
//
// room_key_backup_keys: the encrypted session keys of a version, one per (room, session), with the
// three facts the spec's replacement rule compares (is_verified, first_message_index,
// forwarded_count) beside the opaque session_data.
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const KEY_BACKUP_MIGRATION: Migration = {
  version: 57,
  name: "key_backup",
  sqlite: `
    CREATE TABLE room_key_backup_versions (
      user_id TEXT NOT NULL,
      version INTEGER NOT NULL,
      algorithm TEXT NOT NULL,
      auth_data_json TEXT NOT NULL,
      etag INTEGER NOT NULL,
      deleted INTEGER NOT NULL,
      PRIMARY KEY (user_id, version)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE room_key_backup_keys (
      user_id TEXT NOT NULL,
      version INTEGER NOT NULL,
      room_id TEXT NOT NULL,
      session_id TEXT NOT NULL,
      first_message_index INTEGER NOT NULL,
      forwarded_count INTEGER NOT NULL,
      is_verified INTEGER NOT NULL,
      session_data_json TEXT NOT NULL,
      PRIMARY KEY (user_id, version, room_id, session_id)
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE room_key_backup_versions (
      user_id TEXT NOT NULL,
      version BIGINT NOT NULL,
      algorithm TEXT NOT NULL,
      auth_data_json TEXT NOT NULL,
      etag BIGINT NOT NULL,
      deleted BIGINT NOT NULL,
      PRIMARY KEY (user_id, version)
    );
    CREATE TABLE room_key_backup_keys (
      user_id TEXT NOT NULL,
      version BIGINT NOT NULL,
      room_id TEXT NOT NULL,
      session_id TEXT NOT NULL,
      first_message_index BIGINT NOT NULL,
      forwarded_count BIGINT NOT NULL,
      is_verified BIGINT NOT NULL,
      session_data_json TEXT NOT NULL,
      PRIMARY KEY (user_id, version, room_id, session_id)
    );
  `,
};

export interface BackupVersion {
  readonly version: number;
  readonly algorithm: string;
  readonly authDataJson: string;
  readonly etag: number;
}

export interface BackedUpKey {
  readonly roomId: string;
  readonly sessionId: string;
  readonly firstMessageIndex: number;
  readonly forwardedCount: number;
  readonly isVerified: boolean;
  readonly sessionDataJson: string;
}

export interface KeyBackupStore {
  /** Creates the next version of the user's backup (higher than every earlier one, deleted ones included). */
  createVersion(userId: string, algorithm: string, authDataJson: string): Promise<number>;
  /** A version that is not deleted; the latest one when `version` is undefined. */
  version(userId: string, version?: number): Promise<BackupVersion | undefined>;
  /** False when there is no such (undeleted) version. */
  updateVersion(userId: string, version: number, authDataJson: string): Promise<boolean>;
  /** Marks the version deleted and deletes its keys; false when there was no such version. */
  deleteVersion(userId: string, version: number): Promise<boolean>;
  /** The keys of a version, of one room or one session when given. */
  keys(userId: string, version: number, roomId?: string, sessionId?: string): Promise<BackedUpKey[]>;
  /** Stores or replaces one key (the caller applies the replacement rule). */
  putKey(userId: string, version: number, key: BackedUpKey): Promise<void>;
  /** Deletes the keys of a version (of one room or one session when given); returns how many. */
  deleteKeys(userId: string, version: number, roomId?: string, sessionId?: string): Promise<number>;
  countKeys(userId: string, version: number): Promise<number>;
  /** Moves the version's etag on and returns the new one. */
  bumpEtag(userId: string, version: number): Promise<number>;
  atomically<T>(fn: () => Promise<T>): Promise<T>;
}

const CREATE = `INSERT INTO room_key_backup_versions (user_id, version, algorithm, auth_data_json, etag, deleted)
  VALUES (?, (SELECT COALESCE(max(version), 0) + 1 FROM room_key_backup_versions WHERE user_id = ?), ?, ?, 0, 0) RETURNING version`;
const VERSION_COLUMNS = "version, algorithm, auth_data_json, etag";
const SELECT_LATEST = `SELECT ${VERSION_COLUMNS} FROM room_key_backup_versions WHERE user_id = ? AND deleted = 0 ORDER BY version DESC LIMIT 1`;
const SELECT_VERSION = `SELECT ${VERSION_COLUMNS} FROM room_key_backup_versions WHERE user_id = ? AND version = ? AND deleted = 0`;
const UPDATE = "UPDATE room_key_backup_versions SET auth_data_json = ? WHERE user_id = ? AND version = ? AND deleted = 0";
const MARK_DELETED = "UPDATE room_key_backup_versions SET deleted = 1 WHERE user_id = ? AND version = ? AND deleted = 0";
const KEY_COLUMNS = "room_id, session_id, first_message_index, forwarded_count, is_verified, session_data_json";
const UPSERT_KEY = `INSERT INTO room_key_backup_keys (user_id, version, ${KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET first_message_index = excluded.first_message_index,
    forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, session_data_json = excluded.session_data_json`;
const BUMP = "UPDATE room_key_backup_versions SET etag = etag + 1 WHERE user_id = ? AND version = ? RETURNING etag";

interface VersionRow {
  version: number;
  algorithm: string;
  auth_data_json: string;
  etag: number;
}

interface KeyRow {
  room_id: string;
  session_id: string;
  first_message_index: number;
  forwarded_count: number;
  is_verified: number;
  session_data_json: string;
}

const toVersion = (r: VersionRow): BackupVersion => ({ version: Number(r.version), algorithm: r.algorithm, authDataJson: r.auth_data_json, etag: Number(r.etag) });
const toKey = (r: KeyRow): BackedUpKey => ({
  roomId: r.room_id,
  sessionId: r.session_id,
  firstMessageIndex: Number(r.first_message_index),
  forwardedCount: Number(r.forwarded_count),
  isVerified: Number(r.is_verified) === 1,
  sessionDataJson: r.session_data_json,
});

/** The WHERE clause (and its values) for a version's keys, of one room or one session. */
function keyScope(userId: string, version: number, roomId?: string, sessionId?: string): [string, (string | number)[]] {
  let where = "user_id = ? AND version = ?";
  const params: (string | number)[] = [userId, version];
  if (roomId !== undefined) {
    where += " AND room_id = ?";
    params.push(roomId);
    if (sessionId !== undefined) {
      where += " AND session_id = ?";
      params.push(sessionId);
    }
  }
  return [where, params];
}

export class SqlKeyBackupStore implements KeyBackupStore {
  constructor(private readonly db: Database) {}

  async createVersion(userId: string, algorithm: string, authDataJson: string): Promise<number> {
    return Number((await this.db.get<{ version: number }>(CREATE, userId, userId, algorithm, authDataJson))!.version);
  }

  async version(userId: string, version?: number): Promise<BackupVersion | undefined> {
    const row = version === undefined ? await this.db.get<VersionRow>(SELECT_LATEST, userId) : await this.db.get<VersionRow>(SELECT_VERSION, userId, version);
    return row && toVersion(row);
  }

  async updateVersion(userId: string, version: number, authDataJson: string): Promise<boolean> {
    return (await this.db.run(UPDATE, authDataJson, userId, version)).changes > 0;
  }

  async deleteVersion(userId: string, version: number): Promise<boolean> {
    return this.db.transaction(async () => {
      if ((await this.db.run(MARK_DELETED, userId, version)).changes === 0) return false;
      await this.db.run("DELETE FROM room_key_backup_keys WHERE user_id = ? AND version = ?", userId, version);
      return true;
    });
  }

  async keys(userId: string, version: number, roomId?: string, sessionId?: string): Promise<BackedUpKey[]> {
    const [where, params] = keyScope(userId, version, roomId, sessionId);
    return (await this.db.all<KeyRow>(`SELECT ${KEY_COLUMNS} FROM room_key_backup_keys WHERE ${where} ORDER BY room_id, session_id`, ...params)).map(toKey);
  }

  async putKey(userId: string, version: number, key: BackedUpKey): Promise<void> {
    await this.db.run(UPSERT_KEY, userId, version, key.roomId, key.sessionId, key.firstMessageIndex, key.forwardedCount, key.isVerified ? 1 : 0, key.sessionDataJson);
  }

  async deleteKeys(userId: string, version: number, roomId?: string, sessionId?: string): Promise<number> {
    const [where, params] = keyScope(userId, version, roomId, sessionId);
    return (await this.db.run(`DELETE FROM room_key_backup_keys WHERE ${where}`, ...params)).changes;
  }

  async countKeys(userId: string, version: number): Promise<number> {
    return Number((await this.db.get<{ n: number }>("SELECT count(*) AS n FROM room_key_backup_keys WHERE user_id = ? AND version = ?", userId, version))!.n);
  }

  async bumpEtag(userId: string, version: number): Promise<number> {
    return Number((await this.db.get<{ etag: number }>(BUMP, userId, version))!.etag);
  }

  atomically<T>(fn: () => Promise<T>): Promise<T> {
    return this.db.transaction(fn);
  }
}
