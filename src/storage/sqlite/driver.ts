// SQLite under the Database seam (database.ts): better-sqlite3 (the default) or bun:sqlite, both
// synchronous libraries in process. One connection: a transaction batch runs on it while reads from
// outside the batch wait for its commit, so they never see uncommitted rows.
import BetterSqlite3 from "better-sqlite3";
import { Database as BunDatabase } from "bun:sqlite";
import { betterSqliteAddonPath } from "./native-addon";
import { isWriteStatement, type Database, type SqlParam, type SqlRunResult } from "../database";
import { SingleWriterDatabase } from "../group-commit";

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

// WAL for concurrent readers; synchronous=FULL so that a commit survives power loss.
const PRAGMAS = ["journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON", "busy_timeout = 5000"];

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

  constructor(
    readonly driver: SqliteDriverName,
    private readonly conn: SyncConnection,
  ) {
    super({
      begin: () => {
        conn.exec("BEGIN IMMEDIATE");
        return conn;
      },
      statement: (c, sql) => c.exec(sql),
      end: (c, commit) => c.exec(commit ? "COMMIT" : "ROLLBACK"),
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

  /** Runs a query now if the caller may: inside its transaction, or when no batch is open. */
  private async query<T>(sql: string, call: (stmt: SyncStatement) => T): Promise<T> {
    if (!this.writer.current()) {
      if (isWriteStatement(sql)) return this.writer.run(async () => call(this.statement(sql)));
      while (this.writer.running) await this.writer.running;
    }
    return call(this.statement(sql));
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

  async close(): Promise<void> {
    if (this.closed) return;
    await this.writer.drain();
    this.closed = true;
    this.statements.clear();
    this.conn.close();
  }
}

export function openSqlite(path: string, driver: SqliteDriverName = "better-sqlite3"): Database & { readonly commitStats: { commits: number; units: number } } {
  return new SqliteDatabase(driver, driver === "bun-sqlite" ? openBunSqlite(path) : openBetterSqlite(path));
}
