// Device list tracking between two Portier servers over TLS on loopback (server-server-api "Device
// Management"): A keeps a copy of B's user's device list once its user asks for their keys; B's
// m.device_list_update EDUs name the one before (prev_id), so A applies them without asking again;
// A's /keys/query answers from the copy, B down or not; the copy goes when no room is shared.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, enc } from "../helpers/rooms";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";
import { deviceKeys } from "../helpers/e2ee";
import { resolve, Tokens } from "../../src/di/tokens";
import type { JsonObject } from "../../src/protocol/json";
import { FederationUnreachableError } from "../../src/services/federation/contracts";

let a: FederatedServer;
let b: FederatedServer;
let alice: TestClient;
let bob: TestClient;
let roomId: string;
/** Paths A asked of B. */
const asked: string[] = [];
/** m.device_list_update contents B queued. */
const sentByB: JsonObject[] = [];
let bDown = false;

beforeAll(async () => {
  a = await federatedServer({ registration: { enabled: true } });
  b = await federatedServer({ registration: { enabled: true } });
  const client = resolve(a.server.container, Tokens.FederationClient);
  const request = client.request.bind(client);
  client.request = async (method, destination, path, options) => {
    if (destination === b.serverName && path.includes("/user/")) {
      asked.push(path.split("?")[0]!.replace(/\/user\/devices\/.*/, "/user/devices"));
      if (bDown) throw new FederationUnreachableError(destination, "down for the test");
    }
    return request(method, destination, path, options);
  };
  const sender = resolve(b.server.container, Tokens.FederationSender);
  const queueEdu = sender.queueEdu.bind(sender);
  sender.queueEdu = async (destinations, eduType, content) => {
    if (eduType === "m.device_list_update") sentByB.push(content);
    return queueEdu(destinations, eduType, content);
  };
  alice = await TestClient.register(a.server, "alice", "ALICEDEV");
  bob = await TestClient.register(b.server, "bob", "BOBDEV");
  roomId = await alice.createRoom({ preset: "public_chat" });
  await bob.ok("POST", `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {});
  await eventually(async () => (await alice.ok("GET", `/rooms/${enc(roomId)}/joined_members`)).joined[bob.userId] !== undefined, 10_000, "bob's join on A");
  asked.length = 0;
});

afterAll(async () => {
  await a?.server.stop();
  await b?.server.stop();
});

const queryBob = async () => alice.ok("POST", "/keys/query", { device_keys: { [bob.userId]: [] } });
const heldOnA = () => resolve(a.server.container, Tokens.Database).get<{ stream_id: number }>("SELECT stream_id FROM remote_device_lists WHERE user_id = ?", bob.userId);

describe("device lists across servers", () => {
  test("A fetches Bob's whole list once (/user/devices), keeps it, and answers from it", async () => {
    // B's first update (no prev_id) finds no copy on A: A fetches the list, as it would for the query.
    await bob.ok("POST", "/keys/upload", { device_keys: deviceKeys(bob.userId, bob.deviceId).keys });
    await eventually(async () => sentByB.length === 1, 10_000, "B's first update");
    expect(sentByB[0]!.prev_id).toEqual([]);

    const first = await queryBob();
    expect(first.failures).toEqual({});
    expect(Object.keys(first.device_keys[bob.userId])).toEqual([bob.deviceId]);
    await eventually(async () => (await heldOnA()) !== undefined, 10_000, "A's copy");
    expect(asked).toEqual(["/_matrix/federation/v1/user/devices"]);
    // The stream_id B gave is that of its last update: the next one's prev_id.
    expect(Number((await heldOnA())?.stream_id)).toBe(sentByB[0]!.stream_id as number);

    const again = await queryBob();
    expect(again.device_keys).toEqual(first.device_keys);
    expect(asked.length).toBe(1);
  }, 30_000);

  test("Bob's new device: B's update names the one before, and A applies it without asking B", async () => {
    const since = (await alice.ok("GET", "/sync")).next_batch;
    asked.length = 0;
    const laptop = await bob.login("BOBLAPTOP");
    await laptop.ok("POST", "/keys/upload", { device_keys: deviceKeys(bob.userId, laptop.deviceId).keys });
    await eventually(async () => sentByB.length === 3, 10_000, "B's updates of the login and the keys");
    expect(sentByB[1]!.prev_id).toEqual([sentByB[0]!.stream_id]);
    expect(sentByB[2]!.prev_id).toEqual([sentByB[1]!.stream_id]);

    await eventually(async () => Number((await heldOnA())?.stream_id) === sentByB[2]!.stream_id, 10_000, "A's copy at B's last update");
    await eventually(async () => (await alice.ok("GET", `/sync?since=${enc(since)}&timeout=1000`)).device_lists.changed.includes(bob.userId), 10_000, "bob in alice's device_lists.changed");
    const query = await queryBob();
    expect(Object.keys(query.device_keys[bob.userId]).sort()).toEqual([bob.deviceId, laptop.deviceId].sort());
    expect(asked).toEqual([]);
  }, 30_000);

  test("B down: A's answer does not change, and no failure is reported", async () => {
    const before = await queryBob();
    bDown = true;
    try {
      const during = await queryBob();
      expect(during.failures).toEqual({});
      expect(during.device_keys).toEqual(before.device_keys);
    } finally {
      bDown = false;
    }
  }, 30_000);

  test("Bob leaves: A drops the copy; after he rejoins, A fetches his list again", async () => {
    await bob.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    await eventually(async () => (await heldOnA()) === undefined, 10_000, "A dropping the copy");
    await bob.ok("POST", `/join/${enc(roomId)}?server_name=${enc(a.serverName)}`, {});
    await eventually(async () => (await alice.ok("GET", `/rooms/${enc(roomId)}/joined_members`)).joined[bob.userId] !== undefined, 10_000, "bob's rejoin on A");
    asked.length = 0;
    const query = await queryBob();
    expect(Object.keys(query.device_keys[bob.userId]).length).toBe(2);
    expect(asked).toEqual(["/_matrix/federation/v1/user/devices"]);
    expect(await heldOnA()).toBeDefined();
  }, 30_000);
});
