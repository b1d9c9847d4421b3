// The application service queue on every engine of this run: per service, oldest first, removal up
// to an accepted transaction's last event, and ids that never repeat once removed.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";

describe.each(testDatabases.map((d) => [d.name, d] as const))("application service queue on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("enqueue, peek in order, remove through an id, pending services", async () => {
    const queue = stores.appServiceQueue;
    expect(await queue.pendingServices()).toEqual([]);
    await queue.enqueue(["a", "b"], '{"n":1}', 10);
    await queue.enqueue(["a"], '{"n":2}', 11);
    await queue.enqueue([], '{"n":3}', 12);
    const a = await queue.peek("a", 10);
    expect(a.map((e) => e.json)).toEqual(['{"n":1}', '{"n":2}']);
    expect(a[0]!.id).toBeLessThan(a[1]!.id);
    expect((await queue.peek("b", 10)).map((e) => e.json)).toEqual(['{"n":1}']);
    expect((await queue.peek("a", 1)).map((e) => e.json)).toEqual(['{"n":1}']);
    expect((await queue.pendingServices()).sort()).toEqual(["a", "b"]);
    expect(await queue.remove("a", a[0]!.id)).toBe(1);
    expect((await queue.peek("a", 10)).map((e) => e.json)).toEqual(['{"n":2}']);
    expect(await queue.remove("a", a[1]!.id)).toBe(1);
    expect(await queue.pendingServices()).toEqual(["b"]);
    // An emptied queue does not hand out an id again (transaction ids are made from them).
    await queue.enqueue(["a"], '{"n":4}', 13);
    expect((await queue.peek("a", 10))[0]!.id).toBeGreaterThan(a[1]!.id);
  });
});
