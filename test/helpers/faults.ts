// Faults injected into a server's database for tests of what a failed write leaves behind.
import type { Database } from "../../src/storage/database";

/**
 * Makes the next `times` statements run through `db.run` that start with `prefix` fail with a disk
 * error. `left()` says how many failures are still to come; `restore()` puts `run` back.
 */
export function failNextWrites(db: Database, prefix: string, times = 1): { left(): number; restore(): void } {
  const run = db.run;
  let failures = times;
  db.run = (sql, ...params) => {
    if (failures > 0 && sql.startsWith(prefix)) {
      failures--;
      return Promise.reject(new Error("disk I/O error"));
    }
    return run.call(db, sql, ...params);
  };
  return { left: () => failures, restore: () => void (db.run = run) };
}
