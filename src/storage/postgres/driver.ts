// PostgreSQL under the Database seam (database.ts), through Bun's built-in SQL client (nothing to
// embed in the binary). Reads outside a transaction go to the pool; transactions run one batch at a
// time on a reserved connection (group commit), which keeps stream orderings gap-free in commit order;
// inside a batch, messages' transactions run side by side (group-commit.ts, concurrentUnits).
// On that connection, statements that do not wait for each other's answers (savepoints, and the
// writes a store sends together) are pipelined: the time of a batch is its number of round trips,
// each a wake-up of a server process and of the event loop, much more than the statements' work.
import { SQL } from "bun";
import { isWriteStatement, type Database, type DatabaseTimings, type SqlParam, type SqlRunResult } from "../database";
import { MatrixError } from "../../protocol/errors";
import { SingleWriterDatabase, TransactionEndedError } from "../group-commit";

export interface PostgresOptions {
  /** postgres://user:password@host:port/database (or ?host=/path/to/socket-dir). */
  url: string;
  /** Connections in the pool (one of them is the writer while a batch runs). */
  poolSize: number;
  /** How long a transaction begun ahead for the next batch waits for it (PostgresDatabase.ahead); 0: none is. */
  beginAheadMs?: number;
}

type Client = InstanceType<typeof SQL>;
type Reserved = Awaited<ReturnType<Client["reserve"]>>;

/** `?` placeholders as PostgreSQL's $1, $2, ... (Portier's SQL has no `?` inside string literals). */
export function numberedPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

/** int8 columns (and count(*), max() of them) arrive as bigint: every integer Portier stores fits a double. */
function toNumbers<Row>(row: Record<string, unknown>): Row {
  for (const key in row) {
    const v = row[key];
    if (typeof v === "bigint") row[key] = Number(v);
  }
  return row as Row;
}

/**
 * Whether an error means the server is out of reach (connection refused, closed, shut down) rather
 * than that the statement is wrong: SQLSTATE class 08 and 57P01-57P03, or the client's own codes.
 */
export function isConnectionLoss(error: unknown): boolean {
  const e = error as { code?: unknown; errno?: unknown };
  if (typeof e?.code === "string" && e.code.startsWith("ERR_POSTGRES_CONNECTION")) return true;
  return typeof e?.errno === "string" && (e.errno.startsWith("08") || ["57P01", "57P02", "57P03"].includes(e.errno));
}

/**
 * A lost database reaches the client as a Matrix error it can retry (503), not a crash; the pool
 * reconnects on the next query once the server is back. A write whose commit did not complete was
 * never answered 200, so nothing acknowledged is lost.
 */
function unavailable(error: unknown): unknown {
  return isConnectionLoss(error) ? new MatrixError("M_UNKNOWN", "The database is unavailable; try again shortly", 503) : error;
}

/** Pooled connections that died with the server fail once each before the pool opens new ones. */
const RECONNECT_ATTEMPTS = 4;

/** How long a transaction begun ahead for the next batch waits for it, by default (PostgresDatabase.ahead). */
export const BEGUN_AHEAD_MS = 250;

/**
 * One statement. `retry` only where running it again is harmless: a read outside a transaction, or
 * BEGIN (nothing written yet); such a statement is tried again on a fresh connection after a loss.
 */
async function query(conn: Client | Reserved, text: string, params?: unknown[], retry = false): Promise<Record<string, unknown>[] & { count?: number; affectedRows?: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await (params ? conn.unsafe(text, params) : conn.unsafe(text))) as Record<string, unknown>[] & { count?: number; affectedRows?: number };
    } catch (error) {
      if (!retry || attempt >= RECONNECT_ATTEMPTS || !isConnectionLoss(error)) throw unavailable(error);
    }
  }
}

/** Redacts the password of a database URL for messages. */
export function describeUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

