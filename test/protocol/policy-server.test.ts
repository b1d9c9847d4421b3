// Policy server signatures (server-server-api "Policy Servers"): which m.room.policy contents are
// valid, which events need the signature, and that it is made and checked over the redacted event
// with the key of the room's state event, independently checked with the reference Ed25519.
import { describe, expect, test } from "bun:test";
import { encodeBase64 } from "../../src/protocol/base64";
import { hasValidPolicySignature, needsPolicySignature, policyServerConfig, policySignature, POLICY_SERVER_KEY_ID, withPolicySignature } from "../../src/protocol/policy-server";
import { roomVersion } from "../../src/protocol/room-versions";
import { referenceEd25519 } from "../../src/protocol/signing/ed25519";
import { signingKeyFromSeed } from "../../src/protocol/signing/keys";
import type { JsonObject } from "../../src/protocol/json";

const v10 = roomVersion("10")!;
const key = signingKeyFromSeed("ps", new Uint8Array(32).fill(7));
const other = signingKeyFromSeed("ps", new Uint8Array(32).fill(9));
const config = policyServerConfig({ via: "policy.example", public_keys: { ed25519: encodeBase64(key.publicKey) } })!;

const event: JsonObject = {
  room_id: "!room:origin.example",
  sender: "@alice:origin.example",
  type: "m.room.message",
  content: { msgtype: "m.text", body: "hello" },
  origin_server_ts: 1_700_000_000_000,
  depth: 5,
  prev_events: ["$prev"],
  auth_events: ["$create", "$pl", "$member"],
  hashes: { sha256: "abc" },
  signatures: { "origin.example": { "ed25519:a": "sig" } },
  unsigned: { age: 1 },
};

describe("m.room.policy content", () => {
  test("valid with a string via and a 32-byte base64 ed25519 key", () => {
    expect(config).toMatchObject({ via: "policy.example", publicKeyBase64: encodeBase64(key.publicKey) });
  });

  test.each([
    ["no content", undefined],
    ["empty (a policy server switched off)", {}],
    ["no via", { public_keys: { ed25519: encodeBase64(key.publicKey) } }],
    ["via not a string", { via: 5, public_keys: { ed25519: encodeBase64(key.publicKey) } }],
    ["no public_keys", { via: "policy.example" }],
    ["public_keys without ed25519", { via: "policy.example", public_keys: { curve25519: "x" } }],
    ["ed25519 not base64", { via: "policy.example", public_keys: { ed25519: "!!!" } }],
    ["ed25519 not 32 bytes", { via: "policy.example", public_keys: { ed25519: encodeBase64(new Uint8Array(16)) } }],
  ])("invalid: %s", (_name, content) => {
    expect(policyServerConfig(content)).toBeUndefined();
  });
});

describe("which events need the policy server's signature", () => {
  test("all but the m.room.policy state event with an empty state key", () => {
    expect(needsPolicySignature({ type: "m.room.policy", state_key: "" })).toBe(false);
    expect(needsPolicySignature({ type: "m.room.policy", state_key: "x" })).toBe(true);
    expect(needsPolicySignature({ type: "m.room.policy" })).toBe(true);
    expect(needsPolicySignature({ type: "m.room.member", state_key: "@a:b" })).toBe(true);
    expect(needsPolicySignature({ type: "m.room.message" })).toBe(true);
  });
});

describe("signing and checking", () => {
  const signature = policySignature(event, v10, "policy.example", key.seed)["policy.example"]![POLICY_SERVER_KEY_ID]!;
  const signed = withPolicySignature(event, "policy.example", signature);

  test("the signature sits beside the origin's, under ed25519:policy_server, and verifies (native and reference Ed25519)", () => {
    expect((signed.signatures as Record<string, unknown>)["origin.example"]).toEqual({ "ed25519:a": "sig" });
    expect(hasValidPolicySignature(signed, v10, config)).toBe(true);
    expect(hasValidPolicySignature(signed, v10, config, referenceEd25519)).toBe(true);
  });

  test("it covers the redacted event: unsigned and the content a redaction drops may change, the kept fields may not", () => {
    expect(hasValidPolicySignature({ ...signed, unsigned: { age: 99 } }, v10, config)).toBe(true);
    expect(hasValidPolicySignature({ ...signed, depth: 6 }, v10, config)).toBe(false);
    // A message's content is redacted away: its integrity is the content hash's job, not this signature's.
    expect(hasValidPolicySignature({ ...signed, content: { body: "changed" } }, v10, config)).toBe(true);
    expect(hasValidPolicySignature({ ...signed, hashes: { sha256: "abd" } }, v10, config)).toBe(false);
  });

  test("another key, another server name, or no signature: not valid", () => {
    const byOther = withPolicySignature(event, "policy.example", policySignature(event, v10, "policy.example", other.seed)["policy.example"]![POLICY_SERVER_KEY_ID]!);
    expect(hasValidPolicySignature(byOther, v10, config)).toBe(false);
    expect(hasValidPolicySignature(withPolicySignature(event, "elsewhere.example", signature), v10, config)).toBe(false);
    expect(hasValidPolicySignature(event, v10, config)).toBe(false);
    expect(hasValidPolicySignature(withPolicySignature(event, "policy.example", "not base64!"), v10, config)).toBe(false);
  });
});
