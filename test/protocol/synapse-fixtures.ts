// Loads the Synapse 1.67.0 vectors in test/fixtures/synapse (see its README.md) with our own lossless
// parser: the room v1-v5 files hold floats whose exact text is hashed and signed.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseJson } from "../../src/protocol/canonical-json";
import { decodeBase64 } from "../../src/protocol/base64";
import type { JsonObject } from "../../src/protocol/json";

const DIR = join(import.meta.dir, "../fixtures/synapse");

// Fixture files are JSON of known shape; tests index into them freely.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Fixture = any;

export function loadFixture(name: string): Fixture {
  return parseJson(readFileSync(join(DIR, name), "utf8"), { lossless: true });
}

export interface ServerKey {
  serverName: string;
  keyId: string;
  publicKey: Uint8Array;
  seed: Uint8Array;
  signingKeyFileLine: string;
}

export function serverKeys(): { hs1: ServerKey; hs2: ServerKey } {
  const keys = loadFixture("keys.json").servers;
  const toKey = (k: Fixture): ServerKey => ({
    serverName: k.server_name,
    keyId: k.key_id,
    publicKey: decodeBase64(k.public_key),
    seed: decodeBase64(k.private_seed),
    signingKeyFileLine: k.signing_key_file_line,
  });
  return { hs1: toKey(keys.hs1), hs2: toKey(keys.hs2) };
}

/** A fixture event record: the stored PDU and the values Synapse derived from it. */
export interface EventRecord {
  event_id: string;
  label: string;
  pdu: JsonObject;
  derived: {
    content_hash_sha256: string;
    content_hash_input_canonical: string;
    content_hash_matches_pdu: boolean;
    reference_hash_sha256: string;
    reference_hash_input_canonical: string;
    event_id: string;
    event_id_matches: boolean;
    signatures_verified: { [server: string]: { [keyId: string]: boolean } };
  };
}
