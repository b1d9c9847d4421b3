// Signing JSON (content/appendices.md, "Signing Details" and "Checking for a Signature"): ed25519 over
// the canonical JSON of the object without `signatures` and `unsigned`, filed as
// signatures[serverName][keyId] = unpadded base64. Other servers' signatures and `unsigned` survive.

import { Base64Error, decodeBase64, encodeBase64 } from "../base64";
import { canonicalJsonBytes, CanonicalJsonError } from "../canonical-json";
import { isJsonObject, ownMember, type JsonObject } from "../json";
import { nativeEd25519, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH, type Ed25519 } from "./ed25519";
import { ED25519, parseKeyId } from "./keys";

/** signatures[serverName][keyId] = unpadded base64 signature. */
export type Signatures = { [serverName: string]: { [keyId: string]: string } };

export interface SigningOptions {
  /** Canonical JSON number rules: true (default) except for events of room versions 1-5. */
  readonly strict?: boolean;
  readonly ed25519?: Ed25519;
}

export type SignatureProblem =
  | "no-signature-from-server" // signatures[serverName] is absent
  | "no-signature-with-key" // signatures[serverName][keyId] is absent
  | "unsupported-algorithm" // the key ID's algorithm is not ed25519
  | "malformed-signature" // not a string, not base64, or not 64 bytes
  | "malformed-key" // the verify key is not 32 bytes
  | "not-canonical-json" // the object cannot be encoded (e.g. a float in strict mode)
  | "bad-signature"; // the signature does not match: the object was changed or forged

export type SignatureVerdict = { readonly valid: true } | { readonly valid: false; readonly problem: SignatureProblem; readonly reason: string };

const VALID: SignatureVerdict = { valid: true };
const invalid = (problem: SignatureProblem, reason: string): SignatureVerdict => ({ valid: false, problem, reason });

/** The bytes a signature covers: canonical JSON of the object minus `signatures` and `unsigned`. */
export function signingInput(object: JsonObject, options: SigningOptions = {}): Uint8Array {
  const { signatures: _signatures, unsigned: _unsigned, ...signed } = object;
  return canonicalJsonBytes(signed, { strict: options.strict ?? true });
}

/** A copy of `object` carrying one more signature. Throws CanonicalJsonError if it cannot be encoded. */
export function signJson<T extends JsonObject>(
  object: T,
  serverName: string,
  keyId: string,
  seed: Uint8Array,
  options: SigningOptions = {},
): T & { signatures: Signatures } {
  if (parseKeyId(keyId)?.algorithm !== ED25519) throw new RangeError(`cannot sign with key ID ${JSON.stringify(keyId)}: not ed25519`);
  const ed25519 = options.ed25519 ?? nativeEd25519;
  const signature = encodeBase64(ed25519.sign(seed, signingInput(object, options)));
  return { ...object, signatures: withSignature(object.signatures, serverName, keyId, signature) };
}

/** Merges one signature into a signatures object without touching the original. */
export function withSignature(existing: unknown, serverName: string, keyId: string, signature: string): Signatures {
  if (existing !== undefined && !isJsonObject(existing)) throw new TypeError("`signatures` is not an object");
  const fromServer = ownMember(existing, serverName);
  if (fromServer !== undefined && !isJsonObject(fromServer)) throw new TypeError(`signatures of ${serverName} are not an object`);
  return { ...(existing ?? {}), [serverName]: { ...(fromServer ?? {}), [keyId]: signature } } as Signatures;
}

/** Checks that `serverName` signed `object` with the key `keyId`, whose public key is given. */
export function verifyJsonSignature(
  object: JsonObject,
  serverName: string,
  keyId: string,
  publicKey: Uint8Array,
  options: SigningOptions = {},
): SignatureVerdict {
  const signature = findSignature(object, serverName, keyId);
  if (typeof signature !== "string") return signature;
  let input: Uint8Array;
  try {
    input = signingInput(object, options);
  } catch (error) {
    if (error instanceof CanonicalJsonError) return invalid("not-canonical-json", `Cannot verify: ${error.message}`);
    throw error;
  }
  return checkSignature(input, signature, serverName, keyId, publicKey, options.ed25519 ?? nativeEd25519);
}

/** The base64 signature filed under serverName/keyId, or why there is none. */
export function findSignature(object: JsonObject, serverName: string, keyId: string): string | SignatureVerdict {
  const fromServer = ownMember(object.signatures, serverName);
  if (!isJsonObject(fromServer)) return invalid("no-signature-from-server", `No signature from ${serverName}`);
  if (parseKeyId(keyId)?.algorithm !== ED25519) return invalid("unsupported-algorithm", `Unsupported signing key algorithm in ${keyId}`);
  const signature = ownMember(fromServer, keyId);
  if (signature === undefined) return invalid("no-signature-with-key", `Missing signature for ${serverName}, ${keyId}`);
  if (typeof signature !== "string") return invalid("malformed-signature", `Signature for ${serverName}, ${keyId} is not a string`);
  return signature;
}

/** Verifies one base64 signature over already-encoded signing input. */
export function checkSignature(
  input: Uint8Array,
  signature: string,
  serverName: string,
  keyId: string,
  publicKey: Uint8Array,
  ed25519: Ed25519 = nativeEd25519,
): SignatureVerdict {
  if (publicKey.length !== PUBLIC_KEY_LENGTH) return invalid("malformed-key", `Verify key ${keyId} of ${serverName} is not ${PUBLIC_KEY_LENGTH} bytes`);
  let signatureBytes: Uint8Array;
  try {
    signatureBytes = decodeBase64(signature);
  } catch (error) {
    if (error instanceof Base64Error) return invalid("malformed-signature", `Signature for ${serverName}, ${keyId} is not base64`);
    throw error;
  }
  if (signatureBytes.length !== SIGNATURE_LENGTH) {
    return invalid("malformed-signature", `Signature for ${serverName}, ${keyId} is not ${SIGNATURE_LENGTH} bytes`);
  }
  if (!ed25519.verify(publicKey, input, signatureBytes)) {
    return invalid("bad-signature", `Unable to verify signature for ${serverName}: signature was forged or corrupt`);
  }
  return VALID;
}
