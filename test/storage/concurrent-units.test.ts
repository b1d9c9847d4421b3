// Units that ask to run side by side (TransactionOptions.concurrent) share their batch's round trips
// on an engine that gains from it (PostgreSQL), and are run again one by one, each in its savepoint,
// when any of them fails. On SQLite the option changes nothing.
import { describe, expect, test } from "bun:test";
import { GroupCommit } from "../../src/storage/group-commit";
import type { Database } from "../../src/storage/database";
import { storesOver } from "../../src/storage/open";
import { hasPostgres, postgresDatabase, testDatabases } from "../helpers/databases";
import { fakeEngine, sentStatements } from "../helpers/fake-transaction-engine";

/** As PostgreSQL: a failed statement aborts the transaction until a ROLLBACK TO. */
const engine = (options: { concurrentUnits: boolean; failing?: (sql: string) => boolean }) => fakeEngine({ ...options, aborts: true });

describe("units run side by side (the group commit)", () => {
  test("their statements go out while the others' are in flight, with one savepoint around them all", async () => {
    const { eng, log } = engine({ concurrentUnits: true });
    const writer = new GroupCommit(eng);
    const unit = (name: string) =>
      writer.run(async () => {
        await writer.current()!.conn.send(`INSERT ${name}1`);
        await writer.current()!.conn.send(`INSERT ${name}2`);
        return name;
      }, { concurrent: true });
    expect(await Promise.all([unit("a"), unit("b"), unit("c")])).toEqual(["a", "b", "c"]);
    // "(pipelined)": sent while another statement was awaiting its answer.
    expect(log.filter((l) => l.startsWith("send ")).map((l) => l.slice(5))).toEqual([
      "BEGIN",
      "SAVEPOINT together",
      "INSERT a1 (pipelined)",
      "INSERT b1 (pipelined)",
      "INSERT c1 (pipelined)",
      "INSERT a2 (pipelined)",
      "INSERT b2 (pipelined)",
      "INSERT c2 (pipelined)",
      "RELEASE together",
      "COMMIT",
    ]);
    expect(writer.stats).toEqual({ commits: 1, units: 3 });
    expect(writer.sideBySide).toEqual({ ran: 3, again: 0 });
  });

  test("an engine that does not gain from it runs them one by one, each in its savepoint", async () => {
    const { eng, log } = engine({ concurrentUnits: false });
    const writer = new GroupCommit(eng);
    const unit = (name: string) => writer.run(async () => void (await writer.current()!.conn.send(`INSERT ${name}`)), { concurrent: true });
    await Promise.all([unit("a"), unit("b")]);
    expect(sentStatements(log)).toEqual([
      "BEGIN",
      "SAVEPOINT unit",
      "INSERT a",
      "RELEASE unit",
      "SAVEPOINT unit",
      "INSERT b",
      "RELEASE unit",
      "COMMIT",
    ]);
    expect(writer.sideBySide).toEqual({ ran: 0, again: 0 });
  });

  test("one that fails: all of them are rolled back and run again one by one; the others commit, and a unit of the batch that did not ask runs once", async () => {
    const { eng, log } = engine({ concurrentUnits: true, failing: (sql) => sql === "INSERT bad" });
    const writer = new GroupCommit(eng);
    const runs = new Map<string, number>();
    let rollbacks = 0;
    writer.onRollback(() => rollbacks++);
    const unit = (name: string, concurrent: boolean) =>
      writer.run(async () => {
        runs.set(name, (runs.get(name) ?? 0) + 1);
        await writer.current()!.conn.send(`INSERT ${name}`);
        return name;
      }, { concurrent });
    const outcomes = await Promise.allSettled([unit("a", true), unit("plain", false), unit("bad", true), unit("c", true)]);
    expect(outcomes.map((o) => (o.status === "fulfilled" ? o.value : (o.reason as Error).message))).toEqual(["a", "plain", "INSERT bad failed", "c"]);
    expect(Object.fromEntries(runs)).toEqual({ a: 2, plain: 1, bad: 2, c: 2 });
    const sent = sentStatements(log);
    // Together first (the plain unit waits), rolled back; then one by one: the three again, then the plain one.
    expect(sent).toEqual([
      "BEGIN",
      "SAVEPOINT together",
      "INSERT a",
      "INSERT bad",
      "INSERT c",
      "ROLLBACK TO together",
      "RELEASE together",
      "SAVEPOINT unit",
      "INSERT a",
      "RELEASE unit",
      "SAVEPOINT unit",
      "INSERT bad",
      "ROLLBACK TO unit",
      "RELEASE unit",
      "SAVEPOINT unit",
      "INSERT c",
      "RELEASE unit",
      "SAVEPOINT unit",
      "INSERT plain",
      "RELEASE unit",
      "COMMIT",
    ]);
    expect(writer.stats).toEqual({ commits: 1, units: 3 });
    expect(writer.sideBySide).toEqual({ ran: 3, again: 3 });
    // The group's rollback, and the failing unit's own.
    expect(rollbacks).toBe(2);
  });

  test("a failed statement that a unit caught still rolls them all back (RELEASE finds the transaction aborted), and they try again together", async () => {
    let failures = 0;
    const { eng } = engine({ concurrentUnits: true, failing: (sql) => sql === "INSERT caught" && failures++ === 0 });
    const writer = new GroupCommit(eng);
    const runs: string[] = [];
    const unit = (name: string) =>
      writer.run(async () => {
        runs.push(name);
        try {
          await writer.current()!.conn.send(`INSERT ${name}`);
        } catch {
          /* swallowed: the transaction is aborted all the same */
        }
      }, { concurrent: true });
    await Promise.all([unit("caught"), unit("other")]);
    expect(runs.sort()).toEqual(["caught", "caught", "other", "other"]);
    expect(writer.stats).toEqual({ commits: 1, units: 2 });
    // No unit failed itself: both ran together twice.
    expect(writer.sideBySide).toEqual({ ran: 4, again: 2 });
  });

  test("one that fails in its own code (no statement failed): the others try again together, it alone", async () => {
    const { eng, log } = engine({ concurrentUnits: true });
    const writer = new GroupCommit(eng);
    let taken = true;
    const unit = (name: string) =>
      writer.run(async () => {
        await writer.current()!.conn.send(`INSERT ${name}`);
        if (name === "retry" && taken) throw new Error("transaction id taken");
        return name;
      }, { concurrent: true });
    const outcomes = await Promise.allSettled([unit("a"), unit("retry"), unit("b")]);
    expect(outcomes.map((o) => (o.status === "fulfilled" ? o.value : (o.reason as Error).message))).toEqual(["a", "transaction id taken", "b"]);
    expect(sentStatements(log)).toEqual([
      "BEGIN",
      "SAVEPOINT together",
      "INSERT a",
      "INSERT retry",
      "INSERT b",
      "ROLLBACK TO together",
      "RELEASE together",
      "SAVEPOINT together",
      "INSERT a",
      "INSERT b",
      "RELEASE together",
      "SAVEPOINT unit",
      "INSERT retry",
      "ROLLBACK TO unit",
      "RELEASE unit",
      "COMMIT",
    ]);
    expect(writer.sideBySide).toEqual({ ran: 5, again: 3 });
    taken = false;
  });

  test("a nested transaction that fails inside one, its error caught: rolled back with the group, then alone in real savepoints", async () => {
    const { eng, log } = engine({ concurrentUnits: true });
    const writer = new GroupCommit(eng);
    const nesting = writer.run(async () => {
      await writer
        .run(async () => {
          await writer.current()!.conn.send("INSERT inner");
          throw new Error("inner fails");
        })
        .catch(() => undefined);
      await writer.current()!.conn.send("INSERT outer");
      return "nesting";
    }, { concurrent: true });
    const other = writer.run(async () => void (await writer.current()!.conn.send("INSERT other")), { concurrent: true });
    expect(await nesting).toBe("nesting");
    await other;
    const sent = sentStatements(log);
    // Alone, its nested transaction is a savepoint: rolled back by itself, and the unit commits the rest.
    expect(sent.slice(sent.lastIndexOf("SAVEPOINT unit"))).toEqual(["SAVEPOINT unit", "SAVEPOINT nested1", "INSERT inner", "ROLLBACK TO nested1", "RELEASE nested1", "INSERT outer", "RELEASE unit", "COMMIT"]);
    expect(writer.sideBySide.again).toBe(2);
  });

  test("a function that throws before its first await fails its own unit only", async () => {
    const { eng } = engine({ concurrentUnits: true });
    const writer = new GroupCommit(eng);
    const throwing = writer.run((() => {
      throw new Error("at once");
    }) as unknown as () => Promise<void>, { concurrent: true });
    const other = writer.run(async () => void (await writer.current()!.conn.send("INSERT other")), { concurrent: true });
    expect(await throwing.catch((e: Error) => e.message)).toBe("at once");
    await other;
    expect(writer.stats).toEqual({ commits: 1, units: 1 });
  });

  test("when rolling them back fails, every unit of the batch fails and the batch ends", async () => {
    const { eng, log } = engine({ concurrentUnits: true, failing: (sql) => sql === "INSERT bad" || sql === "ROLLBACK TO together" });
    const writer = new GroupCommit(eng);
    const unit = (name: string, concurrent = true) => writer.run(async () => void (await writer.current()!.conn.send(`INSERT ${name}`)), { concurrent });
    const outcomes = await Promise.allSettled([unit("a"), unit("bad"), unit("plain", false)]);
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected", "rejected"]);
    expect(sentStatements(log).at(-1)).toBe("ROLLBACK");
    expect(writer.stats).toEqual({ commits: 0, units: 0 });
    await writer.drain();
    expect(writer.idle).toBe(true);
  });

  test("a lone unit that asks runs as any lone unit: no savepoint", async () => {
    const { eng, log } = engine({ concurrentUnits: true });
    const writer = new GroupCommit(eng);
    await writer.run(async () => void (await writer.current()!.conn.send("INSERT a")), { concurrent: true });
    expect(sentStatements(log)).toEqual(["BEGIN", "INSERT a", "COMMIT"]);
  });
});

