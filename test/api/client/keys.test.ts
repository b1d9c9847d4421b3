// The key management API (keys.yaml, cross_signing.yaml) through the real HTTP app: uploads, queries,
// claims, cross-signing with user-interactive auth, signatures, /keys/changes and /sync's
// device_lists, and what deleting a device does to its keys. Every 200 is checked against the spec
// (TestClient.ok), and so is every error the spec documents.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { specOperation, expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { R0, TestClient, V3, enc } from "../../helpers/rooms";
import { crossSigningKey, deviceKeys, keyPair, oneTimeKeys, sign, type KeyPair } from "../../helpers/e2ee";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "keys.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice", "ALICEPHONE");
  bob = await TestClient.register(server, "bob", "BOBPHONE");
  carol = await TestClient.register(server, "carol", "CAROLPHONE");
});
afterAll(() => server.stop());

/** Calls, expects the status and errcode, and checks the body against the spec where it documents that status. */
async function fails(client: TestClient, method: string, path: string, body: unknown, status: number, errcode: string) {
  const r = await client.call(method, path, body);
  expect({ status: r.status, errcode: r.body?.errcode }).toEqual({ status, errcode });
  const full = path.startsWith("/_matrix") ? path : `${V3}${path}`;
  if (specOperation({ api: "client-server", method, path: full })?.statuses.includes(String(status))) expectMatchesSpec({ api: "client-server", method, path: full, status, body: r.body });
  return r.body;
}

const passwordAuth = (client: TestClient, session?: string) => ({ type: "m.login.password", identifier: { type: "m.id.user", user: client.userId }, password: "pw", session });
const sync = (client: TestClient, since?: string) => client.ok("GET", `/sync${since ? `?since=${enc(since)}` : ""}`);

describe("POST /keys/upload", () => {
  test("device keys, one-time keys and a fallback key; the counts come back and /sync reports them", async () => {
    const { keys, key } = deviceKeys(alice.userId, alice.deviceId);
    const r = await alice.ok("POST", "/keys/upload", {
      device_keys: keys,
      one_time_keys: oneTimeKeys(alice.userId, alice.deviceId, key, 5, "A"),
      fallback_keys: oneTimeKeys(alice.userId, alice.deviceId, key, 1, "F", { fallback: true }),
    });
    expect(r.one_time_key_counts).toEqual({ signed_curve25519: 5 });
    // matrix-nio reads one_time_key_counts from every upload answer, an empty upload included.
    expect((await alice.ok("POST", `${R0}/keys/upload`, {})).one_time_key_counts).toEqual({ signed_curve25519: 5 });
    const s = await sync(alice);
    expect(s.device_one_time_keys_count).toEqual({ signed_curve25519: 5 });
    expect(s.device_unused_fallback_key_types).toEqual(["signed_curve25519"]);
    // The same one-time key again is a retry, not a new key.
    const again = oneTimeKeys(alice.userId, alice.deviceId, key, 1, "NEW");
    await alice.ok("POST", "/keys/upload", { one_time_keys: again });
    expect((await alice.ok("POST", "/keys/upload", { one_time_keys: again })).one_time_key_counts).toEqual({ signed_curve25519: 6 });
  });

  test("keys for another user or device are 400; a clashing one-time key is 400 and nothing of the request is stored", async () => {
    const phone = await bob.login("BOBTABLET");
    const { keys: forAlice } = deviceKeys(alice.userId, phone.deviceId);
    await fails(phone, "POST", "/keys/upload", { device_keys: forAlice }, 400, "M_INVALID_PARAM");
    const { keys: otherDevice } = deviceKeys(bob.userId, "SOMEOTHER");
    await fails(phone, "POST", "/keys/upload", { device_keys: otherDevice }, 400, "M_INVALID_PARAM");

    const { keys, key } = deviceKeys(bob.userId, phone.deviceId);
    await phone.ok("POST", "/keys/upload", { one_time_keys: { "signed_curve25519:SAME": sign({ key: "a" }, bob.userId, key, phone.deviceId) } });
    // Device keys with a one-time key ID already used for another key: refused whole.
    await fails(phone, "POST", "/keys/upload", { device_keys: keys, one_time_keys: { "signed_curve25519:SAME": sign({ key: "b" }, bob.userId, key, phone.deviceId) } }, 400, "M_INVALID_PARAM");
    const query = await bob.ok("POST", "/keys/query", { device_keys: { [bob.userId]: [phone.deviceId] } });
    expect(query.device_keys[bob.userId]).toEqual({});

    await fails(phone, "POST", "/keys/upload", { one_time_keys: { nocolon: "x" } }, 400, "M_INVALID_PARAM");
    await fails(phone, "POST", "/keys/upload", { fallback_keys: { "a:1": "x", "a:2": "y" } }, 400, "M_INVALID_PARAM");
    // Device keys without algorithms, keys or signatures: M_BAD_JSON, as Synapse answers (sytest checks it).
    await fails(phone, "POST", "/keys/upload", { device_keys: { user_id: bob.userId, device_id: phone.deviceId }, one_time_keys: { "a:1": "x" } }, 400, "M_BAD_JSON");
    await fails(phone, "POST", "/keys/upload", { device_keys: { user_id: bob.userId } }, 400, "M_BAD_JSON");
    await fails(phone, "POST", "/keys/upload", { device_keys: "nope" }, 400, "M_BAD_JSON");
    await fails(phone, "POST", "/keys/upload", { one_time_keys: { "a:1": 5 } }, 400, "M_BAD_JSON");
    await fails(phone, "POST", "/keys/upload", "not json", 400, "M_NOT_JSON");
    const anonymous = await server.app.handle(new Request(`http://localhost${V3}/keys/upload`, { method: "POST", body: "{}", headers: { "Content-Type": "application/json" } }));
    expect(anonymous.status).toBe(401);
  });

  test("two uploads at once of one one-time key ID with different keys: the first is stored, the second is 400", async () => {
    const tablet = await bob.login("BOBRACE");
    const { key } = deviceKeys(bob.userId, tablet.deviceId);
    const upload = (content: string) => tablet.call("POST", "/keys/upload", { one_time_keys: { "signed_curve25519:RACE": sign({ key: content }, bob.userId, key, tablet.deviceId) } });
    const [one, two] = await Promise.all([upload("one"), upload("two")]);
    expect([one.status, two.status].sort()).toEqual([200, 400]);
    expect((one.status === 400 ? one : two).body.errcode).toBe("M_INVALID_PARAM");
    const claimed = await alice.ok("POST", "/keys/claim", { one_time_keys: { [bob.userId]: { [tablet.deviceId]: "signed_curve25519" } } });
    expect(claimed.one_time_keys[bob.userId][tablet.deviceId]["signed_curve25519:RACE"].key).toBe(one.status === 200 ? "one" : "two");
  });
});

