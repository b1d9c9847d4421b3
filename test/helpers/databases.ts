// Every database engine a store test runs on: both SQLite drivers, and PostgreSQL where a server
// can be started (test/helpers/postgres.ts). Each open() gives a fresh, empty, migrated database.
import type { Database, DriverName } from "../../src/storage/database";
import { openSqlite } from "../../src/storage/sqlite/driver";
import { openPostgres } from "../../src/storage/postgres/driver";
import { MIGRATIONS, storesOver, type Stores } from "../../src/storage/open";
import { runMigrations } from "../../src/storage/migrations";
import { freshPostgresUrl, postgresAvailable } from "./postgres";

export interface TestDatabase {
  readonly name: DriverName;
  /** A fresh database with every migration run. */
  open(): Promise<Database>;
}

async function migrated(db: Database): Promise<Database> {
  await runMigrations(db, MIGRATIONS);
  return db;
}

export const sqliteDatabases: TestDatabase[] = [
  { name: "better-sqlite3", open: () => migrated(openSqlite(":memory:", "better-sqlite3")) },
  { name: "bun-sqlite", open: () => migrated(openSqlite(":memory:", "bun-sqlite")) },
];

export const postgresDatabase: TestDatabase = {
  name: "postgres",
  open: () => openPostgresDatabase(),
};

/** A fresh, migrated PostgreSQL database; `beginAheadMs` as in PostgresOptions (0: no transaction begun ahead). */
export async function openPostgresDatabase(options: { beginAheadMs?: number } = {}): Promise<Database> {
  return migrated(await openPostgres({ url: await freshPostgresUrl(), poolSize: 4, ...options }));
}

export const hasPostgres = await postgresAvailable();

/** The engines of this run: SQLite always, PostgreSQL when available. */
export const testDatabases: TestDatabase[] = hasPostgres ? [...sqliteDatabases, postgresDatabase] : sqliteDatabases;

/** Settings for a server config on each engine ({} keeps the default SQLite file). */
export async function databaseConfig(name: DriverName): Promise<Record<string, unknown>> {
  if (name === "postgres") return { database: { driver: "postgres", url: await freshPostgresUrl() } };
  return { database: { driver: name } };
}

export async function testStores(name: DriverName = "better-sqlite3"): Promise<Stores> {
  const db = await (testDatabases.find((d) => d.name === name) ?? sqliteDatabases[0]).open();
  return storesOver(db);
}

/**
 * The engines whole-server tests run on: the default SQLite driver and PostgreSQL. bun:sqlite runs
 * the same store code through the same seam; the store and driver tests cover it.
 */
export const serverDatabases: TestDatabase[] = testDatabases.filter((d) => d.name !== "bun-sqlite");
