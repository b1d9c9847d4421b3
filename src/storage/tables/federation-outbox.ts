// federation_outbox: the outbound federation queue (server-server-api "Transactions"), so that what
// we owe other servers survives a restart.
// - federation_outbox_payloads holds each queued PDU or EDU once, as JSON text: a PDU sent to the
//   1,000 servers of a room is one payload and 1,000 small rows, not 1,000 copies.
// - federation_outbox has one row per (destination, payload), its id the arrival order. A row is
//   claimed by a transaction (txn_id) when first sent; a retry resends exactly the claimed rows
//   under the same txnId, since the receiver deduplicates by origin and txnId.
// - federation_destinations holds per destination the transaction in flight, the retry state
//   (consecutive failures, when to try again) and a counter that makes every txnId new.
import type { Database } from "../database";
import type { Migration } from "../migrations";
import { inLists, insertBatches, placeholders, valueRows } from "../sql-lists";

export const FEDERATION_OUTBOX_MIGRATION: Migration = {
  version: 51,
  name: "federation_outbox",
  sqlite: `
    CREATE TABLE federation_outbox_payloads (
      id INTEGER PRIMARY KEY,
      edu_type TEXT,
      json TEXT NOT NULL,
      queued_ts INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE federation_outbox (
      id INTEGER PRIMARY KEY,
      destination TEXT NOT NULL,
      payload_id INTEGER NOT NULL,
      is_edu INTEGER NOT NULL,
      txn_id TEXT
    ) STRICT;
    CREATE INDEX federation_outbox_destination ON federation_outbox (destination, is_edu, id);
    CREATE INDEX federation_outbox_payload ON federation_outbox (payload_id);
    CREATE TABLE federation_destinations (
      destination TEXT PRIMARY KEY,
      txn_id TEXT,
      txn_seq INTEGER NOT NULL,
      failures INTEGER NOT NULL,
      retry_at_ts INTEGER
    ) STRICT;
  `,
  postgres: `
    CREATE TABLE federation_outbox_payloads (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      edu_type TEXT,
      json TEXT NOT NULL,
      queued_ts BIGINT NOT NULL
    );
    CREATE TABLE federation_outbox (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      destination TEXT NOT NULL,
      payload_id BIGINT NOT NULL,
      is_edu BIGINT NOT NULL,
      txn_id TEXT
    );
    CREATE INDEX federation_outbox_destination ON federation_outbox (destination, is_edu, id);
    CREATE INDEX federation_outbox_payload ON federation_outbox (payload_id);
    CREATE TABLE federation_destinations (
      destination TEXT PRIMARY KEY,
      txn_id TEXT,
      txn_seq BIGINT NOT NULL,
      failures BIGINT NOT NULL,
      retry_at_ts BIGINT
    );
  `,
};

/** One queued unit: a PDU (no eduType) or an EDU's content (with its edu_type), as JSON text. */
export interface OutboxUnit {
  readonly eduType?: string;
  readonly json: string;
}

export interface OutboxEntry extends OutboxUnit {
  /** The row id: arrival order within the destination. */
  readonly id: number;
  readonly queuedTs: number;
}

/** A transaction's content, fixed when it is first claimed and the same on every retry. */
export interface OutboxTransaction {
  readonly destination: string;
  readonly txnId: string;
  /** In arrival order. */
  readonly pdus: readonly OutboxEntry[];
  /** In arrival order. */
  readonly edus: readonly OutboxEntry[];
}

export interface DestinationRetryState {
  readonly destination: string;
  /** Consecutive failed attempts of the transaction in flight (0: none). */
  readonly failures: number;
  /** Not before this time (ms since the epoch); undefined: now. */
  readonly retryAtTs: number | undefined;
}

