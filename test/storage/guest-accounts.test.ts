// Guest accounts in the account store (migration 64, users.is_guest), on every engine of this run:
// the flag is stored, comes with the guest's access tokens, and an upgrade clears it once.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";

const GUEST = "@123456789:example.org";
const ALICE = "@alice:example.org";

describe.each(testDatabases.map((d) => [d.name, d] as const))("guest accounts on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("a guest is marked as one, and so are its tokens; full users are not", async () => {
    const { accounts } = stores;
    expect(await accounts.createUser({ userId: GUEST, passwordHash: undefined, createdTs: 1, isAdmin: false, isGuest: true })).toBe(true);
    expect(await accounts.createUser({ userId: ALICE, passwordHash: "h", createdTs: 1, isAdmin: false })).toBe(true);
    expect((await accounts.getUser(GUEST))?.isGuest).toBe(true);
    expect((await accounts.getUser(ALICE))?.isGuest).toBeUndefined();
    await accounts.addAccessToken("g", GUEST, "GDEV", 1);
    await accounts.addAccessToken("a", ALICE, "ADEV", 1);
    expect(await accounts.findAccessToken("g")).toEqual({ userId: GUEST, deviceId: "GDEV", isGuest: true });
    expect(await accounts.findAccessToken("a")).toEqual({ userId: ALICE, deviceId: "ADEV" });
  });

  test("upgradeGuest sets the password and clears the flag, once; never for a full user", async () => {
    const { accounts } = stores;
    await accounts.createUser({ userId: GUEST, passwordHash: undefined, createdTs: 1, isAdmin: false, isGuest: true });
    await accounts.createUser({ userId: ALICE, passwordHash: "alice", createdTs: 1, isAdmin: false });
    await accounts.addAccessToken("g", GUEST, "GDEV", 1);
    expect(await accounts.upgradeGuest(GUEST, "newhash")).toBe(true);
    expect(await accounts.getUser(GUEST)).toEqual({ userId: GUEST, passwordHash: "newhash", createdTs: 1, isAdmin: false, deactivated: false });
    expect(await accounts.findAccessToken("g")).toEqual({ userId: GUEST, deviceId: "GDEV" });
    expect(await accounts.upgradeGuest(GUEST, "again")).toBe(false);
    expect((await accounts.getUser(GUEST))?.passwordHash).toBe("newhash");
    expect(await accounts.upgradeGuest(ALICE, "stolen")).toBe(false);
    expect((await accounts.getUser(ALICE))?.passwordHash).toBe("alice");
  });
});
