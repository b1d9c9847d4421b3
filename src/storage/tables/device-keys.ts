// device_keys: each device's signed identity keys as uploaded by /keys/upload (client-server-api
// "End-to-End Encryption": device_keys.yaml), kept as the JSON text the client sent.
//
// device_list_changes: the device list stream. Every change of a user's devices or keys (a device's
// keys uploaded or changed, a device deleted, cross-signing keys replaced, a signature added, an
// m.device_list_update from another server) takes a position; /sync and /keys/changes list the
// users changed between two positions. `observer` is '' for a change everyone sharing a room with
// the user may learn of, or the one user it concerns (their signature on another user's master key,
// which only they can see). Never NULL: unique keys on PostgreSQL never match NULLs.
//
// remote_device_lists, remote_devices (migration 97): the copy of other servers' users' device lists
// (server-server-api "Device Management"), kept for users sharing a room with one of ours: the
// stream_id it is current to (matched against prev_id of the next m.device_list_update), the user's
// master and self-signing keys, and each device's keys and name. A user without a row is not
// tracked: /keys/query fetches the list again.
//
// device_list_sent: the stream_id of the last m.device_list_update sent about each of our users,
// which the next one names as its prev_id.
//
// e2ee_stream: the one counter behind device list changes and to-device messages (to-device.ts).
// A counter rather than max + 1 over the rows: delivered to-device messages are deleted, and a
// position handed out again after a deletion would be taken as already acknowledged.
import type { Database } from "../database";
import type { Migration } from "../migrations";
import { inLists, insertBatches, placeholders, valueRows } from "../sql-lists";

export const DEVICE_KEYS_MIGRATION: Migration = {
  version: 53,
  name: "device_keys",
  sqlite: `
    CREATE TABLE device_keys (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      key_json TEXT NOT NULL,
      PRIMARY KEY (user_id, device_id)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE device_list_changes (
      position INTEGER NOT NULL,
      user_id TEXT NOT NULL,
      observer TEXT NOT NULL,
      PRIMARY KEY (position, user_id, observer)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX device_list_changes_user ON device_list_changes (user_id, position);
    CREATE TABLE e2ee_stream (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      position INTEGER NOT NULL
    ) STRICT;
  `,
  postgres: `
    CREATE TABLE device_keys (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      key_json TEXT NOT NULL,
      PRIMARY KEY (user_id, device_id)
    );
    CREATE TABLE device_list_changes (
      position BIGINT NOT NULL,
      user_id TEXT NOT NULL,
      observer TEXT NOT NULL,
      PRIMARY KEY (position, user_id, observer)
    );
    CREATE INDEX device_list_changes_user ON device_list_changes (user_id, position);
    CREATE TABLE e2ee_stream (
      id BIGINT PRIMARY KEY CHECK (id = 1),
      position BIGINT NOT NULL
    );
  `,
};

export const REMOTE_DEVICE_LISTS_MIGRATION: Migration = {
  version: 97,
  name: "remote_device_lists",
  sqlite: `
    CREATE TABLE remote_device_lists (
      user_id TEXT PRIMARY KEY,
      stream_id INTEGER NOT NULL,
      master_json TEXT,
      self_signing_json TEXT
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE remote_devices (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      keys_json TEXT NOT NULL,
      display_name TEXT,
      PRIMARY KEY (user_id, device_id)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE device_list_sent (
      user_id TEXT PRIMARY KEY,
      stream_id INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE remote_device_lists (
      user_id TEXT PRIMARY KEY,
      stream_id BIGINT NOT NULL,
      master_json TEXT,
      self_signing_json TEXT
    );
    CREATE TABLE remote_devices (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      keys_json TEXT NOT NULL,
      display_name TEXT,
      PRIMARY KEY (user_id, device_id)
    );
    CREATE TABLE device_list_sent (
      user_id TEXT PRIMARY KEY,
      stream_id BIGINT NOT NULL
    );
  `,
};

/** A device of another server's user as we hold it. */
export interface RemoteDevice {
  readonly deviceId: string;
  readonly keysJson: string;
  readonly displayName?: string;
}

/** Another server's user's device list as we hold it. */
export interface RemoteDeviceList {
  readonly streamId: number;
  readonly masterJson?: string;
  readonly selfSigningJson?: string;
  readonly devices: readonly RemoteDevice[];
}

