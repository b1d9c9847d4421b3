// redactions: which m.room.redaction events redact which events, so reads of a redacted event serve
// its pruned form without rewriting the stored PDU (whose hashes and signatures must stay intact).
import type { Database } from "../database";
import type { Migration } from "../migrations";
import { inLists, placeholders } from "../sql-lists";

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
const selectMany = (n: number) => `SELECT redacts, redaction_event_id FROM redactions WHERE redacts IN (${placeholders(n)}) ORDER BY rowid`;

export class RedactionsTable {
  constructor(private readonly db: Database) {}

  async add(redacts: string, redactionEventId: string, roomId: string): Promise<void> {
    await this.db.run(INSERT, redacts, redactionEventId, roomId);
  }

  async of(eventId: string): Promise<string[]> {
    return (await this.db.all<{ redaction_event_id: string }>(SELECT, eventId)).map((r) => r.redaction_event_id);
  }

  /** The redactions of many events at once (only those that have any), each list oldest first. */
  async ofMany(eventIds: readonly string[]): Promise<Map<string, string[]>> {
    const found = new Map<string, string[]>();
    for (const list of inLists([...new Set(eventIds)])) {
      for (const r of await this.db.all<{ redacts: string; redaction_event_id: string }>(selectMany(list.length), ...list)) {
        let ids = found.get(r.redacts);
        if (!ids) found.set(r.redacts, (ids = []));
        ids.push(r.redaction_event_id);
      }
    }
    return found;
  }
}