describe("POST /keys/query and /keys/claim", () => {
  let bobKey: KeyPair;
  beforeAll(async () => {
    const made = deviceKeys(bob.userId, bob.deviceId);
    bobKey = made.key;
    await bob.ok("PUT", `/devices/${bob.deviceId}`, { display_name: "Bob's phone" });
    await bob.ok("POST", "/keys/upload", { device_keys: made.keys, one_time_keys: oneTimeKeys(bob.userId, bob.deviceId, bobKey, 2, "B"), fallback_keys: oneTimeKeys(bob.userId, bob.deviceId, bobKey, 1, "FB", { fallback: true }) });
  });

  test("device keys with the device's name in unsigned; failures always present; unknown users left out", async () => {
    const r = await alice.ok("POST", "/keys/query", { device_keys: { [bob.userId]: [], "@nobody:keys.example": [] } });
    expect(r.failures).toEqual({});
    expect(Object.keys(r.device_keys)).toEqual([bob.userId]);
    const device = r.device_keys[bob.userId][bob.deviceId];
    expect(device.keys[`ed25519:${bob.deviceId}`]).toBe(bobKey.publicKey);
    expect(device.unsigned).toEqual({ device_display_name: "Bob's phone" });
    // Only the devices asked for.
    expect((await alice.ok("POST", `${R0}/keys/query`, { device_keys: { [bob.userId]: ["NOPE"] } })).device_keys[bob.userId]).toEqual({});
  });

  test("users of other servers: their server is asked, and one that cannot be reached is a failure", async () => {
    // Federation is off in tests: the remote server is unreachable and named in failures.
    const r = await alice.ok("POST", "/keys/query", { device_keys: { "@someone:elsewhere.example": [] } });
    expect(Object.keys(r.failures)).toEqual(["elsewhere.example"]);
    expect(r.device_keys).toEqual({});
    const c = await alice.ok("POST", "/keys/claim", { one_time_keys: { "@someone:elsewhere.example": { DEV: "signed_curve25519" } } });
    expect(Object.keys(c.failures)).toEqual(["elsewhere.example"]);
    await fails(alice, "POST", "/keys/query", { device_keys: { "not-a-user": [] } }, 400, "M_INVALID_PARAM");
    await fails(alice, "POST", "/keys/query", { device_keys: { [bob.userId]: "all" } }, 400, "M_BAD_JSON");
    await fails(alice, "POST", "/keys/query", {}, 400, "M_MISSING_PARAM");
    await fails(alice, "POST", "/keys/claim", { one_time_keys: { [bob.userId]: { [bob.deviceId]: 1 } } }, 400, "M_BAD_JSON");
  });

  test("claims hand out each one-time key once, oldest first, then the fallback key, which stays", async () => {
    const claim = () => alice.ok("POST", "/keys/claim", { one_time_keys: { [bob.userId]: { [bob.deviceId]: "signed_curve25519", NODEVICE: "signed_curve25519" } } });
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await claim();
      expect(r.failures).toEqual({});
      expect(Object.keys(r.one_time_keys[bob.userId])).toEqual([bob.deviceId]);
      ids.push(...Object.keys(r.one_time_keys[bob.userId][bob.deviceId]));
    }
    expect(ids).toEqual(["signed_curve25519:B0", "signed_curve25519:B1", "signed_curve25519:FB0", "signed_curve25519:FB0"]);
    const s = await sync(bob);
    expect(s.device_one_time_keys_count).toEqual({ signed_curve25519: 0 });
    expect(s.device_unused_fallback_key_types).toEqual([]);
    // A new fallback key is unused again.
    await bob.ok("POST", "/keys/upload", { fallback_keys: oneTimeKeys(bob.userId, bob.deviceId, bobKey, 1, "FC", { fallback: true }) });
    expect((await sync(bob)).device_unused_fallback_key_types).toEqual(["signed_curve25519"]);
    // An algorithm nobody uploaded: nothing for that device.
    expect((await alice.ok("POST", "/keys/claim", { one_time_keys: { [bob.userId]: { [bob.deviceId]: "other_algorithm" } } })).one_time_keys).toEqual({});
  });

  test("two claims at once get different one-time keys", async () => {
    const device = await bob.login("BOBCLAIMS");
    const made = deviceKeys(bob.userId, device.deviceId);
    await device.ok("POST", "/keys/upload", { device_keys: made.keys, one_time_keys: oneTimeKeys(bob.userId, device.deviceId, made.key, 2, "C") });
    const claim = () => alice.ok("POST", "/keys/claim", { one_time_keys: { [bob.userId]: { [device.deviceId]: "signed_curve25519" } } });
    const answers = await Promise.all([claim(), claim()]);
    const ids = answers.flatMap((a) => Object.keys(a.one_time_keys[bob.userId][device.deviceId]));
    expect(ids.sort()).toEqual(["signed_curve25519:C0", "signed_curve25519:C1"]);
    expect((await device.ok("POST", "/keys/upload", {})).one_time_key_counts).toEqual({ signed_curve25519: 0 });
  });

  test("keys of a device that no longer exists are never shown (keys left by an upload that raced its deletion)", async () => {
    const quinn = await TestClient.register(server, "quinn", "QUINN1");
    const db = resolve(server.container, Tokens.Database);
    await db.run("INSERT INTO device_keys (user_id, device_id, key_json) VALUES (?, ?, ?)", quinn.userId, "GONE", JSON.stringify(deviceKeys(quinn.userId, "GONE").keys));
    await quinn.ok("POST", "/keys/upload", { device_keys: deviceKeys(quinn.userId, quinn.deviceId).keys });
    expect(Object.keys((await alice.ok("POST", "/keys/query", { device_keys: { [quinn.userId]: [] } })).device_keys[quinn.userId])).toEqual([quinn.deviceId]);
    expect((await alice.ok("POST", "/keys/query", { device_keys: { [quinn.userId]: ["GONE"] } })).device_keys[quinn.userId]).toEqual({});
    // Nor to other servers (/user/keys/query, /user/devices).
    expect(Object.keys(await resolve(server.container, Tokens.EndToEndKeys).deviceKeys(quinn.userId))).toEqual([quinn.deviceId]);
  });
});

