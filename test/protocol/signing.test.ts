import { describe, expect, test } from "bun:test";
import { decodeBase64, encodeBase64 } from "../../src/protocol/base64";
import { encodeCanonicalJson } from "../../src/protocol/canonical-json";
import { LosslessNumber, type JsonObject } from "../../src/protocol/json";
import { nativeEd25519, referenceEd25519 } from "../../src/protocol/signing/ed25519";
import {
  formatKeyId,
  formatSigningKeyLine,
  parseKeyId,
  parseSigningKeyFile,
  SigningKeyError,
  signingKeyFromSeed,
} from "../../src/protocol/signing/keys";
import { signingInput, signJson, verifyJsonSignature } from "../../src/protocol/signing/sign-json";
import { loadFixture, serverKeys, type Fixture } from "./synapse-fixtures";

const fixture = loadFixture("signing.json");
const { hs1, hs2 } = serverKeys();

describe("signJson / verifyJsonSignature: Synapse vectors (signing.json)", () => {
  test("the fixture signs with hs1's key", () => {
    expect(fixture.server_name).toBe(hs1.serverName);
    expect(fixture.key_id).toBe(hs1.keyId);
    expect(fixture.public_key).toBe(encodeBase64(hs1.publicKey));
  });

  for (const c of fixture.cases as Fixture[]) {
    describe(c.name, () => {
      test("signing input is the canonical JSON without signatures and unsigned", () => {
        expect(new TextDecoder().decode(signingInput(c.input))).toBe(c.signing_input_canonical);
      });

      test("the signature and the signed object equal signedjson's", () => {
        for (const ed of [nativeEd25519, referenceEd25519]) {
          const signed = signJson(c.input, hs1.serverName, hs1.keyId, hs1.seed, { ed25519: ed });
          expect(signed.signatures[hs1.serverName][hs1.keyId]).toBe(c.signature);
          expect(signed).toEqual(c.signed);
        }
      });

      test("does not modify its input", () => {
        const before = JSON.stringify(c.input);
        signJson(c.input, hs1.serverName, hs1.keyId, hs1.seed);
        expect(JSON.stringify(c.input)).toBe(before);
      });

      test("the signed object verifies", () => {
        expect(c.verify_signed.valid).toBe(true);
        expect(verifyJsonSignature(c.signed, hs1.serverName, hs1.keyId, hs1.publicKey)).toEqual({ valid: true });
      });

      for (const t of c.tampered as Fixture[]) {
        test(`tampered (${t.change}): valid = ${t.verify.valid}`, () => {
          for (const ed of [nativeEd25519, referenceEd25519]) {
            const verdict = verifyJsonSignature(t.object, hs1.serverName, hs1.keyId, hs1.publicKey, { ed25519: ed });
            expect(verdict.valid).toBe(t.verify.valid);
            if (!verdict.valid) {
              // Same failure class as signedjson: a missing signature vs a forged one.
              const expected = t.verify.error.startsWith("Missing signature") ? "no-signature-with-key" : "bad-signature";
              expect(verdict.problem).toBe(expected);
              if (expected === "no-signature-with-key") expect(verdict.reason).toBe(t.verify.error);
            }
          }
        });
      }
    });
  }
});

describe("the spec appendix signing key", () => {
  const appendix = fixture.spec_appendix_key;
  const seed = decodeBase64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1");

  test("derives the published public key", () => {
    expect(encodeBase64(nativeEd25519.publicKeyFromSeed(seed))).toBe(appendix.public_key);
    expect(encodeBase64(referenceEd25519.publicKeyFromSeed(seed))).toBe(appendix.public_key);
  });

  for (const c of appendix.cases as Fixture[]) {
    test(`signs ${c.signing_input_canonical} as the spec shows`, () => {
      const signed = signJson(c.input, "domain", "ed25519:1", seed);
      expect(signed).toEqual(c.signed);
      expect(verifyJsonSignature(signed, "domain", "ed25519:1", decodeBase64(appendix.public_key)).valid).toBe(true);
    });
  }

  test("the signatures printed in the spec text", () => {
    expect(signJson({}, "domain", "ed25519:1", seed).signatures.domain["ed25519:1"]).toBe(
      "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ",
    );
    expect(signJson({ one: 1, two: "Two" }, "domain", "ed25519:1", seed).signatures.domain["ed25519:1"]).toBe(
      "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw",
    );
  });
});

describe("key server responses (keys.json)", () => {
  const responses = loadFixture("keys.json").key_server_responses;
  for (const [alias, key] of [["hs1", hs1], ["hs2", hs2]] as const) {
    test(`${alias}'s /_matrix/key/v2/server is self-signed`, () => {
      const response: JsonObject = responses[alias].response;
      expect(responses[alias].self_signature_verified).toBe(true);
      expect(verifyJsonSignature(response, key.serverName, key.keyId, key.publicKey).valid).toBe(true);
      // Re-signing the body reproduces the published signature (ed25519 is deterministic).
      const { signatures: _signatures, ...body } = response;
      expect(signJson(body, key.serverName, key.keyId, key.seed).signatures).toEqual(response.signatures as never);
    });
  }
});

