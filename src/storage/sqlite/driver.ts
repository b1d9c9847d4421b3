// The small seam between Portier's SQL and the SQLite library under it. better-sqlite3 (the default)
// and bun:sqlite have near-identical APIs; this keeps the differences (null vs undefined from get(),
// how the native addon is found) in one place. Positional `?` parameters only.
import BetterSqlite3 from "better-sqlite3";
import { Database as BunDatabase } from "bun:sqlite";
import { betterSqliteAddonPath } from "./native-addon";

export type SqlParam = string | number | bigint | null | Uint8Array;

export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

export interface Statement<Row = Record<string, unknown>> {
  run(...params: SqlParam[]): RunResult;
  get(...params: SqlParam[]): Row | undefined;
  all(...params: SqlParam[]): Row[];
}

export interface SqlDatabase {
  readonly driver: DriverName;
  prepare<Row = Record<string, unknown>>(sql: string): Statement<Row>;
  exec(sql: string): void;
  /** Runs fn in one transaction (nested calls become savepoints); commits when fn returns. */
  transaction<T>(fn: () => T): T;
  close(): void;
}

export type DriverName = "better-sqlite3" | "bun-sqlite";

// WAL for concurrent readers; synchronous=FULL so that a 200 means the write survives power loss.
const PRAGMAS = ["journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON", "busy_timeout = 5000"];

function openBetterSqlite(path: string): SqlDatabase {
  const db = new BetterSqlite3(path, betterSqliteAddonPath ? { nativeBinding: betterSqliteAddonPath } : {});
  for (const p of PRAGMAS) db.pragma(p);
  return {
    driver: "better-sqlite3",
    prepare<Row>(sql: string) {
      const stmt = db.prepare(sql);
      return {
        run: (...params: SqlParam[]) => stmt.run(...params),
        get: (...params: SqlParam[]) => stmt.get(...params) as Row | undefined,
        all: (...params: SqlParam[]) => stmt.all(...params) as Row[],
      };
    },
    exec: (sql) => void db.exec(sql),
    transaction: <T>(fn: () => T) => db.transaction(fn)(),
    close: () => db.close(),
  };
}

function openBunSqlite(path: string): SqlDatabase {
  const db = new BunDatabase(path, { create: true, strict: true });
  for (const p of PRAGMAS) db.exec(`PRAGMA ${p}`);
  return {
    driver: "bun-sqlite",
    prepare<Row>(sql: string) {
      const stmt = db.prepare(sql);
      return {
        run: (...params: SqlParam[]) => stmt.run(...params),
        // bun:sqlite answers null for "no row"; the seam says undefined.
        get: (...params: SqlParam[]) => (stmt.get(...params) ?? undefined) as Row | undefined,
        all: (...params: SqlParam[]) => stmt.all(...params) as Row[],
      };
    },
    exec: (sql) => db.exec(sql),
    transaction: <T>(fn: () => T) => db.transaction(fn)(),
    close: () => db.close(),
  };
}

export function openDatabase(path: string, driver: DriverName = "better-sqlite3"): SqlDatabase {
  return driver === "bun-sqlite" ? openBunSqlite(path) : openBetterSqlite(path);
}
