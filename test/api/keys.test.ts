import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../src/app";
import { verifyServerKeyResponse } from "../../src/services/keys/remote-keys";
import { encodeCanonicalJson } from "../../src/protocol/canonical-json";
import { verifyJsonSignature } from "../../src/protocol/signing/sign-json";
import type { JsonObject } from "../../src/protocol/json";
import { FederationKeyRing, ownKeysFrom } from "../../src/services/federation/key-ring";
import { FederationUnreachableError, type FederationClient } from "../../src/services/federation/contracts";
import { keyQueryRoutes } from "../../src/api/keys/key-query";
import { createHttpApp } from "../../src/api/middleware/http";
import { Tokens, resolve } from "../../src/di/tokens";
import type { Stores } from "../../src/storage/open";
import { testStores } from "../helpers/databases";
import { expectMatchesSpec } from "../helpers/openapi";
import { request, silentLogger, testServer } from "../helpers/server";

let a: PortierServer;
let b: PortierServer;
const now = 1_800_000_000_000;
beforeAll(async () => {
  a = await testServer(
    { server_name: "a.example", old_signing_keys: { "ed25519:old1": { key: "Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw", expired_ts: 1_600_000_000_000 } } },
    { clock: { now: () => now } },
  );
  b = await testServer({ server_name: "b.example" });
});
afterAll(async () => {
  await a.stop();
  await b.stop();
});

describe("GET /_matrix/key/v2/server", () => {
  test("is signed by the key it publishes, as checked by a second instance", async () => {
    const r = await request(a, "GET", "/_matrix/key/v2/server");
    expect(r.status).toBe(200);
    expect(r.body.server_name).toBe("a.example");
    expect(r.body.valid_until_ts).toBe(now + a.config.key_valid_for_ms);
    expect(r.body.old_verify_keys).toEqual({ "ed25519:old1": { key: "Noi6WqcDj0QmPxCNQqgezwTlBKrfqehY1u2FyWP9uYw", expired_ts: 1_600_000_000_000 } });
    // b fetches a's keys through a's own HTTP app, as it would over federation.
    const fetched = await a.app.handle(new Request("http://a.example/_matrix/key/v2/server"));
    const check = verifyServerKeyResponse(await fetched.json(), "a.example");
    expect(check.ok).toBe(true);
    if (check.ok) expect([...check.keys.verifyKeys.keys()]).toEqual(Object.keys(r.body.verify_keys));
  });

  test("a tampered or misattributed response fails verification", async () => {
    const good = (await request(a, "GET", "/_matrix/key/v2/server")).body;
    expect(verifyServerKeyResponse({ ...good, valid_until_ts: good.valid_until_ts + 1 }, "a.example").ok).toBe(false);
    expect(verifyServerKeyResponse(good, "b.example").ok).toBe(false);
    const bKeys = (await request(b, "GET", "/_matrix/key/v2/server")).body;
    // a's body carrying b's signatures: no signature from a.example.
    expect(verifyServerKeyResponse({ ...good, signatures: bKeys.signatures }, "a.example").ok).toBe(false);
    expect(verifyServerKeyResponse("nope", "a.example").ok).toBe(false);
  });

  test("is canonical-JSON-encodable and shaped as the spec says", async () => {
    const body = (await request(a, "GET", "/_matrix/key/v2/server")).body;
    expect(() => encodeCanonicalJson(body)).not.toThrow();
    const keyId = Object.keys(body.verify_keys)[0];
    expect(keyId).toMatch(/^ed25519:[a-zA-Z0-9_]+$/);
    expect(body.verify_keys[keyId].key).toMatch(/^[A-Za-z0-9+/]{43}$/);
    expect(Object.keys(body.signatures)).toEqual(["a.example"]);
  });
});

describe("/_matrix/key/v2/query", () => {
  test("answers for our own server, signed", async () => {
    const r = await request(a, "POST", "/_matrix/key/v2/query", { server_keys: { "a.example": {}, "elsewhere.example": { "ed25519:x": {} } } });
    expect(r.status).toBe(200);
    expect(r.body.server_keys).toHaveLength(1);
    expect(verifyServerKeyResponse(r.body.server_keys[0], "a.example").ok).toBe(true);
    const g = await request(a, "GET", "/_matrix/key/v2/query/a.example");
    expect(g.body.server_keys).toHaveLength(1);
  });

  test("no servers asked: an empty list", async () => {
    expect((await request(a, "POST", "/_matrix/key/v2/query", { server_keys: {} })).body).toEqual({ server_keys: [] });
  });
});

