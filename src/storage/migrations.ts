// Numbered migrations, run in order at start inside one transaction each. A migration is never
// edited once released: add a new one. Each table's DDL lives with its table module, once per
// dialect (the queries are shared; the DDL is where SQLite and PostgreSQL differ).
import type { Database } from "./database";

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** DDL for SQLite (STRICT tables, INTEGER PRIMARY KEY rowids). */
  readonly sqlite: string;
  /** DDL for PostgreSQL (BIGINT for every integer, identity columns for rowids). */
  readonly postgres: string;
}

export async function runMigrations(db: Database, migrations: readonly Migration[], now: () => number = Date.now): Promise<number[]> {
  await db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ts BIGINT NOT NULL)");
  const applied = new Set((await db.all<{ version: number }>("SELECT version FROM schema_migrations")).map((r) => r.version));
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  const seen = new Set<number>();
  for (const m of sorted) {
    if (seen.has(m.version)) throw new Error(`duplicate migration number ${m.version}`);
    seen.add(m.version);
  }
  const ran: number[] = [];
  const pending = sorted.filter((m) => !applied.has(m.version));
  if (pending.length === 0) return ran;
  // SQLite keeps the undo pages of savepoints and statements, and its sorts, in memory while serving
  // (temp_store, sqlite/driver.ts). A migration may rewrite a whole table or sort a new index:
  // meanwhile they go to files, as they would by default, so that an upgrade of a large database
  // does not hold a table in memory. The setting applies to transactions begun after it: run
  // migrations outside any transaction (as at start).
  const tempStore = db.dialect === "sqlite" ? (await db.get<{ temp_store: number }>("PRAGMA temp_store"))?.temp_store : undefined;
  if (tempStore !== undefined) await db.run("PRAGMA temp_store = FILE");
  try {
    for (const m of pending) {
      await db.transaction(async () => {
        await db.exec(db.dialect === "postgres" ? m.postgres : m.sqlite);
        await db.run("INSERT INTO schema_migrations (version, name, applied_ts) VALUES (?, ?, ?)", m.version, m.name, now());
      });
      ran.push(m.version);
    }
  } finally {
    if (tempStore !== undefined) await db.run(`PRAGMA temp_store = ${Number(tempStore)}`);
  }
  return ran;
}
