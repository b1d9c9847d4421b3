// Server-side key backups (client-server-api "Server-side key backups", key_backup.yaml): backup
// versions with their auth_data, and the encrypted room keys stored in them. The server never
// reads session_data; it keeps, per session, the better of two keys by the spec's rule.
//
// Versions are numbers handed out in order (as strings on the wire, as Synapse does); keys can only
// be written to the latest version. Every change of a version's keys moves its etag on, so clients
// can tell whether anything changed without downloading the keys.
import { MatrixError } from "../../protocol/errors";
import type { JsonObject } from "../../protocol/json";
import type { BackedUpKey, BackupVersion, KeyBackupStore } from "../../storage/stores";

/** KeyBackupData (definitions/key_backup_data.yaml). */
export interface KeyBackupData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: JsonObject;
}

export interface BackupVersionInfo {
  algorithm: string;
  auth_data: JsonObject;
  count: number;
  etag: string;
  version: string;
}

export type BackupKeys = Readonly<Record<string, Readonly<Record<string, KeyBackupData>>>>;

const noBackup = (version?: string) => new MatrixError("M_NOT_FOUND", version === undefined ? "No current backup version" : `Unknown backup version ${version}`);

/** A version string of ours: a positive integer; anything else names no backup. */
function versionNumber(version: string): number | undefined {
  return /^[1-9]\d{0,14}$/.test(version) ? Number(version) : undefined;
}

/**
 * Whether `candidate` replaces `existing` (the spec's rule): the verified one wins; then the lower
 * first_message_index; then the lower forwarded_count. A tie keeps the existing key.
 */
export function replacesBackedUpKey(candidate: Pick<BackedUpKey, "isVerified" | "firstMessageIndex" | "forwardedCount">, existing: Pick<BackedUpKey, "isVerified" | "firstMessageIndex" | "forwardedCount">): boolean {
  if (candidate.isVerified !== existing.isVerified) return candidate.isVerified;
  if (candidate.firstMessageIndex !== existing.firstMessageIndex) return candidate.firstMessageIndex < existing.firstMessageIndex;
  return candidate.forwardedCount < existing.forwardedCount;
}

export class KeyBackupService {
  constructor(private readonly store: KeyBackupStore) {}

  async createVersion(userId: string, algorithm: string, authData: JsonObject): Promise<{ version: string }> {
    return { version: String(await this.store.createVersion(userId, algorithm, JSON.stringify(authData))) };
  }

  /** The latest version (undefined) or the one named; 404 M_NOT_FOUND when there is none. */
  async version(userId: string, version?: string): Promise<BackupVersionInfo> {
    const found = await this.find(userId, version);
    return {
      algorithm: found.algorithm,
      auth_data: JSON.parse(found.authDataJson) as JsonObject,
      count: await this.store.countKeys(userId, found.version),
      etag: String(found.etag),
      version: String(found.version),
    };
  }

  /** PUT /room_keys/version/{version}: new auth_data; the algorithm cannot change, and a `version` in the body must be the path's. */
  async updateVersion(userId: string, version: string, body: { algorithm: string; auth_data: JsonObject; version?: string }): Promise<void> {
    const found = await this.find(userId, version);
    if (body.version !== undefined && body.version !== version) throw new MatrixError("M_INVALID_PARAM", "The version in the body does not match the version in the path");
    if (body.algorithm !== found.algorithm) throw new MatrixError("M_INVALID_PARAM", "Algorithm does not match");
    if (!(await this.store.updateVersion(userId, found.version, JSON.stringify(body.auth_data)))) throw noBackup(version);
  }

  async deleteVersion(userId: string, version: string): Promise<void> {
    const number = versionNumber(version);
    if (number === undefined || !(await this.store.deleteVersion(userId, number))) throw noBackup(version);
  }

