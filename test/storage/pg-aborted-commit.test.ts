// On PostgreSQL a failed statement aborts the whole transaction, and COMMIT of an aborted transaction
// answers ROLLBACK without an error. A transaction whose fn catches such an error and returns must
// therefore be rejected, never resolved with nothing written ("resolved means durable").
import { describe, expect, test } from "bun:test";
import type { Database } from "../../src/storage/database";
import { openPostgres } from "../../src/storage/postgres/driver";
import { freshPostgresUrl, postgresAvailable } from "../helpers/postgres";

const pg = await postgresAvailable();

describe.skipIf(!pg)("PostgreSQL COMMIT of an aborted transaction", () => {
  async function fresh(): Promise<Database> {
    const db = await openPostgres({ url: await freshPostgresUrl(), poolSize: 4 });
    await db.exec("CREATE TABLE t (k TEXT PRIMARY KEY)");
    await db.run("INSERT INTO t (k) VALUES ('dup')");
    return db;
  }

  test("a transaction that resolves has committed what it wrote", async () => {
    const db = await fresh();
    const outcome = await db
      .transaction(async () => {
        await db.run("INSERT INTO t (k) VALUES ('a')");
        // e.g. an optional write that may conflict, handled by the caller
        await db.run("INSERT INTO t (k) VALUES ('dup')").catch(() => undefined);
        return "resolved";
      })
      .catch(() => "rejected");
    const committed = (await db.get("SELECT k FROM t WHERE k = 'a'")) !== undefined;
    // Either it failed, or it committed: never resolved-but-lost.
    expect({ outcome, committed }).not.toEqual({ outcome: "resolved", committed: false });
    await db.close();
  });

  test("two transactions of one batch: the second's rollback to a savepoint does not clear the first's failure, which COMMIT would then miss", async () => {
    const db = await fresh();
    // A swallows a failed statement inside a nested transaction (its RELEASE then fails, unanswered
    // yet); B's nested transaction fails after it and is rolled back to a savepoint of the same name,
    // which clears the aborted state A's failure left. COMMIT must not go out unchecked after that.
    const a = db.transaction(async () => {
      await db.run("INSERT INTO t (k) VALUES ('a0')");
      await db.transaction(async () => {
        await db.run("INSERT INTO t (k) VALUES ('a1')");
        await db.run("INSERT INTO t (k) VALUES ('dup')").catch(() => undefined);
      });
      return "resolved";
    });
    const b = db.transaction(async () => {
      await db.transaction(async () => void (await db.run("INSERT INTO t (k) VALUES ('b0')"))).catch(() => undefined);
      await db.run("INSERT INTO t (k) VALUES ('b1')");
      return "resolved";
    });
    const outcomes = await Promise.allSettled([a, b]);
    const rows = (await db.all<{ k: string }>("SELECT k FROM t ORDER BY k")).map((r) => r.k);
    // Whatever resolved is durable: A resolved means a0 and a1 are there.
    if (outcomes[0]!.status === "fulfilled") expect(rows).toContain("a1");
    if (outcomes[1]!.status === "fulfilled") expect(rows).toContain("b1");
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected"]);
    expect(rows).toEqual(["dup"]);
    await db.close();
  });

  test("control (passes): a failed nested transaction caught by its caller is rolled back to its savepoint and the rest commits", async () => {
    const db = await fresh();
    const outcome = await db
      .transaction(async () => {
        await db.run("INSERT INTO t (k) VALUES ('outer')");
        // A nested transaction that fails is rolled back to its savepoint, which PostgreSQL allows;
        // the caller deals with its failure and goes on.
        await db.transaction(async () => void (await db.run("INSERT INTO t (k) VALUES ('dup')"))).catch(() => undefined);
        await db.run("INSERT INTO t (k) VALUES ('after')");
        return "resolved";
      })
      .catch(() => "rejected");
    // This one is handled correctly (the savepoint restores the transaction): both rows are there.
    expect(outcome).toBe("resolved");
    expect((await db.all("SELECT k FROM t ORDER BY k")).length).toBe(3);
    await db.close();
  });
});
