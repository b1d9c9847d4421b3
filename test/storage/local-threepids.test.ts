// The addresses Portier validated itself, on every engine of this run: one owner per address
// (another user's add is refused and changes nothing), re-adding updates the times, removal.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";

describe.each(testDatabases.map((d) => [d.name, d] as const))("local threepids on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("add, refuse to another user, list, remove", async () => {
    const store = stores.localThreepids;
    expect(await store.add({ userId: ALICE, medium: "email", address: "a@example.com", validatedAt: 1, addedAt: 10 })).toBe(true);
    expect(await store.add({ userId: BOB, medium: "email", address: "a@example.com", validatedAt: 2, addedAt: 20 })).toBe(false);
    expect(await store.ownerOf("email", "a@example.com")).toBe(ALICE);
    expect(await store.add({ userId: ALICE, medium: "email", address: "a@example.com", validatedAt: 3, addedAt: 30 })).toBe(true);
    expect(await store.add({ userId: ALICE, medium: "email", address: "b@example.com", validatedAt: 4, addedAt: 40 })).toBe(true);
    expect(await store.listOf(ALICE)).toEqual([
      { userId: ALICE, medium: "email", address: "a@example.com", validatedAt: 3, addedAt: 30 },
      { userId: ALICE, medium: "email", address: "b@example.com", validatedAt: 4, addedAt: 40 },
    ]);
    expect(await store.listOf(BOB)).toEqual([]);
    expect(await store.remove(BOB, "email", "a@example.com")).toBe(false);
    expect(await store.remove(ALICE, "email", "a@example.com")).toBe(true);
    expect(await store.ownerOf("email", "a@example.com")).toBeUndefined();
    expect(await store.removeAll(ALICE)).toBe(1);
    expect(await store.listOf(ALICE)).toEqual([]);
  });
});
