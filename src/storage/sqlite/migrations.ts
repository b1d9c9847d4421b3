// Numbered migrations, run in order at start inside one transaction each. A migration is never
// edited once released: add a new one. Each table's DDL lives with its table module.
import type { SqlDatabase } from "./driver";

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly up: string;
}

export function runMigrations(db: SqlDatabase, migrations: readonly Migration[]): number[] {
  db.exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ts INTEGER NOT NULL)");
  const applied = new Set(db.prepare<{ version: number }>("SELECT version FROM schema_migrations").all().map((r) => r.version));
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  const seen = new Set<number>();
  for (const m of sorted) {
    if (seen.has(m.version)) throw new Error(`duplicate migration number ${m.version}`);
    seen.add(m.version);
  }
  const ran: number[] = [];
  for (const m of sorted) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      db.exec(m.up);
      db.prepare("INSERT INTO schema_migrations (version, name, applied_ts) VALUES (?, ?, ?)").run(m.version, m.name, Date.now());
    });
    ran.push(m.version);
  }
  return ran;
}
