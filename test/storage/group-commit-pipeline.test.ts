// Group commit sends its savepoint statements without waiting for their answers (pipelined behind
// the unit's next statement), and still never lets a transaction resolve unless every one of them
// succeeded. An engine whose statements answer a little later shows the order on the wire; one that
// fails a savepoint statement shows that nothing half-done is acknowledged.
import { describe, expect, test } from "bun:test";
import { GroupCommit, type TransactionEngine } from "../../src/storage/group-commit";
import { fakeEngine } from "../helpers/fake-transaction-engine";

/** `postgres`: as PostgreSQL, a failed statement makes the COMMIT after it roll back (and end() throw). */
const engine = (failing: (sql: string, index: number) => boolean = () => false, postgres = false) => fakeEngine({ failing, postgres });

describe("group commit pipelines its savepoint statements", () => {
  test("a unit's first statement goes out with its SAVEPOINT, and the next unit's with the RELEASE before it", async () => {
    const { eng, log } = engine();
    const writer = new GroupCommit(eng);
    const unit = (name: string) => writer.run(async () => void (await writer.current()!.conn.send(`INSERT ${name}`)));
    await Promise.all([unit("a"), unit("b")]);
    expect(log.filter((l) => l.startsWith("send"))).toEqual([
      "send BEGIN",
      "send SAVEPOINT unit",
      "send INSERT a (pipelined)",
      "send RELEASE unit",
      "send SAVEPOINT unit (pipelined)",
      "send INSERT b (pipelined)",
      "send RELEASE unit",
      "send COMMIT",
    ]);
    // COMMIT is sent only once every savepoint statement has answered.
    expect(log.indexOf("send COMMIT")).toBeGreaterThan(log.lastIndexOf("answer RELEASE unit"));
    expect(writer.stats).toEqual({ commits: 1, units: 2 });
  });

  test("a nested transaction's SAVEPOINT and RELEASE do not cost a round trip of their own", async () => {
    const { eng, log } = engine();
    const writer = new GroupCommit(eng);
    await writer.run(async () => {
      await writer.run(async () => void (await writer.current()!.conn.send("INSERT inner")));
      await writer.current()!.conn.send("INSERT after");
    });
    expect(log.filter((l) => l.startsWith("send"))).toEqual(["send BEGIN", "send SAVEPOINT nested1", "send INSERT inner (pipelined)", "send RELEASE nested1", "send INSERT after (pipelined)", "send COMMIT"]);
  });

  test("a savepoint statement that fails after its unit finished: no transaction of the batch resolves, and the batch rolls back", async () => {
    // The first unit's RELEASE fails (statement index 3: BEGIN, SAVEPOINT, INSERT a, RELEASE).
    const { eng, log } = engine((sql, i) => sql === "RELEASE unit" && i === 3);
    const writer = new GroupCommit(eng);
    const unit = (name: string) => writer.run(async () => void (await writer.current()!.conn.send(`INSERT ${name}`)));
    let rollbacks = 0;
    writer.onRollback(() => rollbacks++);
    const outcomes = await Promise.allSettled([unit("a"), unit("b")]);
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected"]);
    expect(log).toContain("send ROLLBACK");
    expect(log).not.toContain("send COMMIT");
    expect(writer.stats).toEqual({ commits: 0, units: 0 });
    // Neither unit failed itself, yet what both did is gone: the caches that listen are told.
    expect(rollbacks).toBe(1);
  });

  test("a unit that fails while an earlier unit's RELEASE failed is not rolled back to a savepoint that may be the earlier unit's", async () => {
    const { eng, log } = engine((sql, i) => sql === "RELEASE unit" && i === 3);
    const writer = new GroupCommit(eng);
    const a = writer.run(async () => void (await writer.current()!.conn.send("INSERT a")));
    const b = writer.run(async () => {
      await writer.current()!.conn.send("INSERT b");
      throw new Error("b fails");
    });
    const c = writer.run(async () => void (await writer.current()!.conn.send("INSERT c")));
    const outcomes = await Promise.allSettled([a, b, c]);
    expect(outcomes.map((o) => o.status)).toEqual(["rejected", "rejected", "rejected"]);
    // ROLLBACK TO unit would have undone the first unit's work (its savepoint, never released) and let the batch commit.
    expect(log).not.toContain("send ROLLBACK TO unit");
    expect(log).toContain("send ROLLBACK");
    expect(log).not.toContain("send COMMIT");
  });

  test("a unit that fails is rolled back to its own savepoint; the others commit", async () => {
    const { eng, log } = engine();
    const writer = new GroupCommit(eng);
    const a = writer.run(async () => void (await writer.current()!.conn.send("INSERT a")));
    const b = writer.run(async () => {
      await writer.current()!.conn.send("INSERT b");
      throw new Error("b fails");
    });
    const c = writer.run(async () => void (await writer.current()!.conn.send("INSERT c")));
    const outcomes = await Promise.allSettled([a, b, c]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(log).toContain("send ROLLBACK TO unit");
    expect(log).toContain("send COMMIT");
    expect(writer.stats).toEqual({ commits: 1, units: 2 });
  });
});

describe("on an engine whose COMMIT fails after any failed statement (PostgreSQL)", () => {
  test("COMMIT goes out behind the last RELEASE, without waiting for its answer", async () => {
    const { eng, log } = engine(() => false, true);
    const writer = new GroupCommit(eng);
    const unit = (name: string) => writer.run(async () => void (await writer.current()!.conn.send(`INSERT ${name}`)));
    expect(await Promise.all([unit("a"), unit("b")])).toEqual([undefined, undefined]);
    expect(log.filter((l) => l.startsWith("send")).slice(-2)).toEqual(["send RELEASE unit", "send COMMIT (pipelined)"]);
    expect(log.indexOf("send COMMIT (pipelined)")).toBeLessThan(log.lastIndexOf("answer RELEASE unit"));
    expect(writer.stats).toEqual({ commits: 1, units: 2 });
  });

  test("a RELEASE that fails fails the COMMIT sent behind it: no transaction resolves, each gets the RELEASE's error, and the caches are told", async () => {
    const { eng } = engine((sql, i) => sql === "RELEASE unit" && i === 3, true);
    const writer = new GroupCommit(eng);
    let rollbacks = 0;
    writer.onRollback(() => rollbacks++);
    const unit = (name: string) => writer.run(async () => void (await writer.current()!.conn.send(`INSERT ${name}`)));
    const outcomes = await Promise.allSettled([unit("a"), unit("b")]);
    expect(outcomes.map((o) => (o.status === "rejected" ? String((o.reason as Error).message) : o.status))).toEqual(["RELEASE unit failed", "RELEASE unit failed"]);
    expect(writer.stats).toEqual({ commits: 0, units: 0 });
    expect(rollbacks).toBe(1);
  });
});

describe("group commit tells the engine when a batch is alone", () => {
  test("a lone unit with nothing queued behind it is alone (it may wait for the disk on the thread); a shared batch, or one with units queued behind it, is not", async () => {
    const ends: boolean[] = [];
    const eng: TransactionEngine<object> = {
      begin: () => ({}),
      statement: () => undefined,
      end: async (_c, _commit, alone) => {
        ends.push(alone);
        await new Promise((resolve) => setTimeout(resolve, 1));
      },
    };
    const writer = new GroupCommit(eng);
    await writer.run(async () => "one");
    expect(ends).toEqual([true]);
    await Promise.all([writer.run(async () => "a"), writer.run(async () => "b")]);
    expect(ends).toEqual([true, false]);
    // A unit queued while a lone one runs: the lone one's batch is not alone any more.
    let release!: () => void;
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const first = writer.run(async () => {
      started();
      await new Promise<void>((resolve) => (release = resolve));
    });
    await running;
    const behind = writer.run(async () => "behind");
    release();
    await Promise.all([first, behind]);
    expect(ends).toEqual([true, false, false, true]);
  });
});

describe("a transaction that asks to run alone", () => {
  test("gets an engine transaction of its own, without a savepoint; the units queued before and after it share theirs", async () => {
    const { eng, log } = engine();
    const writer = new GroupCommit(eng);
    const unit = (name: string, alone = false) => writer.run(async () => void (await writer.current()!.conn.send(`INSERT ${name}`)), { alone });
    await Promise.all([unit("a"), unit("b"), unit("bulk", true), unit("c"), unit("d")]);
    expect(log.filter((l) => l.startsWith("send")).map((l) => l.replace(" (pipelined)", ""))).toEqual([
      "send BEGIN",
      "send SAVEPOINT unit",
      "send INSERT a",
      "send RELEASE unit",
      "send SAVEPOINT unit",
      "send INSERT b",
      "send RELEASE unit",
      "send COMMIT",
      "send BEGIN",
      "send INSERT bulk",
      "send COMMIT",
      "send BEGIN",
      "send SAVEPOINT unit",
      "send INSERT c",
      "send RELEASE unit",
      "send SAVEPOINT unit",
      "send INSERT d",
      "send RELEASE unit",
      "send COMMIT",
    ]);
    expect(writer.stats).toEqual({ commits: 3, units: 5 });
  });

  test("its nested transactions are no savepoints; one that fails rolls the whole unit back, and the unit's caller gets its error", async () => {
    const { eng, log } = engine();
    const writer = new GroupCommit(eng);
    let rollbacks = 0;
    writer.onRollback(() => rollbacks++);
    const insert = (name: string) => writer.run(async () => void (await writer.current()!.conn.send(`INSERT ${name}`)));
    await writer.run(async () => {
      await insert("one");
      await insert("two");
    }, { alone: true });
    const failing = writer.run(async () => {
      await insert("three");
      await writer.run(async () => {
        throw new Error("nested fails");
      }).catch(() => undefined);
      return "caught";
    }, { alone: true });
    await expect(failing).rejects.toThrow("nested fails");
    expect(rollbacks).toBe(1);
    expect(log.filter((l) => l.startsWith("send")).map((l) => l.replace(" (pipelined)", ""))).toEqual([
      "send BEGIN",
      "send INSERT one",
      "send INSERT two",
      "send COMMIT",
      "send BEGIN",
      "send INSERT three",
      "send ROLLBACK",
    ]);
  });

  test("its nested transactions still run one after another; after one fails, the next ones do no work, and a thrown undefined fails the unit too", async () => {
    const { eng, log } = engine();
    const writer = new GroupCommit(eng);
    const order: string[] = [];
    const step = (name: string) =>
      writer.run(async () => {
        order.push(`${name} reads`);
        await new Promise((r) => setTimeout(r, 2));
        await writer.current()!.conn.send(`INSERT ${name}`);
        order.push(`${name} writes`);
      });
    await writer.run(async () => void (await Promise.all([step("a"), step("b")])), { alone: true });
    expect(order).toEqual(["a reads", "a writes", "b reads", "b writes"]);

    let ranAfter = false;
    const failing = writer.run(async () => {
      await writer.run(async () => {
        await writer.current()!.conn.send("INSERT half");
        throw undefined;
      }).catch(() => undefined);
      await writer.run(async () => void (ranAfter = true)).catch(() => undefined);
    }, { alone: true });
    await expect(failing).rejects.toBeUndefined();
    expect(ranAfter).toBe(false);
    expect(log.filter((l) => l.startsWith("send")).slice(-3).map((l) => l.replace(" (pipelined)", ""))).toEqual(["send BEGIN", "send INSERT half", "send ROLLBACK"]);
  });

  test("inside another transaction it is a savepoint of that one, as any nested transaction", async () => {
    const { eng, log } = engine();
    const writer = new GroupCommit(eng);
    await writer.run(async () => {
      await writer.run(async () => void (await writer.current()!.conn.send("INSERT nested")), { alone: true });
    });
    expect(log.filter((l) => l.startsWith("send")).map((l) => l.replace(" (pipelined)", ""))).toEqual([
      "send BEGIN",
      "send SAVEPOINT nested1",
      "send INSERT nested",
      "send RELEASE nested1",
      "send COMMIT",
    ]);
  });
});

test("the engine may wait for the disk on the calling thread after a lone small unit, never after bulk work run alone", async () => {
  const quiet: boolean[] = [];
  const eng: TransactionEngine<object> = { begin: () => ({}), statement: () => {}, end: (_c, _commit, q) => void quiet.push(q) };
  const writer = new GroupCommit(eng);
  await writer.run(async () => 1);
  await writer.run(async () => 2, { alone: true });
  expect(quiet).toEqual([true, false]);
});
