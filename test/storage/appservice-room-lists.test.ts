// Application services' network room lists on every engine of this run: per network, every
// network's rooms once, withdrawal.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";

describe.each(testDatabases.map((d) => [d.name, d] as const))("application service room lists on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("publish per network, list one network or all, withdraw", async () => {
    const lists = stores.appServiceRoomLists;
    await lists.setPublished("as", "net1", "!a:x", true, 1);
    await lists.setPublished("as", "net1", "!a:x", true, 2);
    await lists.setPublished("as", "net2", "!a:x", true, 3);
    await lists.setPublished("as", "net2", "!b:x", true, 4);
    const ids = (rooms: { roomId: string }[]) => rooms.map((r) => r.roomId).sort();
    expect(ids(await lists.publishedRooms({ appServiceId: "as", networkId: "net1" }))).toEqual(["!a:x"]);
    expect(ids(await lists.publishedRooms({ appServiceId: "other", networkId: "net1" }))).toEqual([]);
    expect(ids(await lists.publishedRooms())).toEqual(["!a:x", "!b:x"]);
    expect((await lists.publishedRooms())[0]!.joinedMembers).toBe(0);
    await lists.setPublished("as", "net2", "!a:x", false, 5);
    expect(ids(await lists.publishedRooms({ appServiceId: "as", networkId: "net2" }))).toEqual(["!b:x"]);
  });
});
