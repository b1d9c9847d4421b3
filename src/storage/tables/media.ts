// media and media_thumbnails: the content repository's metadata (client-server-api "Content
// repository"). The bytes live in files under data_dir/media named by their SHA-256 (content
// addressed, so two uploads of the same file share one); these tables say which mxc:// URI has which
// content. A row of our own server is an upload, or an id made by POST /create still waiting for its
// content (sha256 NULL until then); a row of another server is remote media we fetched and cached.
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const MEDIA_MIGRATION: Migration = {
  version: 58,
  name: "media",
  sqlite: `
    CREATE TABLE media (
      server_name TEXT NOT NULL,
      media_id TEXT NOT NULL,
      user_id TEXT,
      created_ts INTEGER NOT NULL,
      unused_expires_ts INTEGER,
      content_type TEXT,
      upload_name TEXT,
      size INTEGER,
      sha256 TEXT,
      uploaded_ts INTEGER,
      PRIMARY KEY (server_name, media_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX media_pending_by_user ON media (user_id, unused_expires_ts) WHERE sha256 IS NULL;
  `,
  postgres: `
    CREATE TABLE media (
      server_name TEXT NOT NULL,
      media_id TEXT NOT NULL,
      user_id TEXT,
      created_ts BIGINT NOT NULL,
      unused_expires_ts BIGINT,
      content_type TEXT,
      upload_name TEXT,
      size BIGINT,
      sha256 TEXT,
      uploaded_ts BIGINT,
      PRIMARY KEY (server_name, media_id)
    );
    CREATE INDEX media_pending_by_user ON media (user_id, unused_expires_ts) WHERE sha256 IS NULL;
  `,
};

export const MEDIA_THUMBNAILS_MIGRATION: Migration = {
  version: 59,
  name: "media_thumbnails",
  // Keyed by the size and method a thumbnail was made for (not its exact pixel size): that is what a
  // later request for the same thumbnail looks up.
  sqlite: `
    CREATE TABLE media_thumbnails (
      server_name TEXT NOT NULL,
      media_id TEXT NOT NULL,
      width INTEGER NOT NULL,
      height INTEGER NOT NULL,
      method TEXT NOT NULL,
      content_type TEXT NOT NULL,
      size INTEGER NOT NULL,
      sha256 TEXT NOT NULL,
      created_ts INTEGER NOT NULL,
      PRIMARY KEY (server_name, media_id, width, height, method)
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE media_thumbnails (
      server_name TEXT NOT NULL,
      media_id TEXT NOT NULL,
      width BIGINT NOT NULL,
      height BIGINT NOT NULL,
      method TEXT NOT NULL,
      content_type TEXT NOT NULL,
      size BIGINT NOT NULL,
      sha256 TEXT NOT NULL,
      created_ts BIGINT NOT NULL,
      PRIMARY KEY (server_name, media_id, width, height, method)
    );
  `,
};

/** The content of a media id: what was uploaded (or fetched from its server). */
export interface MediaContent {
  /** As the uploader gave it (Content-Type header); undefined when none was given. */
  readonly contentType: string | undefined;
  /** The `filename` of the upload; undefined when none was given. */
  readonly uploadName: string | undefined;
  readonly size: number;
  /** Lower-case hex SHA-256 of the bytes: the name of the file that holds them. */
  readonly sha256: string;
  readonly uploadedTs: number;
}

export interface MediaRecord {
  readonly serverName: string;
  readonly mediaId: string;
  /** Who uploaded (or created) it; undefined for remote media. */
  readonly userId: string | undefined;
  readonly createdTs: number;
  /** For an id made by POST /create: until when its content may be uploaded. */
  readonly unusedExpiresTs: number | undefined;
  /** Undefined while a created id waits for its upload. */
  readonly content: MediaContent | undefined;
}

export interface ThumbnailRecord {
  readonly serverName: string;
  readonly mediaId: string;
  readonly width: number;
  readonly height: number;
  readonly method: "crop" | "scale";
  readonly contentType: string;
  readonly size: number;
  readonly sha256: string;
  readonly createdTs: number;
}

export interface MediaStore {
  /**
   * Records a media id: with content (an upload, or remote media fetched into the cache) or without
   * (POST /create). False when the id exists already.
   */
  insertMedia(record: MediaRecord): Promise<boolean>;
  getMedia(serverName: string, mediaId: string): Promise<MediaRecord | undefined>;
  /** Ids a user created that have no content yet and have not expired at `now`. */
  countPendingUploads(userId: string, now: number): Promise<number>;
  /** Gives a created id its content; false when it has content already (nothing changes then). */
  completeUpload(serverName: string, mediaId: string, content: MediaContent): Promise<boolean>;
  /** Replaces cached remote media (fetched again), or records it. */
  putRemoteMedia(serverName: string, mediaId: string, content: MediaContent): Promise<void>;
  getThumbnail(serverName: string, mediaId: string, width: number, height: number, method: "crop" | "scale"): Promise<ThumbnailRecord | undefined>;
  /** Records a generated thumbnail; one made at the same time by another request is kept instead. */
  putThumbnail(record: ThumbnailRecord): Promise<void>;
}

