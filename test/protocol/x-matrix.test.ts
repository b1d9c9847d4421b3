import { describe, expect, test } from "bun:test";
import * as noble from "@noble/ed25519";
import { decodeBase64 } from "../../src/protocol/base64";
import { canonicalJsonBytes, LosslessNumber } from "../../src/protocol/canonical-json";
import type { JsonObject } from "../../src/protocol/json";
import { signingKeyFromSeed } from "../../src/protocol/signing/keys";
import { signJson } from "../../src/protocol/signing/sign-json";
import {
  formatXMatrix,
  parseXMatrix,
  requestSigningJson,
  signRequest,
  verifyRequest,
  type RequestSigner,
} from "../../src/protocol/x-matrix";

const SPEC_HEADER =
  'X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF..."';

const key = signingKeyFromSeed("a_1", Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 3));
const otherKey = signingKeyFromSeed("a_1", Uint8Array.from({ length: 32 }, (_, i) => 255 - i));

function signerFor(serverName: string, signingKey = key): RequestSigner {
  return {
    keyId: signingKey.keyId,
    sign: <T extends JsonObject>(object: T, options?: { strict?: boolean }) => signJson(object, serverName, signingKey.keyId, signingKey.seed, options) as T,
  };
}

describe("requestSigningJson", () => {
  test("holds method, uri, origin and destination, and content only when there is a body", () => {
    expect(requestSigningJson({ method: "GET", uri: "/_matrix/federation/v1/version", origin: "a.example", destination: "b.example" })).toEqual({
      method: "GET",
      uri: "/_matrix/federation/v1/version",
      origin: "a.example",
      destination: "b.example",
    });
    const put = requestSigningJson({ method: "PUT", uri: "/_matrix/federation/v1/send/1", origin: "a.example", destination: "b.example", content: { pdus: [] } });
    expect(put.content).toEqual({ pdus: [] });
    expect(Object.keys(put).sort()).toEqual(["content", "destination", "method", "origin", "uri"]);
  });

  test("keeps the uri exactly as given, query included", () => {
    const uri = "/_matrix/federation/v1/make_join/!r%3Aa.example/%40u%3Ab.example?ver=10&ver=11";
    expect(requestSigningJson({ method: "GET", uri, origin: "b.example", destination: "a.example" }).uri).toBe(uri);
  });
});

describe("formatXMatrix", () => {
  test("writes the spec's example header", () => {
    expect(formatXMatrix({ origin: "origin.hs.example.com", destination: "destination.hs.example.com", key: "ed25519:key1", sig: "ABCDEF..." })).toBe(SPEC_HEADER);
  });

  test("escapes quotes and backslashes so that parsing gives the values back", () => {
    const params = { origin: 'we"ird\\name', destination: "b.example:8448", key: "ed25519:k", sig: "x/y+z" };
    const header = formatXMatrix(params);
    expect(header).toContain('origin="we\\"ird\\\\name"');
    expect(parseXMatrix(header)).toEqual(params);
  });
});

