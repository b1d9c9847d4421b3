// The end-to-end encryption stores on every engine of this run: device keys and the device list
// stream, the e2ee stream counter, one-time and fallback keys, cross-signing keys and signatures,
// to-device queues and transaction IDs, key backup versions and keys.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { MIGRATIONS, storesOver, type Stores } from "../../src/storage/open";
import { formatSyncToken, parseSyncToken } from "../../src/services/sync/sync-token";

const ALICE = "@alice:example.org";
const BOB = "@bob:example.org";

test("migrations 53 to 57 hold the e2ee tables", () => {
  expect([53, 54, 55, 56, 57].map((v) => MIGRATIONS.find((m) => m.version === v)?.name)).toEqual(["device_keys", "one_time_keys", "cross_signing", "to_device", "key_backup"]);
});

test("sync tokens carry the e2ee position as an optional part before the boot", () => {
  const base = { events: 5, accountData: 1, receipts: 2, typing: 3, boot: "abc" };
  expect(formatSyncToken({ ...base, e2ee: 0 })).toBe("s5_1_2_3_abc");
  expect(formatSyncToken({ ...base, e2ee: 7 })).toBe("s5_1_2_3_e7_abc");
  expect(formatSyncToken({ ...base, outOfBand: 4, e2ee: 7 })).toBe("s5_1_2_3_4_e7_abc");
  expect(parseSyncToken("s5_1_2_3_4_e7_abc")).toEqual({ ...base, outOfBand: 4, e2ee: 7 });
  expect(parseSyncToken("s5_1_2_3_e7_abc")).toEqual({ ...base, e2ee: 7 });
  // Tokens from before the e2ee part (even one whose boot starts with "e") read as position 0.
  expect(parseSyncToken("s5_1_2_3_abc").e2ee).toBeUndefined();
  expect(parseSyncToken("s5_1_2_3_e7")).toEqual({ ...base, boot: "e7" });
  expect(() => parseSyncToken("s5_1_2_3_e_abc")).toThrow();
});