const COLUMNS = "server_name, media_id, user_id, created_ts, unused_expires_ts, content_type, upload_name, size, sha256, uploaded_ts";
const INSERT = `INSERT INTO media (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (server_name, media_id) DO NOTHING`;
const SELECT = `SELECT ${COLUMNS} FROM media WHERE server_name = ? AND media_id = ?`;
const COUNT_PENDING = "SELECT count(*) AS n FROM media WHERE user_id = ? AND sha256 IS NULL AND unused_expires_ts > ?";
const COMPLETE = `UPDATE media SET content_type = ?, upload_name = ?, size = ?, sha256 = ?, uploaded_ts = ?
  WHERE server_name = ? AND media_id = ? AND sha256 IS NULL`;
const PUT_REMOTE = `INSERT INTO media (${COLUMNS}) VALUES (?, ?, NULL, ?, NULL, ?, ?, ?, ?, ?)
  ON CONFLICT (server_name, media_id) DO UPDATE SET content_type = excluded.content_type, upload_name = excluded.upload_name,
    size = excluded.size, sha256 = excluded.sha256, uploaded_ts = excluded.uploaded_ts`;
const THUMB_COLUMNS = "server_name, media_id, width, height, method, content_type, size, sha256, created_ts";
const SELECT_THUMB = `SELECT ${THUMB_COLUMNS} FROM media_thumbnails WHERE server_name = ? AND media_id = ? AND width = ? AND height = ? AND method = ?`;
const INSERT_THUMB = `INSERT INTO media_thumbnails (${THUMB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (server_name, media_id, width, height, method) DO NOTHING`;

interface MediaRow {
  server_name: string;
  media_id: string;
  user_id: string | null;
  created_ts: number | bigint;
  unused_expires_ts: number | bigint | null;
  content_type: string | null;
  upload_name: string | null;
  size: number | bigint | null;
  sha256: string | null;
  uploaded_ts: number | bigint | null;
}

interface ThumbnailRow {
  server_name: string;
  media_id: string;
  width: number | bigint;
  height: number | bigint;
  method: string;
  content_type: string;
  size: number | bigint;
  sha256: string;
  created_ts: number | bigint;
}

const num = (value: number | bigint): number => Number(value);
const optionalNum = (value: number | bigint | null): number | undefined => (value === null ? undefined : Number(value));

function toRecord(row: MediaRow): MediaRecord {
  return {
    serverName: row.server_name,
    mediaId: row.media_id,
    userId: row.user_id ?? undefined,
    createdTs: num(row.created_ts),
    unusedExpiresTs: optionalNum(row.unused_expires_ts),
    content:
      row.sha256 === null
        ? undefined
        : {
            contentType: row.content_type ?? undefined,
            uploadName: row.upload_name ?? undefined,
            size: num(row.size ?? 0),
            sha256: row.sha256,
            uploadedTs: num(row.uploaded_ts ?? row.created_ts),
          },
  };
}

export class SqlMediaStore implements MediaStore {
  constructor(private readonly db: Database) {}

  async insertMedia(record: MediaRecord): Promise<boolean> {
    const c = record.content;
    const result = await this.db.run(
      INSERT,
      record.serverName,
      record.mediaId,
      record.userId ?? null,
      record.createdTs,
      record.unusedExpiresTs ?? null,
      c?.contentType ?? null,
      c?.uploadName ?? null,
      c?.size ?? null,
      c?.sha256 ?? null,
      c?.uploadedTs ?? null,
    );
    return result.changes > 0;
  }

  async getMedia(serverName: string, mediaId: string): Promise<MediaRecord | undefined> {
    const row = await this.db.get<MediaRow>(SELECT, serverName, mediaId);
    return row === undefined ? undefined : toRecord(row);
  }

  async countPendingUploads(userId: string, now: number): Promise<number> {
    return Number((await this.db.get<{ n: number | bigint }>(COUNT_PENDING, userId, now))?.n ?? 0);
  }

  async completeUpload(serverName: string, mediaId: string, content: MediaContent): Promise<boolean> {
    const result = await this.db.run(COMPLETE, content.contentType ?? null, content.uploadName ?? null, content.size, content.sha256, content.uploadedTs, serverName, mediaId);
    return result.changes > 0;
  }

  async putRemoteMedia(serverName: string, mediaId: string, content: MediaContent): Promise<void> {
    await this.db.run(PUT_REMOTE, serverName, mediaId, content.uploadedTs, content.contentType ?? null, content.uploadName ?? null, content.size, content.sha256, content.uploadedTs);
  }

  async getThumbnail(serverName: string, mediaId: string, width: number, height: number, method: "crop" | "scale"): Promise<ThumbnailRecord | undefined> {
    const row = await this.db.get<ThumbnailRow>(SELECT_THUMB, serverName, mediaId, width, height, method);
    if (row === undefined) return undefined;
    return {
      serverName: row.server_name,
      mediaId: row.media_id,
      width: num(row.width),
      height: num(row.height),
      method: row.method === "crop" ? "crop" : "scale",
      contentType: row.content_type,
      size: num(row.size),
      sha256: row.sha256,
      createdTs: num(row.created_ts),
    };
  }

  async putThumbnail(record: ThumbnailRecord): Promise<void> {
    await this.db.run(INSERT_THUMB, record.serverName, record.mediaId, record.width, record.height, record.method, record.contentType, record.size, record.sha256, record.createdTs);
  }
}
