// End-to-end encryption between two Portier servers federating over TLS on loopback: /keys/query and
// /keys/claim for a user of the other server go to it (/user/keys/query, /user/keys/claim), key
// changes travel as m.device_list_update and m.signing_key_update and show in device_lists.changed,
// to-device messages as m.direct_to_device; /user/devices answers from the real keys.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, enc } from "../helpers/rooms";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";
import { crossSigningKey, deviceKeys, keyPair, oneTimeKeys } from "../helpers/e2ee";
import { resolve, Tokens } from "../../src/di/tokens";
import { expectMatchesSpec } from "../helpers/openapi";
import { failNextWrites } from "../helpers/faults";

let a: FederatedServer;
let b: FederatedServer;
let alice: TestClient;
let bob: TestClient;
let roomId: string;

beforeAll(async () => {
  a = await federatedServer({ registration: { enabled: true } });
  b = await federatedServer({ registration: { enabled: true } });
  alice = await TestClient.register(a.server, "alice", "ALICEDEV");
  bob = await TestClient.register(b.server, "bob", "BOBDEV");
  roomId = await alice.createRoom({ preset: "public_chat", room_alias_name: "crypto" });
  await bob.ok("POST", `/join/${enc(`#crypto:${a.serverName}`)}`, {});
  await eventually(async () => (await alice.ok("GET", `/rooms/${enc(roomId)}/joined_members`)).joined[bob.userId] !== undefined, 10_000, "bob's join on A");
});

afterAll(async () => {
  await a?.server.stop();
  await b?.server.stop();
});

describe("end-to-end encryption across servers", () => {
  test("Alice queries Bob's keys and claims his one-time keys through his server", async () => {
    const made = deviceKeys(bob.userId, bob.deviceId);
    const master = keyPair();
    await bob.ok("POST", "/keys/upload", { device_keys: made.keys, one_time_keys: oneTimeKeys(bob.userId, bob.deviceId, made.key, 2, "R") });
    await bob.ok("POST", "/keys/device_signing/upload", { master_key: crossSigningKey(bob.userId, "master", master), self_signing_key: crossSigningKey(bob.userId, "self_signing", keyPair(), master) });

    const query = await alice.ok("POST", "/keys/query", { device_keys: { [bob.userId]: [] }, timeout: 10_000 });
    expect(query.failures).toEqual({});
    expect(query.device_keys[bob.userId][bob.deviceId].keys).toEqual(made.keys.keys);
    expect(query.master_keys[bob.userId].keys).toEqual({ [`ed25519:${master.publicKey}`]: master.publicKey });
    expect(query.self_signing_keys[bob.userId]).toBeDefined();

    const claimed: string[] = [];
    for (let i = 0; i < 2; i++) {
      const claim = await alice.ok("POST", "/keys/claim", { one_time_keys: { [bob.userId]: { [bob.deviceId]: "signed_curve25519" } } });
      expect(claim.failures).toEqual({});
      claimed.push(...Object.keys(claim.one_time_keys[bob.userId][bob.deviceId]));
    }
    expect(claimed.sort()).toEqual(["signed_curve25519:R0", "signed_curve25519:R1"]);
    expect((await bob.ok("POST", "/keys/upload", {})).one_time_key_counts).toEqual({ signed_curve25519: 0 });

    // /user/devices answers from the real keys, as the spec's OpenAPI says.
    const devices = await b.server.app.handle(new Request(`https://${b.serverName}/_matrix/federation/v1/user/devices/${enc(bob.userId)}`));
    expect(devices.status).toBe(401); // an unsigned request is refused; the signed one is what A makes
    const queries = resolve(b.server.container, Tokens.FederationQueries);
    const listed = await queries.userDevices(bob.userId);
    expect(listed.devices.map((d) => d.device_id)).toEqual([bob.deviceId]);
    expect(listed.master_key).toBeDefined();
    expect(listed.stream_id).toBeGreaterThan(0);
    expectMatchesSpec({ api: "server-server", method: "GET", path: `/_matrix/federation/v1/user/devices/${enc(bob.userId)}`, status: 200, body: listed });
  }, 30_000);

  test("Bob's new device reaches Alice's sync as a device list change (m.device_list_update)", async () => {
    const since = (await alice.ok("GET", "/sync")).next_batch;
    const laptop = await bob.login("BOBLAPTOP");
    await laptop.ok("POST", "/keys/upload", { device_keys: deviceKeys(bob.userId, laptop.deviceId).keys });
    const changed = await eventually(async () => {
      const r = await alice.ok("GET", `/sync?since=${enc(since)}&timeout=1000`);
      return r.device_lists.changed.includes(bob.userId) && r;
    }, 10_000, "bob in alice's device_lists.changed");
    expect(changed.device_lists.left).toEqual([]);
    // A holds a copy of Bob's list now: the login and the key upload are two updates, and the first
    // change may be the login's, before the laptop had keys to list.
    const query = await eventually(async () => {
      const r = await alice.ok("POST", "/keys/query", { device_keys: { [bob.userId]: [] } });
      return Object.keys(r.device_keys[bob.userId]).length === 2 && r;
    }, 10_000, "the laptop's keys in alice's query");
    expect(Object.keys(query.device_keys[bob.userId]).sort()).toEqual([bob.deviceId, laptop.deviceId].sort());
  }, 30_000);

  test("to-device messages cross to the other server's devices (m.direct_to_device)", async () => {
    const since = (await bob.ok("GET", "/sync")).next_batch;
    await alice.ok("PUT", `/sendToDevice/m.room_key_request/fed1`, { messages: { [bob.userId]: { "*": { action: "request", n: 1 } } } });
    const got = await eventually(async () => {
      const r = await bob.ok("GET", `/sync?since=${enc(since)}&timeout=1000`);
      return r.to_device.events.length > 0 && r;
    }, 10_000, "the message in bob's sync");
    expect(got.to_device.events).toEqual([{ sender: alice.userId, type: "m.room_key_request", content: { action: "request", n: 1 } }]);
  }, 30_000);

  test("a to-device message the receiving server fails to store is sent again, and delivered once", async () => {
    const db = resolve(b.server.container, Tokens.Database);
    const fault = failNextWrites(db, "INSERT INTO to_device_messages");
    try {
      const since = (await bob.ok("GET", "/sync")).next_batch;
      await alice.ok("PUT", `/sendToDevice/m.room_key/fed2`, { messages: { [bob.userId]: { [bob.deviceId]: { n: 2 } } } });
      // B's /send failed, so A keeps the transaction and sends it again after its backoff.
      const got = await eventually(async () => {
        const r = await bob.ok("GET", `/sync?since=${enc(since)}&timeout=1000`);
        return r.to_device.events.length > 0 && r;
      }, 20_000, "the message in bob's sync after A's retry");
      expect(fault.left()).toBe(0);
      expect(got.to_device.events).toEqual([{ sender: alice.userId, type: "m.room_key", content: { n: 2 } }]);
    } finally {
      fault.restore();
    }
  }, 40_000);

  test("new cross-signing keys reach the other server (m.signing_key_update)", async () => {
    const since = (await bob.ok("GET", "/sync")).next_batch;
    await alice.ok("POST", "/keys/device_signing/upload", { master_key: crossSigningKey(alice.userId, "master", keyPair()) });
    await eventually(async () => (await bob.ok("GET", `/sync?since=${enc(since)}&timeout=1000`)).device_lists.changed.includes(alice.userId), 10_000, "alice in bob's device_lists.changed");
    const query = await bob.ok("POST", "/keys/query", { device_keys: { [alice.userId]: [] } });
    expect(query.master_keys[alice.userId]).toBeDefined();
  }, 30_000);
});
