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

// The first event recorded for a transaction id stays: a retry never replaces it.
const INSERT = "INSERT INTO client_transactions (user_id, device_id, txn_id, room_id, event_id, created_ts) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING";
const SELECT = "SELECT event_id FROM client_transactions WHERE user_id = ? AND device_id = ? AND txn_id = ?";
const SELECT_BY_EVENT = "SELECT user_id, device_id, txn_id FROM client_transactions WHERE event_id = ? LIMIT 1";

export class ClientTransactionsTable {
  constructor(private readonly db: Database) {}

  async get(userId: string, deviceId: string, txnId: string): Promise<string | undefined> {
    return (await this.db.get<{ event_id: string }>(SELECT, userId, deviceId, txnId))?.event_id;
  }

  /** False when the transaction id was taken already (nothing written). */
  async put(userId: string, deviceId: string, txnId: string, roomId: string, eventId: string, ts: number): Promise<boolean> {
    return (await this.db.run(INSERT, userId, deviceId, txnId, roomId, eventId, ts)).changes > 0;
  }

  async ofEvent(eventId: string): Promise<{ userId: string; deviceId: string; txnId: string } | undefined> {
    const row = await this.db.get<{ user_id: string; device_id: string; txn_id: string }>(SELECT_BY_EVENT, eventId);
    return row && { userId: row.user_id, deviceId: row.device_id, txnId: row.txn_id };
  }
}
