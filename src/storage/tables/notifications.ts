// notifications: the events each user's push rules said to notify about (GET /notifications, the
// unread counts of /sync, and what pushers deliver), one row per (user, event). Every row takes the
// next position of one server-wide stream (max + 1; transactions run one at a time, database.ts),
// so a pusher that has delivered up to position N has seen every row at or below N.
//
// notification_read_marks: how far a user has read in a room by other means than a receipt — their
// own events (sending an event moves the read receipt, modules/push.md "Marking notifications as
// read") and their leaving the room. The read position of a room is the later of that mark and the
// user's m.read / m.read.private receipts (unthreaded or "main"), which this module reads from the
// receipts and events tables, so a receipt counts the moment it is stored.
import type { Database, SqlParam } from "../database";
import type { Migration } from "../migrations";

export const NOTIFICATIONS_MIGRATION: Migration = {
  version: 61,
  name: "notifications",
  sqlite: `
    CREATE TABLE notifications (
      stream_id INTEGER PRIMARY KEY,
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      event_stream_ordering INTEGER NOT NULL,
      ts INTEGER NOT NULL,
      actions_json TEXT NOT NULL,
      highlight INTEGER NOT NULL,
      UNIQUE (user_id, event_id)
    ) STRICT;
    CREATE INDEX notifications_user_room ON notifications (user_id, room_id, event_stream_ordering);
    CREATE INDEX notifications_user_stream ON notifications (user_id, stream_id);
    CREATE INDEX notifications_ts ON notifications (ts);
    CREATE TABLE notification_read_marks (
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      stream_ordering INTEGER NOT NULL,
      PRIMARY KEY (user_id, room_id)
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE notifications (
      stream_id BIGINT PRIMARY KEY,
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      event_stream_ordering BIGINT NOT NULL,
      ts BIGINT NOT NULL,
      actions_json TEXT NOT NULL,
      highlight SMALLINT NOT NULL,
      UNIQUE (user_id, event_id)
    );
    CREATE INDEX notifications_user_room ON notifications (user_id, room_id, event_stream_ordering);
    CREATE INDEX notifications_user_stream ON notifications (user_id, stream_id);
    CREATE INDEX notifications_ts ON notifications (ts);
    CREATE TABLE notification_read_marks (
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      stream_ordering BIGINT NOT NULL,
      PRIMARY KEY (user_id, room_id)
    );
  `,
};

/**
 * A notification is unique per (user, room, event position), which the unread-count index already
 * holds, instead of per (user, event id) in an index of its own: each notification was one more
 * B-tree insert at a random place (a send to a room of twenty local members wrote 19 rows into four
 * such indexes; a quarter less time with three). SQLite drops a table constraint only by rebuilding
 * the table.
 */
export const NOTIFICATIONS_UNIQUE_POSITION_MIGRATION: Migration = {
  version: 100,
  name: "notifications_unique_position",
  sqlite: `
    CREATE TABLE notifications_rebuilt (
      stream_id INTEGER PRIMARY KEY,
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      event_stream_ordering INTEGER NOT NULL,
      ts INTEGER NOT NULL,
      actions_json TEXT NOT NULL,
      highlight INTEGER NOT NULL
    ) STRICT;
    INSERT INTO notifications_rebuilt (stream_id, user_id, room_id, event_id, event_stream_ordering, ts, actions_json, highlight)
      SELECT stream_id, user_id, room_id, event_id, event_stream_ordering, ts, actions_json, highlight FROM notifications;
    DROP TABLE notifications;
    ALTER TABLE notifications_rebuilt RENAME TO notifications;
    CREATE UNIQUE INDEX notifications_user_room ON notifications (user_id, room_id, event_stream_ordering);
    CREATE INDEX notifications_user_stream ON notifications (user_id, stream_id);
    CREATE INDEX notifications_ts ON notifications (ts);
  `,
  postgres: `
    ALTER TABLE notifications DROP CONSTRAINT notifications_user_id_event_id_key;
    DROP INDEX notifications_user_room;
    CREATE UNIQUE INDEX notifications_user_room ON notifications (user_id, room_id, event_stream_ordering);
  `,
};

export interface NewNotification {
  readonly userId: string;
  readonly roomId: string;
  readonly eventId: string;
  /** The event's position in the room event stream (what receipts and read marks compare with). */
  readonly eventStreamOrdering: number;
  /** When the notification was recorded, in milliseconds. */
  readonly ts: number;
  /** The matching rule's actions, as JSON. */
  readonly actions: unknown[];
  readonly highlight: boolean;
}

export interface NotificationRecord extends NewNotification {
  /** Position in the notification stream. */
  readonly streamId: number;
}

export interface UnreadCounts {
  readonly notifications: number;
  readonly highlights: number;
  /** The highest event stream ordering among the counted notifications (0 when none). */
  readonly newest: number;
}

