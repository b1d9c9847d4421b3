// The key ring: other servers' signing keys fetched directly or through notaries, checked, stored,
// expired and refetched; driven by a fake FederationClient answering with responses signed by test
// keys, and a fake clock.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testStores } from "../../helpers/databases";
import type { Stores } from "../../../src/storage/open";
import { DEFAULT_RETRY_AFTER_MS, FederationKeyRing, MAX_KEY_VALIDITY_MS, ownKeysFrom, type FederationKeyRingOptions } from "../../../src/services/federation/key-ring";
import { FederationUnreachableError, RemoteMatrixError, type FederationClient, type FederationRequestOptions } from "../../../src/services/federation/contracts";
import { signingKeyFromSeed, type SigningKey } from "../../../src/protocol/signing/keys";
import { signJson } from "../../../src/protocol/signing/sign-json";
import { encodeBase64 } from "../../../src/protocol/base64";
import type { JsonObject } from "../../../src/protocol/json";
import { ServerKeyService } from "../../../src/services/keys/server-keys";
import { resolveConfig } from "../../../src/config/loader";
import { tempDir } from "../../helpers/server";

const OWN = "own.example";
const REMOTE = "remote.example";
const NOTARY = "notary.example";
const NOTARY2 = "notary2.example";
const T0 = 1_800_000_000_000;
const HOUR = 3600 * 1000;

const key = (version: string, seedByte: number): SigningKey => signingKeyFromSeed(version, new Uint8Array(32).fill(seedByte));
const remoteKey = key("r1", 1);
const remoteKey2 = key("r2", 2);
const remoteOldKey = key("r0", 3);
const notaryKey = key("n1", 4);
const otherKey = key("x", 5);
const ownKey = key("own", 6);

function keyResponse(serverName: string, current: SigningKey[], validUntilTs: number, old: { key: SigningKey; expiredTs: number }[] = []): JsonObject {
  return {
    server_name: serverName,
    valid_until_ts: validUntilTs,
    verify_keys: Object.fromEntries(current.map((k) => [k.keyId, { key: encodeBase64(k.publicKey) }])),
    old_verify_keys: Object.fromEntries(old.map((o) => [o.key.keyId, { key: encodeBase64(o.key.publicKey), expired_ts: o.expiredTs }])),
  };
}

/** Signs as `serverName` with each key in turn. */
function signed(object: JsonObject, serverName: string, ...keys: SigningKey[]): JsonObject {
  return keys.reduce((o, k) => signJson(o, serverName, k.keyId, k.seed), object);
}

const remoteResponse = (validUntilTs = T0 + HOUR, keys = [remoteKey]) => signed(keyResponse(REMOTE, keys, validUntilTs), REMOTE, ...keys);

const notaryAnswer = (...responses: JsonObject[]) => ({ server_keys: responses });

type Answer = unknown | ((options: FederationRequestOptions | undefined) => unknown);

interface Call {
  method: string;
  destination: string;
  path: string;
  options: FederationRequestOptions | undefined;
}

/** Answers per "METHOD destination path"; an Error answer is thrown; anything unlisted is unreachable. */
class FakeFederation implements FederationClient {
  readonly calls: Call[] = [];
  readonly answers = new Map<string, Answer>();

  on(method: string, destination: string, path: string, answer: Answer): this {
    this.answers.set(`${method} ${destination} ${path}`, answer);
    return this;
  }

  async request(method: "GET" | "PUT" | "POST", destination: string, path: string, options?: FederationRequestOptions): Promise<unknown> {
    this.calls.push({ method, destination, path, options });
    const route = `${method} ${destination} ${path}`;
    if (!this.answers.has(route)) throw new FederationUnreachableError(destination, "connection refused");
    let answer = this.answers.get(route);
    if (typeof answer === "function") answer = await answer(options);
    if (answer instanceof Error) throw answer;
    return structuredClone(answer);
  }

  callsTo(destination: string): Call[] {
    return this.calls.filter((c) => c.destination === destination);
  }
}

