// The copy of other servers' users' device lists (server-server-api "Device Management"), over a
// real store with a stand-in federation client and room memberships: which m.device_list_update is
// applied and which makes Portier fetch the whole list, what /keys/query reads, and when the copy
// is dropped.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testStores } from "../../helpers/databases";
import type { Stores } from "../../../src/storage/open";
import type { JsonObject } from "../../../src/protocol/json";
import { RemoteMatrixError, type FederationClient } from "../../../src/services/federation/contracts";
import { RemoteDeviceLists } from "../../../src/services/e2ee/remote-device-lists";
import { E2eeFederation } from "../../../src/services/e2ee/federation-edus";
import type { DeviceListUpdate } from "../../../src/services/e2ee/device-lists";

const OURS = "example.org";
const ALICE = "@alice:example.org";
const CAROL = "@carol:remote.example";
const ROOM = "!room:remote.example";
const quiet = { log: () => {} };

let stores: Stores;
/** Room -> user -> membership. */
let rooms: Map<string, Map<string, string>>;
/** The /user/devices answers the remote gives, one per request (an Error is thrown). */
let answers: (JsonObject | Error)[];
let requests: string[];
let changes: string[];
let lists: RemoteDeviceLists;

const federation: FederationClient = {
  async request(method, destination, path) {
    requests.push(`${method} ${destination} ${path}`);
    const next = answers.shift();
    if (next === undefined) throw new Error("no answer prepared");
    if (next instanceof Error) throw next;
    return next;
  },
};

function join(userId: string, membership = "join"): void {
  let members = rooms.get(ROOM);
  if (!members) rooms.set(ROOM, (members = new Map()));
  members.set(userId, membership);
}

function devicesAnswer(streamId: number, devices: { id: string; name?: string; keys?: JsonObject }[], extra: JsonObject = {}): JsonObject {
  return {
    user_id: CAROL,
    stream_id: streamId,
    devices: devices.map((d) => ({ device_id: d.id, keys: d.keys ?? { user_id: CAROL, device_id: d.id, keys: { [`ed25519:${d.id}`]: d.id } }, ...(d.name ? { device_display_name: d.name } : {}) })),
    ...extra,
  };
}

beforeEach(async () => {
  stores = await testStores();
  rooms = new Map();
  answers = [];
  requests = [];
  changes = [];
  let position = 0;
  lists = new RemoteDeviceLists({
    serverName: OURS,
    store: stores.deviceKeys,
    rooms: {
      roomsWithMembership: async (userId, membership) => [...rooms].filter(([, m]) => m.get(userId) === membership).map(([id]) => id),
      currentMemberships: async (roomId) => new Map(rooms.get(roomId) ?? []),
    },
    deviceLists: {
      record: async (update) => ({ ...update, position: ++position }) as DeviceListUpdate,
      announce: (updates) => changes.push(...updates.map((u) => u.userId)),
      change: async (update) => void changes.push(update.userId),
    },
    federation,
    logger: quiet,
  });
  join(ALICE);
  join(CAROL);
});

afterEach(async () => {
  await stores.db.close();
});

const update = (content: JsonObject) => lists.deviceListUpdate(CAROL, { user_id: CAROL, ...content });

