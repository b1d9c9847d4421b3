// redactions: which m.room.redaction events redact which events, so reads of a redacted event serve
// its pruned form without rewriting the stored PDU (whose hashes and signatures must stay intact).
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";

export const REDACTIONS_MIGRATION: Migration = {
  version: 21,
  name: "redactions",
  up: `
    CREATE TABLE redactions (
      redacts TEXT NOT NULL,
      redaction_event_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      UNIQUE (redacts, redaction_event_id)
    ) STRICT;
  `,
};

export class RedactionsTable {
  private readonly insert;
  private readonly select;

  constructor(db: SqlDatabase) {
    this.insert = db.prepare("INSERT OR IGNORE INTO redactions (redacts, redaction_event_id, room_id) VALUES (?, ?, ?)");
    this.select = db.prepare<{ redaction_event_id: string }>("SELECT redaction_event_id FROM redactions WHERE redacts = ? ORDER BY rowid");
  }

  add(redacts: string, redactionEventId: string, roomId: string): void {
    this.insert.run(redacts, redactionEventId, roomId);
  }

  of(eventId: string): string[] {
    return this.select.all(eventId).map((r) => r.redaction_event_id);
  }
}
