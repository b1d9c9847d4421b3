// federation_inbound_transactions: the answers given to other servers' PUT /send/{txnId}, so that
// a transaction retried after our restart gets its first answer again instead of being processed
// twice (server-server-api "Transactions": the txnId lets the receiver recognise a retry). The spec
// names no period; Synapse keeps them a day, and so does Portier (TransactionReceiver prunes).
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const FEDERATION_INBOUND_TRANSACTIONS_MIGRATION: Migration = {
  version: 80,
  name: "federation_inbound_transactions",
  sqlite: `
    CREATE TABLE federation_inbound_transactions (
      origin TEXT NOT NULL,
      txn_id TEXT NOT NULL,
      response_json TEXT NOT NULL,
      received_ts INTEGER NOT NULL,
      PRIMARY KEY (origin, txn_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX federation_inbound_transactions_by_time ON federation_inbound_transactions (received_ts);
  `,
  postgres: `
    CREATE TABLE federation_inbound_transactions (
      origin TEXT NOT NULL,
      txn_id TEXT NOT NULL,
      response_json TEXT NOT NULL,
      received_ts BIGINT NOT NULL,
      PRIMARY KEY (origin, txn_id)
    );
    CREATE INDEX federation_inbound_transactions_by_time ON federation_inbound_transactions (received_ts);
  `,
};

/** The answers to other servers' transactions, by (origin, txnId). */
export interface InboundTransactionStore {
  /** The answer recorded for the transaction, as JSON text; undefined for one never answered (or pruned). */
  answerOf(origin: string, txnId: string): Promise<string | undefined>;
  /** Records the answer; recording the same transaction again keeps the first. */
  recordAnswer(origin: string, txnId: string, responseJson: string, receivedTs: number): Promise<void>;
  /** Forgets the answers recorded before `beforeTs`; returns how many. */
  pruneBefore(beforeTs: number): Promise<number>;
}

const SELECT = "SELECT response_json FROM federation_inbound_transactions WHERE origin = ? AND txn_id = ?";
const INSERT = `INSERT INTO federation_inbound_transactions (origin, txn_id, response_json, received_ts) VALUES (?, ?, ?, ?)
  ON CONFLICT (origin, txn_id) DO NOTHING`;
const PRUNE = "DELETE FROM federation_inbound_transactions WHERE received_ts < ?";

export class SqlInboundTransactionStore implements InboundTransactionStore {
  constructor(private readonly db: Database) {}

  async answerOf(origin: string, txnId: string): Promise<string | undefined> {
    return (await this.db.get<{ response_json: string }>(SELECT, origin, txnId))?.response_json;
  }

  async recordAnswer(origin: string, txnId: string, responseJson: string, receivedTs: number): Promise<void> {
    await this.db.run(INSERT, origin, txnId, responseJson, receivedTs);
  }

  async pruneBefore(beforeTs: number): Promise<number> {
    return (await this.db.run(PRUNE, beforeTs)).changes;
  }
}