/** One user whose device list changed, for everyone sharing a room (observer undefined) or for one observer. */
export interface DeviceListChange {
  readonly userId: string;
  readonly observer: string | undefined;
  readonly position: number;
}

/** Device identity keys, the device list stream and the e2ee stream counter. */
export interface DeviceKeyStore {
  /** Device ID -> the signed device keys (JSON text); only `deviceIds` when given and not empty. */
  deviceKeys(userId: string, deviceIds?: readonly string[]): Promise<Map<string, string>>;
  /** Stores (or replaces) a device's keys. */
  putDeviceKeys(userId: string, deviceId: string, keyJson: string): Promise<void>;
  /** False when the device had no keys. */
  deleteDeviceKeys(userId: string, deviceId: string): Promise<boolean>;
  /** Takes `count` positions of the e2ee stream at once and returns the last (the first is last - count + 1). */
  takePositions(count: number): Promise<number>;
  /** The e2ee stream's current end (0 when nothing was written). */
  currentPosition(): Promise<number>;
  /** Records that the users' device lists changed (for `observer` only, when given); returns the position taken. */
  recordDeviceListChange(userIds: readonly string[], observer?: string): Promise<number>;
  /** Changes in (fromExclusive, toInclusive] that everyone or `observer` may see; one entry per (user, observer), the latest. */
  deviceListChanges(fromExclusive: number, toInclusive: number, observer: string): Promise<DeviceListChange[]>;
  /** The position of the user's latest public device list change (0 when none): stream_id over federation. */
  lastDeviceListChange(userId: string): Promise<number>;
  /**
   * Users with a member event in the given rooms whose stream ordering is in (fromExclusive,
   * toInclusive]: room ID -> those users. Read from the room event table (its events_room_stream
   * index), so /sync learns who joined or left without reading the events themselves.
   */
  memberChangesBetween(roomIds: readonly string[], fromExclusive: number, toInclusive: number): Promise<Map<string, Set<string>>>;
  /** The copy of a remote user's device list, undefined when the user is not tracked. */
  remoteDeviceList(userId: string): Promise<RemoteDeviceList | undefined>;
  /** Replaces the copy of a remote user's device list whole (after a resync). */
  replaceRemoteDeviceList(userId: string, list: RemoteDeviceList): Promise<void>;
  /** Applies one m.device_list_update to a tracked user's copy: the device replaced (or deleted) and the stream_id moved on. */
  updateRemoteDevice(userId: string, streamId: number, deviceId: string, device: { deleted: true } | { deleted: false; keysJson: string; displayName?: string }): Promise<void>;
  /** Replaces the cross-signing keys of a tracked user's copy (an m.signing_key_update); a key left undefined is kept. */
  updateRemoteCrossSigning(userId: string, masterJson: string | undefined, selfSigningJson: string | undefined): Promise<void>;
  /** Stops tracking a remote user: their copy is dropped. */
  forgetRemoteDeviceList(userId: string): Promise<void>;
  /** Those of the users whose device list is held (tracked). */
  trackedRemoteUsers(userIds: readonly string[]): Promise<Set<string>>;
  /** Records `streamId` as the last m.device_list_update sent about a local user; returns the one before (undefined when none). */
  takeSentStreamId(userId: string, streamId: number): Promise<number | undefined>;
  /** The stream_id of the last m.device_list_update sent about a local user (undefined when none). */
  lastSentStreamId(userId: string): Promise<number | undefined>;
  /** Runs fn in one transaction with every store write it makes. */
  atomically<T>(fn: () => Promise<T>): Promise<T>;
}

const SELECT_ALL = "SELECT device_id, key_json FROM device_keys WHERE user_id = ?";
const UPSERT = `INSERT INTO device_keys (user_id, device_id, key_json) VALUES (?, ?, ?)
  ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json`;
const DELETE = "DELETE FROM device_keys WHERE user_id = ? AND device_id = ?";
// The one row is written by the first use, not by the migration: migrate-db copies into a database
// with no rows at all.
const TAKE = `INSERT INTO e2ee_stream (id, position) VALUES (1, ?)
  ON CONFLICT (id) DO UPDATE SET position = e2ee_stream.position + excluded.position RETURNING position`;
