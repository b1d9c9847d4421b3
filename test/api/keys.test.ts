import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../src/app";
import { verifyServerKeyResponse } from "../../src/services/keys/remote-keys";
import { encodeCanonicalJson } from "../../src/protocol/canonical-json";
import { request, testServer } from "../helpers/server";

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