describe("inbound m.device_list_update", () => {
  test("without a copy the whole list is fetched; an update naming the copy's stream_id is applied; a gap or a new sequence fetches again", async () => {
    answers.push(devicesAnswer(1, [{ id: "D1", name: "Phone" }], { master_key: { user_id: CAROL, usage: ["master"], keys: { "ed25519:M": "M" } } }));
    update({ device_id: "D1", stream_id: 1 });
    await lists.settled();
    expect(requests).toEqual([`GET remote.example /_matrix/federation/v1/user/devices/${encodeURIComponent(CAROL)}`]);
    expect(changes).toEqual([CAROL]);
    const first = await lists.heldKeys(CAROL);
    expect(Object.keys(first!.devices)).toEqual(["D1"]);
    expect(first!.devices.D1!.unsigned).toEqual({ device_display_name: "Phone" });
    expect(first!.master?.keys).toEqual({ "ed25519:M": "M" });

    // prev_id [1]: applied, no request. A new device with its name.
    update({ device_id: "D2", stream_id: 2, prev_id: [1], device_display_name: "Laptop", keys: { user_id: CAROL, device_id: "D2", keys: { "ed25519:D2": "x" } } });
    await lists.settled();
    expect(requests.length).toBe(1);
    expect(changes).toEqual([CAROL, CAROL]);
    expect(Object.keys((await lists.heldKeys(CAROL))!.devices).sort()).toEqual(["D1", "D2"]);
    expect((await stores.deviceKeys.remoteDeviceList(CAROL))!.streamId).toBe(2);

    // Seen already (stream_id not past the copy's): nothing happens.
    update({ device_id: "D2", stream_id: 2, prev_id: [1], deleted: true });
    await lists.settled();
    expect(changes.length).toBe(2);

    // A deletion in sequence, then one after a gap (prev_id 4 never came): the whole list again.
    update({ device_id: "D1", stream_id: 3, prev_id: [2], deleted: true });
    answers.push(devicesAnswer(5, [{ id: "D2" }, { id: "D3" }]));
    update({ device_id: "D3", stream_id: 5, prev_id: [4] });
    await lists.settled();
    expect(requests.length).toBe(2);
    expect(Object.keys((await lists.heldKeys(CAROL))!.devices).sort()).toEqual(["D2", "D3"]);
    expect((await stores.deviceKeys.remoteDeviceList(CAROL))!.streamId).toBe(5);

    // No prev_id with a copy held: a new sequence, fetched again (as Synapse does).
    answers.push(devicesAnswer(7, [{ id: "D3" }]));
    update({ device_id: "D3", stream_id: 7 });
    await lists.settled();
    expect(requests.length).toBe(3);
    expect(Object.keys((await lists.heldKeys(CAROL, ["D3", "D2"]))!.devices)).toEqual(["D3"]);
  });

  test("about a user sharing no room with ours: dropped, with the copy", async () => {
    answers.push(devicesAnswer(1, [{ id: "D1" }]));
    update({ device_id: "D1", stream_id: 1 });
    await lists.settled();
    join(CAROL, "leave");
    update({ device_id: "D1", stream_id: 2, prev_id: [1] });
    await lists.settled();
    expect(requests.length).toBe(1);
    expect(await lists.heldKeys(CAROL)).toBeUndefined();
  });

  test("malformed updates and keys that name another user or device are dropped; a resync keeps only the devices that are the user's", async () => {
    update({ device_id: "D1" }); // no stream_id
    update({ device_id: "D1", stream_id: 1, prev_id: "1" });
    update({ device_id: "D1", stream_id: 1, keys: { user_id: "@mallory:remote.example", device_id: "D1" } });
    await lists.settled();
    expect(requests).toEqual([]);

    answers.push(devicesAnswer(1, [{ id: "D1" }, { id: "D2", keys: { user_id: "@mallory:remote.example", device_id: "D2" } }, { id: "D3", keys: { user_id: CAROL, device_id: "OTHER" } }]));
    update({ device_id: "D1", stream_id: 1 });
    await lists.settled();
    expect(Object.keys((await lists.heldKeys(CAROL))!.devices)).toEqual(["D1"]);

    // An answer about someone else is no list of this user's: the copy is dropped, our users told.
    answers.push({ ...devicesAnswer(3, []), user_id: "@mallory:remote.example" });
    update({ device_id: "D1", stream_id: 3, prev_id: [2] });
    await lists.settled();
    expect(await lists.heldKeys(CAROL)).toBeUndefined();
    expect(changes).toEqual([CAROL, CAROL]);
  });

  test("m.signing_key_update replaces the copy's cross-signing keys (one not given is kept) and tells our users", async () => {
    answers.push(devicesAnswer(1, [{ id: "D1" }], { master_key: { user_id: CAROL, usage: ["master"], keys: { "ed25519:M": "M" } } }));
    update({ device_id: "D1", stream_id: 1 });
    await lists.settled();
    lists.signingKeyUpdate(CAROL, { user_id: CAROL, self_signing_key: { user_id: CAROL, usage: ["self_signing"], keys: { "ed25519:S": "S" } } });
    await lists.settled();
    const held = await lists.heldKeys(CAROL);
    expect(held!.master?.keys).toEqual({ "ed25519:M": "M" });
    expect(held!.selfSigning?.keys).toEqual({ "ed25519:S": "S" });
    expect(changes).toEqual([CAROL, CAROL]);
  });
});