describe.each(testDatabases.map((d) => [d.name, d] as const))("e2ee stores on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("device keys; the e2ee stream counter; device list changes by position and observer", async () => {
    const { deviceKeys } = stores;
    await deviceKeys.putDeviceKeys(ALICE, "D1", '{"a":1}');
    await deviceKeys.putDeviceKeys(ALICE, "D2", '{"a":2}');
    await deviceKeys.putDeviceKeys(ALICE, "D1", '{"a":3}');
    expect([...(await deviceKeys.deviceKeys(ALICE))].sort()).toEqual([["D1", '{"a":3}'], ["D2", '{"a":2}']]);
    expect([...(await deviceKeys.deviceKeys(ALICE, ["D2", "NOPE"]))]).toEqual([["D2", '{"a":2}']]);
    expect(await deviceKeys.deleteDeviceKeys(ALICE, "D2")).toBe(true);
    expect(await deviceKeys.deleteDeviceKeys(ALICE, "D2")).toBe(false);

    expect(await deviceKeys.currentPosition()).toBe(0);
    expect(await deviceKeys.takePositions(3)).toBe(3);
    const p1 = await deviceKeys.recordDeviceListChange([ALICE]);
    const p2 = await deviceKeys.recordDeviceListChange([BOB], ALICE);
    const p3 = await deviceKeys.recordDeviceListChange([ALICE, BOB]);
    expect([p1, p2, p3]).toEqual([4, 5, 6]);
    expect(await deviceKeys.currentPosition()).toBe(6);
    const forBob = await deviceKeys.deviceListChanges(0, 6, BOB);
    expect(forBob.map((c) => [c.userId, c.observer, c.position]).sort()).toEqual([[ALICE, undefined, 6], [BOB, undefined, 6]]);
    const forAlice = await deviceKeys.deviceListChanges(4, 5, ALICE);
    expect(forAlice).toEqual([{ userId: BOB, observer: ALICE, position: 5 }]);
    expect(await deviceKeys.lastDeviceListChange(BOB)).toBe(6);
    expect(await deviceKeys.lastDeviceListChange("@nobody:example.org")).toBe(0);
    // A rolled-back transaction gives its positions back: the counter moves with what is committed.
    await expect(deviceKeys.atomically(async () => {
      await deviceKeys.recordDeviceListChange([ALICE]);
      throw new Error("abort");
    })).rejects.toThrow("abort");
    expect(await deviceKeys.currentPosition()).toBe(6);
  });

  test("member changes between two event positions, from the events table", async () => {
    const event = (n: number, roomId: string, type: string, stateKey: string | null) =>
      stores.db.run(
        "INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_server_ts, rejected_reason, outlier, soft_failed, state_snapshot, json, stream_ordering) VALUES (?, ?, ?, ?, '@x:example.org', 1, 1, NULL, 0, 0, NULL, '{}', ?)",
        `$e${n}`, roomId, type, stateKey, n,
      );
    await event(1, "!a:x", "m.room.member", ALICE);
    await event(2, "!a:x", "m.room.message", null);
    await event(3, "!a:x", "m.room.member", BOB);
    await event(4, "!b:x", "m.room.member", BOB);
    await event(5, "!c:x", "m.room.member", ALICE);
    const changes = await stores.deviceKeys.memberChangesBetween(["!a:x", "!b:x"], 1, 4);
    expect([...changes].map(([room, users]) => [room, [...users]]).sort()).toEqual([["!a:x", [BOB]], ["!b:x", [BOB]]]);
    expect((await stores.deviceKeys.memberChangesBetween(["!a:x"], 4, 4)).size).toBe(0);
    // On SQLite, the query reads the member events' own index, not the rows of every event between.
    if (stores.db.dialect === "sqlite") {
      let sql = "";
      const all = stores.db.all.bind(stores.db);
      stores.db.all = (async (text: string, ...params: never[]) => {
        sql = text;
        return all(text, ...params);
      }) as typeof stores.db.all;
      await stores.deviceKeys.memberChangesBetween(["!a:x", "!b:x"], 1, 4);
      stores.db.all = all;
      const plan = await stores.db.all<{ detail: string }>(`EXPLAIN QUERY PLAN ${sql}`, "!a:x", "!b:x", 1, 4);
      expect(plan.map((p) => p.detail).join("\n")).toContain("COVERING INDEX events_member_changes");
    }
  });

  test("one-time keys: claimed oldest first, each once; fallback keys stay and are marked used", async () => {
    const { oneTimeKeys } = stores;
    await oneTimeKeys.addOneTimeKeys(ALICE, "D", [{ algorithm: "signed_curve25519", keyId: "A", keyJson: '"a"' }, { algorithm: "curve25519", keyId: "B", keyJson: '"b"' }]);
    await oneTimeKeys.addOneTimeKeys(ALICE, "D", [{ algorithm: "signed_curve25519", keyId: "C", keyJson: '"c"' }, { algorithm: "signed_curve25519", keyId: "A", keyJson: '"other"' }]);
    expect(await oneTimeKeys.countOneTimeKeys(ALICE, "D")).toEqual({ signed_curve25519: 2, curve25519: 1 });
    expect([...(await oneTimeKeys.oneTimeKeys(ALICE, "D", [{ algorithm: "signed_curve25519", keyId: "A" }, { algorithm: "x", keyId: "y" }]))]).toEqual([["signed_curve25519:A", '"a"']]);
    expect((await oneTimeKeys.claimOneTimeKey(ALICE, "D", "signed_curve25519"))?.keyId).toBe("A");
    expect((await oneTimeKeys.claimOneTimeKey(ALICE, "D", "signed_curve25519"))?.keyId).toBe("C");
    expect(await oneTimeKeys.claimOneTimeKey(ALICE, "D", "signed_curve25519")).toBeUndefined();
    const claims = await Promise.all([0, 1, 2].map(() => oneTimeKeys.claimOneTimeKey(ALICE, "D", "curve25519")));
    expect(claims.filter(Boolean).length).toBe(1);

    const fallback = { algorithm: "signed_curve25519", keyId: "F", keyJson: '{"k":1}' };
    await oneTimeKeys.setFallbackKey(ALICE, "D", fallback);
    expect(await oneTimeKeys.unusedFallbackKeyTypes(ALICE, "D")).toEqual(["signed_curve25519"]);
    expect(await oneTimeKeys.claimFallbackKey(ALICE, "D", "signed_curve25519")).toEqual(fallback);
    expect(await oneTimeKeys.claimFallbackKey(ALICE, "D", "signed_curve25519")).toEqual(fallback);
    expect(await oneTimeKeys.unusedFallbackKeyTypes(ALICE, "D")).toEqual([]);
    // The same key uploaded again stays used; a new one is unused.
    await oneTimeKeys.setFallbackKey(ALICE, "D", fallback);
    expect(await oneTimeKeys.unusedFallbackKeyTypes(ALICE, "D")).toEqual([]);
    await oneTimeKeys.setFallbackKey(ALICE, "D", { ...fallback, keyId: "G" });
    expect(await oneTimeKeys.unusedFallbackKeyTypes(ALICE, "D")).toEqual(["signed_curve25519"]);
    await oneTimeKeys.deleteDeviceKeys(ALICE, "D");
    expect(await oneTimeKeys.countOneTimeKeys(ALICE, "D")).toEqual({});
    expect(await oneTimeKeys.claimFallbackKey(ALICE, "D", "signed_curve25519")).toBeUndefined();
  });

  test("a device's key counts and unused fallback types are read once per change (each /sync asks them)", async () => {
    const { oneTimeKeys } = stores;
    let reads = 0;
    const all = stores.db.all.bind(stores.db);
    stores.db.all = (async (sql: string, ...params: never[]) => {
      if (sql.includes("count(*)") || sql.includes("used = 0")) reads++;
      return all(sql, ...params);
    }) as typeof stores.db.all;
    const key = (keyId: string) => ({ algorithm: "signed_curve25519", keyId, keyJson: `"${keyId}"` });
    await oneTimeKeys.addOneTimeKeys(ALICE, "D", [key("A"), key("B")]);
    for (let i = 0; i < 3; i++) {
      expect(await oneTimeKeys.countOneTimeKeys(ALICE, "D")).toEqual({ signed_curve25519: 2 });
      expect(await oneTimeKeys.unusedFallbackKeyTypes(ALICE, "D")).toEqual([]);
    }
    expect(reads).toBe(2);
    // Each kind of write is seen at once.
    await oneTimeKeys.claimOneTimeKey(ALICE, "D", "signed_curve25519");
    expect(await oneTimeKeys.countOneTimeKeys(ALICE, "D")).toEqual({ signed_curve25519: 1 });
    await oneTimeKeys.setFallbackKey(ALICE, "D", key("F"));
    expect(await oneTimeKeys.unusedFallbackKeyTypes(ALICE, "D")).toEqual(["signed_curve25519"]);
    await oneTimeKeys.claimFallbackKey(ALICE, "D", "signed_curve25519");
    expect(await oneTimeKeys.unusedFallbackKeyTypes(ALICE, "D")).toEqual([]);
    await stores.db.transaction(() => oneTimeKeys.addOneTimeKeys(ALICE, "D", [key("C")]));
    expect(await oneTimeKeys.countOneTimeKeys(ALICE, "D")).toEqual({ signed_curve25519: 2 });
    // Another device's counts are its own.
    expect(await oneTimeKeys.countOneTimeKeys(ALICE, "E")).toEqual({});
    // A read made while an upload is open (not committed) is not kept past its commit.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let written!: () => void;
    const inside = new Promise<void>((resolve) => (written = resolve));
    const uploading = stores.db.transaction(async () => {
      await oneTimeKeys.addOneTimeKeys(ALICE, "D", [key("G")]);
      written();
      await gate;
    });
    await inside;
    const meanwhile = oneTimeKeys.countOneTimeKeys(ALICE, "D");
    await Bun.sleep(50);
    release();
    await uploading;
    await meanwhile;
    expect(await oneTimeKeys.countOneTimeKeys(ALICE, "D")).toEqual({ signed_curve25519: 3 });
    await oneTimeKeys.deleteDeviceKeys(ALICE, "D");
    expect(await oneTimeKeys.countOneTimeKeys(ALICE, "D")).toEqual({});
    stores.db.all = all;
  });

  test("cross-signing keys and signatures", async () => {
    const { crossSigning } = stores;
    await crossSigning.putKey(ALICE, { type: "master", publicKey: "M1", keyJson: "{}" });
    await crossSigning.putKey(ALICE, { type: "master", publicKey: "M2", keyJson: '{"v":2}' });
    await crossSigning.putKey(ALICE, { type: "self_signing", publicKey: "S", keyJson: "{}" });
    expect((await crossSigning.keys(ALICE)).get("master")).toEqual({ type: "master", publicKey: "M2", keyJson: '{"v":2}' });
    expect((await crossSigning.keys(ALICE)).size).toBe(2);
    const signature = { targetUserId: ALICE, targetKeyId: "D1", signerUserId: ALICE, signerKeyId: "ed25519:S", signature: "sig1" };
    await crossSigning.putSignatures([signature, { ...signature, targetKeyId: "M2", signerUserId: BOB, signerKeyId: "ed25519:U" }]);
    await crossSigning.putSignatures([{ ...signature, signature: "sig2" }]);
    expect(await crossSigning.signaturesOn(ALICE, ["D1"])).toEqual([{ ...signature, signature: "sig2" }]);
    expect((await crossSigning.signaturesOn(ALICE)).length).toBe(2);
    await crossSigning.deleteSignaturesOn(ALICE, "D1");
    expect(await crossSigning.signaturesOn(ALICE, ["D1"])).toEqual([]);
  });

  test("cross-signing: a user's own signatures made with one key are deleted, others' with a key of that name stay", async () => {
    const { crossSigning } = stores;
    const byDevice = { targetUserId: ALICE, targetKeyId: "M", signerUserId: ALICE, signerKeyId: "ed25519:D1", signature: "s1" };
    await crossSigning.putSignatures([
      byDevice,
      { ...byDevice, signerKeyId: "ed25519:D2", signature: "s2" },
      { ...byDevice, targetUserId: BOB, signerUserId: BOB, signature: "bob's" },
    ]);
    await crossSigning.deleteOwnSignaturesBy(ALICE, "ed25519:D1");
    expect((await crossSigning.signaturesOn(ALICE)).map((s) => s.signature)).toEqual(["s2"]);
    expect((await crossSigning.signaturesOn(BOB)).map((s) => s.signature)).toEqual(["bob's"]);
  });

  test("to-device: messages in position order per device, acknowledged up to a position; transaction IDs once", async () => {
    const { toDevice } = stores;
    await toDevice.addMessages(10, [
      { userId: ALICE, deviceId: "D", messageJson: "m10" },
      { userId: ALICE, deviceId: "E", messageJson: "m11" },
      { userId: ALICE, deviceId: "D", messageJson: "m12" },
    ]);
    expect(await toDevice.messagesFor(ALICE, "D", 0, 100, 10)).toEqual([{ position: 10, messageJson: "m10" }, { position: 12, messageJson: "m12" }]);
    expect(await toDevice.messagesFor(ALICE, "D", 0, 11, 10)).toEqual([{ position: 10, messageJson: "m10" }]);
    expect(await toDevice.messagesFor(ALICE, "D", 0, 100, 1)).toHaveLength(1);
    expect(await toDevice.deleteUpTo(ALICE, "D", 11)).toBe(1);
    expect(await toDevice.messagesFor(ALICE, "D", 0, 100, 10)).toEqual([{ position: 12, messageJson: "m12" }]);
    expect(await toDevice.recordTransaction(BOB, "P", "t1", 1)).toBe(true);
    expect(await toDevice.recordTransaction(BOB, "P", "t1", 2)).toBe(false);
    expect(await toDevice.recordTransaction(BOB, "Q", "t1", 2)).toBe(true);
    await toDevice.deleteDevice(ALICE, "D");
    expect(await toDevice.messagesFor(ALICE, "D", 0, 100, 10)).toEqual([]);
    expect(await toDevice.messagesFor(ALICE, "E", 0, 100, 10)).toHaveLength(1);
  });

  test("to-device: other servers' message IDs recorded once per sender, forgotten after a while", async () => {
    const { toDevice } = stores;
    expect(await toDevice.recordRemoteMessageId("@carl:remote.example", "m1", 100)).toBe(true);
    expect(await toDevice.recordRemoteMessageId("@carl:remote.example", "m1", 200)).toBe(false);
    expect(await toDevice.recordRemoteMessageId("@dora:remote.example", "m1", 200)).toBe(true);
    // In a transaction that rolls back, the ID is not kept.
    await expect(stores.deviceKeys.atomically(async () => {
      expect(await toDevice.recordRemoteMessageId("@carl:remote.example", "m2", 300)).toBe(true);
      throw new Error("the messages could not be stored");
    })).rejects.toThrow("could not be stored");
    expect(await toDevice.pruneRemoteMessageIds(150)).toBe(1);
    expect(await toDevice.recordRemoteMessageId("@carl:remote.example", "m1", 400)).toBe(true);
    expect(await toDevice.recordRemoteMessageId("@carl:remote.example", "m2", 400)).toBe(true);
    expect(await toDevice.recordRemoteMessageId("@dora:remote.example", "m1", 400)).toBe(false);
  });

  test("key backups: versions numbered past deleted ones, keys per version, etags", async () => {
    const { keyBackup } = stores;
    expect(await keyBackup.version(ALICE)).toBeUndefined();
    expect(await keyBackup.createVersion(ALICE, "alg", '{"a":1}')).toBe(1);
    expect(await keyBackup.createVersion(ALICE, "alg", '{"a":2}')).toBe(2);
    expect(await keyBackup.createVersion(BOB, "alg", "{}")).toBe(1);
    expect((await keyBackup.version(ALICE))?.version).toBe(2);
    const k = { roomId: "!r:x", sessionId: "s", firstMessageIndex: 1, forwardedCount: 0, isVerified: true, sessionDataJson: "{}" };
    await keyBackup.putKey(ALICE, 2, k);
    await keyBackup.putKey(ALICE, 2, { ...k, sessionId: "t", isVerified: false });
    await keyBackup.putKey(ALICE, 2, { ...k, roomId: "!q:x" });
    expect(await keyBackup.countKeys(ALICE, 2)).toBe(3);
    expect((await keyBackup.keys(ALICE, 2, "!r:x")).map((x) => [x.sessionId, x.isVerified])).toEqual([["s", true], ["t", false]]);
    expect(await keyBackup.keys(ALICE, 2, "!r:x", "s")).toEqual([k]);
    expect(await keyBackup.bumpEtag(ALICE, 2)).toBe(1);
    expect(await keyBackup.deleteKeys(ALICE, 2, "!r:x", "s")).toBe(1);
    expect(await keyBackup.deleteKeys(ALICE, 2, "!r:x")).toBe(1);
    expect(await keyBackup.updateVersion(ALICE, 2, '{"b":1}')).toBe(true);
    expect((await keyBackup.version(ALICE, 2))?.authDataJson).toBe('{"b":1}');
    expect(await keyBackup.deleteVersion(ALICE, 2)).toBe(true);
    expect(await keyBackup.deleteVersion(ALICE, 2)).toBe(false);
    expect(await keyBackup.countKeys(ALICE, 2)).toBe(0);
    expect(await keyBackup.updateVersion(ALICE, 2, "{}")).toBe(false);
    expect((await keyBackup.version(ALICE))?.version).toBe(1);
    expect(await keyBackup.createVersion(ALICE, "alg", "{}")).toBe(3);
  });
});