let stores: Stores;
let client: FakeFederation;
let now: number;
const clock = { now: () => now };

function keyRing(overrides: Partial<FederationKeyRingOptions> = {}): FederationKeyRing {
  return new FederationKeyRing({
    store: stores.serverKeys,
    client,
    clock,
    ownServerName: OWN,
    ownKeys: { verifyKeys: new Map([[ownKey.keyId, ownKey.publicKey]]), oldVerifyKeys: new Map([["ed25519:own0", { key: otherKey.publicKey, expiredTs: T0 - HOUR }]]) },
    trustedKeyServers: [],
    ...overrides,
  });
}

beforeEach(async () => {
  stores = await testStores();
  client = new FakeFederation();
  now = T0;
});
afterEach(async () => {
  await stores.db.close();
});

describe("direct fetch", () => {
  test("fetches a missing key from the server itself, unsigned, and caches it", async () => {
    client.on("GET", REMOTE, "/_matrix/key/v2/server", remoteResponse());
    const ring = keyRing();
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toBeUndefined();
    await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toEqual(remoteKey.publicKey);
    expect(client.calls).toEqual([{ method: "GET", destination: REMOTE, path: "/_matrix/key/v2/server", options: { signed: false } }]);
    // Held now: asking again costs nothing.
    await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    expect(client.calls).toHaveLength(1);
    // Stored with the response as received.
    const stored = await stores.serverKeys.keysOf(REMOTE);
    expect(stored.map((k) => [k.keyId, k.validUntilTs, k.fromServer])).toEqual([[remoteKey.keyId, T0 + HOUR, REMOTE]]);
    expect(JSON.parse(stored[0]!.keyJson)).toEqual(remoteResponse());
    expect(await ring.responsesFor(REMOTE)).toEqual([remoteResponse()]);
  });

  test("one request per server for several keys; several servers in parallel", async () => {
    client.on("GET", REMOTE, "/_matrix/key/v2/server", remoteResponse(T0 + HOUR, [remoteKey, remoteKey2]));
    client.on("GET", "third.example", "/_matrix/key/v2/server", signed(keyResponse("third.example", [otherKey], T0 + HOUR), "third.example", otherKey));
    const ring = keyRing();
    await ring.fetch([
      { serverName: REMOTE, keyId: remoteKey.keyId, validAt: now },
      { serverName: REMOTE, keyId: remoteKey2.keyId, validAt: now },
      { serverName: "third.example", keyId: otherKey.keyId, validAt: now },
    ]);
    expect(ring.cached(REMOTE, remoteKey2.keyId, now)).toEqual(remoteKey2.publicKey);
    expect(ring.cached("third.example", otherKey.keyId, now)).toEqual(otherKey.publicKey);
    expect(ring.cached(REMOTE, otherKey.keyId, now)).toBeUndefined();
    expect(client.calls.map((c) => c.destination).sort()).toEqual([REMOTE, "third.example"]);
  });

  test("a key past its valid_until_ts is fetched again; still good for what it signed before", async () => {
    let served = remoteResponse(T0 + HOUR);
    client.on("GET", REMOTE, "/_matrix/key/v2/server", () => served);
    const ring = keyRing();
    await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    now = T0 + 2 * HOUR;
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toBeUndefined();
    expect(ring.cached(REMOTE, remoteKey.keyId, T0 + HOUR)).toEqual(remoteKey.publicKey);
    // Room versions 1-4: the caller passes validAt = 0, valid_until_ts is then ignored.
    expect(ring.cached(REMOTE, remoteKey.keyId, 0)).toEqual(remoteKey.publicKey);
    served = remoteResponse(T0 + 5 * HOUR);
    await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    expect(client.calls).toHaveLength(2);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toEqual(remoteKey.publicKey);
    expect(ring.cached(REMOTE, remoteKey.keyId, T0 + 5 * HOUR + 1)).toBeUndefined();
  });

  test("valid_until_ts counts for at most 7 days after the fetch", async () => {
    client.on("GET", REMOTE, "/_matrix/key/v2/server", remoteResponse(T0 + 365 * 24 * HOUR));
    const ring = keyRing();
    await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    expect(ring.cached(REMOTE, remoteKey.keyId, T0 + MAX_KEY_VALIDITY_MS)).toEqual(remoteKey.publicKey);
    expect(ring.cached(REMOTE, remoteKey.keyId, T0 + MAX_KEY_VALIDITY_MS + 1)).toBeUndefined();
  });

  test("old_verify_keys are valid for what was signed before their expired_ts", async () => {
    const expiredTs = T0 - 10 * HOUR;
    client.on("GET", REMOTE, "/_matrix/key/v2/server", signed(keyResponse(REMOTE, [remoteKey], T0 + HOUR, [{ key: remoteOldKey, expiredTs }]), REMOTE, remoteKey));
    const ring = keyRing();
    await ring.fetch([{ serverName: REMOTE, keyId: remoteOldKey.keyId, validAt: expiredTs - 1 }]);
    expect(ring.cached(REMOTE, remoteOldKey.keyId, expiredTs - 1)).toEqual(remoteOldKey.publicKey);
    expect(ring.cached(REMOTE, remoteOldKey.keyId, expiredTs)).toBeUndefined();
    expect(ring.cached(REMOTE, remoteOldKey.keyId, now)).toBeUndefined();
    expect((await stores.serverKeys.keysOf(REMOTE)).find((k) => k.keyId === remoteOldKey.keyId)).toMatchObject({ validUntilTs: undefined, expiredTs });
  });

  test("a key that moved from verify_keys to old_verify_keys is old from then on", async () => {
    let served = remoteResponse(T0 + HOUR, [remoteOldKey]);
    client.on("GET", REMOTE, "/_matrix/key/v2/server", () => served);
    const ring = keyRing();
    await ring.fetch([{ serverName: REMOTE, keyId: remoteOldKey.keyId, validAt: now }]);
    expect(ring.cached(REMOTE, remoteOldKey.keyId, now)).toEqual(remoteOldKey.publicKey);
    served = signed(keyResponse(REMOTE, [remoteKey], T0 + 2 * HOUR, [{ key: remoteOldKey, expiredTs: T0 + 10 }]), REMOTE, remoteKey);
    await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    expect(ring.cached(REMOTE, remoteOldKey.keyId, T0 + 9)).toEqual(remoteOldKey.publicKey);
    expect(ring.cached(REMOTE, remoteOldKey.keyId, T0 + 10)).toBeUndefined();
  });

  describe("refused responses", () => {
    const cases: [string, () => unknown][] = [
      ["unsigned", () => keyResponse(REMOTE, [remoteKey], T0 + HOUR)],
      ["signed by a key it does not list (forged)", () => signJson(keyResponse(REMOTE, [remoteKey], T0 + HOUR), REMOTE, remoteKey.keyId, otherKey.seed)],
      ["not signed by every key it lists", () => signed(keyResponse(REMOTE, [remoteKey, remoteKey2], T0 + HOUR), REMOTE, remoteKey)],
      ["changed after signing", () => ({ ...remoteResponse(), valid_until_ts: T0 + 2 * HOUR })],
      ["about another server, signed by it", () => signed(keyResponse("evil.example", [remoteKey], T0 + HOUR), "evil.example", remoteKey)],
      ["naming us but signed as another server", () => signed(keyResponse(REMOTE, [remoteKey], T0 + HOUR), "evil.example", remoteKey)],
      ["without valid_until_ts", () => { const { valid_until_ts: _, ...rest } = keyResponse(REMOTE, [remoteKey], 0); return signed(rest, REMOTE, remoteKey); }],
      ["not an object", () => "keys"],
      ["null", () => null],
    ];
    for (const [name, body] of cases) {
      test(name, async () => {
        client.on("GET", REMOTE, "/_matrix/key/v2/server", body());
        const ring = keyRing();
        await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
        expect(ring.cached(REMOTE, remoteKey.keyId, now)).toBeUndefined();
        expect(await stores.serverKeys.keysOf(REMOTE)).toEqual([]);
        expect(await stores.serverKeys.keysOf("evil.example")).toEqual([]);
      });
    }
  });

  test("never throws for a remote failure", async () => {
    const ring = keyRing();
    for (const failure of [new FederationUnreachableError(REMOTE, "timeout"), new RemoteMatrixError(REMOTE, "M_NOT_FOUND", "no", 404), new TypeError("bad client")]) {
      client.on("GET", REMOTE, "/_matrix/key/v2/server", failure);
      await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
      expect(ring.cached(REMOTE, remoteKey.keyId, now)).toBeUndefined();
      now += 2 * 60_000; // past the back-off
    }
    expect(client.callsTo(REMOTE)).toHaveLength(3);
  });

  test("invalid server names are not asked", async () => {
    const ring = keyRing();
    await ring.fetch([{ serverName: "bad name!", keyId: remoteKey.keyId, validAt: now }, { serverName: "", keyId: remoteKey.keyId, validAt: now }]);
    expect(client.calls).toEqual([]);
  });
});

