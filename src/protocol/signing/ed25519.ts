// Ed25519 (RFC 8032), the only signing algorithm Matrix servers use (appendices, "Signing Details").
// One seam, two implementations: node:crypto for speed, @noble/ed25519 as an independent reference
// the tests hold the fast one against. Both are synchronous. A third, verification only, is
// asynchronous (OffThreadEd25519Verifier): WebCrypto checks on a thread of its own.

import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from "node:crypto";
import * as noble from "@noble/ed25519";

export const SEED_LENGTH = 32;
export const PUBLIC_KEY_LENGTH = 32;
export const SIGNATURE_LENGTH = 64;

export interface Ed25519 {
  /** Signs with a 32-byte seed (what Synapse's key file stores), returning the 64-byte signature. */
  sign(seed: Uint8Array, message: Uint8Array): Uint8Array;
  /** False for a wrong signature, and for keys or signatures of the wrong length or shape. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean;
  publicKeyFromSeed(seed: Uint8Array): Uint8Array;
}

// DER headers that wrap a raw key into PKCS#8 / SPKI, the only raw-key import node:crypto offers
// (RFC 8410: OID 1.3.101.112 = Ed25519).
const PKCS8_SEED_PREFIX = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);
const SPKI_PUBLIC_KEY_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/**
 * A bounded cache of parsed keys, since the same few server keys sign nearly every event. (Measured in
 * Bun 1.4: a KeyObject costs about 1 µs to build against about 55 µs per verify, so this saves little.)
 * Oldest-inserted entries go first when full.
 */
class KeyObjectCache {
  private readonly entries = new Map<string, KeyObject>();

  constructor(private readonly capacity: number) {}

  get(raw: Uint8Array, build: () => KeyObject): KeyObject {
    const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("latin1");
    let key = this.entries.get(id);
    if (key === undefined) {
      key = build();
      if (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value as string);
      this.entries.set(id, key);
    }
    return key;
  }
}

/** Ed25519 through node:crypto (BoringSSL in Bun), with parsed keys cached. */
export class NativeEd25519 implements Ed25519 {
  private readonly privateKeys: KeyObjectCache;
  private readonly publicKeys: KeyObjectCache;

  constructor(cacheCapacity = 1024) {
    this.privateKeys = new KeyObjectCache(cacheCapacity);
    this.publicKeys = new KeyObjectCache(cacheCapacity);
  }

  sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
    return new Uint8Array(sign(null, message, this.privateKey(seed)));
  }

  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (!passesStrictChecks(publicKey, signature)) return false;
    try {
      return verify(null, message, this.publicKey(publicKey), signature);
    } catch {
      return false; // bytes that do not decode to a curve point
    }
  }

  publicKeyFromSeed(seed: Uint8Array): Uint8Array {
    const spki = createPublicKey(this.privateKey(seed)).export({ format: "der", type: "spki" });
    return new Uint8Array(spki.subarray(SPKI_PUBLIC_KEY_PREFIX.length));
  }

  private privateKey(seed: Uint8Array): KeyObject {
    checkLength("seed", seed, SEED_LENGTH);
    return this.privateKeys.get(seed, () =>
      createPrivateKey({ key: Buffer.concat([PKCS8_SEED_PREFIX, seed]), format: "der", type: "pkcs8" }),
    );
  }

  private publicKey(publicKey: Uint8Array): KeyObject {
    return this.publicKeys.get(publicKey, () =>
      createPublicKey({ key: Buffer.concat([SPKI_PUBLIC_KEY_PREFIX, publicKey]), format: "der", type: "spki" }),
    );
  }
}

// Encodings of the 8 points of small order (the y coordinate, little-endian, sign bit ignored), plus
// the non-canonical encodings p and p+1 of y = 0 and y = 1. libsodium, which Synapse verifies with,
// refuses such public keys and such R: whoever holds such a "key" can forge any message.
const FIELD_PRIME = 2n ** 255n - 19n;
const ORDER_8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022n;
export const SMALL_ORDER_ENCODINGS: readonly Uint8Array[] = [0n, 1n, FIELD_PRIME - 1n, FIELD_PRIME, FIELD_PRIME + 1n, ORDER_8_Y, FIELD_PRIME - ORDER_8_Y].map(
  littleEndian32,
);

