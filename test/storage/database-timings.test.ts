// The Database seam's timing hook (metrics), on every engine: each statement reported once with its
// kind, each group-commit batch once; nothing is reported before setTimings.
import { describe, expect, test } from "bun:test";
import type { DatabaseTimings } from "../../src/storage/database";
import { testDatabases } from "../helpers/databases";

function recorder() {
  const seen = { reads: 0, writes: 0, commits: 0, seconds: [] as number[] };
  const timings: DatabaseTimings = {
    statement(seconds, write) {
      seen.seconds.push(seconds);
      if (write) seen.writes++;
      else seen.reads++;
    },
    commit(seconds) {
      seen.seconds.push(seconds);
      seen.commits++;
    },
  };
  return { seen, timings };
}

describe.each(testDatabases.map((d) => [d.name, d] as const))("database timings on %s", (_name, engine) => {
  test("statements by kind and commits by batch are reported, in seconds", async () => {
    const db = await engine.open();
    try {
      await db.exec("CREATE TABLE timing_probe (k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
      const { seen, timings } = recorder();
      // Before the hook is set, nothing is reported.
      await db.run("INSERT INTO timing_probe (k, v) VALUES (?, ?)", "before", 0);
      expect(db.setTimings).toBeFunction();
      db.setTimings!(timings);
      expect(seen).toEqual({ reads: 0, writes: 0, commits: 0, seconds: [] });

      await db.get("SELECT v FROM timing_probe WHERE k = ?", "before");
      await db.all("SELECT k FROM timing_probe");
      expect({ reads: seen.reads, writes: seen.writes, commits: seen.commits }).toEqual({ reads: 2, writes: 0, commits: 0 });

      // A write outside a transaction is a transaction (one batch) of its own.
      await db.run("INSERT INTO timing_probe (k, v) VALUES (?, ?)", "a", 1);
      expect({ reads: seen.reads, writes: seen.writes, commits: seen.commits }).toEqual({ reads: 2, writes: 1, commits: 1 });

      // Transactions that arrive together share one batch: one commit for both.
      await Promise.all([
        db.transaction(async () => {
          await db.run("INSERT INTO timing_probe (k, v) VALUES (?, ?)", "b", 2);
          await db.get("SELECT v FROM timing_probe WHERE k = ?", "b");
        }),
        db.transaction(async () => {
          await db.run("UPDATE timing_probe SET v = v + 1 WHERE k = ?", "a");
        }),
      ]);
      expect({ reads: seen.reads, writes: seen.writes, commits: seen.commits }).toEqual({ reads: 3, writes: 3, commits: 2 });
      // Durations are seconds: non-negative, and well under a minute for these.
      expect(seen.seconds.every((s) => s >= 0 && s < 60)).toBe(true);
    } finally {
      await db.close();
    }
  });
});