describe("our own keys", () => {
  test("are always known, without a request; old ones until their expired_ts", async () => {
    const ring = keyRing();
    await ring.fetch([{ serverName: OWN, keyId: ownKey.keyId, validAt: now }, { serverName: OWN, keyId: "ed25519:nope", validAt: now }]);
    expect(client.calls).toEqual([]);
    expect(ring.cached(OWN, ownKey.keyId, now + 1000 * 24 * HOUR)).toEqual(ownKey.publicKey);
    expect(ring.cached(OWN, "ed25519:own0", T0 - HOUR - 1)).toEqual(otherKey.publicKey);
    expect(ring.cached(OWN, "ed25519:own0", T0 - HOUR)).toBeUndefined();
    expect(ring.cached(OWN, "ed25519:nope", 0)).toBeUndefined();
  });

  test("ownKeysFrom reads them from ServerKeyService, old_signing_keys included", () => {
    const config = resolveConfig({ server_name: OWN, data_dir: tempDir(), old_signing_keys: { "ed25519:own0": { key: encodeBase64(otherKey.publicKey), expired_ts: 1234 } } });
    const own = ownKeysFrom(new ServerKeyService(config, clock, ownKey));
    expect([...own.verifyKeys]).toEqual([[ownKey.keyId, ownKey.publicKey]]);
    expect([...own.oldVerifyKeys]).toEqual([["ed25519:own0", { key: otherKey.publicKey, expiredTs: 1234 }]]);
  });
});

