// The copies of other servers' users' device lists and the record of the last m.device_list_update
// sent about each local user (migration 97), on every engine of this run.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { MIGRATIONS, storesOver, type Stores } from "../../src/storage/open";

const REMOTE = "@carol:remote.example";
const OTHER = "@dave:remote.example";
const LOCAL = "@alice:example.org";

test("migration 97 holds the remote device list tables", () => {
  expect(MIGRATIONS.find((m) => m.version === 97)?.name).toBe("remote_device_lists");
});

describe.each(testDatabases.map((d) => [d.name, d] as const))("remote device lists on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = storesOver(await database.open());
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("a copy is replaced whole, updated device by device, its cross-signing keys kept unless given, and forgotten", async () => {
    const { deviceKeys } = stores;
    expect(await deviceKeys.remoteDeviceList(REMOTE)).toBeUndefined();
    expect(await deviceKeys.trackedRemoteUsers([REMOTE, OTHER])).toEqual(new Set());

    await deviceKeys.replaceRemoteDeviceList(REMOTE, {
      streamId: 3,
      masterJson: '{"m":1}',
      devices: [
        { deviceId: "B", keysJson: '{"b":1}' },
        { deviceId: "A", keysJson: '{"a":1}', displayName: "Phone" },
      ],
    });
    expect(await deviceKeys.remoteDeviceList(REMOTE)).toEqual({
      streamId: 3,
      masterJson: '{"m":1}',
      devices: [
        { deviceId: "A", keysJson: '{"a":1}', displayName: "Phone" },
        { deviceId: "B", keysJson: '{"b":1}' },
      ],
    });
    expect(await deviceKeys.trackedRemoteUsers([REMOTE, OTHER])).toEqual(new Set([REMOTE]));

    // One device renamed (its name dropped), one deleted, one added: the stream_id moves on.
    await deviceKeys.updateRemoteDevice(REMOTE, 4, "A", { deleted: false, keysJson: '{"a":2}' });
    await deviceKeys.updateRemoteDevice(REMOTE, 5, "B", { deleted: true });
    await deviceKeys.updateRemoteDevice(REMOTE, 6, "C", { deleted: false, keysJson: '{"c":1}', displayName: "Laptop" });
    await deviceKeys.updateRemoteCrossSigning(REMOTE, undefined, '{"s":1}');
    expect(await deviceKeys.remoteDeviceList(REMOTE)).toEqual({
      streamId: 6,
      masterJson: '{"m":1}',
      selfSigningJson: '{"s":1}',
      devices: [
        { deviceId: "A", keysJson: '{"a":2}' },
        { deviceId: "C", keysJson: '{"c":1}', displayName: "Laptop" },
      ],
    });

    // A resync replaces everything, devices the remote no longer lists included.
    await deviceKeys.replaceRemoteDeviceList(REMOTE, { streamId: 9, devices: [{ deviceId: "D", keysJson: "{}" }] });
    expect(await deviceKeys.remoteDeviceList(REMOTE)).toEqual({ streamId: 9, devices: [{ deviceId: "D", keysJson: "{}" }] });

    // Another user's copy is their own.
    await deviceKeys.replaceRemoteDeviceList(OTHER, { streamId: 1, devices: [{ deviceId: "D", keysJson: '{"d":1}' }] });
    await deviceKeys.forgetRemoteDeviceList(REMOTE);
    expect(await deviceKeys.remoteDeviceList(REMOTE)).toBeUndefined();
    expect((await deviceKeys.remoteDeviceList(OTHER))?.devices).toEqual([{ deviceId: "D", keysJson: '{"d":1}' }]);
    expect(await deviceKeys.trackedRemoteUsers([REMOTE, OTHER])).toEqual(new Set([OTHER]));
    // Updates and cross-signing keys for a user without a copy write nothing a later read would see as a copy.
    await deviceKeys.updateRemoteCrossSigning(REMOTE, '{"m":2}', undefined);
    expect(await deviceKeys.remoteDeviceList(REMOTE)).toBeUndefined();
  });

  test("the last m.device_list_update sent about a user: each taken returns the one before", async () => {
    const { deviceKeys } = stores;
    expect(await deviceKeys.lastSentStreamId(LOCAL)).toBeUndefined();
    expect(await deviceKeys.takeSentStreamId(LOCAL, 7)).toBeUndefined();
    expect(await deviceKeys.takeSentStreamId(LOCAL, 9)).toBe(7);
    expect(await deviceKeys.takeSentStreamId("@bob:example.org", 10)).toBeUndefined();
    expect(await deviceKeys.lastSentStreamId(LOCAL)).toBe(9);
  });
});