class PostgresDatabase extends SingleWriterDatabase<Reserved> implements Database {
  readonly driver = "postgres" as const;
  readonly dialect = "postgres" as const;
  private readonly translated = new Map<string, string>();
  private closed = false;
  private timings: DatabaseTimings | undefined;
  /** When the running batch began (performance.now()), while timings are on. */
  private batchStart = 0;
  /** Statements sent on the writer's connection, and round trips: those sent while none was awaiting its answer. */
  readonly writerStats = { statements: 0, roundTrips: 0 };
  private writerInFlight = 0;
  /**
   * The writer's connection after a commit, with the next batch's BEGIN sent at once: a batch that
   * follows within `beginAheadMs` (a client's sequential sends) finds its transaction open and sends
   * its first statement without waiting a round trip for BEGIN. Until its first statement, a READ
   * COMMITTED transaction holds no snapshot, so it keeps nothing back meanwhile. After that time it is
   * rolled back and the connection goes back to the pool: a batch after a pause begins on a pooled
   * connection, where one that died with the server is replaced without the request noticing. (A
   * server that goes away within that time, or that ends idle transactions sooner, fails the next
   * batch with 503, as any batch running when it goes: the clients try again.)
   */
  private ahead: { conn: Reserved; begun: Promise<boolean>; timer: ReturnType<typeof setTimeout> } | undefined;
  /** The rollback of a transaction begun ahead that no batch took, while it runs (close() waits for it). */
  private dropping: Promise<void> | undefined;

  constructor(
    private readonly client: Client,
    private readonly beginAheadMs = BEGUN_AHEAD_MS,
  ) {
    super({
      begin: async () => {
        if (this.timings) this.batchStart = performance.now();
        const ahead = this.takeAhead();
        if (ahead && (await ahead.begun)) return ahead.conn;
        for (let attempt = 1; ; attempt++) {
          let conn: Reserved;
          try {
            conn = await client.reserve();
          } catch (error) {
            throw unavailable(error);
          }
          try {
            await this.onWriter(query(conn, "BEGIN"));
            return conn;
          } catch (error) {
            conn.release();
            // A connection that died with the server: BEGIN wrote nothing, so take another.
            if (attempt >= RECONNECT_ATTEMPTS || !(error instanceof MatrixError)) throw error;
          }
        }
      },
      statement: async (conn, sql) => void (await this.onWriter(query(conn, sql))),
      // Any failed statement aborts a PostgreSQL transaction, and its COMMIT then answers ROLLBACK (end()).
      commitFailsAfterAnyError: true,
      // Each statement is a round trip: units that may run side by side overlap theirs.
      concurrentUnits: true,
      end: async (conn, commit) => {
        let committed = false;
        try {
          const result = (await this.onWriter(query(conn, commit ? "COMMIT" : "ROLLBACK"))) as { command?: string };
          // PostgreSQL answers COMMIT of a transaction that an earlier error aborted with ROLLBACK,
          // not an error: nothing was written, so the transactions of the batch must not resolve.
          if (commit && result.command === "ROLLBACK") throw new Error("the transaction was aborted by an earlier failed statement and rolled back");
          committed = commit;
        } finally {
          if (committed && !this.closed && this.beginAheadMs > 0) this.beginAhead(conn);
          else conn.release();
          this.timings?.commit((performance.now() - this.batchStart) / 1000);
        }
      },
    });
  }

  /** Sends the next batch's BEGIN on the connection that has just committed (see `ahead`). */
  private beginAhead(conn: Reserved): void {
    const begun = this.onWriter(query(conn, "BEGIN")).then(
      () => true,
      () => {
        conn.release();
        return false;
      },
    );
    const timer = setTimeout(() => void this.dropAhead(), this.beginAheadMs);
    timer.unref?.();
    this.ahead = { conn, begun, timer };
  }

  private takeAhead(): { conn: Reserved; begun: Promise<boolean> } | undefined {
    const ahead = this.ahead;
    if (ahead) clearTimeout(ahead.timer);
    this.ahead = undefined;
    return ahead;
  }

  /** Rolls back a transaction begun ahead that no batch took, and returns its connection to the pool. */
  private dropAhead(): Promise<void> {
    const ahead = this.takeAhead();
    if (!ahead) return this.dropping ?? Promise.resolve();
    const dropping = (async () => {
      if (!(await ahead.begun)) return;
      try {
        await query(ahead.conn, "ROLLBACK");
      } catch {
        // A connection that died: the pool replaces it.
      } finally {
        ahead.conn.release();
      }
    })();
    this.dropping = dropping;
    void dropping.then(() => {
      if (this.dropping === dropping) this.dropping = undefined;
    });
    return dropping;
  }

