// pushers: where each user's notifications are pushed (client-server-api "Push Notifications",
// POST /pushers/set). One row per (user, app_id, pushkey), with the session that set it (the hash
// of its access token, and its device: a password change removes the pushers of the user's other
// tokens, a deleted device takes its pushers along) and how far delivery got: the stream id of the
// last notification the pusher has sent (or given up on).
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const PUSHERS_MIGRATION: Migration = {
  version: 60,
  name: "pushers",
  sqlite: `
    CREATE TABLE pushers (
      user_id TEXT NOT NULL,
      app_id TEXT NOT NULL,
      pushkey TEXT NOT NULL,
      kind TEXT NOT NULL,
      app_display_name TEXT NOT NULL,
      device_display_name TEXT NOT NULL,
      profile_tag TEXT,
      lang TEXT NOT NULL,
      data_json TEXT NOT NULL,
      access_token_hash TEXT,
      device_id TEXT,
      pushkey_ts INTEGER NOT NULL,
      last_notification INTEGER NOT NULL,
      PRIMARY KEY (user_id, app_id, pushkey)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX pushers_app_pushkey ON pushers (app_id, pushkey);
  `,
  postgres: `
    CREATE TABLE pushers (
      user_id TEXT NOT NULL,
      app_id TEXT NOT NULL,
      pushkey TEXT NOT NULL,
      kind TEXT NOT NULL,
      app_display_name TEXT NOT NULL,
      device_display_name TEXT NOT NULL,
      profile_tag TEXT,
      lang TEXT NOT NULL,
      data_json TEXT NOT NULL,
      access_token_hash TEXT,
      device_id TEXT,
      pushkey_ts BIGINT NOT NULL,
      last_notification BIGINT NOT NULL,
      PRIMARY KEY (user_id, app_id, pushkey)
    );
    CREATE INDEX pushers_app_pushkey ON pushers (app_id, pushkey);
  `,
};

export interface PusherRecord {
  readonly userId: string;
  readonly appId: string;
  readonly pushkey: string;
  /** "http" (the only kind Portier delivers). */
  readonly kind: string;
  readonly appDisplayName: string;
  readonly deviceDisplayName: string;
  readonly profileTag: string | undefined;
  readonly lang: string;
  /** The pusher's data object as the client gave it (for http, with its url). */
  readonly data: Record<string, unknown>;
  /** Hash of the access token that set the pusher; undefined when set without one. */
  readonly accessTokenHash: string | undefined;
  /** The device of that access token. */
  readonly deviceId: string | undefined;
  /** When the pushkey was last set, in milliseconds. */
  readonly pushkeyTs: number;
  /** Stream id of the last notification delivered (or given up on); later ones are still due. */
  readonly lastNotification: number;
}

/** The pushers of all users (client-server-api "Pushers"). */
export interface PusherStore {
  pushersOf(userId: string): Promise<PusherRecord[]>;
  /** Every pusher of every user, for the delivery of what is due after a restart. */
  allPushers(): Promise<PusherRecord[]>;
  /** Creates the pusher or replaces its settings; an existing pusher keeps its delivery position. */
  setPusher(pusher: PusherRecord): Promise<void>;
  /** False when there was no such pusher. */
  deletePusher(userId: string, appId: string, pushkey: string): Promise<boolean>;
  /** Deletes the pushers of other users with this app id and pushkey; returns them. */
  deleteOtherUsersPushers(appId: string, pushkey: string, exceptUserId: string): Promise<PusherRecord[]>;
  /** Deletes the user's pushers set by any access token but `keepTokenHash` (all when undefined); returns them. */
  deletePushersExceptToken(userId: string, keepTokenHash: string | undefined): Promise<PusherRecord[]>;
  /** Deletes the pushers a device's sessions set; returns them. */
  deletePushersOfDevice(userId: string, deviceId: string): Promise<PusherRecord[]>;
  /** Moves the pusher's delivery position forward (never back). */
  setLastNotification(userId: string, appId: string, pushkey: string, streamId: number): Promise<void>;
}

