// client_transactions: the event a (user, device, txnId) PUT created, so a retried send answers with
// the same event_id and stores nothing new (client-server-api "Transaction identifiers").
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";

export const CLIENT_TRANSACTIONS_MIGRATION: Migration = {
  version: 20,
  name: "client_transactions",
  up: `
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
};

export class ClientTransactionsTable {
  private readonly insert;
  private readonly select;
  private readonly selectByEvent;

  constructor(db: SqlDatabase) {
    this.insert = db.prepare(
      "INSERT OR IGNORE INTO client_transactions (user_id, device_id, txn_id, room_id, event_id, created_ts) VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.select = db.prepare<{ event_id: string }>("SELECT event_id FROM client_transactions WHERE user_id = ? AND device_id = ? AND txn_id = ?");
    this.selectByEvent = db.prepare<{ user_id: string; device_id: string; txn_id: string }>(
      "SELECT user_id, device_id, txn_id FROM client_transactions WHERE event_id = ? LIMIT 1",
    );
  }

  get(userId: string, deviceId: string, txnId: string): string | undefined {
    return this.select.get(userId, deviceId, txnId)?.event_id;
  }

  put(userId: string, deviceId: string, txnId: string, roomId: string, eventId: string, ts: number): void {
    this.insert.run(userId, deviceId, txnId, roomId, eventId, ts);
  }

  ofEvent(eventId: string): { userId: string; deviceId: string; txnId: string } | undefined {
    const row = this.selectByEvent.get(eventId);
    return row && { userId: row.user_id, deviceId: row.device_id, txnId: row.txn_id };
  }
}
