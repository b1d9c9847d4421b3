// client_transactions: the event a (user, device, txnId) PUT created, so a retried send answers with
// the same event_id and stores nothing new (client-server-api "Transaction identifiers").
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const CLIENT_TRANSACTIONS_MIGRATION: Migration = {
  version: 20,
  name: "client_transactions",
  sqlite: `
    CREATE TABLE client_transactions (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      txn_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      created_ts INTEGER NOT NULL,
      PRIMARY KEY (user_id, device_id, txn_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX client_transactions_event ON client_transactions (event_id);
  `,
  postgres: `
    CREATE TABLE client_transactions (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      txn_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      event_id TEXT NOT NULL,
      created_ts BIGINT NOT NULL,
      PRIMARY KEY (user_id, device_id, txn_id)
    );
    CREATE INDEX client_transactions_event ON client_transactions (event_id);
  `,
};

/**
 * Which client transaction sent an event, for its sender's own device (unsigned.transaction_id), is
 * kept in the event's row (events.txn_device_id, events.txn_id): found through the event_id index the
 * row has anyway. The index on client_transactions.event_id it replaces cost every send a page write
 * (a random leaf of the index in each commit's WAL frames; ~15 us a send on SQLite, a sixth of its
 * COMMIT). client_transactions itself keeps what a retried send is answered from.
 *
 * Only the events sent in the last day get their transaction id copied into their rows, so that the
 * upgrade of a large database rewrites a bounded number of rows (on PostgreSQL, under a lock on
 * events): a client matches its own echo by it right after sending, and Synapse forgets these ids
 * after a day too (its event_txn_id rows are deleted after 24 hours).
 */
export const CLIENT_TRANSACTIONS_IN_EVENTS_MIGRATION: Migration = {
  version: 102,
  name: "client_transactions_in_events",
  sqlite: `
    ALTER TABLE events ADD COLUMN txn_device_id TEXT;
    ALTER TABLE events ADD COLUMN txn_id TEXT;
    UPDATE events SET (txn_device_id, txn_id) = (SELECT c.device_id, c.txn_id FROM client_transactions c WHERE c.event_id = events.event_id AND c.user_id = events.sender LIMIT 1)
      WHERE event_id IN (SELECT event_id FROM client_transactions WHERE created_ts > (CAST(strftime('%s', 'now') AS INTEGER) - 86400) * 1000);
    DROP INDEX client_transactions_event;
  `,
  postgres: `
    ALTER TABLE events ADD COLUMN txn_device_id TEXT, ADD COLUMN txn_id TEXT;
    UPDATE events e SET txn_device_id = c.device_id, txn_id = c.txn_id FROM client_transactions c
      WHERE c.event_id = e.event_id AND c.user_id = e.sender AND c.created_ts > (CAST(extract(epoch FROM now()) AS BIGINT) - 86400) * 1000;
    DROP INDEX client_transactions_event;
  `,
};

// The first event recorded for a transaction id stays: a retry never replaces it.
const INSERT = "INSERT INTO client_transactions (user_id, device_id, txn_id, room_id, event_id, created_ts) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING";
const SELECT = "SELECT event_id FROM client_transactions WHERE user_id = ? AND device_id = ? AND txn_id = ?";
const SELECT_BY_EVENT = "SELECT sender AS user_id, txn_device_id AS device_id, txn_id FROM events WHERE event_id = ?";

export class ClientTransactionsTable {
  constructor(private readonly db: Database) {}

  async get(userId: string, deviceId: string, txnId: string): Promise<string | undefined> {
    return (await this.db.get<{ event_id: string }>(SELECT, userId, deviceId, txnId))?.event_id;
  }

  /** False when the transaction id was taken already (nothing written). */
  async put(userId: string, deviceId: string, txnId: string, roomId: string, eventId: string, ts: number): Promise<boolean> {
    return (await this.db.run(INSERT, userId, deviceId, txnId, roomId, eventId, ts)).changes > 0;
  }

  /**
   * The transaction an event was sent with, from the event's row (see
   * CLIENT_TRANSACTIONS_IN_EVENTS_MIGRATION): null for an event sent without one, undefined for an
   * event not held (yet).
   */
  async ofEvent(eventId: string): Promise<{ userId: string; deviceId: string; txnId: string } | null | undefined> {
    const row = await this.db.get<{ user_id: string; device_id: string | null; txn_id: string | null }>(SELECT_BY_EVENT, eventId);
    if (!row) return undefined;
    return row.device_id !== null && row.txn_id !== null ? { userId: row.user_id, deviceId: row.device_id, txnId: row.txn_id } : null;
  }
}
