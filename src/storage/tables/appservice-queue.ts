// appservice_queue: events waiting to be pushed to an application service
// (application-service-api "Pushing events"). A row is written when an event the service is
// interested in is stored, and deleted once the service has accepted the transaction carrying it,
// so what was due when the server stopped goes out after it starts again. The id never repeats
// (an identity column), so transaction ids made from it never name two different transactions.
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const APPSERVICE_QUEUE_MIGRATION: Migration = {
  version: 95,
  name: "appservice_queue",
  sqlite: `
    CREATE TABLE appservice_queue (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      as_id TEXT NOT NULL,
      json TEXT NOT NULL,
      queued_ts INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX appservice_queue_as ON appservice_queue (as_id, id);
  `,
  postgres: `
    CREATE TABLE appservice_queue (
      id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      as_id TEXT NOT NULL,
      json TEXT NOT NULL,
      queued_ts BIGINT NOT NULL
    );
    CREATE INDEX appservice_queue_as ON appservice_queue (as_id, id);
  `,
};

export interface QueuedAppServiceEvent {
  readonly id: number;
  /** The event in the client format, as JSON text. */
  readonly json: string;
}

/** Per application service, the events not yet accepted by it, oldest first. */
export interface AppServiceQueueStore {
  /** Queues one event for each of the services; the ids given, in that order. */
  enqueue(asIds: readonly string[], json: string, queuedTs: number): Promise<void>;
  /** The oldest `limit` events queued for the service. */
  peek(asId: string, limit: number): Promise<QueuedAppServiceEvent[]>;
  /** Drops the service's events up to and including `throughId` (a transaction it accepted). */
  remove(asId: string, throughId: number): Promise<number>;
  /** The services with something queued (to resume after a restart). */
  pendingServices(): Promise<string[]>;
}

const INSERT = "INSERT INTO appservice_queue (as_id, json, queued_ts) VALUES (?, ?, ?)";
const PEEK = "SELECT id, json FROM appservice_queue WHERE as_id = ? ORDER BY id LIMIT ?";
const REMOVE = "DELETE FROM appservice_queue WHERE as_id = ? AND id <= ? RETURNING id";
const PENDING = "SELECT DISTINCT as_id FROM appservice_queue";

export class SqlAppServiceQueueStore implements AppServiceQueueStore {
  constructor(private readonly db: Database) {}

  async enqueue(asIds: readonly string[], json: string, queuedTs: number): Promise<void> {
    if (asIds.length === 0) return;
    await this.db.transaction(async () => {
      for (const asId of asIds) await this.db.run(INSERT, asId, json, queuedTs);
    });
  }

  async peek(asId: string, limit: number): Promise<QueuedAppServiceEvent[]> {
    const rows = await this.db.all<{ id: number | bigint; json: string }>(PEEK, asId, limit);
    return rows.map((r) => ({ id: Number(r.id), json: r.json }));
  }

  async remove(asId: string, throughId: number): Promise<number> {
    return (await this.db.all(REMOVE, asId, throughId)).length;
  }

  async pendingServices(): Promise<string[]> {
    return (await this.db.all<{ as_id: string }>(PENDING)).map((r) => r.as_id);
  }
}