describe("cross-signing", () => {
  let master: KeyPair;
  let selfSigning: KeyPair;
  let userSigning: KeyPair;
  let carolDevice: KeyPair;
  beforeAll(async () => {
    master = keyPair();
    selfSigning = keyPair();
    userSigning = keyPair();
    const made = deviceKeys(carol.userId, carol.deviceId);
    carolDevice = made.key;
    await carol.ok("POST", "/keys/upload", { device_keys: made.keys });
  });

  test("a first upload needs no user-interactive auth; a self-signing key not signed by the master key is refused", async () => {
    await fails(carol, "POST", "/keys/device_signing/upload", { self_signing_key: crossSigningKey(carol.userId, "self_signing", selfSigning, master) }, 400, "M_MISSING_PARAM");
    await fails(carol, "POST", "/keys/device_signing/upload", { master_key: crossSigningKey(carol.userId, "master", master), self_signing_key: crossSigningKey(carol.userId, "self_signing", selfSigning, keyPair()) }, 400, "M_INVALID_SIGNATURE");
    await fails(carol, "POST", "/keys/device_signing/upload", { master_key: crossSigningKey(carol.userId, "self_signing", master) }, 400, "M_INVALID_PARAM");
    await fails(carol, "POST", "/keys/device_signing/upload", { master_key: crossSigningKey(alice.userId, "master", master) }, 400, "M_INVALID_PARAM");
    // None of the refused uploads stored anything.
    expect((await carol.ok("POST", "/keys/query", { device_keys: { [carol.userId]: [] } })).master_keys).toEqual({});

    await carol.ok("POST", "/keys/device_signing/upload", {
      master_key: crossSigningKey(carol.userId, "master", master),
      self_signing_key: crossSigningKey(carol.userId, "self_signing", selfSigning, master),
      user_signing_key: crossSigningKey(carol.userId, "user_signing", userSigning, master),
    });
    // The same keys again (a retried request): still no auth needed.
    await carol.ok("POST", "/keys/device_signing/upload", { master_key: crossSigningKey(carol.userId, "master", master) });
  });

  test("replacing a key needs the password (UIA); the user-signing key is seen by its owner only", async () => {
    const newSelfSigning = keyPair();
    const body = { self_signing_key: crossSigningKey(carol.userId, "self_signing", newSelfSigning, master) };
    const challenge = await fails(carol, "POST", "/keys/device_signing/upload", body, 401, "M_UNAUTHORIZED");
    expect(challenge.flows).toEqual([{ stages: ["m.login.password"] }]);
    await fails(carol, "POST", "/keys/device_signing/upload", { ...body, auth: { ...passwordAuth(carol, challenge.session), password: "wrong" } }, 401, "M_FORBIDDEN");
    await carol.ok("POST", "/keys/device_signing/upload", { ...body, auth: passwordAuth(carol, challenge.session) });
    selfSigning = newSelfSigning;

    const own = await carol.ok("POST", "/keys/query", { device_keys: { [carol.userId]: [] } });
    expect(own.master_keys[carol.userId].keys).toEqual({ [`ed25519:${master.publicKey}`]: master.publicKey });
    expect(own.self_signing_keys[carol.userId].keys).toEqual({ [`ed25519:${selfSigning.publicKey}`]: selfSigning.publicKey });
    expect(own.user_signing_keys[carol.userId].keys).toEqual({ [`ed25519:${userSigning.publicKey}`]: userSigning.publicKey });
    const seen = await alice.ok("POST", "/keys/query", { device_keys: { [carol.userId]: [] } });
    expect(Object.keys(seen.master_keys)).toEqual([carol.userId]);
    expect(seen.user_signing_keys).toEqual({});
  });

  test("cross-signing keys and signatures are also served under /_matrix/client/unstable, as Synapse does", async () => {
    const user = await TestClient.register(server, "unstablecs", "UNSTABLEPHONE");
    const masterPair = keyPair();
    const master = crossSigningKey(user.userId, "master", masterPair);
    const r = await user.call("POST", "/_matrix/client/unstable/keys/device_signing/upload", { master_key: master });
    expect(r.status).toBe(200);
    expect((await user.ok("POST", "/keys/query", { device_keys: { [user.userId]: [] } })).master_keys[user.userId]).toEqual(master);
    const signatures = await user.call("POST", "/_matrix/client/unstable/keys/signatures/upload", {});
    expect(signatures.status).toBe(200);
    expect(signatures.body.failures).toEqual({});
  });

  test("a cross-signing key may not take a device's ID", async () => {
    const dave = await TestClient.register(server, "dave");
    const clash = keyPair();
    const device = await dave.login(clash.publicKey);
    expect(device.deviceId).toBe(clash.publicKey);
    await fails(dave, "POST", "/keys/device_signing/upload", { master_key: crossSigningKey(dave.userId, "master", clash) }, 403, "M_FORBIDDEN");
  });

  test("no device may take the ID of a cross-signing key: a login naming one is 400 M_FORBIDDEN (as Synapse answers)", async () => {
    const oscar = await TestClient.register(server, "oscar", "OSCAR1");
    const keys = { master: keyPair(), selfSigning: keyPair(), userSigning: keyPair() };
    await oscar.ok("POST", "/keys/device_signing/upload", {
      master_key: crossSigningKey(oscar.userId, "master", keys.master),
      self_signing_key: crossSigningKey(oscar.userId, "self_signing", keys.selfSigning, keys.master),
      user_signing_key: crossSigningKey(oscar.userId, "user_signing", keys.userSigning, keys.master),
    });
    for (const key of Object.values(keys)) {
      const r = await request(server, "POST", `${V3}/login`, { type: "m.login.password", identifier: { type: "m.id.user", user: oscar.userId }, password: "pw", device_id: key.publicKey });
      expect({ status: r.status, errcode: r.body.errcode }).toEqual({ status: 400, errcode: "M_FORBIDDEN" });
    }
    expect((await oscar.ok("GET", "/devices")).devices.map((d: any) => d.device_id)).toEqual([oscar.deviceId]);
    // Another user's keys are no obstacle, nor are other IDs.
    expect((await alice.login(keys.master.publicKey)).deviceId).toBe(keys.master.publicKey);
    await oscar.login("OSCAR2");
  });

  test("new device keys drop the signatures on the old ones and those the device made; unsigned data changing keeps them", async () => {
    const nina = await TestClient.register(server, "nina", "NINA1");
    const ninaMaster = keyPair();
    const ninaSelfSigning = keyPair();
    const made = deviceKeys(nina.userId, nina.deviceId);
    await nina.ok("POST", "/keys/upload", { device_keys: made.keys });
    const masterKey = crossSigningKey(nina.userId, "master", ninaMaster);
    await nina.ok("POST", "/keys/device_signing/upload", { master_key: masterKey, self_signing_key: crossSigningKey(nina.userId, "self_signing", ninaSelfSigning, ninaMaster) });
    const signed = await nina.ok("POST", "/keys/signatures/upload", {
      [nina.userId]: { [nina.deviceId]: sign(made.keys, nina.userId, ninaSelfSigning), [ninaMaster.publicKey]: sign(masterKey, nina.userId, made.key, nina.deviceId) },
    });
    expect(signed.failures).toEqual({});
    const signers = async () => {
      const q = await alice.ok("POST", "/keys/query", { device_keys: { [nina.userId]: [] } });
      return { device: Object.keys(q.device_keys[nina.userId][nina.deviceId].signatures[nina.userId]).sort(), master: Object.keys(q.master_keys[nina.userId].signatures?.[nina.userId] ?? {}) };
    };
    const both = { device: [`ed25519:${nina.deviceId}`, `ed25519:${ninaSelfSigning.publicKey}`].sort(), master: [`ed25519:${nina.deviceId}`] };
    expect(await signers()).toEqual(both);
    // What the signatures cover is unchanged: they stay.
    await nina.ok("POST", "/keys/upload", { device_keys: { ...made.keys, unsigned: { note: "re-uploaded" } } });
    expect(await signers()).toEqual(both);
    // New keys: the self-signing key's signature no longer verifies, nor does the device's on the master key.
    await nina.ok("POST", "/keys/upload", { device_keys: deviceKeys(nina.userId, nina.deviceId).keys });
    expect(await signers()).toEqual({ device: [`ed25519:${nina.deviceId}`], master: [] });
  });

  test("signatures: a device by the self-signing key, the master key by a device, another user's master key by the user-signing key", async () => {
    const stored = (await carol.ok("POST", "/keys/query", { device_keys: { [carol.userId]: [carol.deviceId] } })).device_keys[carol.userId][carol.deviceId];
    const { unsigned: _unsigned, ...deviceKeysOnly } = stored;
    const signedDevice = sign(deviceKeysOnly, carol.userId, selfSigning);
    const masterKey = crossSigningKey(carol.userId, "master", master);
    const signedMaster = sign(masterKey, carol.userId, carolDevice, carol.deviceId);

    // Alice's own cross-signing, to sign Carol's master key with.
    const aliceMaster = keyPair();
    const aliceUserSigning = keyPair();
    await alice.ok("POST", "/keys/device_signing/upload", { master_key: crossSigningKey(alice.userId, "master", aliceMaster), user_signing_key: crossSigningKey(alice.userId, "user_signing", aliceUserSigning, aliceMaster) });
    const carolMasterByAlice = sign(masterKey, alice.userId, aliceUserSigning);

    const r = await carol.ok("POST", "/keys/signatures/upload", {
      [carol.userId]: { [carol.deviceId]: signedDevice, [master.publicKey]: signedMaster, UNKNOWNDEVICE: signedDevice },
    });
    expect(Object.keys(r.failures[carol.userId])).toEqual(["UNKNOWNDEVICE"]);
    const bad = await carol.ok("POST", "/keys/signatures/upload", { [carol.userId]: { [carol.deviceId]: sign(deviceKeysOnly, carol.userId, keyPair(), selfSigning.publicKey) } });
    expect(bad.failures[carol.userId][carol.deviceId].errcode).toBe("M_INVALID_SIGNATURE");
    const changed = await carol.ok("POST", "/keys/signatures/upload", { [carol.userId]: { [carol.deviceId]: { ...signedDevice, algorithms: ["changed"] } } });
    expect(changed.failures[carol.userId][carol.deviceId].errcode).toBe("M_INVALID_PARAM");

    const byAlice = await alice.ok("POST", "/keys/signatures/upload", { [carol.userId]: { [master.publicKey]: carolMasterByAlice } });
    expect(byAlice.failures).toEqual({});

    // Bob sees Carol's device signed by her self-signing key and her master key signed by her device,
    // but not Alice's signature; Alice sees hers too.
    const asBob = await bob.ok("POST", "/keys/query", { device_keys: { [carol.userId]: [] } });
    expect(asBob.device_keys[carol.userId][carol.deviceId].signatures[carol.userId][`ed25519:${selfSigning.publicKey}`]).toBeString();
    expect(Object.keys(asBob.master_keys[carol.userId].signatures)).toEqual([carol.userId]);
    expect(asBob.master_keys[carol.userId].signatures[carol.userId][`ed25519:${carol.deviceId}`]).toBeString();
    const asAlice = await alice.ok("POST", "/keys/query", { device_keys: { [carol.userId]: [] } });
    expect(asAlice.master_keys[carol.userId].signatures[alice.userId][`ed25519:${aliceUserSigning.publicKey}`]).toBeString();
  });
});

