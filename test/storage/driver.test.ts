// The Database seam on every engine: the same answers, transactions that roll back whole, savepoints,
// group commit (one commit for transactions that arrive together, failures isolated), and readers
// that never see uncommitted rows.
import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Database } from "../../src/storage/database";
import { isWriteStatement } from "../../src/storage/database";
import { WAL_AUTOCHECKPOINT_PAGES, openSqlite, type SqliteDriverName } from "../../src/storage/sqlite/driver";
import { numberedPlaceholders, openPostgres } from "../../src/storage/postgres/driver";
import { runMigrations, type Migration } from "../../src/storage/migrations";
import { SERVER_META_MIGRATION, SqlServerMetaStore } from "../../src/storage/tables/server-meta";
import { freshPostgresUrl, postgresAvailable } from "../helpers/postgres";

type Opener = { name: string; fresh(): Promise<Database>; reopenable(): Promise<() => Promise<Database>> };

const sqlite = (driver: SqliteDriverName): Opener => ({
  name: driver,
  fresh: async () => openSqlite(":memory:", driver),
  reopenable: async () => {
    const path = join(mkdtempSync(join(tmpdir(), "portier-db-")), "t.db");
    return async () => openSqlite(path, driver);
  },
});
const postgres: Opener = {
  name: "postgres",
  fresh: async () => openPostgres({ url: await freshPostgresUrl(), poolSize: 4 }),
  reopenable: async () => {
    const url = await freshPostgresUrl();
    return () => openPostgres({ url, poolSize: 4 });
  },
};
const engines: Opener[] = [sqlite("better-sqlite3"), sqlite("bun-sqlite"), ...((await postgresAvailable()) ? [postgres] : [])];

const migration = (version: number, name: string, ddl: string): Migration => ({ version, name, sqlite: ddl, postgres: ddl });