  /**
   * PUT /room_keys/keys (and the per-room and per-session forms): keys go only into the latest
   * version (403 M_WRONG_ROOM_KEYS_VERSION with current_version otherwise; 404 when the version
   * named does not exist). Each key replaces a stored one only when it is better by the spec's rule.
   * The version is checked in the transaction that writes: a version deleted or superseded meanwhile
   * takes no keys.
   */
  async putKeys(userId: string, version: string, rooms: BackupKeys): Promise<{ etag: string; count: number }> {
    const number = versionNumber(version);
    if (number === undefined) throw noBackup(version);
    return this.store.atomically(async () => {
      const current = await this.store.version(userId);
      if (!current) throw noBackup(version);
      if (number !== current.version) {
        if (!(await this.store.version(userId, number))) throw noBackup(version);
        throw new MatrixError("M_WRONG_ROOM_KEYS_VERSION", "Wrong backup version.", 403, { current_version: String(current.version) });
      }
      let changed = false;
      for (const [roomId, sessions] of Object.entries(rooms)) {
        for (const [sessionId, data] of Object.entries(sessions)) {
          const candidate: BackedUpKey = {
            roomId,
            sessionId,
            firstMessageIndex: data.first_message_index,
            forwardedCount: data.forwarded_count,
            isVerified: data.is_verified,
            sessionDataJson: JSON.stringify(data.session_data),
          };
          const [existing] = await this.store.keys(userId, current.version, roomId, sessionId);
          if (existing && !replacesBackedUpKey(candidate, existing)) continue;
          await this.store.putKey(userId, current.version, candidate);
          changed = true;
        }
      }
      const etag = changed ? await this.store.bumpEtag(userId, current.version) : current.etag;
      return { etag: String(etag), count: await this.store.countKeys(userId, current.version) };
    });
  }

  /** GET /room_keys/keys: every room's sessions. */
  async allKeys(userId: string, version: string): Promise<{ rooms: Record<string, { sessions: Record<string, KeyBackupData> }> }> {
    const found = await this.find(userId, version);
    const rooms: Record<string, { sessions: Record<string, KeyBackupData> }> = {};
    for (const key of await this.store.keys(userId, found.version)) (rooms[key.roomId] ??= { sessions: {} }).sessions[key.sessionId] = keyData(key);
    return { rooms };
  }

  /** GET /room_keys/keys/{roomId}: `{sessions: {}}` when the room has none. */
  async roomKeys(userId: string, version: string, roomId: string): Promise<{ sessions: Record<string, KeyBackupData> }> {
    const found = await this.find(userId, version);
    const sessions: Record<string, KeyBackupData> = {};
    for (const key of await this.store.keys(userId, found.version, roomId)) sessions[key.sessionId] = keyData(key);
    return { sessions };
  }

  /** GET /room_keys/keys/{roomId}/{sessionId}: 404 M_NOT_FOUND when the key or the backup is not there. */
  async sessionKey(userId: string, version: string, roomId: string, sessionId: string): Promise<KeyBackupData> {
    const found = await this.find(userId, version);
    const [key] = await this.store.keys(userId, found.version, roomId, sessionId);
    if (!key) throw new MatrixError("M_NOT_FOUND", "Key not found.");
    return keyData(key);
  }

  /** DELETE /room_keys/keys (of one room, or one session): from the version named, which must exist. */
  async deleteKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<{ etag: string; count: number }> {
    return this.store.atomically(async () => {
      const found = await this.find(userId, version);
      const deleted = await this.store.deleteKeys(userId, found.version, roomId, sessionId);
      const etag = deleted > 0 ? await this.store.bumpEtag(userId, found.version) : found.etag;
      return { etag: String(etag), count: await this.store.countKeys(userId, found.version) };
    });
  }

  private async find(userId: string, version: string | undefined): Promise<BackupVersion> {
    if (version === undefined) {
      const latest = await this.store.version(userId);
      if (!latest) throw noBackup();
      return latest;
    }
    const number = versionNumber(version);
    const found = number === undefined ? undefined : await this.store.version(userId, number);
    if (!found) throw noBackup(version);
    return found;
  }
}

function keyData(key: BackedUpKey): KeyBackupData {
  return {
    first_message_index: key.firstMessageIndex,
    forwarded_count: key.forwardedCount,
    is_verified: key.isVerified,
    session_data: JSON.parse(key.sessionDataJson) as JsonObject,
  };
}
