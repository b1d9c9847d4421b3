// The record of users erased on deactivation, and the deletion of a user's account data that goes
// with an erasure, on every engine of this run.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";
const ROOM = "!room:example.org";

describe.each(testDatabases.map((d) => [d.name, d] as const))("erased users on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("an erasure is recorded once, and listed", async () => {
    const store = stores.erasedUsers;
    expect(await store.allErased()).toEqual([]);
    await store.markErased(BOB, 20);
    await store.markErased(ALICE, 10);
    // Erasing again changes nothing (the first time stays).
    await store.markErased(ALICE, 30);
    expect(await store.allErased()).toEqual([ALICE, BOB]);
    expect(await stores.db.all("SELECT user_id, erased_ts FROM erased_users ORDER BY user_id")).toEqual([
      { user_id: ALICE, erased_ts: 10 },
      { user_id: BOB, erased_ts: 20 },
    ]);
  });

  test("all of one user's account data, global and per room, is deleted; others' stays", async () => {
    const data = stores.accountData;
    await data.putAccountData(ALICE, undefined, "org.example.settings", { theme: "dark" });
    await data.putAccountData(ALICE, ROOM, "m.tag", { tags: { u: {} } });
    const bobs = await data.putAccountData(BOB, undefined, "org.example.settings", { theme: "light" });
    expect(await data.deleteAllAccountData(ALICE)).toBe(2);
    expect(await data.getAccountData(ALICE, undefined, "org.example.settings")).toBeUndefined();
    expect(await data.getAccountData(ALICE, ROOM, "m.tag")).toBeUndefined();
    const since = await data.accountDataSince(ALICE, 0);
    expect({ global: since.global, rooms: [...since.rooms] }).toEqual({ global: [], rooms: [] });
    expect(await data.accountDataSince(BOB, 0)).toEqual({ global: [{ type: "org.example.settings", roomId: undefined, content: { theme: "light" }, streamPosition: bobs }], rooms: new Map() });
    expect(await data.deleteAllAccountData(ALICE)).toBe(0);
  });

  test("the account data stream never goes back: the next write after a deletion takes a new position", async () => {
    const data = stores.accountData;
    await data.putAccountData(BOB, undefined, "org.example.settings", { v: 1 });
    const head = await data.putAccountData(ALICE, undefined, "org.example.settings", { v: 1 });
    await data.deleteAllAccountData(ALICE);
    expect(await data.maxAccountDataStream()).toBe(head);
    expect((await stores.streamHeads.heads()).accountData).toBe(head);
    const next = await data.putAccountData(BOB, undefined, "org.example.settings", { v: 2 });
    expect(next).toBe(head + 1);
    expect((await data.accountDataSince(BOB, head)).global.map((e) => e.content)).toEqual([{ v: 2 }]);
  });
});