async function table(db: Database): Promise<void> {
  await db.exec("CREATE TABLE side_by_side (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
}

describe.each(testDatabases.map((d) => [d.name, d] as const))("units side by side on %s", (name, database) => {
  test("they commit together, and one that fails leaves nothing while the others commit", async () => {
    const db = await database.open();
    await table(db);
    const order: string[] = [];
    const unit = (k: string) =>
      db.transaction(async () => {
        order.push(`${k} begins`);
        await db.run("INSERT INTO side_by_side (k, v) VALUES (?, 1)", k);
        await db.run("UPDATE side_by_side SET v = v + 1 WHERE k = ?", k);
        order.push(`${k} ends`);
        return k;
      }, { concurrent: true });
    expect(await Promise.all([unit("a"), unit("b"), unit("c")])).toEqual(["a", "b", "c"]);
    // Interleaved where each statement is a round trip; one after another where it runs on the spot.
    expect(order.indexOf("b begins") < order.indexOf("a ends")).toBe(name === "postgres");
    expect(await db.all("SELECT k, v FROM side_by_side ORDER BY k")).toEqual([{ k: "a", v: 2 }, { k: "b", v: 2 }, { k: "c", v: 2 }]);

    // "a" is taken: its insert fails, in a batch with two that do not.
    const outcomes = await Promise.allSettled([unit("d"), unit("a"), unit("e")]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(await db.all("SELECT k, v FROM side_by_side ORDER BY k")).toEqual(["a", "b", "c", "d", "e"].map((k) => ({ k, v: 2 })));
    await db.close();
  });
});

describe.skipIf(!hasPostgres)("messages side by side on PostgreSQL", () => {
  test("notifications written by units side by side take distinct positions, in one go", async () => {
    const db = await postgresDatabase.open();
    const stores = storesOver(db);
    const writer = (db as unknown as { writer: GroupCommit<unknown> }).writer;
    const row = (user: string, ordering: number) => ({ userId: user, roomId: `!${user}:example.org`, eventId: `$${user}${ordering}`, eventStreamOrdering: ordering, ts: 1, actions: ["notify"], highlight: false });
    await Promise.all(["@a:x", "@b:x", "@c:x"].map((user) => db.transaction(() => stores.notifications.addNotifications([row(user, 1), row(user, 2)]), { concurrent: true })));
    // Positions taken from the same maximum would have collided, and all three would have run again.
    expect(writer.sideBySide).toEqual({ ran: 3, again: 0 });
    const ids = (await db.all<{ stream_id: number }>("SELECT stream_id FROM notifications ORDER BY stream_id")).map((r) => r.stream_id);
    expect(ids).toEqual([1, 2, 3, 4, 5, 6]);
    await db.close();
  });
});