describe("device list changes in /sync and /keys/changes", () => {
  test("a new device (a login) is a device list change for room mates and the user's other devices, before any key upload", async () => {
    const gus = await TestClient.register(server, "newdev-gus", "GUS1");
    const hal = await TestClient.register(server, "newdev-hal", "HAL1");
    const roomId = await gus.createRoom({ preset: "public_chat" });
    await hal.ok("POST", `/join/${enc(roomId)}`, {});
    const gusStart = (await sync(gus)).next_batch;
    const halStart = (await sync(hal)).next_batch;
    await hal.login("HAL2");
    expect((await sync(gus, gusStart)).device_lists.changed).toContain(hal.userId);
    expect((await sync(hal, halStart)).device_lists.changed).toContain(hal.userId);
    // Logging in again on a device that exists is not a change.
    const gusAgain = (await sync(gus)).next_batch;
    await hal.login("HAL2");
    expect((await sync(gus, gusAgain)).device_lists.changed).not.toContain(hal.userId);
  });

  test("a new user-signing key alone is a change for its owner only (others cannot see it); master and self-signing keys reach room mates", async () => {
    const ivy = await TestClient.register(server, "usk-ivy", "IVY1");
    const jon = await TestClient.register(server, "usk-jon", "JON1");
    const roomId = await ivy.createRoom({ preset: "public_chat" });
    await jon.ok("POST", `/join/${enc(roomId)}`, {});
    const master = keyPair();
    let ivyStart = (await sync(ivy)).next_batch;
    let jonStart = (await sync(jon)).next_batch;
    await ivy.ok("POST", "/keys/device_signing/upload", { master_key: crossSigningKey(ivy.userId, "master", master), self_signing_key: crossSigningKey(ivy.userId, "self_signing", keyPair(), master) });
    const seen = await sync(jon, jonStart);
    expect(seen.device_lists.changed).toContain(ivy.userId);
    jonStart = seen.next_batch;
    ivyStart = (await sync(ivy, ivyStart)).next_batch;

    const challenge = await ivy.call("POST", "/keys/device_signing/upload", { user_signing_key: crossSigningKey(ivy.userId, "user_signing", keyPair(), master) });
    await ivy.ok("POST", "/keys/device_signing/upload", { user_signing_key: crossSigningKey(ivy.userId, "user_signing", keyPair(), master), auth: passwordAuth(ivy, challenge.body.session) });
    expect((await sync(ivy, ivyStart)).device_lists.changed).toContain(ivy.userId);
    expect((await sync(jon, jonStart)).device_lists.changed).not.toContain(ivy.userId);
  });

  test("a key change reaches those sharing a room; a user who stops sharing any room is in left", async () => {
    const erin = await TestClient.register(server, "erin", "ERIN1");
    const frank = await TestClient.register(server, "frank", "FRANK1");
    const roomId = await erin.createRoom({ preset: "public_chat" });
    await frank.ok("POST", `/join/${enc(roomId)}`, {});
    const start = (await sync(erin)).next_batch;
    const frankStart = (await sync(frank)).next_batch;

    // Frank's new keys: Erin shares a room with him, Carol does not.
    const carolStart = (await sync(carol)).next_batch;
    await frank.ok("POST", "/keys/upload", { device_keys: deviceKeys(frank.userId, frank.deviceId).keys });
    const afterKeys = await sync(erin, start);
    expect(afterKeys.device_lists.changed).toEqual([frank.userId]);
    expect((await sync(carol, carolStart)).device_lists.changed).not.toContain(frank.userId);
    // His own devices are told too.
    expect((await sync(frank, frankStart)).device_lists.changed).toContain(frank.userId);

    // /keys/changes between the same tokens says the same.
    const changes = await erin.ok("GET", `/keys/changes?from=${enc(start)}&to=${enc(afterKeys.next_batch)}`);
    expect(changes).toEqual({ changed: [frank.userId], left: [] });
    expect(await erin.ok("GET", `/keys/changes?from=${enc(afterKeys.next_batch)}&to=${enc(afterKeys.next_batch)}`)).toEqual({ changed: [], left: [] });
    await fails(erin, "GET", `/keys/changes?to=${enc(start)}`, undefined, 400, "M_MISSING_PARAM");
    await fails(erin, "GET", `/keys/changes?from=bogus&to=${enc(start)}`, undefined, 400, "M_INVALID_PARAM");

    // Frank leaves the only room they shared.
    await frank.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const afterLeave = await sync(erin, afterKeys.next_batch);
    expect(afterLeave.device_lists).toEqual({ changed: [], left: [frank.userId] });
    // And joins again: changed.
    await frank.ok("POST", `/join/${enc(roomId)}`, {});
    expect((await sync(erin, afterLeave.next_batch)).device_lists).toEqual({ changed: [frank.userId], left: [] });
  });

  test("leaving the only shared room ourselves puts its members in left; others joining it later are none of our business", async () => {
    const kim = await TestClient.register(server, "kim", "KIM1");
    const lou = await TestClient.register(server, "lou", "LOU1");
    const max = await TestClient.register(server, "max", "MAX1");
    const roomId = await lou.createRoom({ preset: "public_chat" });
    await kim.ok("POST", `/join/${enc(roomId)}`, {});
    const since = (await sync(kim)).next_batch;
    await kim.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const r = await sync(kim, since);
    expect(r.device_lists).toEqual({ changed: [], left: [lou.userId] });
    await max.ok("POST", `/join/${enc(roomId)}`, {});
    await max.ok("POST", "/keys/upload", { device_keys: deviceKeys(max.userId, max.deviceId).keys });
    expect((await sync(kim, r.next_batch)).device_lists).toEqual({ changed: [], left: [] });
  });

  test("an invite, a knock or a ban of someone we never shared a room with is nobody leaving", async () => {
    const rita = await TestClient.register(server, "rita", "RITA1");
    const [sam, tom, uma, vic] = await Promise.all(["sam", "tom", "uma", "vic"].map((name) => TestClient.register(server, name, `${name.toUpperCase()}1`)));
    const roomId = await rita.createRoom({ initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] });
    await rita.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: vic.userId });
    await vic.ok("POST", `/join/${enc(roomId)}`, {});
    const since = (await sync(rita)).next_batch;
    await rita.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: sam.userId });
    await sam.ok("POST", `/rooms/${enc(roomId)}/leave`, {}); // the invite declined
    await uma.ok("POST", `/knock/${enc(roomId)}`, {});
    await rita.ok("POST", `/rooms/${enc(roomId)}/ban`, { user_id: tom.userId });
    // Vic, who was there at the start, leaves: only he is gone.
    await vic.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    const r = await sync(rita, since);
    expect(r.device_lists).toEqual({ changed: [], left: [vic.userId] });
    expect(await rita.ok("GET", `/keys/changes?from=${enc(since)}&to=${enc(r.next_batch)}`)).toEqual({ changed: [], left: [vic.userId] });
  });

  test("a waiting sync wakes when a user sharing a room changes keys", async () => {
    const gina = await TestClient.register(server, "gina", "GINA1");
    const hal = await TestClient.register(server, "hal", "HAL1");
    const roomId = await gina.createRoom({ preset: "public_chat" });
    await hal.ok("POST", `/join/${enc(roomId)}`, {});
    const since = (await sync(gina)).next_batch;
    const started = performance.now();
    const waiting = gina.ok("GET", `/sync?since=${enc(since)}&timeout=10000`);
    await Bun.sleep(50);
    await hal.ok("POST", "/keys/upload", { device_keys: deviceKeys(hal.userId, hal.deviceId).keys });
    const r = await waiting;
    expect(r.device_lists.changed).toEqual([hal.userId]);
    expect(performance.now() - started).toBeLessThan(5000);
  });

  test("renaming a device counts as a change (its name is shown beside its keys), with keys or without", async () => {
    const jill = await TestClient.register(server, "jill", "JILL1");
    const roomId = await jill.createRoom({ preset: "public_chat" });
    await alice.ok("POST", `/join/${enc(roomId)}`, {});
    await jill.ok("POST", "/keys/upload", { device_keys: deviceKeys(jill.userId, jill.deviceId).keys });
    const since = (await sync(alice)).next_batch;
    await jill.ok("PUT", `/devices/${jill.deviceId}`, { display_name: "Jill's laptop" });
    expect((await sync(alice, since)).device_lists.changed).toEqual([jill.userId]);
    const query = await alice.ok("POST", "/keys/query", { device_keys: { [jill.userId]: [] } });
    expect(query.device_keys[jill.userId][jill.deviceId].unsigned.device_display_name).toBe("Jill's laptop");
    // A device without keys too, as a new device counts before it has keys.
    const bare = await jill.login("JILLBARE");
    const next = (await sync(alice)).next_batch;
    await bare.ok("PUT", `/devices/${bare.deviceId}`, { display_name: "no keys yet" });
    expect((await sync(alice, next)).device_lists.changed).toEqual([jill.userId]);
  });

  test("deleting a device deletes its keys and counts as a change", async () => {
    const ivy = await TestClient.register(server, "ivy", "IVY1");
    const laptop = await ivy.login("IVYLAPTOP");
    const made = deviceKeys(ivy.userId, laptop.deviceId);
    await laptop.ok("POST", "/keys/upload", { device_keys: made.keys, one_time_keys: oneTimeKeys(ivy.userId, laptop.deviceId, made.key, 3) });
    const roomId = await ivy.createRoom({ preset: "public_chat" });
    await alice.ok("POST", `/join/${enc(roomId)}`, {});
    const since = (await sync(alice)).next_batch;

    const challenge = await fails(ivy, "DELETE", `/devices/${laptop.deviceId}`, {}, 401, "M_UNAUTHORIZED");
    await ivy.ok("DELETE", `/devices/${laptop.deviceId}`, { auth: passwordAuth(ivy, challenge.session) });
    expect((await alice.ok("POST", "/keys/query", { device_keys: { [ivy.userId]: [] } })).device_keys[ivy.userId]).toEqual({});
    expect((await alice.ok("POST", "/keys/claim", { one_time_keys: { [ivy.userId]: { [laptop.deviceId]: "signed_curve25519" } } })).one_time_keys).toEqual({});
    expect((await sync(alice, since)).device_lists.changed).toContain(ivy.userId);
    // Nothing of the device is left in the key tables.
    const db = resolve(server.container, Tokens.Database);
    for (const table of ["device_keys", "one_time_keys", "fallback_keys"]) {
      expect(Number((await db.get<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE device_id = ?`, laptop.deviceId))!.n)).toBe(0);
    }
  });
});

describe("deleting a device is one transaction with deleting what belongs to it", () => {
  test("a deletion that fails half way deletes nothing: the device, its token and its keys stay; a later one deletes all", async () => {
    const paul = await TestClient.register(server, "paul", "PAUL1");
    const laptop = await paul.login("PAULLAPTOP");
    const made = deviceKeys(paul.userId, laptop.deviceId);
    await laptop.ok("POST", "/keys/upload", { device_keys: made.keys, one_time_keys: oneTimeKeys(paul.userId, laptop.deviceId, made.key, 2) });
    await alice.ok("PUT", `/sendToDevice/m.test/paul1`, { messages: { [paul.userId]: { [laptop.deviceId]: { n: 1 } } } });
    // A listener that fails after the key and to-device listeners have deleted their rows.
    let failing = true;
    resolve(server.container, Tokens.Accounts).onDeviceDeleted(async (userId) => {
      if (failing && userId === paul.userId) throw new Error("storage failed");
    });
    const db = resolve(server.container, Tokens.Database);
    const rows = async (table: string) => Number((await db.get<{ n: number }>(`SELECT count(*) AS n FROM ${table} WHERE user_id = ? AND device_id = ?`, paul.userId, laptop.deviceId))!.n);

    let challenge = await fails(paul, "DELETE", `/devices/${laptop.deviceId}`, {}, 401, "M_UNAUTHORIZED");
    expect((await paul.call("DELETE", `/devices/${laptop.deviceId}`, { auth: passwordAuth(paul, challenge.session) })).status).toBe(500);
    expect((await paul.ok("GET", "/devices")).devices.map((d: any) => d.device_id).sort()).toEqual([paul.deviceId, laptop.deviceId].sort());
    await laptop.ok("GET", "/account/whoami");
    expect(Object.keys((await alice.ok("POST", "/keys/query", { device_keys: { [paul.userId]: [] } })).device_keys[paul.userId])).toEqual([laptop.deviceId]);
    expect([await rows("one_time_keys"), await rows("to_device_messages")]).toEqual([2, 1]);

    failing = false;
    challenge = await fails(paul, "DELETE", `/devices/${laptop.deviceId}`, {}, 401, "M_UNAUTHORIZED");
    await paul.ok("DELETE", `/devices/${laptop.deviceId}`, { auth: passwordAuth(paul, challenge.session) });
    expect((await alice.ok("POST", "/keys/query", { device_keys: { [paul.userId]: [] } })).device_keys[paul.userId]).toEqual({});
    expect([await rows("device_keys"), await rows("one_time_keys"), await rows("to_device_messages")]).toEqual([0, 0, 0]);
  });
});