const CURRENT = "SELECT COALESCE(max(position), 0) AS position FROM e2ee_stream";
const CHANGES = `SELECT user_id, observer, max(position) AS position FROM device_list_changes
  WHERE position > ? AND position <= ? AND (observer = '' OR observer = ?) GROUP BY user_id, observer`;
const LAST_CHANGE = "SELECT COALESCE(max(position), 0) AS m FROM device_list_changes WHERE user_id = ? AND observer = ''";

export class SqlDeviceKeyStore implements DeviceKeyStore {
  constructor(private readonly db: Database) {}

  async deviceKeys(userId: string, deviceIds?: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (deviceIds === undefined || deviceIds.length === 0) {
      for (const r of await this.db.all<{ device_id: string; key_json: string }>(SELECT_ALL, userId)) out.set(r.device_id, r.key_json);
      return out;
    }
    for (const list of inLists([...new Set(deviceIds)])) {
      const rows = await this.db.all<{ device_id: string; key_json: string }>(
        `SELECT device_id, key_json FROM device_keys WHERE user_id = ? AND device_id IN (${placeholders(list.length)})`,
        userId,
        ...list,
      );
      for (const r of rows) out.set(r.device_id, r.key_json);
    }
    return out;
  }

  async putDeviceKeys(userId: string, deviceId: string, keyJson: string): Promise<void> {
    await this.db.run(UPSERT, userId, deviceId, keyJson);
  }

  async deleteDeviceKeys(userId: string, deviceId: string): Promise<boolean> {
    return (await this.db.run(DELETE, userId, deviceId)).changes > 0;
  }

  async takePositions(count: number): Promise<number> {
    return Number((await this.db.get<{ position: number }>(TAKE, count))!.position);
  }

  async currentPosition(): Promise<number> {
    return Number((await this.db.get<{ position: number }>(CURRENT))!.position);
  }

  async recordDeviceListChange(userIds: readonly string[], observer?: string): Promise<number> {
    const users = [...new Set(userIds)];
    return this.db.transaction(async () => {
      const position = await this.takePositions(1);
      for (const batch of insertBatches(users)) {
        await this.db.run(
          `INSERT INTO device_list_changes (position, user_id, observer) VALUES ${valueRows(batch.length, 3)} ON CONFLICT DO NOTHING`,
          ...batch.flatMap((u) => [position, u, observer ?? ""]),
        );
      }
      return position;
    });
  }

  async deviceListChanges(fromExclusive: number, toInclusive: number, observer: string): Promise<DeviceListChange[]> {
    if (toInclusive <= fromExclusive) return [];
    const rows = await this.db.all<{ user_id: string; observer: string; position: number }>(CHANGES, fromExclusive, toInclusive, observer);
    return rows.map((r) => ({ userId: r.user_id, observer: r.observer === "" ? undefined : r.observer, position: Number(r.position) }));
  }

  async lastDeviceListChange(userId: string): Promise<number> {
    return Number((await this.db.get<{ m: number }>(LAST_CHANGE, userId))!.m);
  }

  async memberChangesBetween(roomIds: readonly string[], fromExclusive: number, toInclusive: number): Promise<Map<string, Set<string>>> {
    const out = new Map<string, Set<string>>();
    if (roomIds.length === 0 || toInclusive <= fromExclusive) return out;
    for (const list of inLists([...new Set(roomIds)])) {
      const rows = await this.db.all<{ room_id: string; state_key: string }>(
        `SELECT DISTINCT room_id, state_key FROM events WHERE room_id IN (${placeholders(list.length)})
           AND stream_ordering > ? AND stream_ordering <= ? AND type = 'm.room.member' AND state_key IS NOT NULL`,
        ...list,
        fromExclusive,
        toInclusive,
      );
      for (const r of rows) {
        let users = out.get(r.room_id);
        if (!users) out.set(r.room_id, (users = new Set()));
        users.add(r.state_key);
      }
    }
    return out;
  }

