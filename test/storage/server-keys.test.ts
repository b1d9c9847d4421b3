// The server_keys store, on every engine of this run (both SQLite drivers, and PostgreSQL where a
// server can be started).
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, testStores } from "../helpers/databases";
import type { Stores } from "../../src/storage/open";
import type { ServerKeyRecord } from "../../src/storage/tables/server-keys";

const REMOTE = "remote.example";

function record(overrides: Partial<ServerKeyRecord> = {}): ServerKeyRecord {
  return {
    serverName: REMOTE,
    keyId: "ed25519:a",
    verifyKey: "Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw",
    validUntilTs: 2000,
    expiredTs: undefined,
    responseValidUntilTs: 2000,
    fetchedTs: 1000,
    fromServer: REMOTE,
    keyJson: JSON.stringify({ server_name: REMOTE, valid_until_ts: 2000, "é": "ü" }),
    ...overrides,
  };
}

describe.each(testDatabases.map((d) => [d.name] as const))("server keys on %s", (name) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = await testStores(name);
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("stores current and old keys per server and key id, the response text kept as received", async () => {
    const json = '{"server_name":"remote.example","valid_until_ts":2000,"z":1,"a":"\\u00e9 ü"}';
    await stores.serverKeys.storeKeys([
      record({ keyId: "ed25519:b", keyJson: json }),
      record({ keyId: "ed25519:a", validUntilTs: undefined, expiredTs: 500, keyJson: json }),
    ]);
    await stores.serverKeys.storeKeys([record({ serverName: "other.example", keyId: "ed25519:b", fromServer: "notary.example" })]);
    const keys = await stores.serverKeys.keysOf(REMOTE);
    expect(keys).toEqual([
      record({ keyId: "ed25519:a", validUntilTs: undefined, expiredTs: 500, keyJson: json }),
      record({ keyId: "ed25519:b", keyJson: json }),
    ]);
    expect((await stores.serverKeys.keysOf("other.example"))[0]?.fromServer).toBe("notary.example");
    expect(await stores.serverKeys.keysOf("nobody.example")).toEqual([]);
    // Byte for byte: key order, escapes and non-ASCII as given.
    expect(await stores.serverKeys.responsesOf(REMOTE)).toEqual([json]);
  });

  test("a later response replaces a key; an earlier one does not", async () => {
    const first = record({ keyJson: '{"n":1}' });
    await stores.serverKeys.storeKeys([first]);
    const later = record({ validUntilTs: undefined, expiredTs: 2500, responseValidUntilTs: 3000, fetchedTs: 1500, keyJson: '{"n":2}' });
    await stores.serverKeys.storeKeys([later]);
    expect(await stores.serverKeys.keysOf(REMOTE)).toEqual([later]);
    // A stale answer (say, a notary's old cache) arriving afterwards is ignored.
    await stores.serverKeys.storeKeys([record({ responseValidUntilTs: 2500, validUntilTs: 2500, fetchedTs: 1600, fromServer: "notary.example", keyJson: '{"n":3}' })]);
    expect(await stores.serverKeys.keysOf(REMOTE)).toEqual([later]);
    // The same validity again (a refetch of the same response) replaces it.
    const again = { ...later, fetchedTs: 1700 };
    await stores.serverKeys.storeKeys([again]);
    expect(await stores.serverKeys.keysOf(REMOTE)).toEqual([again]);
  });

  test("responsesOf lists distinct responses, latest first, filtered by a minimum valid_until_ts", async () => {
    await stores.serverKeys.storeKeys([
      record({ keyId: "ed25519:a", responseValidUntilTs: 1000, validUntilTs: 1000, keyJson: '{"r":"old"}' }),
      record({ keyId: "ed25519:b", responseValidUntilTs: 5000, validUntilTs: 5000, keyJson: '{"r":"new"}' }),
      record({ keyId: "ed25519:c", responseValidUntilTs: 5000, validUntilTs: undefined, expiredTs: 10, keyJson: '{"r":"new"}' }),
    ]);
    expect(await stores.serverKeys.responsesOf(REMOTE)).toEqual(['{"r":"new"}', '{"r":"old"}']);
    expect(await stores.serverKeys.responsesOf(REMOTE, 5000)).toEqual(['{"r":"new"}']);
    expect(await stores.serverKeys.responsesOf(REMOTE, 999)).toEqual(['{"r":"new"}', '{"r":"old"}']);
    expect(await stores.serverKeys.responsesOf(REMOTE, 5001)).toEqual([]);
    expect(await stores.serverKeys.responsesOf("other.example")).toEqual([]);
  });

  test("large timestamps come back as numbers", async () => {
    const big = 9_000_000_000_000;
    await stores.serverKeys.storeKeys([record({ validUntilTs: big, responseValidUntilTs: big, fetchedTs: big - 1 })]);
    const [key] = await stores.serverKeys.keysOf(REMOTE);
    expect(key?.validUntilTs).toBe(big);
    expect(key?.responseValidUntilTs).toBe(big);
    expect(key?.fetchedTs).toBe(big - 1);
  });

  test("a key must be either current or old, and a failed batch writes nothing", async () => {
    await expect(stores.serverKeys.storeKeys([record({ keyId: "ed25519:ok" }), record({ keyId: "ed25519:bad", expiredTs: 5 })])).rejects.toThrow(RangeError);
    await expect(stores.serverKeys.storeKeys([record({ validUntilTs: undefined })])).rejects.toThrow(RangeError);
    expect(await stores.serverKeys.keysOf(REMOTE)).toEqual([]);
    // The table refuses it too, whoever writes.
    await expect(stores.db.run(
      "INSERT INTO server_keys (server_name, key_id, verify_key, valid_until_ts, expired_ts, response_valid_until_ts, fetched_ts, from_server, key_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      REMOTE, "ed25519:x", "k", 1, 2, 1, 1, REMOTE, "{}",
    )).rejects.toThrow();
  });
});