function littleEndian32(value: bigint): Uint8Array {
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = Number((value >> BigInt(8 * i)) & 0xffn);
  return bytes;
}

/** Whether a 32-byte point encoding names a point of order 1, 2, 4 or 8. */
export function hasSmallOrder(encoded: Uint8Array): boolean {
  return SMALL_ORDER_ENCODINGS.some((candidate) => {
    for (let i = 0; i < 31; i++) if (encoded[i] !== candidate[i]) return false;
    return (encoded[31] & 0x7f) === candidate[31];
  });
}

/** Whether the y coordinate is reduced (below p = 2^255 - 19), as RFC 8032 decoding requires. */
export function isCanonicalPoint(encoded: Uint8Array): boolean {
  if ((encoded[31] & 0x7f) !== 0x7f) return true;
  for (let i = 30; i > 0; i--) if (encoded[i] !== 0xff) return true;
  return encoded[0] < 0xed;
}

// noble's synchronous API needs a SHA-512; node:crypto's is fine for a reference too.
noble.hashes.sha512 ??= (message: Uint8Array) => new Uint8Array(createHash("sha512").update(message).digest());

/**
 * Ed25519 through @noble/ed25519: pure JavaScript, slow, independent of OpenSSL. Verification uses
 * the strict RFC 8032 rules (`zip215: false`), closer to libsodium (Synapse) and OpenSSL than ZIP-215.
 */
export class ReferenceEd25519 implements Ed25519 {
  sign(seed: Uint8Array, message: Uint8Array): Uint8Array {
    checkLength("seed", seed, SEED_LENGTH);
    return noble.sign(message, seed);
  }

  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
    if (publicKey.length !== PUBLIC_KEY_LENGTH || signature.length !== SIGNATURE_LENGTH) return false;
    try {
      return noble.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  }

  publicKeyFromSeed(seed: Uint8Array): Uint8Array {
    checkLength("seed", seed, SEED_LENGTH);
    return noble.getPublicKey(seed);
  }
}

/**
 * What BoringSSL does not refuse by itself: a key or signature of the wrong length, a non-canonical
 * key, a small-order key or R (it would accept e.g. the identity key with an all-zero S for every
 * message).
 */
function passesStrictChecks(publicKey: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== PUBLIC_KEY_LENGTH || signature.length !== SIGNATURE_LENGTH) return false;
  return isCanonicalPoint(publicKey) && !hasSmallOrder(publicKey) && !hasSmallOrder(signature.subarray(0, 32));
}

/**
 * Ed25519 verification through WebCrypto, which Bun runs on a work-queue thread: the caller's thread
 * goes on (a federation transaction's events are verified while the ones before them are stored).
 * The same strict checks as NativeEd25519 first; imported keys cached.
 */
export class OffThreadEd25519Verifier {
  private readonly keys = new Map<string, Promise<CryptoKey | undefined>>();

  constructor(private readonly cacheCapacity = 1024) {}

  async verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
    if (!passesStrictChecks(publicKey, signature)) return false;
    // Copied now: the caller may reuse its buffers while the check runs elsewhere.
    const signed = Uint8Array.from(message);
    const bytes = Uint8Array.from(signature);
    const key = await this.key(publicKey);
    if (key === undefined) return false;
    try {
      return await crypto.subtle.verify("Ed25519", key, bytes, signed);
    } catch {
      return false;
    }
  }

  private key(publicKey: Uint8Array): Promise<CryptoKey | undefined> {
    const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString("latin1");
    let key = this.keys.get(id);
    if (key === undefined) {
      // Bytes that do not decode to a curve point: no key, every signature false (not thrown).
      key = crypto.subtle.importKey("raw", Uint8Array.from(publicKey), { name: "Ed25519" }, false, ["verify"]).catch(() => undefined);
      if (this.keys.size >= this.cacheCapacity) this.keys.delete(this.keys.keys().next().value as string);
      this.keys.set(id, key);
    }
    return key;
  }
}

function checkLength(what: string, bytes: Uint8Array, expected: number): void {
  if (bytes.length !== expected) throw new RangeError(`an ed25519 ${what} is ${expected} bytes, got ${bytes.length}`);
}

export const nativeEd25519: Ed25519 = new NativeEd25519();
export const referenceEd25519: Ed25519 = new ReferenceEd25519();
export const offThreadEd25519 = new OffThreadEd25519Verifier();