export interface FederationOutboxStore {
  /** Appends the unit to each destination's queue (committed when this resolves); destinations are taken once each. */
  enqueue(destinations: readonly string[], unit: OutboxUnit, queuedTs: number): Promise<void>;
  /**
   * The destination's transaction in flight if one was claimed and not completed (after a failure
   * or a restart: the same txnId and rows), else a new one over its oldest unclaimed rows (at most
   * maxPdus PDUs and maxEdus EDUs), whose txnId is newTxnId(n) for an n never given before for this
   * destination. Undefined when nothing is queued.
   */
  claimTransaction(destination: string, limits: { maxPdus: number; maxEdus: number }, newTxnId: (seq: number) => string): Promise<OutboxTransaction | undefined>;
  /** Deletes the transaction's rows (delivered, or refused for good) and clears the retry state. Returns the rows deleted. */
  completeTransaction(destination: string, txnId: string): Promise<number>;
  /** Records a failed attempt: the transaction stays claimed, to be retried at retryAtTs. */
  setRetryState(destination: string, failures: number, retryAtTs: number | undefined): Promise<void>;
  /** Every destination with queued rows, with its retry state (to resume after a restart). */
  pendingDestinations(): Promise<DestinationRetryState[]>;
  /** Rows queued (claimed or not) for one destination, or for all. */
  queuedCount(destination?: string): Promise<number>;
}

const INSERT_PAYLOAD = "INSERT INTO federation_outbox_payloads (edu_type, json, queued_ts) VALUES (?, ?, ?) RETURNING id";
const insertRows = (n: number) => `INSERT INTO federation_outbox (destination, payload_id, is_edu) VALUES ${valueRows(n, 3)}`;
const SELECT_DESTINATION = "SELECT txn_id FROM federation_destinations WHERE destination = ?";
const SELECT_CLAIMED = `SELECT o.id, p.edu_type, p.json, p.queued_ts FROM federation_outbox o JOIN federation_outbox_payloads p ON p.id = o.payload_id
  WHERE o.destination = ? AND o.txn_id = ? ORDER BY o.id`;
const SELECT_UNCLAIMED = `SELECT o.id, p.edu_type, p.json, p.queued_ts FROM federation_outbox o JOIN federation_outbox_payloads p ON p.id = o.payload_id
  WHERE o.destination = ? AND o.is_edu = ? AND o.txn_id IS NULL ORDER BY o.id LIMIT ?`;
const NEXT_SEQ = `INSERT INTO federation_destinations (destination, txn_id, txn_seq, failures, retry_at_ts) VALUES (?, NULL, 1, 0, NULL)
  ON CONFLICT (destination) DO UPDATE SET txn_seq = federation_destinations.txn_seq + 1 RETURNING txn_seq`;
const SET_TXN = "UPDATE federation_destinations SET txn_id = ?, failures = 0, retry_at_ts = NULL WHERE destination = ?";
const claimRows = (n: number) => `UPDATE federation_outbox SET txn_id = ? WHERE id IN (${placeholders(n)})`;
const DELETE_CLAIMED = "DELETE FROM federation_outbox WHERE destination = ? AND txn_id = ? RETURNING payload_id";
const deleteOrphans = (n: number) => `DELETE FROM federation_outbox_payloads WHERE id IN (${placeholders(n)})
  AND NOT EXISTS (SELECT 1 FROM federation_outbox o WHERE o.payload_id = federation_outbox_payloads.id)`;
const CLEAR_TXN = "UPDATE federation_destinations SET txn_id = NULL, failures = 0, retry_at_ts = NULL WHERE destination = ? AND txn_id = ?";
const UPSERT_RETRY = `INSERT INTO federation_destinations (destination, txn_id, txn_seq, failures, retry_at_ts) VALUES (?, NULL, 0, ?, ?)
  ON CONFLICT (destination) DO UPDATE SET failures = excluded.failures, retry_at_ts = excluded.retry_at_ts`;
const SELECT_PENDING = `SELECT q.destination, d.failures, d.retry_at_ts FROM (SELECT DISTINCT destination FROM federation_outbox) q
  LEFT JOIN federation_destinations d ON d.destination = q.destination ORDER BY q.destination`;
const COUNT_ALL = "SELECT count(*) AS n FROM federation_outbox";
const COUNT_ONE = "SELECT count(*) AS n FROM federation_outbox WHERE destination = ?";

