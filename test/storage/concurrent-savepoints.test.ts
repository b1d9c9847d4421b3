// Work that runs concurrently inside one transaction (no caller does this today, but the seam must hold):
// 1. Two nested transactions in flight at once: they run one after another, so one that fails rolls
//    back only itself (a savepoint released early would otherwise take its sibling's with it).
// 2. A query of a transaction's call chain that runs after the transaction rejected fails, instead of
//    committing as a transaction of its own.
import { describe, expect, test } from "bun:test";
import { testDatabases } from "../helpers/databases";

describe.each(testDatabases.map((d) => [d.name, d] as const))("concurrency inside a transaction on %s", (_name, engine) => {
  test("a nested transaction that rejects leaves nothing behind, even beside another nested one", async () => {
    const db = await engine.open();
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    await db.run("INSERT INTO t (k) VALUES ('dup')");
    let second: PromiseSettledResult<void> | undefined;
    const outer = await db
      .transaction(async () => {
        const settled = await Promise.allSettled([
          db.transaction(async () => void (await db.run("INSERT INTO t (k) VALUES ('n1')"))),
          db.transaction(async () => {
            await db.run("INSERT INTO t (k) VALUES ('n2')");
            await db.get("SELECT 1 AS one");
            await db.run("INSERT INTO t (k) VALUES ('dup')");
          }),
        ]);
        second = settled[1];
        return "resolved";
      })
      .catch(() => "rejected");
    const rows = (await db.all<{ k: string }>("SELECT k FROM t ORDER BY k")).map((r) => r.k);
    expect(second?.status).toBe("rejected");
    if (outer === "resolved") expect(rows).toEqual(["dup", "n1"]);
    else expect(rows).toEqual(["dup"]);
    await db.close();
  });

  test("nothing written by the call chain of a rejected transaction commits", async () => {
    const db = await engine.open();
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    await db.run("INSERT INTO t (k) VALUES ('dup')");
    let sibling: Promise<unknown> | undefined;
    await db
      .transaction(async () => {
        sibling = (async () => {
          await db.run("INSERT INTO t (k) VALUES ('x')");
          await new Promise((r) => setTimeout(r, 5));
          await db.run("INSERT INTO t (k) VALUES ('y')");
        })();
        await Promise.all([sibling, db.run("INSERT INTO t (k) VALUES ('dup')")]);
      })
      .catch(() => undefined);
    await sibling?.catch(() => undefined);
    expect((await db.all<{ k: string }>("SELECT k FROM t ORDER BY k")).map((r) => r.k)).toEqual(["dup"]);
    await db.close();
  });
});