describe("notaries", () => {
  test("asked in order when the server cannot be reached; each answer self-signed by the server", async () => {
    client.on("POST", NOTARY, "/_matrix/key/v2/query", new FederationUnreachableError(NOTARY, "down"));
    client.on("POST", NOTARY2, "/_matrix/key/v2/query", notaryAnswer(signed(remoteResponse(), NOTARY2, notaryKey)));
    const ring = keyRing({ trustedKeyServers: [{ server_name: NOTARY }, { server_name: NOTARY2 }] });
    await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: T0 + 5 }]);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toEqual(remoteKey.publicKey);
    expect(client.calls.map((c) => `${c.method} ${c.destination}`)).toEqual([`GET ${REMOTE}`, `POST ${NOTARY}`, `POST ${NOTARY2}`]);
    expect(client.calls[2]!.options).toEqual({ signed: false, body: { server_keys: { [REMOTE]: { [remoteKey.keyId]: { minimum_valid_until_ts: T0 + 5 } } } } });
    expect((await stores.serverKeys.keysOf(REMOTE))[0]?.fromServer).toBe(NOTARY2);
    // Kept as received, the notary's signature with it.
    expect(Object.keys((await ring.responsesFor(REMOTE))[0]!.signatures as JsonObject).sort()).toEqual([NOTARY2, REMOTE]);
  });

  test("not asked when the server itself answers with the key", async () => {
    client.on("GET", REMOTE, "/_matrix/key/v2/server", remoteResponse());
    client.on("POST", NOTARY, "/_matrix/key/v2/query", notaryAnswer(remoteResponse()));
    const ring = keyRing({ trustedKeyServers: [{ server_name: NOTARY }] });
    await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    expect(client.callsTo(NOTARY)).toEqual([]);
  });

  test("asked when the server answers without the key; later notaries not once it is found", async () => {
    client.on("GET", REMOTE, "/_matrix/key/v2/server", remoteResponse(T0 + HOUR, [remoteKey2]));
    client.on("POST", NOTARY, "/_matrix/key/v2/query", notaryAnswer(signed(keyResponse(REMOTE, [remoteKey2], T0 + HOUR, [{ key: remoteOldKey, expiredTs: T0 }]), REMOTE, remoteKey2)));
    client.on("POST", NOTARY2, "/_matrix/key/v2/query", notaryAnswer());
    const ring = keyRing({ trustedKeyServers: [{ server_name: NOTARY }, { server_name: NOTARY2 }] });
    await ring.fetch([{ serverName: REMOTE, keyId: remoteOldKey.keyId, validAt: T0 - 1 }]);
    expect(ring.cached(REMOTE, remoteOldKey.keyId, T0 - 1)).toEqual(remoteOldKey.publicKey);
    expect(client.callsTo(NOTARY2)).toEqual([]);
  });

  test("answers not self-signed, about other servers, or malformed are refused", async () => {
    const forged = signed(keyResponse(REMOTE, [otherKey], T0 + HOUR), NOTARY, notaryKey); // only the notary signed it
    const aboutOther = signed(keyResponse("third.example", [otherKey], T0 + HOUR), "third.example", otherKey);
    client.on("POST", NOTARY, "/_matrix/key/v2/query", notaryAnswer(forged, aboutOther, "junk" as unknown as JsonObject));
    client.on("POST", NOTARY2, "/_matrix/key/v2/query", { server_keys: "not a list" });
    const ring = keyRing({ trustedKeyServers: [{ server_name: NOTARY }, { server_name: NOTARY2 }] });
    await ring.fetch([{ serverName: REMOTE, keyId: otherKey.keyId, validAt: now }]);
    expect(ring.cached(REMOTE, otherKey.keyId, now)).toBeUndefined();
    expect(await stores.serverKeys.keysOf(REMOTE)).toEqual([]);
    expect(await stores.serverKeys.keysOf("third.example")).toEqual([]);
  });

  test("with verify_keys configured, the notary must have signed the answer with one of them", async () => {
    const trustedKeyServers = [{ server_name: NOTARY, verify_keys: { [notaryKey.keyId]: encodeBase64(notaryKey.publicKey) } }];
    let answer = notaryAnswer(remoteResponse()); // the server's signature only
    client.on("POST", NOTARY, "/_matrix/key/v2/query", () => answer);
    const ring = keyRing({ trustedKeyServers, retryAfterMs: 0 });
    const want = [{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }];
    await ring.fetch(want);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toBeUndefined();
    // Signed by the notary, but with a key not configured for it.
    answer = notaryAnswer(signed(remoteResponse(), NOTARY, key("n1", 9)));
    await ring.fetch(want);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toBeUndefined();
    // Signed by the configured key, as another server: not the notary's signature.
    answer = notaryAnswer(signed(remoteResponse(), NOTARY2, notaryKey));
    await ring.fetch(want);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toBeUndefined();
    expect(await stores.serverKeys.keysOf(REMOTE)).toEqual([]);
    answer = notaryAnswer(signed(remoteResponse(), NOTARY, notaryKey));
    await ring.fetch(want);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toEqual(remoteKey.publicKey);
    expect(client.callsTo(NOTARY)).toHaveLength(4);
  });

  test("a configured verify key that is not a key refuses every answer rather than trusting it unsigned", async () => {
    client.on("POST", NOTARY, "/_matrix/key/v2/query", notaryAnswer(signed(remoteResponse(), NOTARY, notaryKey)));
    const ring = keyRing({ trustedKeyServers: [{ server_name: NOTARY, verify_keys: { [notaryKey.keyId]: "not base64!" } }], logger: { log: () => {} } });
    await ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toBeUndefined();
  });
});