describe("what /keys/query reads", () => {
  test("a user sharing a room is fetched once and kept; a server that is down then changes nothing; one sharing no room is not kept", async () => {
    answers.push(devicesAnswer(4, [{ id: "D1" }]));
    expect(Object.keys((await lists.fetchKeys(CAROL, [], 1000))!.devices)).toEqual(["D1"]);
    expect(changes).toEqual([CAROL]);
    answers.push(new Error("down"));
    expect(Object.keys((await lists.heldKeys(CAROL))!.devices)).toEqual(["D1"]);
    expect(requests.length).toBe(1);

    join(CAROL, "leave");
    expect(await lists.fetchKeys("@erin:remote.example", [], 1000)).toBeUndefined();
  });

  test("a failed fetch throws to the caller, keeps nothing and tells nobody (a client told would only ask again)", async () => {
    answers.push(new RemoteMatrixError("remote.example", "M_UNRECOGNIZED", "no", 404));
    await expect(lists.fetchKeys(CAROL, [], 1000)).rejects.toThrow();
    expect(await lists.heldKeys(CAROL)).toBeUndefined();
    expect(changes).toEqual([]);
  });
});

describe("memberships", () => {
  test("the copy is dropped when the last room shared with our users ends, by their leave or ours", async () => {
    answers.push(devicesAnswer(1, [{ id: "D1" }]));
    await lists.fetchKeys(CAROL, [], 1000);
    // Another local user still shares the room: kept.
    join("@bob:example.org");
    join(ALICE, "leave");
    await lists.membershipEnded(ROOM, ALICE);
    expect(await lists.heldKeys(CAROL)).toBeDefined();
    join("@bob:example.org", "leave");
    await lists.membershipEnded(ROOM, "@bob:example.org");
    expect(await lists.heldKeys(CAROL)).toBeUndefined();

    join(ALICE);
    answers.push(devicesAnswer(2, [{ id: "D1" }]));
    await lists.fetchKeys(CAROL, [], 1000);
    join(CAROL, "leave");
    await lists.membershipEnded(ROOM, CAROL);
    expect(await lists.heldKeys(CAROL)).toBeUndefined();
  });
});

describe("outbound m.device_list_update", () => {
  test("each names the stream_id of the one sent before it about the same user; the first none", async () => {
    const sent: JsonObject[] = [];
    const edus = new E2eeFederation({
      serverName: OURS,
      deviceLists: {} as never,
      keys: { deviceKeys: async () => ({}) } as never,
      toDevice: {} as never,
      rooms: { roomsWithMembership: async () => [ROOM] },
      sent: stores.deviceKeys,
      joinedServers: async () => [OURS, "remote.example"],
      queueEdu: async (_d, _t, content) => void sent.push(content),
      logger: quiet,
    });
    const device = (userId: string, position: number, deleted = false): DeviceListUpdate => ({ kind: "device", userId, deviceId: "D", deleted, position });
    // Announced together: sent one after the other, in order.
    await Promise.all([edus.outbound(device(ALICE, 3)), edus.outbound(device("@bob:example.org", 4)), edus.outbound(device(ALICE, 5, true))]);
    await edus.outbound(device(ALICE, 8));
    expect(sent.map((c) => [c.user_id, c.stream_id, c.prev_id])).toEqual([
      [ALICE, 3, []],
      ["@bob:example.org", 4, []],
      [ALICE, 5, [3]],
      [ALICE, 8, [5]],
    ]);
    expect(sent[2]!.deleted).toBe(true);
  });
});
