// SQLite under the Database seam (database.ts): better-sqlite3 (the default) or bun:sqlite, both
// synchronous libraries in process. One connection: a transaction batch runs on it while reads from
// outside the batch wait for its commit, so they never see uncommitted rows.
import { closeSync, fdatasyncSync, fstatSync, openSync, writeSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { Database as BunDatabase } from "bun:sqlite";
import { betterSqliteAddonPath } from "./native-addon";
import { isWriteStatement, type Database, type DatabaseTimings, type SqlParam, type SqlRunResult } from "../database";
import { SingleWriterDatabase, TransactionEndedError } from "../group-commit";

export type SqliteDriverName = "better-sqlite3" | "bun-sqlite";

/** The synchronous calls both libraries offer, with "no row" as undefined. */
interface SyncStatement {
  run(...params: SqlParam[]): { changes: number | bigint };
  get(...params: SqlParam[]): unknown;
  all(...params: SqlParam[]): unknown[];
}

interface SyncConnection {
  prepare(sql: string): SyncStatement;
  exec(sql: string): void;
  close(): void;
}

// WAL for concurrent readers. synchronous=NORMAL: SQLite itself does not fsync at COMMIT (it still
// syncs around checkpoints); the driver makes each commit durable by syncing the WAL file in the
// thread pool before any transaction of the batch resolves (see `end`). With FULL, SQLite's fsync ran
// on the one JS thread and stopped the whole server for the length of every disk flush.
//
// Checkpoints (copying the WAL's pages into the database file, with two fsyncs) also run on the JS
// thread, inside the COMMIT that crosses wal_autocheckpoint. SQLite's default (1,000 pages, 4 MiB)
// had one every few commits under load; each copies the pages written since the last one, and the
// pages busy rooms change over and over (index leaves, table tails) are copied once per checkpoint
// however often they were rewritten. At 10,000 pages a send's share of COMMIT time fell by a third
// (more with notifications: 426 -> 240 us a send to rooms of ten local members), and the longest
// COMMIT stayed about the same. journal_size_limit truncates a WAL that grew past 64 MiB (a large
// import) back to that size after a checkpoint.
//
// temp_store=MEMORY: every transaction of a batch runs in a savepoint (group-commit.ts), and SQLite
// keeps the original of each page a savepoint changes, to roll back to. Past 64 KiB it spilled those
// to a temporary file: two writes a page, ~14 pages a message send, 2.5 times the writes of the WAL
// itself, all on the JS thread. In memory, the SQL time of a concurrent send fell from ~80-100 to
// ~45-50 us. What a unit keeps grows with the pages it changes, held until the batch commits: bulk
// work (a join's whole state: 103-110 MiB for 10,000 events into a database of 100,000) runs alone,
// without savepoints (TransactionOptions.alone: 7-9 MiB then). Sorts and temporary B-trees of
// queries stay in memory too; migrations, which may rewrite a table or sort a new index, use files
// meanwhile (migrations.ts).
export const WAL_AUTOCHECKPOINT_PAGES = 10_000;
const PRAGMAS = ["journal_mode = WAL", "temp_store = MEMORY", "synchronous = NORMAL", "foreign_keys = ON", "busy_timeout = 5000", `wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`, `journal_size_limit = ${64 * 1024 * 1024}`];

function openBetterSqlite(path: string): SyncConnection {
  const db = new BetterSqlite3(path, betterSqliteAddonPath ? { nativeBinding: betterSqliteAddonPath } : {});
  for (const p of PRAGMAS) db.pragma(p);
  return {
    prepare: (sql) => {
      const stmt = db.prepare(sql);
      // better-sqlite3 refuses all()/get() on statements that return nothing; run() is the only call then.
      const reader = stmt.reader;
      return {
        run: (...params) => stmt.run(...params),
        get: (...params) => (reader ? stmt.get(...params) : (stmt.run(...params), undefined)),
        all: (...params) => (reader ? stmt.all(...params) : (stmt.run(...params), [])),
      };
    },
    exec: (sql) => void db.exec(sql),
    close: () => db.close(),
  };
}

function openBunSqlite(path: string): SyncConnection {
  const db = new BunDatabase(path, { create: true, strict: true });
  for (const p of PRAGMAS) db.exec(`PRAGMA ${p}`);
  return {
    prepare: (sql) => {
      const stmt = db.prepare(sql);
      return {
        run: (...params) => stmt.run(...params),
        get: (...params) => stmt.get(...params) ?? undefined,
        all: (...params) => stmt.all(...params),
      };
    },
    exec: (sql) => db.exec(sql),
    close: () => db.close(),
  };
}

/** Prepared statements kept per SQL text; statements built with a varying number of placeholders are few. */
const STATEMENT_CACHE = 2000;

class SqliteDatabase extends SingleWriterDatabase<SyncConnection> implements Database {
  readonly dialect = "sqlite" as const;
  private readonly statements = new Map<string, SyncStatement>();
  private closed = false;
  /** WAL syncs so far: one per commit of a file database, before its transactions resolve. */
  walSyncs = 0;
  /**
   * The WAL file, kept open: SQLite deletes and recreates it only when the last connection to the
   * database closes (or the journal mode changes), and this connection stays open until close().
   */
  private wal: FileHandle | undefined;
  private timings: DatabaseTimings | undefined;
  /** When the running batch began (performance.now()), while timings are on. */
  private batchStart = 0;

  constructor(
    readonly driver: SqliteDriverName,
    private readonly conn: SyncConnection,
    /** The WAL file to sync after each commit; undefined for in-memory databases (nothing to make durable). */
    walPath: string | undefined,
    /** The WAL is filled with zeros to this size in the first write transaction (see preallocateWal); 0: not. */
    walPreallocateBytes = 0,
  ) {
    let walToFill = walPath !== undefined && walPreallocateBytes > 0;
    super({
      begin: () => {
        if (this.timings) this.batchStart = performance.now();
        conn.exec("BEGIN IMMEDIATE");
        // Under the write lock BEGIN IMMEDIATE took: no connection, of this process or another
        // (`portier register-user` beside a running server), appends to the WAL meanwhile.
        if (walToFill) {
          try {
            walToFill = !preallocateWal(walPath!, walPreallocateBytes);
          } catch {
            walToFill = false; // a full disk, say: the log then grows as it would unfilled
          }
        }
        return conn;
      },
      statement: (c, sql) => c.exec(sql),
      end: async (c, commit, quiet) => {
        try {
          c.exec(commit ? "COMMIT" : "ROLLBACK");
        } catch (error) {
          // A COMMIT that failed may leave the transaction open: close it, or every later BEGIN fails.
          try {
            c.exec("ROLLBACK");
          } catch {
            /* already closed */
          }
          throw error;
        }
        if (commit && walPath) {
          await this.syncWal(walPath, quiet);
          this.walSyncs++;
        }
        this.timings?.commit((performance.now() - this.batchStart) / 1000);
      },
    });
  }

  private statement(sql: string): SyncStatement {
    let stmt = this.statements.get(sql);
    if (!stmt) {
      if (this.closed) throw new Error("the database is closed");
      if (this.statements.size >= STATEMENT_CACHE) this.statements.clear();
      stmt = this.conn.prepare(sql);
      this.statements.set(sql, stmt);
    }
    return stmt;
  }

  setTimings(timings: DatabaseTimings): void {
    this.timings = timings;
  }

  /** Frees the connection's page cache (pages an open transaction uses stay: SQLite keeps what is in use). */
  releaseMemory(): void {
    if (!this.closed) this.conn.exec("PRAGMA shrink_memory");
  }

  /** Runs a query now if the caller may: inside its transaction, or when no batch is open. */
  private async query<T>(sql: string, call: (stmt: SyncStatement) => T): Promise<T> {
    if (!this.writer.current()) {
      if (isWriteStatement(sql)) {
        if (this.writer.ended()) throw new TransactionEndedError();
        return this.writer.run(async () => this.timed(sql, call));
      }
      while (this.writer.running) await this.writer.running;
    }
    return this.timed(sql, call);
  }

  /** One statement, timed when timings are on (two clock reads; the statement runs synchronously). */
  private timed<T>(sql: string, call: (stmt: SyncStatement) => T): T {
    const timings = this.timings;
    if (timings === undefined) return call(this.statement(sql));
    const start = performance.now();
    try {
      return call(this.statement(sql));
    } finally {
      timings.statement((performance.now() - start) / 1000, isWriteStatement(sql));
    }
  }

  get<Row>(sql: string, ...params: SqlParam[]): Promise<Row | undefined> {
    return this.query(sql, (s) => s.get(...params) as Row | undefined);
  }

  all<Row>(sql: string, ...params: SqlParam[]): Promise<Row[]> {
    return this.query(sql, (s) => s.all(...params) as Row[]);
  }

  run(sql: string, ...params: SqlParam[]): Promise<SqlRunResult> {
    return this.query(sql, (s) => ({ changes: Number(s.run(...params).changes) }));
  }

  async exec(sql: string): Promise<void> {
    if (this.writer.current()) return this.conn.exec(sql);
    await this.writer.run(async () => this.conn.exec(sql));
  }

  /**
   * fdatasync of the WAL, off the JS thread: the event loop goes on building the next batch
   * meanwhile. A lone small write with nothing queued behind it (`quiet`: sequential sends, a quiet
   * server) syncs on the thread instead: the thread pool's round trip added about 0.1 ms to each
   * such write (0.39 against 0.23 ms a send, in process); under concurrent writes, syncing on the
   * thread cost a tenth of the throughput, so those stay off it.
   */
  private async syncWal(path: string, quiet: boolean): Promise<void> {
    if (quiet && this.wal) {
      fdatasyncSync(this.wal.fd);
      return;
    }
    if (!this.wal) {
      this.wal = await open(path, "r");
      // A WAL file made at this start is durable only once its directory entry is.
      const folder = await open(dirname(path), "r");
      try {
        await folder.sync();
      } finally {
        await folder.close();
      }
    }
    await this.wal.datasync();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.writer.drain();
    await this.wal?.close();
    this.wal = undefined;
    this.closed = true;
    this.statements.clear();
    this.conn.close();
  }
}


/**
 * Fills the WAL with zeros past its end, up to `bytes`; false when there is no WAL file yet (a new
 * database makes it at its first write: filled at the next transaction). A commit that grows the file makes its
 * fdatasync commit the new size too (a journal commit of the file system): measured here, 0.23 ms
 * a sync when appending against 0.11 ms when overwriting, which was a quarter of a sequential send.
 * SQLite writes its frames at their offsets and, once a checkpoint has copied them all, starts again
 * from the top of the file, so a filled WAL is only ever overwritten until the first checkpoint has
 * passed its end. Zeros are never a valid frame: recovery after a crash stops at the first one, as it
 * stops at the first frame of an older generation. Done from the file's current end while holding
 * the database's write lock, so that no frame anyone writes can be overwritten.
 */
function preallocateWal(path: string, bytes: number): boolean {
  let fd: number;
  try {
    fd = openSync(path, "r+");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
  try {
    const zeros = Buffer.alloc(1024 * 1024);
    for (let at = fstatSync(fd).size; at < bytes; at += zeros.length) writeSync(fd, zeros, 0, Math.min(zeros.length, bytes - at), at);
    fdatasyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

export function openSqlite(
  path: string,
  driver: SqliteDriverName = "better-sqlite3",
  options: { walPreallocateBytes?: number } = {},
): Database & { readonly commitStats: { commits: number; units: number }; readonly walSyncs: number } {
  const inMemory = path === ":memory:" || path === "" || path.startsWith("file::memory:");
  return new SqliteDatabase(driver, driver === "bun-sqlite" ? openBunSqlite(path) : openBetterSqlite(path), inMemory ? undefined : `${path}-wal`, options.walPreallocateBytes ?? 0);
}