interface EntryRow {
  id: number;
  edu_type: string | null;
  json: string;
  queued_ts: number;
}

const toEntry = (r: EntryRow): OutboxEntry => (r.edu_type === null ? { id: r.id, json: r.json, queuedTs: r.queued_ts } : { id: r.id, eduType: r.edu_type, json: r.json, queuedTs: r.queued_ts });

export class SqlFederationOutboxStore implements FederationOutboxStore {
  constructor(private readonly db: Database) {}

  async enqueue(destinations: readonly string[], unit: OutboxUnit, queuedTs: number): Promise<void> {
    const unique = [...new Set(destinations)];
    if (unique.length === 0) return;
    await this.db.transaction(async () => {
      const payload = await this.db.get<{ id: number }>(INSERT_PAYLOAD, unit.eduType ?? null, unit.json, queuedTs);
      const isEdu = unit.eduType === undefined ? 0 : 1;
      for (const batch of insertBatches(unique)) {
        await this.db.run(insertRows(batch.length), ...batch.flatMap((destination) => [destination, payload!.id, isEdu]));
      }
    });
  }

  async claimTransaction(destination: string, limits: { maxPdus: number; maxEdus: number }, newTxnId: (seq: number) => string): Promise<OutboxTransaction | undefined> {
    return this.db.transaction(async () => {
      const pending = (await this.db.get<{ txn_id: string | null }>(SELECT_DESTINATION, destination))?.txn_id ?? null;
      if (pending !== null) {
        const rows = (await this.db.all<EntryRow>(SELECT_CLAIMED, destination, pending)).map(toEntry);
        if (rows.length > 0) return split(destination, pending, rows);
      }
      const pdus = (await this.db.all<EntryRow>(SELECT_UNCLAIMED, destination, 0, limits.maxPdus)).map(toEntry);
      const edus = (await this.db.all<EntryRow>(SELECT_UNCLAIMED, destination, 1, limits.maxEdus)).map(toEntry);
      if (pdus.length === 0 && edus.length === 0) {
        if (pending !== null) await this.db.run(CLEAR_TXN, destination, pending);
        return undefined;
      }
      const seq = (await this.db.get<{ txn_seq: number }>(NEXT_SEQ, destination))!.txn_seq;
      const txnId = newTxnId(seq);
      await this.db.run(SET_TXN, txnId, destination);
      for (const ids of inLists([...pdus, ...edus].map((e) => e.id))) await this.db.run(claimRows(ids.length), txnId, ...ids);
      return { destination, txnId, pdus, edus };
    });
  }

  async completeTransaction(destination: string, txnId: string): Promise<number> {
    return this.db.transaction(async () => {
      const deleted = await this.db.all<{ payload_id: number }>(DELETE_CLAIMED, destination, txnId);
      const payloadIds = [...new Set(deleted.map((r) => r.payload_id))];
      for (const ids of inLists(payloadIds)) await this.db.run(deleteOrphans(ids.length), ...ids);
      await this.db.run(CLEAR_TXN, destination, txnId);
      return deleted.length;
    });
  }

  async setRetryState(destination: string, failures: number, retryAtTs: number | undefined): Promise<void> {
    await this.db.run(UPSERT_RETRY, destination, failures, retryAtTs ?? null);
  }

  async pendingDestinations(): Promise<DestinationRetryState[]> {
    const rows = await this.db.all<{ destination: string; failures: number | null; retry_at_ts: number | null }>(SELECT_PENDING);
    return rows.map((r) => ({ destination: r.destination, failures: r.failures ?? 0, retryAtTs: r.retry_at_ts ?? undefined }));
  }

  async queuedCount(destination?: string): Promise<number> {
    const row = destination === undefined ? await this.db.get<{ n: number }>(COUNT_ALL) : await this.db.get<{ n: number }>(COUNT_ONE, destination);
    return row?.n ?? 0;
  }
}

function split(destination: string, txnId: string, rows: OutboxEntry[]): OutboxTransaction {
  return { destination, txnId, pdus: rows.filter((r) => r.eduType === undefined), edus: rows.filter((r) => r.eduType !== undefined) };
}