describe("parseXMatrix", () => {
  test("reads the spec's example header", () => {
    expect(parseXMatrix(SPEC_HEADER)).toEqual({ origin: "origin.hs.example.com", destination: "destination.hs.example.com", key: "ed25519:key1", sig: "ABCDEF..." });
  });

  test("scheme and parameter names are case-insensitive, order does not matter", () => {
    expect(parseXMatrix('x-matrix SIG="s",Key="ed25519:k",ORIGIN="o.example",Destination="d.example"')).toEqual({
      origin: "o.example",
      destination: "d.example",
      key: "ed25519:k",
      sig: "s",
    });
  });

  test("spaces and tabs around commas and '=', several spaces after the scheme, empty list elements", () => {
    expect(parseXMatrix('X-Matrix   origin = "o.example" ,\tkey="ed25519:k" , , sig=\t"s" ,')).toEqual({ origin: "o.example", key: "ed25519:k", sig: "s" });
  });

  test("token values without quotes, colons allowed for older servers", () => {
    expect(parseXMatrix("X-Matrix origin=o.example:8448,destination=d.example,key=ed25519:abc_1,sig=AbC+9")).toEqual({
      origin: "o.example:8448",
      destination: "d.example",
      key: "ed25519:abc_1",
      sig: "AbC+9",
    });
  });

  test("backslash escapes in quoted values are undone", () => {
    expect(parseXMatrix('X-Matrix origin="o\\.exa\\"mple",key="ed25519:\\k",sig="a\\\\b"')).toEqual({ origin: 'o.exa"mple', key: "ed25519:k", sig: "a\\b" });
  });

  test("a header without destination (older servers) parses without one", () => {
    const parsed = parseXMatrix('X-Matrix origin="o.example",key="ed25519:k",sig="s"');
    expect(parsed).toEqual({ origin: "o.example", key: "ed25519:k", sig: "s" });
    expect(parsed !== undefined && "destination" in parsed).toBe(false);
  });

  test("unknown parameters are ignored", () => {
    expect(parseXMatrix('X-Matrix origin="o.example",future="x, y",key="ed25519:k",n=1,sig="s"')).toEqual({ origin: "o.example", key: "ed25519:k", sig: "s" });
  });

  test.each([
    ["another scheme", 'Bearer origin="o",key="k",sig="s"'],
    ["a scheme that only starts like X-Matrix", 'X-Matrixx origin="o",key="k",sig="s"'],
    ["no parameters", "X-Matrix"],
    ["only whitespace after the scheme", "X-Matrix   "],
    ["the empty string", ""],
    ["no origin", 'X-Matrix key="ed25519:k",sig="s"'],
    ["no key", 'X-Matrix origin="o",sig="s"'],
    ["no sig", 'X-Matrix origin="o",key="ed25519:k"'],
    ["an empty sig", 'X-Matrix origin="o",key="ed25519:k",sig=""'],
    ["an unterminated quote", 'X-Matrix origin="o,key="ed25519:k",sig="s'],
    ["a trailing backslash in a quote", 'X-Matrix origin="o",key="ed25519:k",sig="s\\'],
    ["a control character in a quote", 'X-Matrix origin="o\u0001",key="ed25519:k",sig="s"'],
    ["a parameter named twice", 'X-Matrix origin="o",origin="p",key="ed25519:k",sig="s"'],
    ["a parameter without '='", 'X-Matrix origin="o",key,sig="s"'],
    ["text after a value", 'X-Matrix origin="o" x,key="ed25519:k",sig="s"'],
    ["a '/' in an unquoted value (not a token)", "X-Matrix origin=o,key=ed25519:k,sig=ab/cd"],
    ["no separator between parameters", 'X-Matrix origin="o"key="ed25519:k",sig="s"'],
  ])("malformed: %s", (_label, header) => {
    expect(parseXMatrix(header)).toBeUndefined();
  });
});

