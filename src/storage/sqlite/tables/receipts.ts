// receipts: each user's latest receipt per (room, receipt type, thread), with a stream position so
// /sync can ask for the receipts that changed since its last token.
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";
import type { ReceiptRecord } from "../../stores";

export const RECEIPTS_MIGRATION: Migration = {
  version: 23,
  name: "receipts",
  up: `
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
};

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
  private readonly upsert;
  private readonly selectMax;
  private readonly selectSince;
  private readonly selectOne;

  constructor(private readonly db: SqlDatabase) {
    this.upsert = db.prepare(
      `INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream_id) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE SET event_id = excluded.event_id, ts = excluded.ts, stream_id = excluded.stream_id`,
    );
    this.selectMax = db.prepare<{ m: number | null }>("SELECT max(stream_id) AS m FROM receipts");
    this.selectSince = db.prepare<Row>("SELECT * FROM receipts WHERE room_id = ? AND stream_id > ? ORDER BY stream_id");
    this.selectOne = db.prepare<Row>("SELECT * FROM receipts WHERE room_id = ? AND user_id = ? AND receipt_type = ? AND thread_id = ?");
  }

  /** Stores the receipt at the next stream position and returns it. */
  put(r: Omit<ReceiptRecord, "streamId">): number {
    return this.db.transaction(() => {
      const streamId = this.maxStreamId() + 1;
      this.upsert.run(r.roomId, r.userId, r.receiptType, r.threadId ?? "", r.eventId, r.ts, streamId);
      return streamId;
    });
  }

  maxStreamId(): number {
    return this.selectMax.get()?.m ?? 0;
  }

  since(roomId: string, streamIdExclusive: number): ReceiptRecord[] {
    return this.selectSince.all(roomId, streamIdExclusive).map(toRecord);
  }

  get(roomId: string, userId: string, receiptType: string, threadId: string | undefined): ReceiptRecord | undefined {
    const row = this.selectOne.get(roomId, userId, receiptType, threadId ?? "");
    return row && toRecord(row);
  }
}
