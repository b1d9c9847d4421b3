// Signed end-to-end encryption keys for tests, made the way clients make them: ed25519 key pairs,
// device keys self-signed by the device's key, cross-signing keys signed by the master key, all
// with the protocol's signJson (canonical JSON without signatures and unsigned).
import { randomBytes } from "node:crypto";
import { encodeBase64 } from "../../src/protocol/base64";
import type { JsonObject } from "../../src/protocol/json";
import { nativeEd25519 } from "../../src/protocol/signing/ed25519";
import { signJson } from "../../src/protocol/signing/sign-json";

export interface KeyPair {
  readonly seed: Uint8Array;
  /** Unpadded base64 public key. */
  readonly publicKey: string;
}

export function keyPair(): KeyPair {
  const seed = new Uint8Array(randomBytes(32));
  return { seed, publicKey: encodeBase64(nativeEd25519.publicKeyFromSeed(seed)) };
}

/** Adds `signer`'s signature with `key` (filed under ed25519:<keyName>, the public key by default). */
export function sign<T extends JsonObject>(object: T, signer: string, key: KeyPair, keyName = key.publicKey): T {
  return signJson(object, signer, `ed25519:${keyName}`, key.seed) as T;
}

/** A device's identity keys, signed by its own ed25519 key. */
export function deviceKeys(userId: string, deviceId: string, key: KeyPair = keyPair()): { keys: JsonObject; key: KeyPair } {
  const unsigned: JsonObject = {
    user_id: userId,
    device_id: deviceId,
    algorithms: ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
    keys: { [`curve25519:${deviceId}`]: encodeBase64(randomBytes(32)), [`ed25519:${deviceId}`]: key.publicKey },
  };
  return { keys: sign(unsigned, userId, key, deviceId), key };
}

/** A cross-signing key of `usage`, signed by `signedBy` (the master key) when given. */
export function crossSigningKey(userId: string, usage: "master" | "self_signing" | "user_signing", key: KeyPair, signedBy?: KeyPair): JsonObject {
  const unsigned: JsonObject = { user_id: userId, usage: [usage], keys: { [`ed25519:${key.publicKey}`]: key.publicKey } };
  return signedBy ? sign(unsigned, userId, signedBy) : unsigned;
}

/** `n` signed_curve25519 one-time keys signed by the device key, keyed `signed_curve25519:<prefix><i>`. */
export function oneTimeKeys(userId: string, deviceId: string, key: KeyPair, n: number, prefix = "K", extra: JsonObject = {}): Record<string, JsonObject> {
  const out: Record<string, JsonObject> = {};
  for (let i = 0; i < n; i++) out[`signed_curve25519:${prefix}${i}`] = sign({ key: encodeBase64(randomBytes(32)), ...extra }, userId, key, deviceId);
  return out;
}
