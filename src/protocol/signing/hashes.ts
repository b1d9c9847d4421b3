// Content hash and reference hash of a PDU (server-server-api.md, "Calculating the content hash for an
// event", "Calculating the reference hash for an event"). Both are SHA-256 over canonical JSON, with
// the number rules of the room version (floats and big integers hashed as Synapse did in v1-v5).

import { createHash } from "node:crypto";
import { Base64Error, decodeBase64, encodeBase64 } from "../base64";
import { canonicalJsonBytes, CanonicalJsonError, encodeCanonicalJson } from "../canonical-json";
import { isJsonObject, type JsonObject } from "../json";
import type { RoomVersion } from "../room-versions";
import { redactEvent } from "./redaction";

/**
 * Removed before the content hash. The spec names `unsigned`, `signatures` and `hashes`; Synapse also
 * removes `age_ts`, `outlier` and `destinations` (old internal fields). None of them is kept by
 * redaction, so none is signed either way; matching Synapse avoids pruning events it considers intact.
 */
const CONTENT_HASH_EXCLUDED_KEYS = new Set(["unsigned", "signatures", "hashes", "age_ts", "outlier", "destinations"]);

export function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(bytes).digest());
}

const canonicalOptions = (version: RoomVersion) => ({ strict: version.strictCanonicalJson });

/** The object the content hash covers: the whole event minus unsigned, signatures and hashes. */
export function contentHashInput(pdu: JsonObject): JsonObject {
  // fromEntries defines keys as data, so even a received "__proto__" key is hashed like any other.
  return Object.fromEntries(Object.entries(pdu).filter(([key]) => !CONTENT_HASH_EXCLUDED_KEYS.has(key)));
}

/** The canonical JSON text the content hash is taken over (for tests and diagnostics). */
export function contentHashCanonical(pdu: JsonObject, version: RoomVersion): string {
  return encodeCanonicalJson(contentHashInput(pdu), canonicalOptions(version));
}

/** SHA-256 of the canonical content-hash input: the 32 bytes behind `hashes.sha256`. */
export function computeContentHash(pdu: JsonObject, version: RoomVersion): Uint8Array {
  return sha256(canonicalJsonBytes(contentHashInput(pdu), canonicalOptions(version)));
}

/** The object the reference hash covers: the redacted event minus signatures and unsigned. */
export function referenceHashInput(pdu: JsonObject, version: RoomVersion): JsonObject {
  const { signatures: _signatures, unsigned: _unsigned, ...input } = redactEvent(pdu, version);
  return input;
}

/** The canonical JSON text the reference hash (and every event signature) is taken over. */
export function referenceHashCanonical(pdu: JsonObject, version: RoomVersion): string {
  return encodeCanonicalJson(referenceHashInput(pdu, version), canonicalOptions(version));
}

/** SHA-256 of the redacted event's canonical JSON: v3+ event IDs, v1/v2 `[id, {sha256}]` references. */
export function computeReferenceHash(pdu: JsonObject, version: RoomVersion): Uint8Array {
  return sha256(canonicalJsonBytes(referenceHashInput(pdu, version), canonicalOptions(version)));
}

export type ContentHashProblem =
  | "missing" // no hashes.sha256: treat as a mismatch
  | "malformed" // hashes.sha256 is not base64: treat as a mismatch
  | "mismatch" // the spec: keep the redacted copy instead of the received event
  | "not-canonical-json"; // e.g. a float in a v6+ room: the spec says discard the event, not redact it

export type ContentHashVerdict =
  | { readonly valid: true }
  | { readonly valid: false; readonly problem: ContentHashProblem; readonly reason: string };

/**
 * Compares `hashes.sha256` with the recomputed content hash ("Validating hashes and signatures on
 * received events"). This is also where a v6+ event's full body meets the strict JSON rules: the
 * signature check only sees the redacted form.
 */
export function checkContentHash(pdu: JsonObject, version: RoomVersion): ContentHashVerdict {
  const claimed = isJsonObject(pdu.hashes) ? pdu.hashes.sha256 : undefined;
  if (typeof claimed !== "string") return { valid: false, problem: "missing", reason: "event has no hashes.sha256" };
  let claimedBytes: Uint8Array;
  try {
    claimedBytes = decodeBase64(claimed);
  } catch (error) {
    if (error instanceof Base64Error) return { valid: false, problem: "malformed", reason: "hashes.sha256 is not base64" };
    throw error;
  }
  let actual: Uint8Array;
  try {
    actual = computeContentHash(pdu, version);
  } catch (error) {
    if (error instanceof CanonicalJsonError) return { valid: false, problem: "not-canonical-json", reason: error.message };
    throw error;
  }
  if (!bytesEqual(claimedBytes, actual)) return { valid: false, problem: "mismatch", reason: "content hash does not match the event" };
  return { valid: true };
}

/** A copy of the PDU with `hashes.sha256` set to its content hash (other hash algorithms kept). */
export function withContentHash<T extends JsonObject>(pdu: T, version: RoomVersion): T {
  return contentHashed(pdu, version).hashed;
}

/** withContentHash, and the length in bytes of the canonical JSON the hash was taken over. */
export function contentHashed<T extends JsonObject>(pdu: T, version: RoomVersion): { hashed: T; inputBytes: number } {
  const input = canonicalJsonBytes(contentHashInput(pdu), canonicalOptions(version));
  const hashes = isJsonObject(pdu.hashes) ? pdu.hashes : {};
  return { hashed: { ...pdu, hashes: { ...hashes, sha256: encodeBase64(sha256(input)) } }, inputBytes: input.length };
}

/** Whether the content hash's input is the event minus exactly `hashes`, `signatures` and `unsigned`. */
export function hashesAllButThree(pdu: JsonObject): boolean {
  for (const key of CONTENT_HASH_EXCLUDED_KEYS) if (key !== "hashes" && key !== "signatures" && key !== "unsigned" && key in pdu) return false;
  return true;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