  async remoteDeviceList(userId: string): Promise<RemoteDeviceList | undefined> {
    const head = await this.db.get<{ stream_id: number; master_json: string | null; self_signing_json: string | null }>(
      "SELECT stream_id, master_json, self_signing_json FROM remote_device_lists WHERE user_id = ?",
      userId,
    );
    if (!head) return undefined;
    const rows = await this.db.all<{ device_id: string; keys_json: string; display_name: string | null }>(
      "SELECT device_id, keys_json, display_name FROM remote_devices WHERE user_id = ? ORDER BY device_id",
      userId,
    );
    return {
      streamId: Number(head.stream_id),
      ...(head.master_json !== null ? { masterJson: head.master_json } : {}),
      ...(head.self_signing_json !== null ? { selfSigningJson: head.self_signing_json } : {}),
      devices: rows.map((r) => ({ deviceId: r.device_id, keysJson: r.keys_json, ...(r.display_name !== null ? { displayName: r.display_name } : {}) })),
    };
  }

  async replaceRemoteDeviceList(userId: string, list: RemoteDeviceList): Promise<void> {
    await this.db.transaction(async () => {
      await this.db.run(
        `INSERT INTO remote_device_lists (user_id, stream_id, master_json, self_signing_json) VALUES (?, ?, ?, ?)
          ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id, master_json = excluded.master_json, self_signing_json = excluded.self_signing_json`,
        userId,
        list.streamId,
        list.masterJson ?? null,
        list.selfSigningJson ?? null,
      );
      await this.db.run("DELETE FROM remote_devices WHERE user_id = ?", userId);
      for (const batch of insertBatches(list.devices)) {
        await this.db.run(
          `INSERT INTO remote_devices (user_id, device_id, keys_json, display_name) VALUES ${valueRows(batch.length, 4)} ON CONFLICT DO NOTHING`,
          ...batch.flatMap((d) => [userId, d.deviceId, d.keysJson, d.displayName ?? null]),
        );
      }
    });
  }

  async updateRemoteDevice(userId: string, streamId: number, deviceId: string, device: { deleted: true } | { deleted: false; keysJson: string; displayName?: string }): Promise<void> {
    await this.db.transaction(async () => {
      await this.db.run("UPDATE remote_device_lists SET stream_id = ? WHERE user_id = ?", streamId, userId);
      if (device.deleted) await this.db.run("DELETE FROM remote_devices WHERE user_id = ? AND device_id = ?", userId, deviceId);
      else {
        await this.db.run(
          `INSERT INTO remote_devices (user_id, device_id, keys_json, display_name) VALUES (?, ?, ?, ?)
            ON CONFLICT (user_id, device_id) DO UPDATE SET keys_json = excluded.keys_json, display_name = excluded.display_name`,
          userId,
          deviceId,
          device.keysJson,
          device.displayName ?? null,
        );
      }
    });
  }

  async updateRemoteCrossSigning(userId: string, masterJson: string | undefined, selfSigningJson: string | undefined): Promise<void> {
    await this.db.run(
      "UPDATE remote_device_lists SET master_json = COALESCE(?, master_json), self_signing_json = COALESCE(?, self_signing_json) WHERE user_id = ?",
      masterJson ?? null,
      selfSigningJson ?? null,
      userId,
    );
  }

  async forgetRemoteDeviceList(userId: string): Promise<void> {
    await this.db.transaction(async () => {
      await this.db.run("DELETE FROM remote_devices WHERE user_id = ?", userId);
      await this.db.run("DELETE FROM remote_device_lists WHERE user_id = ?", userId);
    });
  }

  async trackedRemoteUsers(userIds: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (const list of inLists([...new Set(userIds)])) {
      const rows = await this.db.all<{ user_id: string }>(`SELECT user_id FROM remote_device_lists WHERE user_id IN (${placeholders(list.length)})`, ...list);
      for (const r of rows) out.add(r.user_id);
    }
    return out;
  }

  async lastSentStreamId(userId: string): Promise<number | undefined> {
    const row = await this.db.get<{ stream_id: number }>("SELECT stream_id FROM device_list_sent WHERE user_id = ?", userId);
    return row === undefined ? undefined : Number(row.stream_id);
  }

  async takeSentStreamId(userId: string, streamId: number): Promise<number | undefined> {
    return this.db.transaction(async () => {
      const before = await this.db.get<{ stream_id: number }>("SELECT stream_id FROM device_list_sent WHERE user_id = ?", userId);
      await this.db.run(
        "INSERT INTO device_list_sent (user_id, stream_id) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id",
        userId,
        streamId,
      );
      return before === undefined ? undefined : Number(before.stream_id);
    });
  }

  atomically<T>(fn: () => Promise<T>): Promise<T> {
    return this.db.transaction(fn);
  }
}
