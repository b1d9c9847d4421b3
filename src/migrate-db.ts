// `portier migrate-db --to postgres://...`: copies the SQLite database of a stopped server into an
// empty PostgreSQL database (as Synapse's synapse_port_db does), then checks the copy: row counts per
// table, and a sample of events whose stored JSON must be byte-identical and still hash to the
// content hash they carry. The SQLite file is only read.
import { existsSync } from "node:fs";
import { databaseSettings } from "./app";
import type { Config } from "./config/schema";
import { parseJson } from "./protocol/canonical-json";
import type { JsonObject } from "./protocol/json";
import { roomVersion } from "./protocol/room-versions";
import { checkContentHash } from "./protocol/signing/hashes";
import type { Database, SqlParam } from "./storage/database";
import { runMigrations } from "./storage/migrations";
import { MIGRATIONS } from "./storage/open";
import { describeUrl, openPostgres } from "./storage/postgres/driver";
import { openSqlite } from "./storage/sqlite/driver";
import { toPostgresKey } from "./storage/tables/state-snapshots";

export interface MigrateOptions {
  log(line: string): void;
  /** Events whose JSON and content hash are checked after the copy (default 100). */
  sampleSize?: number;
}

export interface MigrateResult {
  tables: { name: string; rows: number }[];
  sampledEvents: number;
}

/** Rows per INSERT, at most: few round trips, yet far below PostgreSQL's 65535 parameters per statement. */
const BATCH_ROWS = 500;
const MAX_PARAMETERS = 65_535;
const PROGRESS_EVERY = 100_000;

/** Values a store writes differently on PostgreSQL, by table and column; the table modules own the encodings. */
const POSTGRES_VALUES: Readonly<Record<string, Readonly<Record<string, (stored: string) => string>>>> = {
  state_snapshot_entries: { state_key: toPostgresKey },
};

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;

interface SourceTable {
  name: string;
  /** Columns to copy, as named on both sides. */
  columns: string[];
  /** Paging key: the rowid, or the primary key of a WITHOUT ROWID table. */
  key: string[];
  /** Whether the key is the implicit rowid, selected as __key. */
  byRowid: boolean;
}

/**
 * Copies every table of `source` (SQLite, migrated to the same version) into `target` (PostgreSQL,
 * migrated and empty), in one transaction on the target: a failure leaves the target empty again, so
 * the command can simply be run once more. Then compares the two.
 */
export async function migrateDatabase(source: Database, target: Database, options: MigrateOptions): Promise<MigrateResult> {
  if (source.dialect !== "sqlite" || target.dialect !== "postgres") throw new Error("migrate-db copies a SQLite database into a PostgreSQL one");
  await checkSchemaVersions(source, target);
  await refuseNonEmpty(target, "the target database");

  const tables = await sourceTables(source, target);
  const order = await parentsFirst(target, tables.map((t) => t.name));
  const byName = new Map(tables.map((t) => [t.name, t]));
  const copied: { name: string; rows: number }[] = [];
  await target.transaction(async () => {
    for (const name of order) {
      const rows = await copyTable(source, target, byName.get(name)!, options.log);
      copied.push({ name, rows });
      options.log(`copied ${name}: ${rows} rows`);
    }
    await advanceIdentities(target);
  });

  for (const { name } of copied) {
    const [from, to] = [await count(source, name), await count(target, name)];
    if (from !== to) throw new Error(`table ${name} has ${from} rows in SQLite but ${to} in PostgreSQL after the copy`);
  }
  options.log(`row counts match in all ${copied.length} tables (${copied.reduce((n, t) => n + t.rows, 0)} rows)`);

  const names = new Set(copied.map((t) => t.name));
  const sampledEvents = names.has("events") && names.has("rooms") ? await checkEventSample(source, target, options.sampleSize ?? 100, options.log) : 0;
  return { tables: copied, sampledEvents };
}

/**
 * The CLI command: opens the SQLite database the config names and the PostgreSQL database at `toUrl`,
 * migrates the latter, copies, checks. Errors are single lines meant for the operator.
 */