describe.each(engines.map((e) => [e.name, e] as const))("Database on %s", (_name, engine) => {
  test("get() of no row is undefined; integers come back as numbers; run() counts changes", async () => {
    const db = await engine.fresh();
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT)");
    expect((await db.run("INSERT INTO t (k, v) VALUES (?, ?)", "a", 2 ** 40)).changes).toBe(1);
    expect((await db.run("INSERT INTO t (k, v) VALUES (?, ?) ON CONFLICT DO NOTHING", "a", 1)).changes).toBe(0);
    await db.run("INSERT INTO t (k, v) VALUES (?, ?)", "b", 2);
    expect(await db.get("SELECT v FROM t WHERE k = ?", "zz")).toBeUndefined();
    expect(await db.get("SELECT v FROM t WHERE k = ?", "a")).toEqual({ v: 2 ** 40 });
    expect(await db.get("SELECT count(*) AS n, max(v) AS m FROM t")).toEqual({ n: 2, m: 2 ** 40 });
    expect((await db.all<{ k: string }>("SELECT k FROM t ORDER BY k")).map((r) => r.k)).toEqual(["a", "b"]);
    expect((await db.run("UPDATE t SET v = v + 1")).changes).toBe(2);
    expect(await db.get("INSERT INTO t (k, v) VALUES (?, ?) RETURNING v", "c", 3)).toEqual({ v: 3 });
    await db.close();
  });

  test("a throwing transaction leaves nothing behind, and its error reaches the caller", async () => {
    const db = await engine.fresh();
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    const rolledBack: number[] = [];
    db.onRollback(() => rolledBack.push(1));
    await expect(
      db.transaction(async () => {
        await db.run("INSERT INTO t (k) VALUES (?)", "x");
        expect(db.inTransaction()).toBe(true);
        throw new Error("boom");
      }),
    ).rejects.toThrow("boom");
    expect(await db.get("SELECT count(*) AS n FROM t")).toEqual({ n: 0 });
    expect(rolledBack.length).toBeGreaterThan(0);
    expect(db.inTransaction()).toBe(false);
    await db.close();
  });

  test("a nested transaction is a savepoint: its failure undoes only itself", async () => {
    const db = await engine.fresh();
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    await db.transaction(async () => {
      await db.run("INSERT INTO t (k) VALUES (?)", "outer");
      await expect(
        db.transaction(async () => {
          await db.run("INSERT INTO t (k) VALUES (?)", "inner");
          throw new Error("inner fails");
        }),
      ).rejects.toThrow("inner fails");
      await db.transaction(async () => void (await db.run("INSERT INTO t (k) VALUES (?)", "inner2")));
    });
    expect((await db.all<{ k: string }>("SELECT k FROM t ORDER BY k")).map((r) => r.k)).toEqual(["inner2", "outer"]);
    await db.close();
  });

  test("bulk work run alone has no savepoints: a nested transaction that fails fails it whole, even when it catches the error", async () => {
    const db = await engine.fresh();
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    const bulk = db.transaction(
      async () => {
        await db.run("INSERT INTO t (k) VALUES (?)", "before");
        await db.transaction(async () => void (await db.run("INSERT INTO t (k) VALUES (?)", "nested ok")));
        try {
          await db.transaction(async () => {
            await db.run("INSERT INTO t (k) VALUES (?)", "half");
            throw new Error("nested fails");
          });
        } catch {
          /* caught: without a savepoint, "half" is not undone by itself */
        }
        return "done";
      },
      { alone: true },
    );
    await expect(bulk).rejects.toThrow("nested fails");
    expect(await db.all("SELECT k FROM t")).toEqual([]);
    // The same without the failure commits every row.
    await db.transaction(async () => {
      for (const k of ["a", "b"]) await db.transaction(async () => void (await db.run("INSERT INTO t (k) VALUES (?)", k)));
    }, { alone: true });
    expect((await db.all<{ k: string }>("SELECT k FROM t ORDER BY k")).map((r) => r.k)).toEqual(["a", "b"]);
    await db.close();
  });

  test("transactions that arrive together share one commit; one failing rolls back only itself", async () => {
    const db = (await engine.fresh()) as Database & { commitStats: { commits: number; units: number } };
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, n BIGINT NOT NULL)");
    const before = { ...db.commitStats };
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        db.transaction(async () => {
          await db.run("INSERT INTO t (k, n) VALUES (?, ?)", `k${i}`, i);
          if (i === 7) throw new Error("seven");
          // max + 1 inside the transaction sees the writes of the units committed before it in the batch.
          const { m } = (await db.get<{ m: number }>("SELECT max(n) AS m FROM t"))!;
          return m;
        }),
      ),
    );
    expect(results.filter((r) => r.status === "rejected").length).toBe(1);
    expect((await db.all<{ k: string }>("SELECT k FROM t")).length).toBe(19);
    expect(await db.get("SELECT k FROM t WHERE k = ?", "k7")).toBeUndefined();
    const commits = db.commitStats.commits - before.commits;
    expect(db.commitStats.units - before.units).toBe(19);
    expect(commits).toBeLessThan(19);
    expect(commits).toBeGreaterThan(0);
    await db.close();
  });

  test("a read outside a transaction never sees rows of one still open", async () => {
    const db = await engine.fresh();
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let inserted!: () => void;
    const wasInserted = new Promise<void>((r) => (inserted = r));
    const writer = db.transaction(async () => {
      await db.run("INSERT INTO t (k) VALUES (?)", "pending");
      inserted();
      await gate;
    });
    await wasInserted;
    let seen: unknown = "not yet";
    const reader = db.get("SELECT k FROM t").then((row) => (seen = row));
    await Bun.sleep(20);
    // SQLite: the reader waits for the commit; PostgreSQL: it reads the committed state (none).
    if (seen !== "not yet") expect(seen).toBeUndefined();
    release();
    await writer;
    await reader;
    if (engine.name !== "postgres") expect(seen).toEqual({ k: "pending" });
    expect(await db.get("SELECT k FROM t")).toEqual({ k: "pending" });
    await db.close();
  });

  test("a write outside a transaction is a transaction of its own and is durable when it resolves", async () => {
    const open = await engine.reopenable();
    let db = await open();
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    await Promise.all([db.run("INSERT INTO t (k) VALUES (?)", "a"), db.run("INSERT INTO t (k) VALUES (?)", "b")]);
    await db.close();
    db = await open();
    expect((await db.all<{ k: string }>("SELECT k FROM t ORDER BY k")).map((r) => r.k)).toEqual(["a", "b"]);
    await db.close();
  });

  test("migrations run once, in order, and survive a reopen; a failing one is rolled back whole", async () => {
    const open = await engine.reopenable();
    const migrations = [migration(2, "b", "ALTER TABLE a ADD COLUMN y TEXT"), migration(1, "a", "CREATE TABLE a (x TEXT)")];
    let db = await open();
    expect(await runMigrations(db, migrations)).toEqual([1, 2]);
    await db.close();
    db = await open();
    expect(await runMigrations(db, migrations)).toEqual([]);
    expect(await runMigrations(db, [...migrations, migration(3, "c", "CREATE TABLE c (z TEXT)")])).toEqual([3]);
    await expect(runMigrations(db, [migration(4, "bad", "CREATE TABLE ok (x TEXT); CREATE TABLE (")])).rejects.toThrow();
    await expect(db.get("SELECT x FROM ok")).rejects.toThrow();
    expect(await db.get("SELECT count(*) AS n FROM schema_migrations")).toEqual({ n: 3 });
    await db.close();
  });

  test("server meta store persists across reopen", async () => {
    const open = await engine.reopenable();
    let db = await open();
    await runMigrations(db, [SERVER_META_MIGRATION]);
    let meta = new SqlServerMetaStore(db);
    await meta.set("server_name", "example.org");
    await meta.set("server_name", "example.com");
    await db.close();
    db = await open();
    meta = new SqlServerMetaStore(db);
    expect(await meta.get("server_name")).toBe("example.com");
    expect(await meta.get("nothing")).toBeUndefined();
    await db.close();
  });
});