/** Notifications of users and how far they have read (client-server-api "Receiving notifications"). */
export interface NotificationStore {
  /** Stores the notifications at the next stream positions (one per user and event: repeats are ignored). */
  addNotifications(notifications: readonly NewNotification[]): Promise<void>;
  maxNotificationStreamId(): Promise<number>;
  /** The user's notifications after a stream position, oldest first (what a pusher has still to send). */
  notificationsAfter(userId: string, afterStreamId: number, limit: number): Promise<NotificationRecord[]>;
  /** The user's notifications before a stream position (all when undefined), newest first, each with whether it is read. */
  notificationsBefore(userId: string, beforeStreamId: number | undefined, limit: number, onlyHighlight: boolean): Promise<(NotificationRecord & { read: boolean })[]>;
  /** Unread notifications (and how many of them highlight) in one room, of events up to a stream ordering (all when undefined). */
  unreadCounts(userId: string, roomId: string, upToStreamOrdering?: number): Promise<UnreadCounts>;
  /** Unread notifications in every room together. */
  unreadTotal(userId: string): Promise<number>;
  /** The user has read the room up to this event position (their own event, their leaving); only moves forward. */
  markRead(userId: string, roomId: string, streamOrdering: number): Promise<void>;
  /** Deletes the read notifications recorded before `ts` (unread ones still count); returns how many. */
  deleteReadNotificationsBefore(ts: number): Promise<number>;
}

const COLUMNS = "stream_id, user_id, room_id, event_id, event_stream_ordering, ts, actions_json, highlight";
/**
 * One statement inserts up to 256 rows: an event in a room of many local users records one row per
 * recipient. Batches are split into powers of two, so that few statement texts exist to prepare.
 */
const MAX_ROWS_PER_INSERT = 256;
const insertRows = (rows: number) =>
  `INSERT INTO notifications (${COLUMNS}) VALUES ${Array.from({ length: rows }, () => "(?, ?, ?, ?, ?, ?, ?, ?)").join(", ")} ON CONFLICT (user_id, room_id, event_stream_ordering) DO NOTHING`;
const INSERTS = new Map<number, string>();
const SELECT_MAX = "SELECT COALESCE(max(stream_id), 0) AS m FROM notifications";

/**
 * The read position of (user_id, room_id) given as `owner`'s columns: the latest of the user's
 * m.read / m.read.private receipts (unthreaded or on the main timeline) and their read mark; 0 when
 * neither exists. Threaded receipts of a single thread do not count: Portier keeps one count per room.
 */
const readPosition = (user: string, room: string) => `COALESCE((SELECT max(p) FROM (
    SELECT e.stream_ordering AS p FROM receipts r JOIN events e ON e.event_id = r.event_id
      WHERE r.room_id = ${room} AND r.user_id = ${user} AND r.receipt_type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', 'main')
    UNION ALL
    SELECT k.stream_ordering AS p FROM notification_read_marks k WHERE k.user_id = ${user} AND k.room_id = ${room}
  ) AS positions), 0)`;

const SELECT_AFTER = `SELECT ${COLUMNS} FROM notifications WHERE user_id = ? AND stream_id > ? ORDER BY stream_id LIMIT ?`;
const SELECT_BEFORE = (bounded: boolean, onlyHighlight: boolean) => `SELECT ${COLUMNS.split(", ").map((c) => `n.${c}`).join(", ")},
    CASE WHEN n.event_stream_ordering <= ${readPosition("n.user_id", "n.room_id")} THEN 1 ELSE 0 END AS is_read
  FROM notifications n WHERE n.user_id = ?${bounded ? " AND n.stream_id < ?" : ""}${onlyHighlight ? " AND n.highlight = 1" : ""}
  ORDER BY n.stream_id DESC LIMIT ?`;
const BEFORE_QUERIES = new Map<string, string>();
const COUNT_ROOM = `SELECT count(*) AS notifications, COALESCE(sum(highlight), 0) AS highlights, COALESCE(max(event_stream_ordering), 0) AS newest FROM notifications
  WHERE user_id = ? AND room_id = ? AND event_stream_ordering <= ? AND event_stream_ordering > ${readPosition("?", "?")}`;
// The read position once per room, then a range count on (user_id, room_id, event_stream_ordering).
const COUNT_TOTAL = `SELECT COALESCE(sum((SELECT count(*) FROM notifications x
    WHERE x.user_id = p.user_id AND x.room_id = p.room_id AND x.event_stream_ordering > p.pos)), 0) AS n
  FROM (SELECT r.user_id, r.room_id, ${readPosition("r.user_id", "r.room_id")} AS pos
        FROM (SELECT DISTINCT user_id, room_id FROM notifications WHERE user_id = ?) AS r) AS p`;
const MARK = `INSERT INTO notification_read_marks (user_id, room_id, stream_ordering) VALUES (?, ?, ?)
  ON CONFLICT (user_id, room_id) DO UPDATE SET stream_ordering = excluded.stream_ordering
  WHERE notification_read_marks.stream_ordering < excluded.stream_ordering`;