export async function migrateDb(config: Readonly<Config>, toUrl: string, log: (line: string) => void): Promise<MigrateResult> {
  const settings = databaseSettings(config);
  if (settings.driver === "postgres") throw new Error("the config's database is already PostgreSQL; migrate-db copies from the SQLite database of a SQLite config");
  if (settings.path === ":memory:") throw new Error("the config's database is ':memory:': there is nothing to copy");
  // Opening a missing file would create an empty database there.
  if (!existsSync(settings.path)) throw new Error(`no SQLite database at ${settings.path}`);
  if (!/^postgres(ql)?:\/\//.test(toUrl)) throw new Error(`--to must be a postgres:// URL, not '${describeUrl(toUrl)}'`);

  const target = await openPostgres({ url: toUrl, poolSize: 4 });
  let source: Database | undefined;
  try {
    // Checked before the migrations too, so that a database holding anything is left exactly as it was.
    await refuseNonEmpty(target, `the PostgreSQL database at ${describeUrl(toUrl)}`);
    source = openSqlite(settings.path, settings.driver);
    await checkSourceSchema(source);
    log(`copying ${settings.path} into ${describeUrl(toUrl)}`);
    await runMigrations(target, MIGRATIONS);
    const result = await migrateDatabase(source, target, { log });
    log(`done: set database: {driver: postgres, url: ...} in the config and start the server`);
    return result;
  } finally {
    await source?.close();
    await target.close();
  }
}

/** The source must be a Portier database migrated exactly as far as this build migrates. */
async function checkSourceSchema(source: Database): Promise<void> {
  const hasTable = await source.get("SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'");
  if (!hasTable) throw new Error("the SQLite database has no schema_migrations table: it is not a Portier database");
  const versions = (await source.all<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version")).map((r) => r.version);
  const expected = MIGRATIONS.map((m) => m.version).sort((a, b) => a - b);
  // A later migration may rewrite rows, so an older database is not copied into the newer schema as is.
  if (versions.join(",") !== expected.join(",")) {
    const newer = versions.filter((v) => !expected.includes(v));
    throw new Error(
      newer.length > 0
        ? `the SQLite database has migrations this Portier does not know (${newer.join(", ")}): use the Portier version that wrote it`
        : `the SQLite database is at an older schema (${versions.length} of ${expected.length} migrations): start this Portier on it once, stop it, then migrate`,
    );
  }
}

async function checkSchemaVersions(source: Database, target: Database): Promise<void> {
  const of = async (db: Database) => (await db.all<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version")).map((r) => r.version).join(",");
  const [from, to] = [await of(source), await of(target)];
  if (from !== to) throw new Error(`the two databases are at different schema versions (SQLite: ${from || "none"}; PostgreSQL: ${to || "none"})`);
}

/** Refuses a target with any row in any table but schema_migrations, naming the first such table. */
async function refuseNonEmpty(target: Database, what: string): Promise<void> {
  const tables = await target.all<{ name: string }>(
    "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
  );
  for (const { name } of tables) {
    if (name === "schema_migrations") continue;
    if (await target.get(`SELECT 1 AS x FROM ${quote(name)} LIMIT 1`)) {
      throw new Error(`${what} already holds data (table ${name} has rows); migrate-db copies into an empty database only`);
    }
  }
}

/** The tables of the source in creation order, with the columns both sides have and a paging key. */
async function sourceTables(source: Database, target: Database): Promise<SourceTable[]> {
  const rows = await source.all<{ name: string; sql: string }>(
    "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'schema_migrations' ORDER BY rowid",
  );
  const targetColumns = new Map<string, Set<string>>();
  for (const c of await target.all<{ table_name: string; column_name: string }>(
    "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()",
  )) {
    let set = targetColumns.get(c.table_name);
    if (!set) targetColumns.set(c.table_name, (set = new Set()));
    set.add(c.column_name);
  }
  const tables: SourceTable[] = [];
  for (const { name, sql } of rows) {
    const inTarget = targetColumns.get(name);
    if (!inTarget) throw new Error(`table ${name} of the SQLite database has no counterpart in PostgreSQL`);
    const info = await source.all<{ name: string; pk: number }>(`PRAGMA table_info(${quote(name)})`);
    const columns = info.map((c) => c.name);
    const missing = columns.filter((c) => !inTarget.has(c));
    if (missing.length > 0) throw new Error(`table ${name}: PostgreSQL has no column ${missing.join(", ")}`);
    const withoutRowid = /\bWITHOUT\s+ROWID\b/i.test(sql);
    // A PostgreSQL table may name SQLite's implicit rowid as a column, to keep ordering by it alike.
    if (!withoutRowid && inTarget.has("rowid") && !columns.includes("rowid")) columns.push("rowid");
    const key = withoutRowid
      ? info
          .filter((c) => c.pk > 0)
          .sort((a, b) => a.pk - b.pk)
          .map((c) => c.name)
      : ["rowid"];
    tables.push({ name, columns, key, byRowid: !withoutRowid });
  }
  return tables;
}

/**
 * The tables ordered so that every table a foreign key of the target points to comes before the
 * tables pointing to it; otherwise in creation order (which is migration order).
 */
async function parentsFirst(target: Database, names: string[]): Promise<string[]> {
  const edges = await target.all<{ child: string; parent: string }>(
    `SELECT c.relname AS child, p.relname AS parent FROM pg_constraint k
       JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE k.contype = 'f' AND n.nspname = current_schema()`,
  );
  const parents = new Map<string, Set<string>>(names.map((n) => [n, new Set()]));
  for (const e of edges) if (e.child !== e.parent && parents.has(e.child) && parents.has(e.parent)) parents.get(e.child)!.add(e.parent);
  const order: string[] = [];
  const placed = new Set<string>();
  while (order.length < names.length) {
    const next = names.find((n) => !placed.has(n) && [...parents.get(n)!].every((p) => placed.has(p)));
    if (next === undefined) throw new Error("the foreign keys of the PostgreSQL schema form a cycle between tables");
    order.push(next);
    placed.add(next);
  }
  return order;
}

/**
 * Copies one table in key order (so a row referring to an earlier row of its own table, as a state
 * snapshot does to its parent, comes after it), reading by key ranges rather than OFFSET.
 */
async function copyTable(source: Database, target: Database, table: SourceTable, log: (line: string) => void): Promise<number> {
  const perInsert = Math.max(1, Math.min(BATCH_ROWS, Math.floor(MAX_PARAMETERS / table.columns.length)));
  const selectList = [...(table.byRowid ? ["rowid AS __key"] : []), ...table.columns.map((c) => (c === "rowid" ? "rowid AS rowid" : quote(c)))].join(", ");
  const keyExpr = table.byRowid ? "rowid" : table.key.map(quote).join(", ");
  const first = `SELECT ${selectList} FROM ${quote(table.name)} ORDER BY ${keyExpr} LIMIT ${perInsert}`;
  const next = `SELECT ${selectList} FROM ${quote(table.name)} WHERE (${keyExpr}) > (${table.key.map(() => "?").join(", ")}) ORDER BY ${keyExpr} LIMIT ${perInsert}`;
  // GENERATED ALWAYS identity columns take the copied values only when told to.
  const overriding = (await hasIdentity(target, table.name, table.columns)) ? " OVERRIDING SYSTEM VALUE" : "";
  const tuple = `(${table.columns.map(() => "?").join(", ")})`;
  const insertHead = `INSERT INTO ${quote(table.name)} (${table.columns.map(quote).join(", ")})${overriding} VALUES `;

  const conversions = POSTGRES_VALUES[table.name] ?? {};
  const convert = table.columns.map((c) => conversions[c]);

  let copied = 0;
  let last: SqlParam[] | undefined;
  for (;;) {
    const rows = last === undefined ? await source.all<Record<string, SqlParam>>(first) : await source.all<Record<string, SqlParam>>(next, ...last);
    if (rows.length === 0) break;
    const params: SqlParam[] = [];
    for (const row of rows) {
      for (let i = 0; i < table.columns.length; i++) {
        let value = row[table.columns[i]] ?? null;
        if (typeof value === "string") {
          if (convert[i]) value = convert[i](value);
          // PostgreSQL text cannot hold NUL: say where, rather than fail with the server's encoding error.
          else if (value.includes("\u0000")) throw new Error(`table ${table.name}, column ${table.columns[i]}: a value holds a NUL character, which PostgreSQL text cannot store`);
        }
        params.push(value);
      }
    }
    await target.run(insertHead + Array(rows.length).fill(tuple).join(", "), ...params);
    copied += rows.length;
    if (Math.floor(copied / PROGRESS_EVERY) > Math.floor((copied - rows.length) / PROGRESS_EVERY)) log(`copying ${table.name}: ${copied} rows so far`);
    const end = rows[rows.length - 1];
    last = table.byRowid ? [end.__key] : table.key.map((k) => end[k]);
    if (rows.length < perInsert) break;
  }
  return copied;
}

async function hasIdentity(target: Database, table: string, columns: string[]): Promise<boolean> {
  const rows = await target.all<{ column_name: string }>(
    "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND is_identity = 'YES'",
    table,
  );
  return rows.some((r) => columns.includes(r.column_name));
}

/** Moves each identity (and serial) column's sequence past the largest copied value, so new rows do not collide. */
async function advanceIdentities(target: Database): Promise<void> {
  const columns = await target.all<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns
     WHERE table_schema = current_schema() AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')`,
  );
  for (const { table_name: table, column_name: column } of columns) {
    // setval is strict: on an empty table max() is NULL and the sequence stays at its start.
    await target.get(`SELECT setval(pg_get_serial_sequence(?, ?), max(${quote(column)})) AS v FROM ${quote(table)}`, quote(table), column);
  }
}

async function count(db: Database, table: string): Promise<number> {
  return (await db.get<{ n: number }>(`SELECT count(*) AS n FROM ${quote(table)}`))!.n;
}

/**
 * A random sample of events: the PostgreSQL copy of the stored JSON must have the same UTF-8 bytes as
 * SQLite's, and hash again to the `hashes.sha256` it carries. An event stored redacted on receipt
 * (its content hash did not match when it arrived) carries a hash its stored form cannot match, in
 * SQLite as well: such events are counted, not failed.
 */
async function checkEventSample(source: Database, target: Database, size: number, log: (line: string) => void): Promise<number> {
  if (size <= 0) return 0;
  const sample = await source.all<{ event_id: string; room_id: string; bytes: Uint8Array; room_version: string | null }>(
    `SELECT e.event_id, e.room_id, CAST(e.json AS BLOB) AS bytes, r.room_version FROM events e LEFT JOIN rooms r ON r.room_id = e.room_id
     ORDER BY random() LIMIT ?`,
    size,
  );
  const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  let hashed = 0;
  let storedRedacted = 0;
  for (const e of sample) {
    const copy = await target.get<{ bytes: Uint8Array }>("SELECT convert_to(json, 'UTF8') AS bytes FROM events WHERE event_id = ?", e.event_id);
    if (!copy) throw new Error(`event ${e.event_id} is missing in PostgreSQL`);
    if (!bytesEqual(new Uint8Array(e.bytes), new Uint8Array(copy.bytes))) throw new Error(`event ${e.event_id}: the JSON stored in PostgreSQL differs from SQLite's`);
    const version = e.room_version === null ? undefined : roomVersion(e.room_version);
    if (!version) continue; // an event of a room this server never stored a version for: nothing to hash against
    // v1..v5 events may hold floats that only a lossless parse hashes again byte for byte.
    const pdu = parseJson(utf8.decode(copy.bytes), { lossless: !version.strictCanonicalJson }) as JsonObject;
    const verdict = checkContentHash(pdu, version);
    if (verdict.valid) hashed++;
    else storedRedacted++;
  }
  log(
    `checked ${sample.length} sampled events: JSON identical in both databases, ${hashed} match their content hash` +
      (storedRedacted > 0 ? `, ${storedRedacted} were stored redacted on receipt (their hash differs in SQLite too)` : ""),
  );
  return sample.length;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