  /** Counts a statement just sent on the writer's connection (see writerStats). */
  private async onWriter<T>(sent: Promise<T>): Promise<T> {
    this.writerStats.statements++;
    if (this.writerInFlight++ === 0) this.writerStats.roundTrips++;
    try {
      return await sent;
    } finally {
      this.writerInFlight--;
    }
  }

  private text(sql: string): string {
    let t = this.translated.get(sql);
    if (t === undefined) {
      if (this.translated.size > 2000) this.translated.clear();
      t = numberedPlaceholders(sql);
      this.translated.set(sql, t);
    }
    return t;
  }

  private async rows(sql: string, params: SqlParam[]): Promise<{ rows: Record<string, unknown>[]; count: number }> {
    // PostgreSQL text cannot hold U+0000 (SQLite can): such a value could never have been stored, so
    // it is the caller's bad input (an event type or state key with a NUL, say), not a server fault.
    for (const p of params) {
      if (typeof p === "string" && p.includes("\0")) throw new MatrixError("M_INVALID_PARAM", "Text with a NUL character is not allowed here", 400);
    }
    const ctx = this.writer.current();
    if (!ctx && isWriteStatement(sql)) {
      if (this.writer.ended()) throw new TransactionEndedError();
      return this.writer.run(() => this.rows(sql, params));
    }
    const conn = ctx ? ctx.conn : this.client;
    const timings = this.timings;
    const start = timings ? performance.now() : 0;
    const sent = query(conn, this.text(sql), params as unknown[], !ctx);
    const result = ctx ? await this.onWriter(sent) : await sent;
    // A failed statement is not timed: its error goes up as it is.
    timings?.statement((performance.now() - start) / 1000, isWriteStatement(sql));
    return { rows: result, count: Number(result.affectedRows ?? result.count ?? 0) };
  }

  setTimings(timings: DatabaseTimings): void {
    this.timings = timings;
  }

  async get<Row>(sql: string, ...params: SqlParam[]): Promise<Row | undefined> {
    const { rows } = await this.rows(sql, params);
    return rows.length === 0 ? undefined : toNumbers<Row>(rows[0]);
  }

  async all<Row>(sql: string, ...params: SqlParam[]): Promise<Row[]> {
    const { rows } = await this.rows(sql, params);
    return rows.map((r) => toNumbers<Row>(r));
  }

  async run(sql: string, ...params: SqlParam[]): Promise<SqlRunResult> {
    const { count } = await this.rows(sql, params);
    return { changes: count };
  }

  async exec(sql: string): Promise<void> {
    const ctx = this.writer.current();
    if (ctx) await ctx.conn.unsafe(sql).simple();
    else await this.writer.run(() => this.exec(sql));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writer.drain();
    // The rollback of a transaction begun ahead, or of one already being dropped.
    await this.dropAhead();
    await this.client.close();
  }
}

/**
 * Connects and checks the server: one clear error naming the URL (without its password) when it
 * cannot be reached, and a refusal when the database does not sort text bytewise (as Synapse
 * requires of its databases too), since event ids and state keys are ordered that way.
 */
export async function openPostgres(options: PostgresOptions): Promise<Database & { readonly commitStats: { commits: number; units: number }; readonly writerStats: { statements: number; roundTrips: number } }> {
  const client = new SQL({ url: options.url, max: Math.max(2, options.poolSize), bigint: true, idleTimeout: 60, connectionTimeout: 10 });
  let collation: string | undefined;
  try {
    const rows = (await client.unsafe("SELECT datcollate AS c FROM pg_database WHERE datname = current_database()")) as { c: string }[];
    collation = rows[0]?.c;
  } catch (error) {
    await client.close().catch(() => {});
    throw new Error(`cannot connect to PostgreSQL at ${describeUrl(options.url)}: ${(error as Error).message}`);
  }
  // C.UTF-8 (glibc) also orders by code point, which for UTF-8 is byte order.
  if (!["C", "POSIX", "C.UTF-8", "C.utf8"].includes(collation ?? "")) {
    await client.close().catch(() => {});
    throw new Error(`the PostgreSQL database at ${describeUrl(options.url)} has collation '${collation}'; Portier needs 'C' (CREATE DATABASE ... LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0)`);
  }
  return new PostgresDatabase(client, options.beginAheadMs);
}
