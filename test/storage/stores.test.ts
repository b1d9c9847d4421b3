// The account, profile, filter, account data, push rule, room client and room directory stores, on
// every engine of this run (both SQLite drivers, and PostgreSQL where a server can be started).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";
const ROOM = "!room:example.org";
const OTHER_ROOM = "!other:example.org";

describe.each(testDatabases.map((d) => [d.name, d] as const))("stores on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });
  const count = async (table: string) => (await stores.db.get<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))!.n;

  describe("accounts", () => {
    test("createUser stores a user once; a taken id is refused and the first user kept", async () => {
      const { accounts } = stores;
      expect(await accounts.getUser(ALICE)).toBeUndefined();
      expect(await accounts.createUser({ userId: ALICE, passwordHash: "hash1", createdTs: 1000, isAdmin: true })).toBe(true);
      expect(await accounts.createUser({ userId: ALICE, passwordHash: "hash2", createdTs: 2000, isAdmin: false })).toBe(false);
      expect(await accounts.getUser(ALICE)).toEqual({ userId: ALICE, passwordHash: "hash1", createdTs: 1000, isAdmin: true, deactivated: false });
      expect(await accounts.createUser({ userId: BOB, passwordHash: undefined, createdTs: 3000, isAdmin: false })).toBe(true);
      expect(await accounts.getUser(BOB)).toEqual({ userId: BOB, passwordHash: undefined, createdTs: 3000, isAdmin: false, deactivated: false });
      expect(await count("users")).toBe(2);
    });

    test("setPasswordHash replaces the hash of that user only", async () => {
      const { accounts } = stores;
      await accounts.createUser({ userId: ALICE, passwordHash: "old", createdTs: 1, isAdmin: false });
      await accounts.createUser({ userId: BOB, passwordHash: "bob", createdTs: 1, isAdmin: false });
      await accounts.setPasswordHash(ALICE, "new");
      expect((await accounts.getUser(ALICE))?.passwordHash).toBe("new");
      expect((await accounts.getUser(BOB))?.passwordHash).toBe("bob");
    });

    test("upsertDevice creates a device, renames it only when a name is given", async () => {
      const { accounts } = stores;
      await accounts.upsertDevice(ALICE, "DEV1", "Phone", 100);
      expect(await accounts.getDevice(ALICE, "DEV1")).toEqual({ userId: ALICE, deviceId: "DEV1", displayName: "Phone", lastSeenTs: 100, lastSeenIp: undefined });
      await accounts.upsertDevice(ALICE, "DEV1", undefined, 200);
      expect(await accounts.getDevice(ALICE, "DEV1")).toEqual({ userId: ALICE, deviceId: "DEV1", displayName: "Phone", lastSeenTs: 100, lastSeenIp: undefined });
      await accounts.upsertDevice(ALICE, "DEV1", "Laptop", 300);
      expect((await accounts.getDevice(ALICE, "DEV1"))?.displayName).toBe("Laptop");
      // The last-seen time is only set on creation.
      expect((await accounts.getDevice(ALICE, "DEV1"))?.lastSeenTs).toBe(100);
      await accounts.upsertDevice(ALICE, "DEV2", undefined, 400);
      expect(await accounts.getDevice(ALICE, "DEV2")).toEqual({ userId: ALICE, deviceId: "DEV2", displayName: undefined, lastSeenTs: 400, lastSeenIp: undefined });
      expect(await accounts.getDevice(BOB, "DEV1")).toBeUndefined();
      expect(await count("devices")).toBe(2);
    });

    test("listDevices lists a user's devices by id", async () => {
      const { accounts } = stores;
      await accounts.upsertDevice(ALICE, "ZED", "z", 1);
      await accounts.upsertDevice(ALICE, "ABC", "a", 2);
      await accounts.upsertDevice(BOB, "MMM", "m", 3);
      expect((await accounts.listDevices(ALICE)).map((d) => [d.deviceId, d.displayName, d.lastSeenTs])).toEqual([
        ["ABC", "a", 2],
        ["ZED", "z", 1],
      ]);
      expect((await accounts.listDevices(BOB)).map((d) => d.deviceId)).toEqual(["MMM"]);
      expect(await accounts.listDevices("@nobody:example.org")).toEqual([]);
    });

    test("setDeviceDisplayName says whether the device exists", async () => {
      const { accounts } = stores;
      await accounts.upsertDevice(ALICE, "DEV", undefined, 1);
      expect(await accounts.setDeviceDisplayName(ALICE, "DEV", "Tablet")).toBe(true);
      expect((await accounts.getDevice(ALICE, "DEV"))?.displayName).toBe("Tablet");
      expect(await accounts.setDeviceDisplayName(ALICE, "NOPE", "x")).toBe(false);
      expect(await accounts.getDevice(ALICE, "NOPE")).toBeUndefined();
    });

    test("touchDevice sets the last-seen time, and the address unless none is given", async () => {
      const { accounts } = stores;
      await accounts.upsertDevice(ALICE, "DEV", "d", 1);
      await accounts.touchDevice(ALICE, "DEV", 50, "10.0.0.1");
      expect(await accounts.getDevice(ALICE, "DEV")).toMatchObject({ lastSeenTs: 50, lastSeenIp: "10.0.0.1" });
      await accounts.touchDevice(ALICE, "DEV", 60, undefined);
      expect(await accounts.getDevice(ALICE, "DEV")).toMatchObject({ lastSeenTs: 60, lastSeenIp: "10.0.0.1" });
      await accounts.touchDevice(ALICE, "DEV", 70, "10.0.0.2");
      expect(await accounts.getDevice(ALICE, "DEV")).toMatchObject({ lastSeenTs: 70, lastSeenIp: "10.0.0.2" });
    });

    test("access tokens: add, find, delete one", async () => {
      const { accounts } = stores;
      expect(await accounts.findAccessToken("h1")).toBeUndefined();
      await accounts.addAccessToken("h1", ALICE, "DEV", 1);
      await accounts.addAccessToken("h2", BOB, "BDEV", 2);
      expect(await accounts.findAccessToken("h1")).toEqual({ userId: ALICE, deviceId: "DEV" });
      expect(await accounts.findAccessToken("h2")).toEqual({ userId: BOB, deviceId: "BDEV" });
      await accounts.deleteAccessToken("h1");
      expect(await accounts.findAccessToken("h1")).toBeUndefined();
      expect(await accounts.findAccessToken("h2")).toEqual({ userId: BOB, deviceId: "BDEV" });
    });

    test("a token hash is unique", async () => {
      await stores.accounts.addAccessToken("h1", ALICE, "DEV", 1);
      await expect(stores.accounts.addAccessToken("h1", BOB, "DEV", 2)).rejects.toThrow();
      expect(await stores.accounts.findAccessToken("h1")).toEqual({ userId: ALICE, deviceId: "DEV" });
    });

    test("deleteDevice removes the device and its tokens only", async () => {
      const { accounts } = stores;
      await accounts.upsertDevice(ALICE, "D1", undefined, 1);
      await accounts.upsertDevice(ALICE, "D2", undefined, 1);
      await accounts.addAccessToken("t1a", ALICE, "D1", 1);
      await accounts.addAccessToken("t1b", ALICE, "D1", 1);
      await accounts.addAccessToken("t2", ALICE, "D2", 1);
      await accounts.addAccessToken("bob", BOB, "D1", 1);
      expect(await accounts.deleteDevice(ALICE, "D1")).toBe(true);
      expect(await accounts.getDevice(ALICE, "D1")).toBeUndefined();
      expect(await accounts.findAccessToken("t1a")).toBeUndefined();
      expect(await accounts.findAccessToken("t1b")).toBeUndefined();
      expect(await accounts.findAccessToken("t2")).toEqual({ userId: ALICE, deviceId: "D2" });
      expect(await accounts.findAccessToken("bob")).toEqual({ userId: BOB, deviceId: "D1" });
      expect((await accounts.listDevices(ALICE)).map((d) => d.deviceId)).toEqual(["D2"]);
      expect(await accounts.deleteDevice(ALICE, "D1")).toBe(false);
    });

    test("deleteAccessTokens keeps the excepted device's tokens, or deletes all of the user's", async () => {
      const { accounts } = stores;
      await accounts.addAccessToken("a1", ALICE, "D1", 1);
      await accounts.addAccessToken("a2", ALICE, "D2", 1);
      await accounts.addAccessToken("a3", ALICE, "D3", 1);
      await accounts.addAccessToken("b1", BOB, "D1", 1);
      await accounts.deleteAccessTokens(ALICE, "D2");
      expect(await accounts.findAccessToken("a1")).toBeUndefined();
      expect(await accounts.findAccessToken("a2")).toEqual({ userId: ALICE, deviceId: "D2" });
      expect(await accounts.findAccessToken("a3")).toBeUndefined();
      expect(await accounts.findAccessToken("b1")).toEqual({ userId: BOB, deviceId: "D1" });
      await accounts.deleteAccessTokens(ALICE);
      expect(await accounts.findAccessToken("a2")).toBeUndefined();
      expect(await accounts.findAccessToken("b1")).toEqual({ userId: BOB, deviceId: "D1" });
    });
  });

  describe("profiles", () => {
    test("fields hold any JSON value, are replaced and deleted per field", async () => {
      const { profiles } = stores;
      expect(await profiles.getProfile(ALICE)).toEqual({});
      await profiles.setProfileField(ALICE, "displayname", "Alice");
      await profiles.setProfileField(ALICE, "avatar_url", "mxc://example.org/a");
      await profiles.setProfileField(ALICE, "org.example.custom", { nested: [1, true, null, "x"], n: 1.5 });
      await profiles.setProfileField(ALICE, "m.tz", null);
      await profiles.setProfileField(BOB, "displayname", "Bob");
      expect(await profiles.getProfile(ALICE)).toEqual({
        displayname: "Alice",
        avatar_url: "mxc://example.org/a",
        "org.example.custom": { nested: [1, true, null, "x"], n: 1.5 },
        "m.tz": null,
      });
      await profiles.setProfileField(ALICE, "displayname", "Alice Two");
      expect((await profiles.getProfile(ALICE)).displayname).toBe("Alice Two");
      await profiles.deleteProfileField(ALICE, "avatar_url");
      await profiles.deleteProfileField(ALICE, "never-set");
      expect(Object.keys(await profiles.getProfile(ALICE)).sort()).toEqual(["displayname", "m.tz", "org.example.custom"]);
      expect(await profiles.getProfile(BOB)).toEqual({ displayname: "Bob" });
      expect(await count("profiles")).toBe(4);
    });
  });

  describe("filters", () => {
    test("ids count up from 0 per user and fetch their JSON", async () => {
      const { filters } = stores;
      expect(await filters.createFilter(ALICE, '{"a":0}')).toBe("0");
      expect(await filters.createFilter(ALICE, '{"a":1}')).toBe("1");
      expect(await filters.createFilter(BOB, '{"b":0}')).toBe("0");
      expect(await filters.createFilter(ALICE, '{"a":2}')).toBe("2");
      expect(await filters.getFilter(ALICE, "0")).toBe('{"a":0}');
      expect(await filters.getFilter(ALICE, "1")).toBe('{"a":1}');
      expect(await filters.getFilter(ALICE, "2")).toBe('{"a":2}');
      expect(await filters.getFilter(BOB, "0")).toBe('{"b":0}');
      expect(await filters.getFilter(BOB, "1")).toBeUndefined();
    });

    test("filters created at once all get distinct ids", async () => {
      const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => stores.filters.createFilter(ALICE, `{"i":${i}}`)));
      expect([...ids].sort((a, b) => Number(a) - Number(b))).toEqual(["0", "1", "2", "3", "4", "5", "6", "7"]);
      for (let i = 0; i < 8; i++) expect(await stores.filters.getFilter(ALICE, ids[i])).toBe(`{"i":${i}}`);
    });

    test("only canonical decimal ids are looked up", async () => {
      const { filters } = stores;
      await filters.createFilter(ALICE, "{}");
      await filters.createFilter(ALICE, '{"one":1}');
      for (const id of ["01", "1e0", "1.0", "-1", " 1", "", "{}", "abc", "99999999999999999"]) expect(await filters.getFilter(ALICE, id)).toBeUndefined();
      expect(await filters.getFilter(ALICE, "9999999999999999")).toBeUndefined();
      expect(await filters.getFilter(ALICE, "1")).toBe('{"one":1}');
    });
  });

  describe("account data", () => {
    test("global and per-room entries are kept apart", async () => {
      const { accountData } = stores;
      expect(await accountData.getAccountData(ALICE, undefined, "m.t")).toBeUndefined();
      await accountData.putAccountData(ALICE, undefined, "m.t", { where: "global" });
      await accountData.putAccountData(ALICE, ROOM, "m.t", { where: "room" });
      await accountData.putAccountData(BOB, undefined, "m.t", { where: "bob" });
      expect(await accountData.getAccountData(ALICE, undefined, "m.t")).toEqual({ where: "global" });
      expect(await accountData.getAccountData(ALICE, ROOM, "m.t")).toEqual({ where: "room" });
      expect(await accountData.getAccountData(ALICE, OTHER_ROOM, "m.t")).toBeUndefined();
      expect(await accountData.getAccountData(ALICE, undefined, "m.other")).toBeUndefined();
      expect(await accountData.getAccountData(BOB, undefined, "m.t")).toEqual({ where: "bob" });
    });

    test("every write takes the next stream position, server-wide", async () => {
      const { accountData } = stores;
      expect(await accountData.maxAccountDataStream()).toBe(0);
      expect(await accountData.putAccountData(ALICE, undefined, "a", {})).toBe(1);
      expect(await accountData.putAccountData(BOB, ROOM, "b", {})).toBe(2);
      expect(await accountData.putAccountData(ALICE, undefined, "a", { again: true })).toBe(3);
      expect(await accountData.maxAccountDataStream()).toBe(3);
      const positions = await Promise.all(Array.from({ length: 10 }, (_, i) => accountData.putAccountData(ALICE, ROOM, `t${i}`, { i })));
      expect([...positions].sort((a, b) => a - b)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
      expect(await accountData.maxAccountDataStream()).toBe(13);
    });

    test("a rewrite replaces the entry (global ones too) with a new position", async () => {
      const { accountData } = stores;
      await accountData.putAccountData(ALICE, undefined, "m.g", { v: 1 });
      await accountData.putAccountData(ALICE, ROOM, "m.r", { v: 1 });
      expect(await accountData.putAccountData(ALICE, undefined, "m.g", { v: 2 })).toBe(3);
      expect(await accountData.putAccountData(ALICE, ROOM, "m.r", { v: 2 })).toBe(4);
      expect(await accountData.getAccountData(ALICE, undefined, "m.g")).toEqual({ v: 2 });
      expect(await accountData.getAccountData(ALICE, ROOM, "m.r")).toEqual({ v: 2 });
      // One row per (user, room, type): the upsert matched the global row as well as the room one.
      expect(await count("account_data")).toBe(2);
      const all = await accountData.accountDataSince(ALICE, 0);
      expect(all.global).toEqual([{ type: "m.g", roomId: undefined, content: { v: 2 }, streamPosition: 3 }]);
      expect([...all.rooms]).toEqual([[ROOM, [{ type: "m.r", roomId: ROOM, content: { v: 2 }, streamPosition: 4 }]]]);
    });

    test("accountDataSince returns the latest entries after a position, by position", async () => {
      const { accountData } = stores;
      await accountData.putAccountData(ALICE, undefined, "g1", { n: 1 }); // 1
      await accountData.putAccountData(ALICE, ROOM, "r1", { n: 2 }); // 2
      await accountData.putAccountData(BOB, undefined, "g1", { n: 3 }); // 3
      await accountData.putAccountData(ALICE, OTHER_ROOM, "r2", { n: 4 }); // 4
      await accountData.putAccountData(ALICE, undefined, "g2", { n: 5 }); // 5
      await accountData.putAccountData(ALICE, ROOM, "r3", { n: 6 }); // 6

      const all = await accountData.accountDataSince(ALICE, 0);
      expect(all.global).toEqual([
        { type: "g1", roomId: undefined, content: { n: 1 }, streamPosition: 1 },
        { type: "g2", roomId: undefined, content: { n: 5 }, streamPosition: 5 },
      ]);
      expect([...all.rooms.keys()]).toEqual([ROOM, OTHER_ROOM]);
      expect(all.rooms.get(ROOM)).toEqual([
        { type: "r1", roomId: ROOM, content: { n: 2 }, streamPosition: 2 },
        { type: "r3", roomId: ROOM, content: { n: 6 }, streamPosition: 6 },
      ]);
      expect(all.rooms.get(OTHER_ROOM)).toEqual([{ type: "r2", roomId: OTHER_ROOM, content: { n: 4 }, streamPosition: 4 }]);

      const later = await accountData.accountDataSince(ALICE, 4);
      expect(later.global.map((e) => e.type)).toEqual(["g2"]);
      expect([...later.rooms]).toEqual([[ROOM, [{ type: "r3", roomId: ROOM, content: { n: 6 }, streamPosition: 6 }]]]);

      const none = await accountData.accountDataSince(ALICE, 6);
      expect(none.global).toEqual([]);
      expect(none.rooms.size).toBe(0);

      const bob = await accountData.accountDataSince(BOB, 0);
      expect(bob.global).toEqual([{ type: "g1", roomId: undefined, content: { n: 3 }, streamPosition: 3 }]);
      expect(bob.rooms.size).toBe(0);
    });

    test("a write in a transaction that fails is gone, position included", async () => {
      const { accountData, db } = stores;
      await accountData.putAccountData(ALICE, undefined, "kept", { v: 1 });
      await expect(
        db.transaction(async () => {
          expect(await accountData.putAccountData(ALICE, undefined, "lost", { v: 2 })).toBe(2);
          throw new Error("abort");
        }),
      ).rejects.toThrow("abort");
      expect(await accountData.getAccountData(ALICE, undefined, "lost")).toBeUndefined();
      expect(await accountData.maxAccountDataStream()).toBe(1);
      expect(await accountData.putAccountData(ALICE, undefined, "next", {})).toBe(2);
    });
  });

  describe("push rules", () => {
    test("one document per user, replaced whole", async () => {
      const { pushRules } = stores;
      expect(await pushRules.getUserPushRules(ALICE)).toBeUndefined();
      await pushRules.setUserPushRules(ALICE, '{"override":[]}');
      await pushRules.setUserPushRules(BOB, '{"bob":true}');
      expect(await pushRules.getUserPushRules(ALICE)).toBe('{"override":[]}');
      await pushRules.setUserPushRules(ALICE, '{"override":[{"rule_id":"x"}]}');
      expect(await pushRules.getUserPushRules(ALICE)).toBe('{"override":[{"rule_id":"x"}]}');
      expect(await pushRules.getUserPushRules(BOB)).toBe('{"bob":true}');
      expect(await count("push_rules")).toBe(2);
    });
  });

  describe("room client store", () => {
    test("client transactions: the first event of a transaction id stays", async () => {
      const { roomClient } = stores;
      expect(await roomClient.transactionEvent(ALICE, "DEV", "txn1")).toBeUndefined();
      expect(await roomClient.recordTransaction(ALICE, "DEV", "txn1", ROOM, "$e1", 10)).toBe(true);
      expect(await roomClient.recordTransaction(ALICE, "DEV", "txn1", ROOM, "$e2", 20)).toBe(false);
      expect(await roomClient.transactionEvent(ALICE, "DEV", "txn1")).toBe("$e1");
      // The same txnId from another device or user is another transaction.
      await roomClient.recordTransaction(ALICE, "DEV2", "txn1", ROOM, "$e3", 30);
      await roomClient.recordTransaction(BOB, "DEV", "txn1", OTHER_ROOM, "$e4", 40);
      expect(await roomClient.transactionEvent(ALICE, "DEV2", "txn1")).toBe("$e3");
      expect(await roomClient.transactionEvent(BOB, "DEV", "txn1")).toBe("$e4");
      expect(await roomClient.transactionEvent(ALICE, "DEV", "txn2")).toBeUndefined();
      expect(await count("client_transactions")).toBe(3);
    });

    test("client transactions: which one sent an event is read from the event's row", async () => {
      const { roomClient, roomEvents } = stores;
      await roomEvents.createRoom({ roomId: ROOM, roomVersion: "10", creator: ALICE, createdTs: 1 });
      const sent = (eventId: string, sender: string, transaction?: { deviceId: string; txnId: string }) =>
        roomEvents.persistEvent({
          event: { eventId, roomId: ROOM, type: "m.room.message", stateKey: undefined, sender, depth: 1, originServerTs: 1, prevEvents: [], authEvents: [], json: "{}", transaction },
          updateForwardExtremities: false,
          updateCurrentState: false,
        });
      expect(await roomClient.transactionOf("$e1")).toBeUndefined();
      await sent("$e1", ALICE, { deviceId: "DEV", txnId: "txn1" });
      await sent("$e2", BOB, { deviceId: "BOBDEV", txnId: "txn1" });
      await sent("$e3", ALICE);
      expect(await roomClient.transactionOf("$e1")).toEqual({ userId: ALICE, deviceId: "DEV", txnId: "txn1" });
      expect(await roomClient.transactionOf("$e2")).toEqual({ userId: BOB, deviceId: "BOBDEV", txnId: "txn1" });
      expect(await roomClient.transactionOf("$e3")).toBeUndefined();
      expect(await roomClient.transactionOf("$unknown")).toBeUndefined();
    });

    test("redactions: listed in the order stored, each pair once", async () => {
      const { roomClient } = stores;
      expect(await roomClient.redactionsOf("$target")).toEqual([]);
      await roomClient.recordRedaction("$target", "$z-first", ROOM);
      await roomClient.recordRedaction("$other", "$x", ROOM);
      await roomClient.recordRedaction("$target", "$a-second", ROOM);
      await roomClient.recordRedaction("$target", "$z-first", ROOM);
      await roomClient.recordRedaction("$target", "$m-third", ROOM);
      expect(await roomClient.redactionsOf("$target")).toEqual(["$z-first", "$a-second", "$m-third"]);
      expect(await roomClient.redactionsOf("$other")).toEqual(["$x"]);
      expect(await count("redactions")).toBe(4);
    });

    test("redactions are read once per event (none, most often) and follow each new one; a rolled-back one is never seen", async () => {
      const { roomClient, db } = stores;
      let reads = 0;
      const all = db.all.bind(db);
      db.all = (async (sql: string, ...params: never[]) => {
        if (sql.includes("FROM redactions")) reads++;
        return all(sql, ...params);
      }) as typeof db.all;
      const many = async () => Object.fromEntries(await roomClient.redactionsOfMany(["$a", "$b", "$c"]));
      expect(await many()).toEqual({});
      expect(await many()).toEqual({});
      expect(await roomClient.redactionsOf("$b")).toEqual([]);
      expect(reads).toBe(1);
      await roomClient.recordRedaction("$b", "$r1", ROOM);
      expect(await many()).toEqual({ $b: ["$r1"] });
      expect(await roomClient.redactionsOf("$b")).toEqual(["$r1"]);
      expect(reads).toBe(2);
      await expect(db.transaction(async () => {
        await roomClient.recordRedaction("$c", "$r2", ROOM);
        throw new Error("undone");
      })).rejects.toThrow("undone");
      expect(await many()).toEqual({ $b: ["$r1"] });
      await roomClient.recordRedaction("$b", "$r3", ROOM);
      expect(await many()).toEqual({ $b: ["$r1", "$r3"] });
      db.all = all;
    });

    test("forgotten rooms: set, set again, unset", async () => {
      const { roomClient, db } = stores;
      expect(await roomClient.isForgotten(ALICE, ROOM)).toBe(false);
      await roomClient.setForgotten(ALICE, ROOM, true, 100);
      expect(await roomClient.isForgotten(ALICE, ROOM)).toBe(true);
      expect(await roomClient.isForgotten(ALICE, OTHER_ROOM)).toBe(false);
      expect(await roomClient.isForgotten(BOB, ROOM)).toBe(false);
      // Forgetting again replaces the time.
      await roomClient.setForgotten(ALICE, ROOM, true, 200);
      expect(await db.all("SELECT user_id, room_id, forgotten_ts FROM forgotten_rooms")).toEqual([{ user_id: ALICE, room_id: ROOM, forgotten_ts: 200 }]);
      await roomClient.setForgotten(ALICE, ROOM, false, 300);
      expect(await roomClient.isForgotten(ALICE, ROOM)).toBe(false);
      await roomClient.setForgotten(ALICE, ROOM, false, 400);
      expect(await count("forgotten_rooms")).toBe(0);
    });

    test("receipts: one per (room, user, type, thread), each write at the next stream id", async () => {
      const { roomClient } = stores;
      expect(await roomClient.maxReceiptStreamId()).toBe(0);
      expect(await roomClient.receipt(ROOM, ALICE, "m.read", undefined)).toBeUndefined();
      expect(await roomClient.putReceipt({ roomId: ROOM, userId: ALICE, receiptType: "m.read", threadId: undefined, eventId: "$1", ts: 10 })).toBe(1);
      expect(await roomClient.putReceipt({ roomId: ROOM, userId: ALICE, receiptType: "m.read", threadId: "$thread", eventId: "$2", ts: 20 })).toBe(2);
      expect(await roomClient.putReceipt({ roomId: ROOM, userId: ALICE, receiptType: "m.read.private", threadId: undefined, eventId: "$3", ts: 30 })).toBe(3);
      expect(await roomClient.putReceipt({ roomId: OTHER_ROOM, userId: BOB, receiptType: "m.read", threadId: undefined, eventId: "$9", ts: 40 })).toBe(4);
      // An unthreaded receipt is replaced by the next one (the upsert matches thread "" on every engine).
      expect(await roomClient.putReceipt({ roomId: ROOM, userId: ALICE, receiptType: "m.read", threadId: undefined, eventId: "$4", ts: 50 })).toBe(5);
      expect(await roomClient.maxReceiptStreamId()).toBe(5);
      expect(await count("receipts")).toBe(4);

      expect(await roomClient.receipt(ROOM, ALICE, "m.read", undefined)).toEqual({ roomId: ROOM, userId: ALICE, receiptType: "m.read", threadId: undefined, eventId: "$4", ts: 50, streamId: 5 });
      expect(await roomClient.receipt(ROOM, ALICE, "m.read", "$thread")).toEqual({ roomId: ROOM, userId: ALICE, receiptType: "m.read", threadId: "$thread", eventId: "$2", ts: 20, streamId: 2 });
      expect(await roomClient.receipt(ROOM, ALICE, "m.read", "$other-thread")).toBeUndefined();
      expect(await roomClient.receipt(ROOM, BOB, "m.read", undefined)).toBeUndefined();

      expect((await roomClient.receiptsSince(ROOM, 0)).map((r) => [r.eventId, r.receiptType, r.threadId, r.streamId])).toEqual([
        ["$2", "m.read", "$thread", 2],
        ["$3", "m.read.private", undefined, 3],
        ["$4", "m.read", undefined, 5],
      ]);
      expect((await roomClient.receiptsSince(ROOM, 3)).map((r) => r.eventId)).toEqual(["$4"]);
      expect(await roomClient.receiptsSince(ROOM, 5)).toEqual([]);
      expect(await roomClient.receiptsSince(OTHER_ROOM, 0)).toEqual([{ roomId: OTHER_ROOM, userId: BOB, receiptType: "m.read", threadId: undefined, eventId: "$9", ts: 40, streamId: 4 }]);

      // A threaded receipt is replaced in its thread only.
      expect(await roomClient.putReceipt({ roomId: ROOM, userId: ALICE, receiptType: "m.read", threadId: "$thread", eventId: "$5", ts: 60 })).toBe(6);
      expect((await roomClient.receipt(ROOM, ALICE, "m.read", "$thread"))?.eventId).toBe("$5");
      expect((await roomClient.receipt(ROOM, ALICE, "m.read", undefined))?.eventId).toBe("$4");
      expect(await count("receipts")).toBe(4);
    });

    test("receipts written at once all get distinct stream ids", async () => {
      const ids = await Promise.all(
        Array.from({ length: 10 }, (_, i) => stores.roomClient.putReceipt({ roomId: ROOM, userId: `@u${i}:example.org`, receiptType: "m.read", threadId: undefined, eventId: `$${i}`, ts: i })),
      );
      expect([...ids].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(await stores.roomClient.maxReceiptStreamId()).toBe(10);
    });
  });

  describe("room directory", () => {
    test("aliases: create once, read, list per room, delete", async () => {
      const { roomDirectory } = stores;
      const record = { alias: "#b:example.org", roomId: ROOM, creator: ALICE, createdTs: 100 };
      expect(await roomDirectory.getAlias(record.alias)).toBeUndefined();
      expect(await roomDirectory.createAlias(record)).toBe(true);
      expect(await roomDirectory.createAlias({ alias: "#b:example.org", roomId: OTHER_ROOM, creator: BOB, createdTs: 200 })).toBe(false);
      expect(await roomDirectory.getAlias("#b:example.org")).toEqual(record);
      expect(await roomDirectory.createAlias({ alias: "#a:example.org", roomId: ROOM, creator: BOB, createdTs: 300 })).toBe(true);
      expect(await roomDirectory.createAlias({ alias: "#c:example.org", roomId: OTHER_ROOM, creator: BOB, createdTs: 400 })).toBe(true);
      expect(await roomDirectory.aliasesOfRoom(ROOM)).toEqual(["#a:example.org", "#b:example.org"]);
      expect(await roomDirectory.aliasesOfRoom(OTHER_ROOM)).toEqual(["#c:example.org"]);
      expect(await roomDirectory.aliasesOfRoom("!none:example.org")).toEqual([]);
      expect(await roomDirectory.deleteAlias("#b:example.org")).toBe(true);
      expect(await roomDirectory.deleteAlias("#b:example.org")).toBe(false);
      expect(await roomDirectory.getAlias("#b:example.org")).toBeUndefined();
      expect(await roomDirectory.aliasesOfRoom(ROOM)).toEqual(["#a:example.org"]);
    });

    test("publishing: on, on again, off; the list counts joined members", async () => {
      const { roomDirectory, db } = stores;
      expect(await roomDirectory.isPublished(ROOM)).toBe(false);
      expect(await roomDirectory.publishedRooms()).toEqual([]);
      await roomDirectory.setPublished(ROOM, true, 100);
      await roomDirectory.setPublished(ROOM, true, 200);
      await roomDirectory.setPublished(OTHER_ROOM, true, 300);
      expect(await roomDirectory.isPublished(ROOM)).toBe(true);
      expect(await db.get("SELECT published_ts FROM published_rooms WHERE room_id = ?", ROOM)).toEqual({ published_ts: 100 });

      const member = (roomId: string, userId: string, membership: string) =>
        db.run("INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES (?, 'm.room.member', ?, ?, ?)", roomId, userId, `$${roomId}${userId}`, membership);
      await member(ROOM, ALICE, "join");
      await member(ROOM, BOB, "join");
      await member(ROOM, "@carol:example.org", "leave");
      await member(ROOM, "@dan:example.org", "invite");
      await member("!unpublished:example.org", ALICE, "join");
      await db.run("INSERT INTO current_state (room_id, type, state_key, event_id, membership) VALUES (?, 'm.room.name', '', '$name', NULL)", ROOM);
      const byRoom = (rooms: { roomId: string; joinedMembers: number }[]) => [...rooms].sort((a, b) => (a.roomId < b.roomId ? -1 : 1));
      expect(byRoom(await roomDirectory.publishedRooms())).toEqual([
        { roomId: OTHER_ROOM, joinedMembers: 0 },
        { roomId: ROOM, joinedMembers: 2 },
      ]);

      await roomDirectory.setPublished(ROOM, false, 400);
      await roomDirectory.setPublished("!never:example.org", false, 500);
      expect(await roomDirectory.isPublished(ROOM)).toBe(false);
      expect(await roomDirectory.publishedRooms()).toEqual([{ roomId: OTHER_ROOM, joinedMembers: 0 }]);
    });
  });
});
