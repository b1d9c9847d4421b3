// receipts: each user's latest receipt per (room, receipt type, thread), with a stream position so
// /sync can ask for the receipts that changed since its last token.
// thread_id is NOT NULL ('' for an unthreaded receipt, never NULL) so that the primary key, and the
// upsert on it, match unthreaded receipts on PostgreSQL as well (its unique keys never match NULLs).
import type { Database } from "../database";
import type { Migration } from "../migrations";
import type { ReceiptRecord } from "../stores";

export const RECEIPTS_MIGRATION: Migration = {
  version: 23,
  name: "receipts",
  sqlite: `
    CREATE TABLE receipts (
      room_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      receipt_type TEXT NOT NULL,
      thread_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      ts INTEGER NOT NULL,
      stream_id INTEGER NOT NULL,
      PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX receipts_room_stream ON receipts (room_id, stream_id);
  `,
  postgres: `
    CREATE TABLE receipts (
      room_id TEXT NOT NULL,
      user_id TEXT NOT NULL,
      receipt_type TEXT NOT NULL,
      thread_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      ts BIGINT NOT NULL,
      stream_id BIGINT NOT NULL,
      PRIMARY KEY (room_id, user_id, receipt_type, thread_id)
    );
    CREATE INDEX receipts_room_stream ON receipts (room_id, stream_id);
  `,
};

const COLUMNS = "room_id, user_id, receipt_type, thread_id, event_id, ts, stream_id";
const UPSERT = `INSERT INTO receipts (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts, stream_id = excluded.stream_id`;
const SELECT_MAX = "SELECT max(stream_id) AS m FROM receipts";
const SELECT_ROOMS_BETWEEN = "SELECT DISTINCT room_id FROM receipts WHERE stream_id > ? AND stream_id <= ?";

/** Receipts by stream position across rooms, for /sync's "which rooms moved since the token". */
export const RECEIPTS_STREAM_INDEX_MIGRATION: Migration = {
  version: 62,
  name: "receipts_stream_index",
  sqlite: "CREATE INDEX receipts_stream ON receipts (stream_id)",
  postgres: "CREATE INDEX receipts_stream ON receipts (stream_id)",
};
const SELECT_SINCE = `SELECT ${COLUMNS} FROM receipts WHERE room_id = ? AND stream_id > ? ORDER BY stream_id`;
const SELECT_ONE = `SELECT ${COLUMNS} FROM receipts WHERE room_id = ? AND user_id = ? AND receipt_type = ? AND thread_id = ?`;

interface Row {
  room_id: string;
  user_id: string;
  receipt_type: string;
  thread_id: string;
  event_id: string;
  ts: number;
  stream_id: number;
}

const toRecord = (r: Row): ReceiptRecord => ({
  roomId: r.room_id,
  userId: r.user_id,
  receiptType: r.receipt_type,
  threadId: r.thread_id === "" ? undefined : r.thread_id,
  eventId: r.event_id,
  ts: r.ts,
  streamId: r.stream_id,
});

export class ReceiptsTable {
  constructor(private readonly db: Database) {}

  /** Stores the receipt at the next stream position and returns it. */
  async put(r: Omit<ReceiptRecord, "streamId">): Promise<number> {
    return this.db.transaction(async () => {
      const streamId = (await this.maxStreamId()) + 1;
      await this.db.run(UPSERT, r.roomId, r.userId, r.receiptType, r.threadId ?? "", r.eventId, r.ts, streamId);
      return streamId;
    });
  }

  async maxStreamId(): Promise<number> {
    return (await this.db.get<{ m: number | null }>(SELECT_MAX))?.m ?? 0;
  }

  /** Rooms with a receipt written in (fromExclusive, toInclusive]. */
  async roomsBetween(fromExclusive: number, toInclusive: number): Promise<string[]> {
    return (await this.db.all<{ room_id: string }>(SELECT_ROOMS_BETWEEN, fromExclusive, toInclusive)).map((r) => r.room_id);
  }

  async since(roomId: string, streamIdExclusive: number): Promise<ReceiptRecord[]> {
    return (await this.db.all<Row>(SELECT_SINCE, roomId, streamIdExclusive)).map(toRecord);
  }

  async get(roomId: string, userId: string, receiptType: string, threadId: string | undefined): Promise<ReceiptRecord | undefined> {
    const row = await this.db.get<Row>(SELECT_ONE, roomId, userId, receiptType, threadId ?? "");
    return row && toRecord(row);
  }
}
