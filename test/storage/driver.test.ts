import { describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openDatabase, type DriverName } from "../../src/storage/sqlite/driver";
import { runMigrations } from "../../src/storage/sqlite/migrations";
import { openSqliteStores } from "../../src/storage/sqlite";

const drivers: DriverName[] = ["better-sqlite3", "bun-sqlite"];

describe.each(drivers)("SQLite driver %s", (driver) => {
  const file = () => join(mkdtempSync(join(tmpdir(), "portier-db-")), "t.db");

  test("runs in WAL mode with full sync", () => {
    const db = openDatabase(file(), driver);
    expect(db.prepare<{ journal_mode: string }>("PRAGMA journal_mode").get()?.journal_mode).toBe("wal");
    expect(db.prepare<{ synchronous: number }>("PRAGMA synchronous").get()?.synchronous).toBe(2);
    db.close();
  });

  test("get() of no row is undefined; run/all behave alike", () => {
    const db = openDatabase(":memory:", driver);
    db.exec("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER)");
    const insert = db.prepare("INSERT INTO t VALUES (?, ?)");
    expect(insert.run("a", 1).changes).toBe(1);
    insert.run("b", 2);
    expect(db.prepare("SELECT v FROM t WHERE k = ?").get("zz")).toBeUndefined();
    expect(db.prepare<{ k: string }>("SELECT k FROM t ORDER BY k").all().map((r) => r.k)).toEqual(["a", "b"]);
    db.close();
  });

  test("a throwing transaction leaves nothing behind", () => {
    const db = openDatabase(":memory:", driver);
    db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    expect(() =>
      db.transaction(() => {
        db.prepare("INSERT INTO t VALUES (?)").run("x");
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(db.prepare<{ n: number }>("SELECT count(*) AS n FROM t").get()?.n).toBe(0);
    db.close();
  });

  test("migrations run once, in order, and survive a reopen", () => {
    const path = file();
    const migrations = [
      { version: 2, name: "b", up: "ALTER TABLE a ADD COLUMN y TEXT" },
      { version: 1, name: "a", up: "CREATE TABLE a (x TEXT)" },
    ];
    let db = openDatabase(path, driver);
    expect(runMigrations(db, migrations)).toEqual([1, 2]);
    db.close();
    db = openDatabase(path, driver);
    expect(runMigrations(db, migrations)).toEqual([]);
    expect(runMigrations(db, [...migrations, { version: 3, name: "c", up: "CREATE TABLE c (z TEXT)" }])).toEqual([3]);
    db.close();
  });

  test("a failing migration is rolled back whole", () => {
    const db = openDatabase(":memory:", driver);
    expect(() => runMigrations(db, [{ version: 1, name: "bad", up: "CREATE TABLE ok (x TEXT); CREATE TABLE (" }])).toThrow();
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'ok'").get()).toBeUndefined();
    db.close();
  });

  test("server meta store persists across reopen", () => {
    const path = file();
    let stores = openSqliteStores(path, driver);
    stores.serverMeta.set("server_name", "example.org");
    stores.serverMeta.set("server_name", "example.com");
    stores.db.close();
    stores = openSqliteStores(path, driver);
    expect(stores.serverMeta.get("server_name")).toBe("example.com");
    expect(stores.serverMeta.get("nothing")).toBeUndefined();
    stores.db.close();
  });
});
