import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import * as noble from "@noble/ed25519";
import {
  hasSmallOrder,
  isCanonicalPoint,
  NativeEd25519,
  nativeEd25519,
  offThreadEd25519,
  referenceEd25519,
  SMALL_ORDER_ENCODINGS,
  type Ed25519,
} from "../../src/protocol/signing/ed25519";

const fromHex = (hex: string) => Uint8Array.from(Buffer.from(hex, "hex"));
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");
const random = (length: number) => new Uint8Array(randomBytes(length));

/** The same signature with S + L in place of S: a non-canonical encoding of the same scalar (malleability). */
function withSPlusL(signature: Uint8Array): Uint8Array {
  const L = (1n << 252n) + 27742317777372353535851937790883648493n;
  let s = 0n;
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(signature[32 + i]!);
  s += L;
  const malleated = Uint8Array.from(signature);
  for (let i = 0; i < 32; i++, s >>= 8n) malleated[32 + i] = Number(s & 0xffn);
  return malleated;
}

const implementations: [string, Ed25519][] = [
  ["native", nativeEd25519],
  ["reference", referenceEd25519],
];

// RFC 8032 section 7.1, TEST 1-3.
const RFC_8032 = [
  {
    seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature:
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature:
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    message: "af82",
    signature:
      "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
];

describe.each(implementations)("%s Ed25519", (_name, ed) => {
  test("RFC 8032 vectors: public key, signature, verification", () => {
    for (const vector of RFC_8032) {
      const seed = fromHex(vector.seed);
      const message = fromHex(vector.message);
      expect(toHex(ed.publicKeyFromSeed(seed))).toBe(vector.publicKey);
      expect(toHex(ed.sign(seed, message))).toBe(vector.signature);
      expect(ed.verify(fromHex(vector.publicKey), message, fromHex(vector.signature))).toBe(true);
    }
  });

  test("refuses keys and signatures of the wrong length", () => {
    const seed = random(32);
    const message = random(10);
    const signature = ed.sign(seed, message);
    const publicKey = ed.publicKeyFromSeed(seed);
    expect(ed.verify(publicKey.subarray(0, 31), message, signature)).toBe(false);
    expect(ed.verify(publicKey, message, signature.subarray(0, 63))).toBe(false);
    expect(ed.verify(new Uint8Array(33), message, signature)).toBe(false);
    expect(() => ed.sign(random(31), message)).toThrow(RangeError);
    expect(() => ed.publicKeyFromSeed(random(64))).toThrow(RangeError);
  });

  test("refuses small-order public keys and R, whatever the message", () => {
    const message = random(16);
    for (const encoding of SMALL_ORDER_ENCODINGS) {
      for (const signBit of [0, 0x80]) {
        const point = Uint8Array.from(encoding);
        point[31] |= signBit;
        const zeroS = new Uint8Array(64);
        zeroS.set(point, 0);
        expect(ed.verify(point, message, zeroS)).toBe(false);
        expect(ed.verify(point, message, new Uint8Array(64))).toBe(false);
      }
    }
  });

  test("refuses a non-canonical S (S + L)", () => {
    const seed = random(32);
    const message = random(20);
    const signature = ed.sign(seed, message);
    expect(ed.verify(ed.publicKeyFromSeed(seed), message, withSPlusL(signature))).toBe(false);
  });
});

describe("native and reference Ed25519 agree", () => {
  test("on 200 random keys and messages: same keys, same signatures, each verifies the other", () => {
    for (let i = 0; i < 200; i++) {
      const seed = random(32);
      const message = random(i % 7 === 0 ? 0 : 1 + (i * 37) % 500);
      const publicKey = nativeEd25519.publicKeyFromSeed(seed);
      expect(referenceEd25519.publicKeyFromSeed(seed)).toEqual(publicKey);
      const signature = nativeEd25519.sign(seed, message);
      expect(referenceEd25519.sign(seed, message)).toEqual(signature);
      expect(nativeEd25519.verify(publicKey, message, signature)).toBe(true);
      expect(referenceEd25519.verify(publicKey, message, signature)).toBe(true);
    }
  });

  test("both reject tampered messages, signatures and keys", () => {
    for (let i = 0; i < 50; i++) {
      const seed = random(32);
      const message = random(1 + i);
      const publicKey = nativeEd25519.publicKeyFromSeed(seed);
      const signature = nativeEd25519.sign(seed, message);
      const flippedMessage = Uint8Array.from(message);
      flippedMessage[i % message.length] ^= 1 << i % 8;
      const flippedSignature = Uint8Array.from(signature);
      flippedSignature[i % 64] ^= 1 << i % 8;
      const otherKey = nativeEd25519.publicKeyFromSeed(random(32));
      for (const [, ed] of implementations) {
        expect(ed.verify(publicKey, flippedMessage, signature)).toBe(false);
        expect(ed.verify(publicKey, message, flippedSignature)).toBe(false);
        expect(ed.verify(otherKey, message, signature)).toBe(false);
      }
    }
  });

  test("both say false (not throw) for 32 bytes that are not a curve point", () => {
    const message = random(8);
    let offCurve = 0;
    for (let i = 0; offCurve < 5 && i < 100; i++) {
      const candidate = random(32);
      let isPoint = true;
      try {
        noble.Point.fromBytes(candidate);
      } catch {
        isPoint = false;
      }
      if (isPoint) continue;
      offCurve++;
      for (const [, ed] of implementations) expect(ed.verify(candidate, message, random(64))).toBe(false);
    }
    expect(offCurve).toBe(5);
  });
});

describe("small-order blocklist", () => {
  test("the canonical entries are exactly the 8 torsion points", () => {
    const canonical = SMALL_ORDER_ENCODINGS.filter(isCanonicalPoint);
    expect(canonical.length).toBe(5);
    const points = new Set<string>();
    for (const encoding of canonical) {
      for (const signBit of [0, 0x80]) {
        const bytes = Uint8Array.from(encoding);
        bytes[31] |= signBit;
        try {
          const point = noble.Point.fromBytes(bytes);
          expect(point.isSmallOrder()).toBe(true);
          points.add(point.toHex());
        } catch {
          // x = 0 with the sign bit set does not decode; its point is counted through the other bit.
        }
      }
    }
    expect(points.size).toBe(8);
  });

  test("the non-canonical entries are p and p + 1", () => {
    const nonCanonical = SMALL_ORDER_ENCODINGS.filter((e) => !isCanonicalPoint(e)).map(toHex);
    expect(nonCanonical).toEqual([
      "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
      "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    ]);
  });

  test("ordinary public keys are not on it", () => {
    for (let i = 0; i < 50; i++) expect(hasSmallOrder(nativeEd25519.publicKeyFromSeed(random(32)))).toBe(false);
  });
});

describe("native key cache", () => {
  test("stays correct past its capacity", () => {
    const ed = new NativeEd25519(3);
    const seeds = Array.from({ length: 8 }, () => random(32));
    for (let round = 0; round < 2; round++) {
      for (const seed of seeds) {
        const message = random(12);
        const publicKey = ed.publicKeyFromSeed(seed);
        expect(publicKey).toEqual(referenceEd25519.publicKeyFromSeed(seed));
        expect(ed.verify(publicKey, message, ed.sign(seed, message))).toBe(true);
      }
    }
  });

  test("a reused seed buffer changed in place gets a fresh key", () => {
    const ed = new NativeEd25519();
    const seed = random(32);
    const first = ed.publicKeyFromSeed(seed);
    seed[0] ^= 0xff;
    expect(ed.publicKeyFromSeed(seed)).not.toEqual(first);
    expect(ed.publicKeyFromSeed(seed)).toEqual(referenceEd25519.publicKeyFromSeed(seed));
  });
});

describe("the off-thread (WebCrypto) verifier agrees with the reference", () => {
  const agree = async (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) => {
    const expected = referenceEd25519.verify(publicKey, message, signature);
    expect(await offThreadEd25519.verify(publicKey, message, signature)).toBe(expected);
    return expected;
  };

  test("RFC 8032 vectors, and 100 random keys and messages with tampered copies", async () => {
    for (const vector of RFC_8032) expect(await agree(fromHex(vector.publicKey), fromHex(vector.message), fromHex(vector.signature))).toBe(true);
    for (let i = 0; i < 100; i++) {
      const seed = random(32);
      const message = random(1 + ((i * 53) % 700));
      const publicKey = referenceEd25519.publicKeyFromSeed(seed);
      const signature = referenceEd25519.sign(seed, message);
      expect(await agree(publicKey, message, signature)).toBe(true);
      const flipped = Uint8Array.from(signature);
      flipped[i % 64] ^= 1 << i % 8;
      expect(await agree(publicKey, message, flipped)).toBe(false);
      const other = Uint8Array.from(message);
      other[i % other.length] ^= 1;
      expect(await agree(publicKey, other, signature)).toBe(false);
    }
  });

  test("refuses wrong lengths, small-order keys and R, a non-canonical S, and off-curve keys (false, not thrown)", async () => {
    const seed = random(32);
    const message = random(20);
    const publicKey = referenceEd25519.publicKeyFromSeed(seed);
    const signature = referenceEd25519.sign(seed, message);
    expect(await agree(publicKey.subarray(0, 31), message, signature)).toBe(false);
    expect(await agree(publicKey, message, signature.subarray(0, 63))).toBe(false);
    for (const encoding of SMALL_ORDER_ENCODINGS) {
      const zeroS = new Uint8Array(64);
      zeroS.set(encoding, 0);
      expect(await agree(Uint8Array.from(encoding), message, zeroS)).toBe(false);
    }
    expect(await agree(publicKey, message, withSPlusL(signature))).toBe(false);
    let offCurve = 0;
    for (let i = 0; offCurve < 5 && i < 100; i++) {
      const candidate = random(32);
      try {
        noble.Point.fromBytes(candidate);
        continue;
      } catch {
        offCurve++;
      }
      expect(await agree(candidate, message, random(64))).toBe(false);
    }
    expect(offCurve).toBe(5);
  });

  test("the caller may reuse its buffers as soon as the call returns", async () => {
    const seed = random(32);
    const message = random(64);
    const signature = referenceEd25519.sign(seed, message);
    const pending = offThreadEd25519.verify(referenceEd25519.publicKeyFromSeed(seed), message, signature);
    message.fill(0);
    signature.fill(0);
    expect(await pending).toBe(true);
  });
});
