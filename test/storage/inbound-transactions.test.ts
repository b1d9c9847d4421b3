// The answers to other servers' transactions on every engine of this run: recorded once per
// (origin, txnId) (a second record keeps the first), read back by both keys, pruned by age.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";

describe.each(testDatabases.map((d) => [d.name, d] as const))("inbound federation transactions on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("record, read back, keep the first, prune the old", async () => {
    const store = stores.inboundTransactions;
    expect(await store.answerOf("b.example", "t1")).toBeUndefined();
    await store.recordAnswer("b.example", "t1", '{"pdus":{"$a":{}}}', 1_000);
    await store.recordAnswer("b.example", "t1", '{"pdus":{}}', 2_000);
    await store.recordAnswer("c.example", "t1", '{"pdus":{"$c":{"error":"x"}}}', 5_000);
    expect(await store.answerOf("b.example", "t1")).toBe('{"pdus":{"$a":{}}}');
    expect(await store.answerOf("c.example", "t1")).toBe('{"pdus":{"$c":{"error":"x"}}}');
    expect(await store.answerOf("b.example", "t2")).toBeUndefined();

    expect(await store.pruneBefore(3_000)).toBe(1);
    expect(await store.answerOf("b.example", "t1")).toBeUndefined();
    expect(await store.answerOf("c.example", "t1")).toBe('{"pdus":{"$c":{"error":"x"}}}');
  });
});