const DELETE_READ_BEFORE = `DELETE FROM notifications WHERE ts < ? AND event_stream_ordering <= ${readPosition("notifications.user_id", "notifications.room_id")}`;

interface Row {
  stream_id: number;
  user_id: string;
  room_id: string;
  event_id: string;
  event_stream_ordering: number;
  ts: number;
  actions_json: string;
  highlight: number;
}

const toRecord = (r: Row): NotificationRecord => ({
  streamId: Number(r.stream_id),
  userId: r.user_id,
  roomId: r.room_id,
  eventId: r.event_id,
  eventStreamOrdering: Number(r.event_stream_ordering),
  ts: Number(r.ts),
  actions: JSON.parse(r.actions_json),
  highlight: Number(r.highlight) === 1,
});

export class SqlNotificationStore implements NotificationStore {
  /**
   * The highest position handed out here. Units of one batch may write notifications side by side
   * (TransactionOptions.concurrent): both read the same maximum before either inserts, so positions
   * continue from whichever is higher, this or the table's. Batches commit in the order they take
   * positions, and units of one batch commit together: no reader sees a position before a lower one.
   */
  private handedOut = 0;

  constructor(private readonly db: Database) {}

  async addNotifications(notifications: readonly NewNotification[]): Promise<void> {
    if (notifications.length === 0) return;
    await this.db.transaction(async () => {
      // Positions continue from the highest; a repeat that is ignored, or a rollback, leaves a gap,
      // which is harmless.
      let next = Math.max(await this.maxNotificationStreamId(), this.handedOut) + 1;
      this.handedOut = next + notifications.length - 1;
      for (let at = 0; at < notifications.length; ) {
        const left = notifications.length - at;
        const rows = left >= MAX_ROWS_PER_INSERT ? MAX_ROWS_PER_INSERT : 2 ** Math.floor(Math.log2(left));
        let sql = INSERTS.get(rows);
        if (sql === undefined) INSERTS.set(rows, (sql = insertRows(rows)));
        const params: SqlParam[] = [];
        for (const n of notifications.slice(at, at + rows)) {
          params.push(next++, n.userId, n.roomId, n.eventId, n.eventStreamOrdering, n.ts, JSON.stringify(n.actions), n.highlight ? 1 : 0);
        }
        await this.db.run(sql, ...params);
        at += rows;
      }
    });
  }

  async maxNotificationStreamId(): Promise<number> {
    return Number((await this.db.get<{ m: number }>(SELECT_MAX))?.m ?? 0);
  }

  async notificationsAfter(userId: string, afterStreamId: number, limit: number): Promise<NotificationRecord[]> {
    return (await this.db.all<Row>(SELECT_AFTER, userId, afterStreamId, limit)).map(toRecord);
  }

  async notificationsBefore(userId: string, beforeStreamId: number | undefined, limit: number, onlyHighlight: boolean): Promise<(NotificationRecord & { read: boolean })[]> {
    const key = `${beforeStreamId !== undefined}/${onlyHighlight}`;
    let sql = BEFORE_QUERIES.get(key);
    if (sql === undefined) BEFORE_QUERIES.set(key, (sql = SELECT_BEFORE(beforeStreamId !== undefined, onlyHighlight)));
    const params = beforeStreamId === undefined ? [userId, limit] : [userId, beforeStreamId, limit];
    const rows = await this.db.all<Row & { is_read: number }>(sql, ...params);
    return rows.map((r) => ({ ...toRecord(r), read: Number(r.is_read) === 1 }));
  }

  async unreadCounts(userId: string, roomId: string, upToStreamOrdering = Number.MAX_SAFE_INTEGER): Promise<UnreadCounts> {
    // readPosition("?", "?") takes (room, user) for the receipts, then (user, room) for the mark.
    const row = await this.db.get<{ notifications: number; highlights: number; newest: number }>(COUNT_ROOM, userId, roomId, upToStreamOrdering, roomId, userId, userId, roomId);
    return { notifications: Number(row?.notifications ?? 0), highlights: Number(row?.highlights ?? 0), newest: Number(row?.newest ?? 0) };
  }

  async unreadTotal(userId: string): Promise<number> {
    return Number((await this.db.get<{ n: number }>(COUNT_TOTAL, userId))?.n ?? 0);
  }

  async markRead(userId: string, roomId: string, streamOrdering: number): Promise<void> {
    await this.db.run(MARK, userId, roomId, streamOrdering);
  }

  async deleteReadNotificationsBefore(ts: number): Promise<number> {
    // After a long pause this can be many rows: a database transaction of its own (TransactionOptions).
    return this.db.transaction(async () => (await this.db.run(DELETE_READ_BEFORE, ts)).changes, { alone: true });
  }
}
