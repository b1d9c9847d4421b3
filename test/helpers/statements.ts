// Counting the statements a server's database runs while something happens: for tests that bound
// what a request costs (a cost that grows again fails them).
import type { PortierServer } from "../../src/app";
import { resolve, Tokens } from "../../src/di/tokens";

/** Runs `fn` and counts the server's database statements meanwhile (only those containing `matching`, when given). */
export async function statementsDuring<T>(server: PortierServer, fn: () => Promise<T>, matching?: string): Promise<{ value: T; statements: number }> {
  const db = resolve(server.container, Tokens.Database) as unknown as { query: (sql: string, call: unknown) => Promise<unknown> };
  const original = db.query;
  let statements = 0;
  db.query = function (this: unknown, sql: string, call: unknown) {
    if (matching === undefined || sql.includes(matching)) statements++;
    return original.call(this, sql, call);
  };
  try {
    return { value: await fn(), statements };
  } finally {
    db.query = original;
  }
}
