// The 3PID bindings store on every engine of this run: a binding is recorded once per identity
// server, re-binding updates its times, removal says whether there was one, users are apart.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";

describe.each(testDatabases.map((d) => [d.name, d] as const))("threepid bindings on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("add, list, re-bind, remove", async () => {
    const store = stores.threepidBindings;
    await store.addBinding({ userId: ALICE, medium: "email", address: "a@example.com", idServer: "id.example", validatedAt: 10, addedAt: 100 });
    await store.addBinding({ userId: ALICE, medium: "email", address: "a@example.com", idServer: "other.example:8090", validatedAt: 20, addedAt: 200 });
    await store.addBinding({ userId: BOB, medium: "msisdn", address: "441234567890", idServer: "id.example", validatedAt: 30, addedAt: 300 });
    expect(await store.bindingsOf(ALICE)).toEqual([
      { userId: ALICE, medium: "email", address: "a@example.com", idServer: "id.example", validatedAt: 10, addedAt: 100 },
      { userId: ALICE, medium: "email", address: "a@example.com", idServer: "other.example:8090", validatedAt: 20, addedAt: 200 },
    ]);
    // Binding again on the same server is one row, with the new times.
    await store.addBinding({ userId: ALICE, medium: "email", address: "a@example.com", idServer: "id.example", validatedAt: 40, addedAt: 400 });
    expect((await store.bindingsOf(ALICE)).map((b) => [b.idServer, b.validatedAt, b.addedAt])).toEqual([["other.example:8090", 20, 200], ["id.example", 40, 400]]);

    expect(await store.removeBinding(ALICE, "email", "a@example.com", "id.example")).toBe(true);
    expect(await store.removeBinding(ALICE, "email", "a@example.com", "id.example")).toBe(false);
    expect(await store.removeBinding(ALICE, "email", "b@example.com", "other.example:8090")).toBe(false);
    expect((await store.bindingsOf(ALICE)).map((b) => b.idServer)).toEqual(["other.example:8090"]);
    expect((await store.bindingsOf(BOB)).map((b) => b.address)).toEqual(["441234567890"]);
  });

  test("the owners of an address, each once, by medium and exact address", async () => {
    const store = stores.threepidBindings;
    await store.addBinding({ userId: BOB, medium: "email", address: "s@example.com", idServer: "id.example", validatedAt: 1, addedAt: 1 });
    await store.addBinding({ userId: ALICE, medium: "email", address: "s@example.com", idServer: "id.example", validatedAt: 1, addedAt: 1 });
    await store.addBinding({ userId: ALICE, medium: "email", address: "s@example.com", idServer: "other.example", validatedAt: 2, addedAt: 2 });
    await store.addBinding({ userId: BOB, medium: "msisdn", address: "441234567890", idServer: "id.example", validatedAt: 1, addedAt: 1 });
    expect(await store.ownersOf("email", "s@example.com")).toEqual([ALICE, BOB]);
    expect(await store.ownersOf("msisdn", "s@example.com")).toEqual([]);
    expect(await store.ownersOf("email", "S@example.com")).toEqual([]);
    expect(await store.ownersOf("msisdn", "441234567890")).toEqual([BOB]);
  });
});