describe.each(["better-sqlite3", "bun-sqlite"] as const)("SQLite %s", (driver) => {
  test("runs in WAL mode; the driver, not SQLite, syncs the WAL at commit", async () => {
    const db = openSqlite(join(mkdtempSync(join(tmpdir(), "portier-db-")), "t.db"), driver);
    expect(await db.get("PRAGMA journal_mode")).toEqual({ journal_mode: "wal" });
    expect(await db.get("PRAGMA synchronous")).toEqual({ synchronous: 1 });
    await db.close();
  });

  test.skipIf(process.platform !== "linux")("a savepoint's undo pages stay in memory: no temporary file is written for them", async () => {
    const db = openSqlite(join(mkdtempSync(join(tmpdir(), "portier-db-")), "t.db"), driver);
    try {
      await db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
      await db.transaction(async () => {
        for (let i = 1; i <= 1000; i++) await db.run("INSERT INTO t (k, v) VALUES (?, ?)", i, "x".repeat(3000));
      });
      // SQLite's temporary files have no name (O_TMPFILE, or unlinked once opened): "(deleted)" here.
      const temporaryFiles = () =>
        readdirSync("/proc/self/fd").flatMap((fd) => {
          try {
            const target = readlinkSync(`/proc/self/fd/${fd}`);
            return target.endsWith("(deleted)") && !target.startsWith("/memfd:") ? [target] : [];
          } catch {
            return []; // closed meanwhile
          }
        });
      const before = temporaryFiles();
      let during: string[] = [];
      // Two units in one batch: each runs in a savepoint and rewrites ~500 pages that existed before it
      // (SQLite's journal of a savepoint spills to a file past 64 KiB unless kept in memory).
      await Promise.all(
        [0, 1].map((unit) =>
          db.transaction(async () => {
            await db.run("UPDATE t SET v = ? WHERE k % 2 = ?", "y".repeat(3000), unit);
            during = during.concat(temporaryFiles().filter((f) => !before.includes(f)));
          }),
        ),
      );
      expect(during).toEqual([]);
    } finally {
      await db.close();
    }
  });

  test("migrations keep their undo pages in a file (a migration may rewrite a whole table); serving keeps them in memory again", async () => {
    const db = openSqlite(join(mkdtempSync(join(tmpdir(), "portier-db-")), "t.db"), driver);
    const MEMORY = 2;
    expect(await db.get("PRAGMA temp_store")).toEqual({ temp_store: MEMORY });
    // The migration records the setting it ran under; a failing one restores the setting too.
    const probe: Migration = { version: 1, name: "probe", sqlite: "CREATE TABLE probe AS SELECT temp_store FROM pragma_temp_store", postgres: "" };
    expect(await runMigrations(db, [probe])).toEqual([1]);
    expect(await db.get("SELECT temp_store FROM probe")).toEqual({ temp_store: 1 });
    expect(await db.get("PRAGMA temp_store")).toEqual({ temp_store: MEMORY });
    await expect(runMigrations(db, [probe, { version: 2, name: "bad", sqlite: "CREATE TABLE (", postgres: "" }])).rejects.toThrow();
    expect(await db.get("PRAGMA temp_store")).toEqual({ temp_store: MEMORY });
    await db.close();
  });

  test(`the WAL is copied into the database file only past ${WAL_AUTOCHECKPOINT_PAGES} pages, not SQLite's 1,000`, async () => {
    const path = join(mkdtempSync(join(tmpdir(), "portier-db-")), "t.db");
    const db = openSqlite(path, driver);
    await db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    const rows = async (from: number, count: number) =>
      db.transaction(async () => {
        for (let i = from; i < from + count; i++) await db.run("INSERT INTO t (k, v) VALUES (?, ?)", i, "x".repeat(3000));
      });
    // About 2,000 pages (8 MiB) in the WAL: past SQLite's default, a checkpoint would have grown the file.
    await rows(0, 2000);
    expect(statSync(path).size).toBeLessThan(1024 * 1024);
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(6 * 1024 * 1024);
    // Past the limit, the commit that crosses it checkpoints: the pages reach the database file.
    await rows(2000, WAL_AUTOCHECKPOINT_PAGES);
    expect(statSync(path).size).toBeGreaterThan(20 * 1024 * 1024);
    await db.close();
  });

  test("releasing its memory in the middle of an open transaction loses nothing; after close it does nothing", async () => {
    const db = openSqlite(join(mkdtempSync(join(tmpdir(), "portier-db-")), "t.db"), driver);
    await db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    await db.transaction(async () => {
      for (let i = 0; i < 500; i++) await db.run("INSERT INTO t (k, v) VALUES (?, ?)", i, "x".repeat(3000));
      db.releaseMemory!();
      await db.run("UPDATE t SET v = 'y' WHERE k = 7");
    });
    db.releaseMemory!();
    expect(await db.get("SELECT COUNT(*) AS n, SUM(v = 'y') AS y FROM t")).toEqual({ n: 500, y: 1 });
    await db.close();
    expect(() => db.releaseMemory!()).not.toThrow();
  });
});