const COLUMNS = "user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data_json, access_token_hash, device_id, pushkey_ts, last_notification";
const UPSERT = `INSERT INTO pushers (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (user_id, app_id, pushkey) DO UPDATE SET kind = excluded.kind, app_display_name = excluded.app_display_name,
    device_display_name = excluded.device_display_name, profile_tag = excluded.profile_tag, lang = excluded.lang,
    data_json = excluded.data_json, access_token_hash = excluded.access_token_hash, device_id = excluded.device_id,
    pushkey_ts = excluded.pushkey_ts`;
const SELECT_USER = `SELECT ${COLUMNS} FROM pushers WHERE user_id = ? ORDER BY app_id, pushkey`;
const SELECT_ALL = `SELECT ${COLUMNS} FROM pushers ORDER BY user_id, app_id, pushkey`;
const DELETE_ONE = "DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?";
const DELETE_OTHER_USERS = `DELETE FROM pushers WHERE app_id = ? AND pushkey = ? AND user_id <> ? RETURNING ${COLUMNS}`;
const DELETE_EXCEPT_TOKEN = `DELETE FROM pushers WHERE user_id = ? AND (access_token_hash IS NULL OR access_token_hash <> ?) RETURNING ${COLUMNS}`;
const DELETE_ALL_OF_USER = `DELETE FROM pushers WHERE user_id = ? RETURNING ${COLUMNS}`;
const DELETE_OF_DEVICE = `DELETE FROM pushers WHERE user_id = ? AND device_id = ? RETURNING ${COLUMNS}`;
const ADVANCE = "UPDATE pushers SET last_notification = ? WHERE user_id = ? AND app_id = ? AND pushkey = ? AND last_notification < ?";

interface Row {
  user_id: string;
  app_id: string;
  pushkey: string;
  kind: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  data_json: string;
  access_token_hash: string | null;
  device_id: string | null;
  pushkey_ts: number;
  last_notification: number;
}

const toRecord = (r: Row): PusherRecord => ({
  userId: r.user_id,
  appId: r.app_id,
  pushkey: r.pushkey,
  kind: r.kind,
  appDisplayName: r.app_display_name,
  deviceDisplayName: r.device_display_name,
  profileTag: r.profile_tag ?? undefined,
  lang: r.lang,
  data: JSON.parse(r.data_json),
  accessTokenHash: r.access_token_hash ?? undefined,
  deviceId: r.device_id ?? undefined,
  pushkeyTs: Number(r.pushkey_ts),
  lastNotification: Number(r.last_notification),
});

export class SqlPusherStore implements PusherStore {
  constructor(private readonly db: Database) {}

  async pushersOf(userId: string): Promise<PusherRecord[]> {
    return (await this.db.all<Row>(SELECT_USER, userId)).map(toRecord);
  }

  async allPushers(): Promise<PusherRecord[]> {
    return (await this.db.all<Row>(SELECT_ALL)).map(toRecord);
  }

  async setPusher(p: PusherRecord): Promise<void> {
    await this.db.run(UPSERT, p.userId, p.appId, p.pushkey, p.kind, p.appDisplayName, p.deviceDisplayName, p.profileTag ?? null, p.lang, JSON.stringify(p.data), p.accessTokenHash ?? null, p.deviceId ?? null, p.pushkeyTs, p.lastNotification);
  }

  async deletePusher(userId: string, appId: string, pushkey: string): Promise<boolean> {
    return (await this.db.run(DELETE_ONE, userId, appId, pushkey)).changes > 0;
  }

  async deleteOtherUsersPushers(appId: string, pushkey: string, exceptUserId: string): Promise<PusherRecord[]> {
    return (await this.db.all<Row>(DELETE_OTHER_USERS, appId, pushkey, exceptUserId)).map(toRecord);
  }

  async deletePushersExceptToken(userId: string, keepTokenHash: string | undefined): Promise<PusherRecord[]> {
    const rows = keepTokenHash === undefined ? await this.db.all<Row>(DELETE_ALL_OF_USER, userId) : await this.db.all<Row>(DELETE_EXCEPT_TOKEN, userId, keepTokenHash);
    return rows.map(toRecord);
  }

  async deletePushersOfDevice(userId: string, deviceId: string): Promise<PusherRecord[]> {
    return (await this.db.all<Row>(DELETE_OF_DEVICE, userId, deviceId)).map(toRecord);
  }

  async setLastNotification(userId: string, appId: string, pushkey: string, streamId: number): Promise<void> {
    await this.db.run(ADVANCE, streamId, userId, appId, pushkey, streamId);
  }
}