describe("load on the remote servers", () => {
  test("concurrent fetches for one server share one request", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    client.on("GET", REMOTE, "/_matrix/key/v2/server", async () => {
      await gate;
      return remoteResponse();
    });
    const ring = keyRing();
    const fetches = Array.from({ length: 5 }, () => ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]));
    await Bun.sleep(5);
    release();
    await Promise.all(fetches);
    expect(client.callsTo(REMOTE)).toHaveLength(1);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toEqual(remoteKey.publicKey);
  });

  test("concurrent notary queries and key fetches for one server share one request too", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    client.on("GET", REMOTE, "/_matrix/key/v2/server", async () => {
      await gate;
      return remoteResponse();
    });
    const ring = keyRing();
    const queries = Array.from({ length: 3 }, () => ring.notaryResponses(REMOTE));
    const fetch = ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    await Bun.sleep(5);
    release();
    for (const responses of await Promise.all(queries)) expect(responses).toEqual([remoteResponse()]);
    await fetch;
    expect(client.callsTo(REMOTE)).toHaveLength(1);
  });

  test("concurrent fetches going through the notaries share one notary request", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    client.on("POST", NOTARY, "/_matrix/key/v2/query", async () => {
      await gate;
      return notaryAnswer(remoteResponse());
    });
    const ring = keyRing({ trustedKeyServers: [{ server_name: NOTARY }] });
    const fetches = Array.from({ length: 5 }, () => ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]));
    await Bun.sleep(5);
    release();
    await Promise.all(fetches);
    expect(client.calls.map((c) => `${c.method} ${c.destination}`)).toEqual([`GET ${REMOTE}`, `POST ${NOTARY}`]);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toEqual(remoteKey.publicKey);
  });

  test("a fetch that joined another one for a different key still gets its own", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    client.on("GET", REMOTE, "/_matrix/key/v2/server", async () => {
      await gate;
      return remoteResponse(); // remoteKey only
    });
    client.on("POST", NOTARY, "/_matrix/key/v2/query", notaryAnswer(signed(keyResponse(REMOTE, [remoteKey], T0 + HOUR, [{ key: remoteOldKey, expiredTs: T0 }]), REMOTE, remoteKey)));
    const ring = keyRing({ trustedKeyServers: [{ server_name: NOTARY }] });
    const first = ring.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    await Bun.sleep(1);
    const second = ring.fetch([{ serverName: REMOTE, keyId: remoteOldKey.keyId, validAt: T0 - 1 }]);
    const third = ring.fetch([{ serverName: REMOTE, keyId: remoteOldKey.keyId, validAt: T0 - 2 }]);
    await Bun.sleep(5);
    release();
    await Promise.all([first, second, third]);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toEqual(remoteKey.publicKey);
    expect(ring.cached(REMOTE, remoteOldKey.keyId, T0 - 1)).toEqual(remoteOldKey.publicKey);
    // The two that were left wanting started one more attempt between them, not one each.
    expect(client.callsTo(NOTARY)).toHaveLength(1);
    expect(client.callsTo(REMOTE)).toHaveLength(2);
  });

  test("a server that could not be reached is not asked again for a while", async () => {
    client.on("POST", NOTARY, "/_matrix/key/v2/query", notaryAnswer());
    const ring = keyRing({ trustedKeyServers: [{ server_name: NOTARY }] });
    const want = [{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }];
    await ring.fetch(want);
    expect(client.calls).toHaveLength(2); // the server, then the notary
    for (let i = 0; i < 20; i++) await ring.fetch(want);
    now += 59_000;
    await ring.fetch(want);
    expect(client.calls).toHaveLength(2);
    now += 2_000;
    client.on("GET", REMOTE, "/_matrix/key/v2/server", remoteResponse(now + HOUR));
    await ring.fetch(want);
    expect(client.calls).toHaveLength(3);
    expect(ring.cached(REMOTE, remoteKey.keyId, now)).toEqual(remoteKey.publicKey);
    // Other servers are not held back by it.
    await ring.fetch([{ serverName: "third.example", keyId: remoteKey.keyId, validAt: now }]);
    expect(client.callsTo("third.example")).toHaveLength(1);
  });
});

