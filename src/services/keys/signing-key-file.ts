// The server's signing key on disk, in Synapse's key-file format (parsed by protocol/signing/keys),
// so a key can move between Portier and Synapse. Generated once on first start, then reused.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { randomBytes } from "node:crypto";
import { formatSigningKeyLine, parseSigningKeyFile, signingKeyFromSeed, type SigningKey } from "../../protocol/signing/keys";

export function generateSigningKey(): SigningKey {
  // "a_" + 4 random characters, the shape Synapse gives its key versions.
  const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const version = "a_" + [...randomBytes(4)].map((b) => alphabet[b % alphabet.length]).join("");
  return signingKeyFromSeed(version, new Uint8Array(randomBytes(32)));
}

/** Reads the first key of the key file, creating the file (mode 0600) with a new key when absent. */
export function loadOrCreateSigningKey(path: string): { key: SigningKey; created: boolean } {
  if (existsSync(path)) {
    const [key] = parseSigningKeyFile(readFileSync(path, "utf8"));
    if (!key) throw new Error(`${path}: the signing key file holds no key`);
    return { key, created: false };
  }
  const key = generateSigningKey();
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, formatSigningKeyLine(key) + "\n", { mode: 0o600, flag: "wx" });
  chmodSync(path, 0o600);
  return { key, created: true };
}