describe.each(["better-sqlite3", "bun-sqlite"] as const)("SQLite %s durability", (driver) => {
  test("each commit of a file database syncs the WAL before its transactions resolve; in-memory ones need none", async () => {
    const db = openSqlite(join(mkdtempSync(join(tmpdir(), "portier-db-")), "t.db"), driver);
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    const before = db.walSyncs;
    const commitsBefore = db.commitStats.commits;
    let resolvedWith = -1;
    await db.transaction(async () => void (await db.run("INSERT INTO t (k) VALUES (?)", "a"))).then(() => (resolvedWith = db.walSyncs));
    expect(resolvedWith).toBe(before + 1);
    await Promise.all(["b", "c", "d"].map((k) => db.run("INSERT INTO t (k) VALUES (?)", k)));
    expect(db.walSyncs - before).toBe(db.commitStats.commits - commitsBefore);
    await db.close();
    const memory = openSqlite(":memory:", driver);
    await memory.exec("CREATE TABLE t (k TEXT)");
    await memory.run("INSERT INTO t (k) VALUES (?)", "a");
    expect(memory.walSyncs).toBe(0);
    await memory.close();
  });
});

describe.each(["better-sqlite3", "bun-sqlite"] as const)("SQLite %s write-ahead log filled ahead", (driver) => {
  test("the WAL holds the filled size from the first commit and commits write inside it; a copy taken without closing (a crash) recovers every committed row", async () => {
    const dir = mkdtempSync(join(tmpdir(), "portier-db-"));
    const path = join(dir, "t.db");
    const filled = 2 * 1024 * 1024;
    const db = openSqlite(path, driver, { walPreallocateBytes: filled });
    await db.exec("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)");
    expect(statSync(`${path}-wal`).size).toBe(filled);
    for (let i = 0; i < 50; i++) await db.run("INSERT INTO t (k, v) VALUES (?, ?)", i, "x".repeat(100));
    // Fifty commits of a page or two each: still inside the filled file.
    expect(statSync(`${path}-wal`).size).toBe(filled);
    const copy = join(mkdtempSync(join(tmpdir(), "portier-db-")), "t.db");
    copyFileSync(path, copy);
    copyFileSync(`${path}-wal`, `${copy}-wal`);
    await db.close();
    const recovered = openSqlite(copy, driver);
    expect((await recovered.get<{ n: number }>("SELECT count(*) AS n FROM t"))?.n).toBe(50);
    await recovered.run("INSERT INTO t (k, v) VALUES (?, ?)", 50, "after");
    expect((await recovered.get<{ n: number }>("SELECT count(*) AS n FROM t"))?.n).toBe(51);
    await recovered.close();
  });
});

describe("SQL helpers", () => {
  test("placeholders are numbered for PostgreSQL", () => {
    expect(numberedPlaceholders("SELECT a FROM t WHERE b = ? AND c IN (?, ?) LIMIT ?")).toBe("SELECT a FROM t WHERE b = $1 AND c IN ($2, $3) LIMIT $4");
  });

  test("write statements are told from reads", () => {
    expect(isWriteStatement("SELECT 1")).toBe(false);
    expect(isWriteStatement("  with recursive c(x) as (select 1) select x from c")).toBe(false);
    expect(isWriteStatement("PRAGMA journal_mode")).toBe(false);
    expect(isWriteStatement("INSERT INTO t VALUES (1)")).toBe(true);
    expect(isWriteStatement("WITH x AS (SELECT 1) DELETE FROM t")).toBe(true);
    expect(isWriteStatement("UPDATE t SET a = 1")).toBe(true);
  });
});