describe("persistence", () => {
  test("keys survive a restart: a new key ring over the same store needs no request", async () => {
    client.on("GET", REMOTE, "/_matrix/key/v2/server", signed(keyResponse(REMOTE, [remoteKey], T0 + HOUR, [{ key: remoteOldKey, expiredTs: T0 }]), REMOTE, remoteKey));
    await keyRing().fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }]);
    const before = client.calls.length;
    const restarted = keyRing();
    // Synchronous lookups see the store only after a fetch loaded it.
    expect(restarted.cached(REMOTE, remoteKey.keyId, now)).toBeUndefined();
    await restarted.fetch([{ serverName: REMOTE, keyId: remoteKey.keyId, validAt: now }, { serverName: REMOTE, keyId: remoteOldKey.keyId, validAt: T0 - 1 }]);
    expect(client.calls.length).toBe(before);
    expect(restarted.cached(REMOTE, remoteKey.keyId, now)).toEqual(remoteKey.publicKey);
    expect(restarted.cached(REMOTE, remoteOldKey.keyId, T0 - 1)).toEqual(remoteOldKey.publicKey);
    expect(await restarted.responsesFor(REMOTE)).toHaveLength(1);
  });
});

describe("notaryResponses (this server as a notary)", () => {
  test("fetches from the server when nothing valid is held, then serves from the store", async () => {
    client.on("GET", REMOTE, "/_matrix/key/v2/server", remoteResponse(T0 + HOUR));
    const ring = keyRing({ trustedKeyServers: [{ server_name: NOTARY }] });
    expect(await ring.notaryResponses(REMOTE)).toEqual([remoteResponse(T0 + HOUR)]);
    expect(await ring.notaryResponses(REMOTE, {}, T0 + HOUR)).toEqual([remoteResponse(T0 + HOUR)]);
    expect(client.calls).toHaveLength(1);
    // Not onward to our own notaries: a notary asks the server.
    expect(client.callsTo(NOTARY)).toEqual([]);
  });

  test("refetches for a later minimum_valid_until_ts or an unknown key id; stale responses when the server is gone", async () => {
    let served: unknown = remoteResponse(T0 + HOUR);
    client.on("GET", REMOTE, "/_matrix/key/v2/server", () => served);
    const ring = keyRing({ retryAfterMs: 0 });
    await ring.notaryResponses(REMOTE);
    served = remoteResponse(T0 + 3 * HOUR);
    expect(await ring.notaryResponses(REMOTE, { [remoteKey.keyId]: { minimum_valid_until_ts: T0 + 2 * HOUR } })).toEqual([remoteResponse(T0 + 3 * HOUR)]);
    expect(client.calls).toHaveLength(2);
    served = remoteResponse(T0 + 4 * HOUR, [remoteKey, remoteKey2]);
    expect(await ring.notaryResponses(REMOTE, { [remoteKey2.keyId]: {} })).toEqual([remoteResponse(T0 + 4 * HOUR, [remoteKey, remoteKey2])]);
    expect(client.calls).toHaveLength(3);
    // Now the server is down and its response expired: the last ones held are returned.
    served = new FederationUnreachableError(REMOTE, "down");
    now = T0 + 10 * HOUR;
    const stale = await ring.notaryResponses(REMOTE);
    expect(client.calls).toHaveLength(4);
    expect(stale[0]).toEqual(remoteResponse(T0 + 4 * HOUR, [remoteKey, remoteKey2]));
  });

  test("a response is refreshed once half of its lifetime has passed, and still served if that fails", async () => {
    let served: unknown = remoteResponse(T0 + HOUR);
    client.on("GET", REMOTE, "/_matrix/key/v2/server", () => served);
    const ring = keyRing();
    await ring.notaryResponses(REMOTE);
    now = T0 + HOUR / 2 - 1;
    await ring.notaryResponses(REMOTE);
    expect(client.calls).toHaveLength(1);
    now = T0 + HOUR / 2 + 1;
    served = new FederationUnreachableError(REMOTE, "down");
    expect(await ring.notaryResponses(REMOTE)).toEqual([remoteResponse(T0 + HOUR)]);
    expect(client.calls).toHaveLength(2);
    // The failure is remembered: the next queries are answered from the store without asking.
    await ring.notaryResponses(REMOTE);
    expect(client.calls).toHaveLength(2);
    now += DEFAULT_RETRY_AFTER_MS;
    served = remoteResponse(now + HOUR);
    // The newer response replaced the older one (same key id).
    expect(await ring.notaryResponses(REMOTE)).toEqual([remoteResponse(now + HOUR)]);
    expect(client.calls).toHaveLength(3);
  });

  test("an already expired response is served when it is all the server has, and the server is asked again each time a query needs later (an error answer is no back-off)", async () => {
    const expired = remoteResponse(T0 - 24 * HOUR);
    let served: unknown = expired;
    client.on("GET", REMOTE, "/_matrix/key/v2/server", () => served);
    const ring = keyRing();
    expect(await ring.notaryResponses(REMOTE, { [remoteKey.keyId]: {} })).toEqual([expired]);
    expect(await ring.notaryResponses(REMOTE, { [remoteKey.keyId]: { minimum_valid_until_ts: T0 - 24 * HOUR + 1000 } })).toEqual([expired]);
    expect(client.calls).toHaveLength(2);
    served = new RemoteMatrixError(REMOTE, "M_UNKNOWN", "no", 400);
    expect(await ring.notaryResponses(REMOTE, { [remoteKey.keyId]: { minimum_valid_until_ts: T0 - 24 * HOUR + 1000 } })).toEqual([expired]);
    expect(client.calls).toHaveLength(3);
  });

  test("a later response without the asked key does not hide the one that has it", async () => {
    let served: unknown = remoteResponse(T0 + HOUR, [remoteKey]);
    client.on("GET", REMOTE, "/_matrix/key/v2/server", () => served);
    const ring = keyRing();
    await ring.notaryResponses(REMOTE, { [remoteKey.keyId]: {} });
    // The server now publishes only another key (a spurious answer about the first).
    served = remoteResponse(T0 + 2 * HOUR, [remoteKey2]);
    now = T0 + HOUR;
    await ring.notaryResponses(REMOTE, { [remoteKey.keyId]: { minimum_valid_until_ts: T0 + HOUR + 1 } });
    expect(client.calls).toHaveLength(2);
    // Asked again about the first key, for a validity its own response meets: that response.
    expect(await ring.notaryResponses(REMOTE, { [remoteKey.keyId]: { minimum_valid_until_ts: T0 + HOUR } })).toEqual([remoteResponse(T0 + HOUR, [remoteKey])]);
  });

  test("nothing for an unknown unreachable server, our own name, or an invalid name", async () => {
    const ring = keyRing();
    expect(await ring.notaryResponses(REMOTE)).toEqual([]);
    expect(await ring.notaryResponses(OWN)).toEqual([]);
    expect(await ring.notaryResponses("no good")).toEqual([]);
    expect(client.calls.map((c) => c.destination)).toEqual([REMOTE]);
    // Backing off: a burst of queries about a dead server costs one request.
    await ring.notaryResponses(REMOTE);
    expect(client.calls).toHaveLength(1);
  });
});