describe("signRequest / verifyRequest", () => {
  const base = {
    method: "PUT",
    uri: "/_matrix/federation/v1/send/txn1?a=1&b=%20",
    origin: "origin.example",
    destination: "dest.example:8448",
    content: { pdus: [], edus: [{ edu_type: "m.typing", content: { typing: true } }] } as JsonObject,
  };

  test("a signed request verifies against the origin's public key", () => {
    const header = signRequest(base, signerFor("origin.example"));
    const parsed = parseXMatrix(header)!;
    expect(parsed).toMatchObject({ origin: "origin.example", destination: "dest.example:8448", key: "ed25519:a_1" });
    expect(verifyRequest({ header: parsed, method: base.method, uri: base.uri, serverName: "dest.example:8448", content: base.content, publicKey: key.publicKey })).toEqual({
      valid: true,
    });
  });

  test("the signature is plain ed25519 over the canonical JSON (checked with @noble/ed25519)", () => {
    const parsed = parseXMatrix(signRequest(base, signerFor("origin.example")))!;
    const message = canonicalJsonBytes(requestSigningJson(base));
    expect(noble.verify(decodeBase64(parsed.sig), message, key.publicKey)).toBe(true);
    expect(noble.verify(decodeBase64(parsed.sig), canonicalJsonBytes(requestSigningJson({ ...base, method: "POST" })), key.publicKey)).toBe(false);
  });

  test("any change to method, uri, body, origin or destination, or another key, fails", () => {
    const parsed = parseXMatrix(signRequest(base, signerFor("origin.example")))!;
    const check = (changes: Partial<Parameters<typeof verifyRequest>[0]>) =>
      verifyRequest({ header: parsed, method: base.method, uri: base.uri, serverName: base.destination, content: base.content, publicKey: key.publicKey, ...changes }).valid;
    expect(check({})).toBe(true);
    expect(check({ method: "POST" })).toBe(false);
    expect(check({ uri: "/_matrix/federation/v1/send/txn1?a=1&b=+" })).toBe(false);
    expect(check({ uri: "/_matrix/federation/v1/send/txn1" })).toBe(false);
    expect(check({ content: { pdus: [], edus: [] } })).toBe(false);
    expect(check({ content: undefined })).toBe(false);
    expect(check({ header: { ...parsed, origin: "evil.example" } })).toBe(false);
    expect(check({ publicKey: otherKey.publicKey })).toBe(false);
    expect(check({ header: { ...parsed, sig: parsed.sig.slice(1) } })).toBe(false);
  });

  test("a header naming another destination is refused with a reason", () => {
    const parsed = parseXMatrix(signRequest(base, signerFor("origin.example")))!;
    const verdict = verifyRequest({ header: parsed, method: base.method, uri: base.uri, serverName: "other.example", content: base.content, publicKey: key.publicKey });
    expect(verdict.valid).toBe(false);
    expect(verdict.valid ? "" : verdict.reason).toContain("dest.example:8448");
  });

  test("a header without destination is checked as signed for us", () => {
    const { destination: _omit, ...withoutDestination } = parseXMatrix(signRequest(base, signerFor("origin.example")))!;
    const input = { header: withoutDestination, method: base.method, uri: base.uri, content: base.content, publicKey: key.publicKey };
    expect(verifyRequest({ ...input, serverName: "dest.example:8448" }).valid).toBe(true);
    expect(verifyRequest({ ...input, serverName: "dest.example" }).valid).toBe(false);
  });

  test("a GET without a body signs no content", () => {
    const get = { method: "GET", uri: "/_matrix/federation/v1/query/profile?user_id=%40u%3Ao.example", origin: "o.example", destination: "d.example" };
    const parsed = parseXMatrix(signRequest(get, signerFor("o.example")))!;
    const input = { header: parsed, method: "GET", uri: get.uri, serverName: "d.example", publicKey: key.publicKey };
    expect(verifyRequest(input).valid).toBe(true);
    expect(verifyRequest({ ...input, content: {} }).valid).toBe(false);
  });

  test("bodies of room versions 1-5 with floats are signed and checked as Synapse writes them", () => {
    const content = { pdus: [{ content: { weight: new LosslessNumber("1.0") } }] } as unknown as JsonObject;
    const input = { ...base, content };
    const parsed = parseXMatrix(signRequest(input, signerFor("origin.example")))!;
    expect(verifyRequest({ header: parsed, method: base.method, uri: base.uri, serverName: base.destination, content, publicKey: key.publicKey }).valid).toBe(true);
    const message = canonicalJsonBytes(requestSigningJson(input), { strict: false });
    expect(new TextDecoder().decode(message)).toContain('"weight":1.0');
    expect(noble.verify(decodeBase64(parsed.sig), message, key.publicKey)).toBe(true);
  });

  test("a signer that does not sign as the origin is an error", () => {
    expect(() => signRequest(base, signerFor("someone-else.example"))).toThrow("did not sign as origin.example");
  });
});
