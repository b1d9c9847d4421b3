// The seam between Portier's SQL and the engine under it: SQLite (better-sqlite3 or bun:sqlite, in
// process) or PostgreSQL (Bun's SQL client, over the network). Everything is async, so the same
// store code runs on both.
//
// The rules the stores rely on, on every engine:
// - SQL is written once, in the subset both engines understand: `?` placeholders (translated to $n
//   for PostgreSQL), `INSERT ... ON CONFLICT ... DO NOTHING / DO UPDATE SET x = excluded.x`,
//   `RETURNING`, `WITH RECURSIVE`. Only DDL differs (see migrations.ts).
// - Integers come back as JS numbers (PostgreSQL's int8 included), text as strings, NULL as null.
// - One writer: every write runs inside a transaction, and transactions run one at a time (a write
//   statement outside one becomes a transaction of its own). So stream orderings taken as max + 1
//   are gap-free in commit order, which /sync relies on.
// - Group commit: transactions that arrive together run in one engine transaction (each in its own
//   savepoint, so one failing rolls back only itself) and share one commit, one fsync. A
//   transaction's promise settles only after that commit: when it resolves, the write is durable.
// - Reads outside a transaction see only committed data; inside one, its own writes. Which one a
//   query belongs to follows the async call chain (AsyncLocalStorage), so store methods called
//   inside `transaction(fn)` join it without passing a handle around.

export type SqlParam = string | number | bigint | null | Uint8Array;

export type Dialect = "sqlite" | "postgres";
export type DriverName = "better-sqlite3" | "bun-sqlite" | "postgres";

export interface SqlRunResult {
  /** Rows inserted, updated or deleted. */
  readonly changes: number;
}

/** How a transaction asks to be run. */
export interface TransactionOptions {
  /**
   * In an engine transaction of its own, never sharing a batch: for bulk work (a join's whole state,
   * a room of thousands of members' notifications). A unit that shares a batch runs in a savepoint,
   * and SQLite keeps the original of every page a savepoint changes until it ends (in memory:
   * temp_store, sqlite/driver.ts); alone it has no savepoint around it, nor its nested transactions
   * (one per row of bulk work): a nested one that fails fails the whole unit, even when the unit
   * catches its error. Ignored for a nested transaction (a savepoint of its caller's).
   */
  readonly alone?: boolean;
  /**
   * May run side by side with the other such units of its batch, on the one connection, without a
   * savepoint of its own, where the engine gains from it (PostgreSQL: their statements' round trips
   * overlap instead of following one another; SQLite runs each statement on the spot and ignores
   * this). For independent writes only: a message into a room (whose writes the room's queue keeps
   * one at a time), with no read-then-write of rows that another unit may share. If any of them
   * fails, all of them are rolled back together; those that did not fail themselves try once more
   * together, the others run one by one, each in its savepoint as any other unit: the function must
   * be safe to run again after a rollback. Ignored for a nested transaction.
   */
  readonly concurrent?: boolean;
}

export interface Database {
  readonly driver: DriverName;
  readonly dialect: Dialect;
  /** The first row, or undefined. */
  get<Row = Record<string, unknown>>(sql: string, ...params: SqlParam[]): Promise<Row | undefined>;
  all<Row = Record<string, unknown>>(sql: string, ...params: SqlParam[]): Promise<Row[]>;
  run(sql: string, ...params: SqlParam[]): Promise<SqlRunResult>;
  /** Several statements without parameters (DDL). */
  exec(sql: string): Promise<void>;
  /**
   * Runs fn in a transaction and resolves once it is committed (durable). Queries made by fn, however
   * deep in its call chain, join the transaction; a nested call becomes a savepoint (none in a unit
   * run alone, whose nested failure fails it whole). If fn throws, everything it wrote is rolled back
   * and the promise rejects with that error. `alone`: bulk work that must not share a batch
   * (TransactionOptions).
   */
  transaction<T>(fn: () => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Whether the caller runs inside a transaction of this database. */
  inTransaction(): boolean;
  /** Called after any rollback (of a transaction or a savepoint; in a unit run alone, once for the unit), so caches of uncommitted rows can be dropped. */
  onRollback(listener: () => void): void;
  /** Called after each COMMIT, before the committed transactions' callers resume: caches of what they wrote can be dropped. */
  onCommit(listener: () => void): void;
  /** Waits for queued transactions, then closes. */
  close(): Promise<void>;
  /** Reports how long statements and commits take (metrics); until called, nothing is timed. */
  setTimings?(timings: DatabaseTimings): void;
  /**
   * Hands back the memory the engine keeps beyond what it needs (SQLite's page cache, which the next
   * reads fill again from the file system's cache). Called when the server goes quiet after a load.
   */
  releaseMemory?(): void;
}

/** Where a driver reports its time. Called on every statement: implementations must be cheap. */
export interface DatabaseTimings {
  /** One statement's run on the engine (waiting for a batch to commit not included), in seconds. */
  statement(seconds: number, write: boolean): void;
  /** One group-commit batch, from BEGIN to its durable COMMIT (or ROLLBACK), in seconds. */
  commit(seconds: number): void;
}

const writes = new Map<string, boolean>();

/** Whether a statement writes (anything but SELECT, WITH ... SELECT, PRAGMA and EXPLAIN); remembered per SQL text. */
export function isWriteStatement(sql: string): boolean {
  let write = writes.get(sql);
  if (write === undefined) {
    if (writes.size > 5000) writes.clear();
    write = classify(sql);
    writes.set(sql, write);
  }
  return write;
}

function classify(sql: string): boolean {
  const head = /^\s*(\w+)/.exec(sql)?.[1]?.toUpperCase();
  if (head === "SELECT" || head === "PRAGMA" || head === "EXPLAIN" || head === "SHOW") return false;
  if (head === "WITH") return /\b(INSERT|UPDATE|DELETE)\b/i.test(sql);
  return true;
}

/** The largest number of transactions that share one commit. */
export const MAX_GROUP_COMMIT = 256;