// This server as a notary for other servers' keys: the key query routes mounted on their own with a
// key ring whose federation client reaches the "remote" Portier (b.example) in process.
describe("/_matrix/key/v2/query as a notary", () => {
  let notary: ReturnType<typeof notaryApp>;
  let stores: Stores;
  let bReachable: boolean;
  let calls: string[];
  let clockNow: number;

  function notaryApp(ring: FederationKeyRing) {
    return createHttpApp({ maxBodyBytes: a.config.max_request_body_bytes, logger: silentLogger }).use(keyQueryRoutes(resolve(a.container, Tokens.ServerKeys), "a.example", ring));
  }

  const client: FederationClient = {
    async request(method, destination, path, options) {
      calls.push(`${method} ${destination} ${path}`);
      if (destination !== "b.example" || !bReachable || method !== "GET" || path !== "/_matrix/key/v2/server" || options?.signed !== false) {
        throw new FederationUnreachableError(destination, "connection refused");
      }
      return (await b.app.handle(new Request("http://b.example/_matrix/key/v2/server"))).json();
    },
  };

  async function ask(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const init: RequestInit = { method };
    if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
    const response = await notary.handle(new Request(`http://a.example${path}`, init));
    return { status: response.status, body: await response.json() };
  }

  /** a's public key, from a's own /_matrix/key/v2/server. */
  async function aKey(): Promise<{ keyId: string; key: Uint8Array }> {
    const check = verifyServerKeyResponse((await request(a, "GET", "/_matrix/key/v2/server")).body, "a.example");
    if (!check.ok) throw new Error(check.reason);
    const [keyId, key] = [...check.keys.verifyKeys][0]!;
    return { keyId, key };
  }

  beforeEach(async () => {
    stores = await testStores();
    bReachable = true;
    calls = [];
    clockNow = Date.now();
    const keys = resolve(a.container, Tokens.ServerKeys);
    notary = notaryApp(new FederationKeyRing({
      store: stores.serverKeys,
      client,
      clock: { now: () => clockNow },
      ownServerName: "a.example",
      ownKeys: ownKeysFrom(keys),
      trustedKeyServers: [],
    }));
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("POST: another server's keys as it signed them, plus the notary's signature", async () => {
    const r = await ask("POST", "/_matrix/key/v2/query", { server_keys: { "b.example": {}, "a.example": {} } });
    expect(r.status).toBe(200);
    expectMatchesSpec({ api: "key-server", method: "POST", path: "/_matrix/key/v2/query", status: 200, body: r.body });
    const forB = r.body.server_keys.find((k: JsonObject) => k.server_name === "b.example");
    expect(verifyServerKeyResponse(forB, "b.example").ok).toBe(true);
    const { keyId, key } = await aKey();
    expect(verifyJsonSignature(forB, "a.example", keyId, key).valid).toBe(true);
    expect(Object.keys(forB.signatures).sort()).toEqual(["a.example", "b.example"]);
    // Our own keys are answered too, signed once.
    const forA = r.body.server_keys.find((k: JsonObject) => k.server_name === "a.example");
    expect(verifyServerKeyResponse(forA, "a.example").ok).toBe(true);
    expect(calls).toEqual(["GET b.example /_matrix/key/v2/server"]);
  });

  test("GET: the same, then from the store while still valid", async () => {
    const first = await ask("GET", "/_matrix/key/v2/query/b.example");
    expect(first.status).toBe(200);
    expectMatchesSpec({ api: "key-server", method: "GET", path: "/_matrix/key/v2/query/b.example", status: 200, body: first.body });
    expect(first.body.server_keys).toHaveLength(1);
    const { keyId, key } = await aKey();
    expect(verifyJsonSignature(first.body.server_keys[0], "a.example", keyId, key).valid).toBe(true);
    expect(verifyServerKeyResponse(first.body.server_keys[0], "b.example").ok).toBe(true);
    const again = await ask("GET", "/_matrix/key/v2/query/b.example");
    expect(again.body).toEqual(first.body);
    expect(calls).toHaveLength(1);
    // A minimum beyond what is held makes the notary ask again.
    const validUntil = first.body.server_keys[0].valid_until_ts as number;
    await ask("GET", `/_matrix/key/v2/query/b.example?minimum_valid_until_ts=${validUntil + 1}`);
    expect(calls).toHaveLength(2);
  });

  test("GET naming a key ID (the older form): the same answer as without it", async () => {
    const plain = await ask("GET", "/_matrix/key/v2/query/b.example");
    const keyId = Object.keys(plain.body.server_keys[0].verify_keys)[0]!;
    const named = await ask("GET", `/_matrix/key/v2/query/b.example/${encodeURIComponent(keyId)}`);
    expect(named).toEqual(plain);
    expect((await ask("GET", `/_matrix/key/v2/query/${encodeURIComponent("bad name")}/${encodeURIComponent(keyId)}`)).body.errcode).toBe("M_INVALID_PARAM");
  });

  test("a server that cannot be reached: left out when nothing is held, its last response when one is", async () => {
    bReachable = false;
    expect((await ask("POST", "/_matrix/key/v2/query", { server_keys: { "b.example": {} } })).body).toEqual({ server_keys: [] });
    expect((await ask("GET", "/_matrix/key/v2/query/nowhere.example")).body).toEqual({ server_keys: [] });
    bReachable = true;
    clockNow += 120_000; // past the back-off
    const held = (await ask("GET", "/_matrix/key/v2/query/b.example")).body.server_keys[0];
    bReachable = false;
    clockNow = held.valid_until_ts + 1;
    const stale = await ask("POST", "/_matrix/key/v2/query", { server_keys: { "b.example": { [Object.keys(held.verify_keys)[0]!]: {} } } });
    expect(stale.body.server_keys).toEqual([held]);
  });

  test("invalid server names are skipped in POST and refused in GET; nothing is requested for them", async () => {
    const r = await ask("POST", "/_matrix/key/v2/query", { server_keys: { "bad name": {}, "": {}, "b.example:99999": {} } });
    expect(r).toEqual({ status: 200, body: { server_keys: [] } });
    const g = await ask("GET", `/_matrix/key/v2/query/${encodeURIComponent("bad name")}`);
    expect(g.status).toBe(400);
    expect(g.body.errcode).toBe("M_INVALID_PARAM");
    expect(calls).toEqual([]);
  });

  test("bad input is a 400 naming the problem, never a 500", async () => {
    const bad: [unknown, string][] = [
      [{ server_keys: [] }, "M_BAD_JSON"],
      [{ server_keys: "b.example" }, "M_BAD_JSON"],
      [{ server_keys: { "b.example": [] } }, "M_BAD_JSON"],
      [{ server_keys: { "b.example": { "ed25519:x": "soon" } } }, "M_BAD_JSON"],
      [{ server_keys: { "b.example": { "ed25519:x": { minimum_valid_until_ts: "1" } } } }, "M_BAD_JSON"],
      [{ server_keys: { "b.example": { "ed25519:x": { minimum_valid_until_ts: 1.5 } } } }, "M_BAD_JSON"],
      [{}, "M_MISSING_PARAM"],
      [[], "M_BAD_JSON"],
      ["{not json", "M_NOT_JSON"],
    ];
    for (const [body, errcode] of bad) {
      const r = await ask("POST", "/_matrix/key/v2/query", body);
      expect({ body, status: r.status, errcode: r.body.errcode }).toEqual({ body, status: 400, errcode });
    }
    for (const query of ["abc", "1.5", "", "99999999999999999999"]) {
      const r = await ask("GET", `/_matrix/key/v2/query/b.example?minimum_valid_until_ts=${query}`);
      expect({ query, status: r.status, errcode: r.body.errcode }).toEqual({ query, status: 400, errcode: "M_INVALID_PARAM" });
    }
    expect(calls).toEqual([]);
  });
});
