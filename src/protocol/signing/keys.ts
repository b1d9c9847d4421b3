// Signing keys and key IDs (appendices, "Signing Details"; server-server-api, "Publishing Keys").
// A key ID is "<algorithm>:<version>", e.g. "ed25519:a_df2c61". The on-disk form is Synapse's key
// file, one key per line: "ed25519 <version> <unpadded base64 seed>", so keys move between servers.

import { Base64Error, decodeBase64, encodeBase64 } from "../base64";
import { nativeEd25519, SEED_LENGTH, type Ed25519 } from "./ed25519";

export const ED25519 = "ed25519";

/** The version part of a key ID: the spec allows `[a-zA-Z0-9_]` only. */
const KEY_VERSION = /^[a-zA-Z0-9_]+$/;

export interface SigningKey {
  readonly algorithm: typeof ED25519;
  readonly version: string;
  /** "ed25519:<version>" */
  readonly keyId: string;
  /** The 32-byte Ed25519 seed. */
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
}

export class SigningKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SigningKeyError";
  }
}

export function isValidKeyVersion(version: string): boolean {
  return KEY_VERSION.test(version);
}

/** "ed25519" + "a_df2c61" -> "ed25519:a_df2c61". */
export function formatKeyId(algorithm: string, version: string): string {
  return `${algorithm}:${version}`;
}

/** Splits a key ID at its first colon; undefined when there is none. */
export function parseKeyId(keyId: string): { algorithm: string; version: string } | undefined {
  const colon = keyId.indexOf(":");
  if (colon <= 0) return undefined;
  return { algorithm: keyId.slice(0, colon), version: keyId.slice(colon + 1) };
}

/** The full key for a seed; the seed comes from the caller (randomness is injected). */
export function signingKeyFromSeed(version: string, seed: Uint8Array, ed25519: Ed25519 = nativeEd25519): SigningKey {
  if (!isValidKeyVersion(version)) throw new SigningKeyError(`key version must match [a-zA-Z0-9_]+: ${JSON.stringify(version)}`);
  if (seed.length !== SEED_LENGTH) throw new SigningKeyError(`an ed25519 seed is ${SEED_LENGTH} bytes, got ${seed.length}`);
  return {
    algorithm: ED25519,
    version,
    keyId: formatKeyId(ED25519, version),
    seed,
    publicKey: ed25519.publicKeyFromSeed(seed),
  };
}

/** One key-file line: "ed25519 <version> <seed>". */
export function formatSigningKeyLine(key: Pick<SigningKey, "algorithm" | "version" | "seed">): string {
  return `${key.algorithm} ${key.version} ${encodeBase64(key.seed)}`;
}

/** Every key in a key file (blank lines ignored), in file order. */
export function parseSigningKeyFile(text: string, ed25519: Ed25519 = nativeEd25519): SigningKey[] {
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0);
  return lines.map((line, index) => parseSigningKeyLine(line, index + 1, ed25519));
}

function parseSigningKeyLine(line: string, lineNumber: number, ed25519: Ed25519): SigningKey {
  const fields = line.split(/\s+/);
  if (fields.length !== 3) throw new SigningKeyError(`line ${lineNumber}: expected "ed25519 <version> <seed>"`);
  const [algorithm, version, seedText] = fields;
  if (algorithm !== ED25519) throw new SigningKeyError(`line ${lineNumber}: unsupported algorithm ${JSON.stringify(algorithm)}`);
  let seed: Uint8Array;
  try {
    seed = decodeBase64(seedText);
  } catch (error) {
    if (error instanceof Base64Error) throw new SigningKeyError(`line ${lineNumber}: seed is not base64`);
    throw error;
  }
  try {
    return signingKeyFromSeed(version, seed, ed25519);
  } catch (error) {
    if (error instanceof SigningKeyError) throw new SigningKeyError(`line ${lineNumber}: ${error.message}`);
    throw error;
  }
}