describe("verifyJsonSignature failure reasons", () => {
  const signed = signJson({ a: 1 }, hs1.serverName, hs1.keyId, hs1.seed);
  const verdict = (object: JsonObject, keyId = hs1.keyId, publicKey = hs1.publicKey, server = hs1.serverName) =>
    verifyJsonSignature(object, server, keyId, publicKey);
  const problem = (v: ReturnType<typeof verdict>) => (v.valid ? "valid" : v.problem);

  test("each failure names its cause", () => {
    expect(problem(verdict({ a: 1 }))).toBe("no-signature-from-server");
    expect(problem(verdict(signed, hs1.keyId, hs1.publicKey, hs2.serverName))).toBe("no-signature-from-server");
    expect(problem(verdict(signed, "ed25519:other"))).toBe("no-signature-with-key");
    expect(problem(verdict(signed, "curve25519:a_df2c61"))).toBe("unsupported-algorithm");
    expect(problem(verdict(signed, hs1.keyId, hs2.publicKey))).toBe("bad-signature");
    expect(problem(verdict(signed, hs1.keyId, hs1.publicKey.subarray(1)))).toBe("malformed-key");
    const withSignature = (signature: unknown) => ({ ...signed, signatures: { [hs1.serverName]: { [hs1.keyId]: signature } } }) as JsonObject;
    expect(problem(verdict(withSignature("not base64!")))).toBe("malformed-signature");
    expect(problem(verdict(withSignature("AAAA")))).toBe("malformed-signature");
    expect(problem(verdict(withSignature(42)))).toBe("malformed-signature");
    expect(problem(verdict({ ...signed, f: 1.5 }))).toBe("not-canonical-json");
  });

  test("inherited members are not signatures", () => {
    expect(problem(verdict(signed, hs1.keyId, hs1.publicKey, "__proto__"))).toBe("no-signature-from-server");
    expect(problem(verdict(signed, hs1.keyId, hs1.publicKey, "constructor"))).toBe("no-signature-from-server");
  });

  test("a padded signature is accepted, as the appendix asks of base64 decoders", () => {
    const signature = signed.signatures[hs1.serverName][hs1.keyId];
    const padded = { ...signed, signatures: { [hs1.serverName]: { [hs1.keyId]: `${signature}==` } } };
    expect(verdict(padded).valid).toBe(true);
  });

  test("unsigned and other servers' signatures are outside what is signed", () => {
    const extended = { ...signed, unsigned: { age: 5 }, signatures: { ...signed.signatures, "other.example": { "ed25519:x": "AAAA" } } };
    expect(verdict(extended).valid).toBe(true);
  });

  test("signJson keeps existing signatures and replaces its own key's", () => {
    const twice = signJson(signJson({ a: 1 }, hs2.serverName, hs2.keyId, hs2.seed), hs1.serverName, hs1.keyId, hs1.seed);
    expect(Object.keys(twice.signatures)).toEqual([hs2.serverName, hs1.serverName]);
    expect(verdict(twice).valid).toBe(true);
    expect(verifyJsonSignature(twice, hs2.serverName, hs2.keyId, hs2.publicKey).valid).toBe(true);
    const again = signJson(twice, hs1.serverName, hs1.keyId, hs1.seed);
    expect(again.signatures).toEqual(twice.signatures);
  });

  test("signing refuses a non-ed25519 key ID and non-canonical values", () => {
    expect(() => signJson({}, hs1.serverName, "rsa:1", hs1.seed)).toThrow(RangeError);
    expect(() => signJson({ f: 0.5 }, hs1.serverName, hs1.keyId, hs1.seed)).toThrow("float");
  });

  test("non-strict signing covers floats as Python writes them", () => {
    const value = { f: new LosslessNumber("1.0") };
    expect(new TextDecoder().decode(signingInput(value, { strict: false }))).toBe('{"f":1.0}');
    const signed = signJson(value, hs1.serverName, hs1.keyId, hs1.seed, { strict: false });
    expect(verifyJsonSignature(signed, hs1.serverName, hs1.keyId, hs1.publicKey, { strict: false }).valid).toBe(true);
    expect(encodeCanonicalJson(signed.signatures)).toContain(hs1.keyId);
  });
});

describe("signing keys", () => {
  test("Synapse key-file lines parse to the fixture keys and format back identically", () => {
    for (const key of [hs1, hs2]) {
      const [parsed] = parseSigningKeyFile(`${key.signingKeyFileLine}\n`);
      expect(parsed.keyId).toBe(key.keyId);
      expect(parsed.seed).toEqual(key.seed);
      expect(parsed.publicKey).toEqual(key.publicKey);
      expect(formatSigningKeyLine(parsed)).toBe(key.signingKeyFileLine);
    }
  });

  test("a key file may hold several keys", () => {
    const keys = parseSigningKeyFile(`${hs1.signingKeyFileLine}\r\n\n  ${hs2.signingKeyFileLine}  \n`);
    expect(keys.map((k) => k.keyId)).toEqual([hs1.keyId, hs2.keyId]);
  });

  test("bad key files are refused with the line number", () => {
    const bad = ["ed25519 a_1", "rsa a_1 " + encodeBase64(hs1.seed), "ed25519 a-1 " + encodeBase64(hs1.seed), "ed25519 a_1 !!!", "ed25519 a_1 AAAA"];
    for (const line of bad) {
      expect(() => parseSigningKeyFile(`${hs1.signingKeyFileLine}\n${line}`)).toThrow(SigningKeyError);
      expect(() => parseSigningKeyFile(`${hs1.signingKeyFileLine}\n${line}`)).toThrow("line 2");
    }
  });

  test("key IDs", () => {
    expect(formatKeyId("ed25519", "a_df2c61")).toBe("ed25519:a_df2c61");
    expect(parseKeyId("ed25519:a_df2c61")).toEqual({ algorithm: "ed25519", version: "a_df2c61" });
    expect(parseKeyId("ed25519")).toBeUndefined();
    expect(parseKeyId(":x")).toBeUndefined();
    const key = signingKeyFromSeed("a_df2c61", hs1.seed);
    expect(key.keyId).toBe(hs1.keyId);
    expect(key.publicKey).toEqual(hs1.publicKey);
    expect(() => signingKeyFromSeed("bad version", hs1.seed)).toThrow(SigningKeyError);
  });
});
