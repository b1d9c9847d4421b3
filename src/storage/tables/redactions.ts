// redactions: which m.room.redaction events redact which events, so reads of a redacted event serve
// its pruned form without rewriting the stored PDU (whose hashes and signatures must stay intact).
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const REDACTIONS_MIGRATION: Migration = {
  version: 21,
  name: "redactions",
  sqlite: `
    CREATE TABLE redactions (
      redacts TEXT NOT NULL,
      redaction_event_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      UNIQUE (redacts, redaction_event_id)
    ) STRICT;
  `,
  // Redactions are read in the order they were stored, by SQLite's implicit rowid; PostgreSQL gets
  // an identity column of that name, so the shared query orders alike on both.
  postgres: `
    CREATE TABLE redactions (
      rowid BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      redacts TEXT NOT NULL,
      redaction_event_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      UNIQUE (redacts, redaction_event_id)
    );
  `,
};

const INSERT = "INSERT INTO redactions (redacts, redaction_event_id, room_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING";
const SELECT = "SELECT redaction_event_id FROM redactions WHERE redacts = ? ORDER BY rowid";

export class RedactionsTable {
  constructor(private readonly db: Database) {}

  async add(redacts: string, redactionEventId: string, roomId: string): Promise<void> {
    await this.db.run(INSERT, redacts, redactionEventId, roomId);
  }

  async of(eventId: string): Promise<string[]> {
    return (await this.db.all<{ redaction_event_id: string }>(SELECT, eventId)).map((r) => r.redaction_event_id);
  }
}
