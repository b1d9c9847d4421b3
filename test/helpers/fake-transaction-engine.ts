// A transaction engine over a fake connection, for the group commit's tests: statements answer one
// macrotask later and the log shows the order on the wire ("(pipelined)": sent while another was
// awaiting its answer).
import type { TransactionEngine } from "../../src/storage/group-commit";

export interface FakeEngineOptions {
  /** Statements that reject (by their text and their index among all statements sent). */
  failing?: (sql: string, index: number) => boolean;
  /** As PostgreSQL: COMMIT after a failed statement rolls back, and end() throws. */
  postgres?: boolean;
  /**
   * As PostgreSQL, more closely: a failed statement aborts the transaction, every later statement
   * fails until a ROLLBACK TO, and only a failure not rolled back to makes COMMIT roll back.
   */
  aborts?: boolean;
  /** The engine runs units that ask for it side by side. */
  concurrentUnits?: boolean;
}

export function fakeEngine(options: FakeEngineOptions = {}) {
  const log: string[] = [];
  let pending = 0;
  let sent = 0;
  let failed = false;
  const send = (sql: string): Promise<void> => {
    const index = sent++;
    log.push(`send ${sql}${pending > 0 ? " (pipelined)" : ""}`);
    pending++;
    return new Promise<void>((resolve, reject) =>
      setTimeout(() => {
        pending--;
        log.push(`answer ${sql}`);
        if (options.aborts && sql.startsWith("ROLLBACK TO")) failed = false;
        else if (options.aborts && failed) return reject(new Error(`${sql}: the transaction is aborted`));
        if (options.failing?.(sql, index)) {
          failed = true;
          reject(new Error(`${sql} failed`));
        } else resolve();
      }, 1),
    );
  };
  const eng: TransactionEngine<{ send: typeof send }> = {
    begin: async () => {
      await send("BEGIN");
      return { send };
    },
    statement: (c, sql) => c.send(sql),
    end: async (c, commit) => {
      await c.send(commit ? "COMMIT" : "ROLLBACK");
      if ((options.postgres || options.aborts) && commit && failed) throw new Error("COMMIT answered ROLLBACK");
    },
    commitFailsAfterAnyError: options.postgres === true || options.aborts === true,
    concurrentUnits: options.concurrentUnits === true,
  };
  return { eng, log, send };
}

/** The statements sent, in order, without telling pipelined ones apart. */
export const sentStatements = (log: readonly string[]): string[] => log.filter((l) => l.startsWith("send ")).map((l) => l.slice(5).replace(" (pipelined)", ""));
