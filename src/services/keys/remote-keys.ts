// Checking another server's published keys (server-server-api "Retrieving server keys"): the
// response must name the server we asked, and be signed by every key it lists in verify_keys.
import { decodeBase64 } from "../../protocol/base64";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { verifyJsonSignature } from "../../protocol/signing/sign-json";

export interface VerifiedServerKeys {
  serverName: string;
  validUntilTs: number;
  /** key id -> public key */
  verifyKeys: Map<string, Uint8Array>;
  /** key id -> {public key, expired_ts}: valid only for events signed before expiry. */
  oldVerifyKeys: Map<string, { key: Uint8Array; expiredTs: number }>;
}

export type KeyCheck = { ok: true; keys: VerifiedServerKeys } | { ok: false; reason: string };

function decodeKey(entry: unknown): Uint8Array | undefined {
  if (!isJsonObject(entry) || typeof entry.key !== "string") return undefined;
  try {
    const key = decodeBase64(entry.key);
    return key.length === 32 ? key : undefined;
  } catch {
    return undefined;
  }
}

export function verifyServerKeyResponse(response: unknown, expectedServerName: string): KeyCheck {
  if (!isJsonObject(response)) return { ok: false, reason: "key response is not a JSON object" };
  const body = response as JsonObject;
  if (body.server_name !== expectedServerName) return { ok: false, reason: `key response names ${JSON.stringify(body.server_name)}, not ${expectedServerName}` };
  if (typeof body.valid_until_ts !== "number") return { ok: false, reason: "key response has no valid_until_ts" };
  if (!isJsonObject(body.verify_keys) || Object.keys(body.verify_keys).length === 0) return { ok: false, reason: "key response has no verify_keys" };
  const verifyKeys = new Map<string, Uint8Array>();
  for (const [keyId, entry] of Object.entries(body.verify_keys)) {
    const key = decodeKey(entry);
    if (!key) return { ok: false, reason: `verify key ${keyId} is not a 32-byte base64 key` };
    const verdict = verifyJsonSignature(body, expectedServerName, keyId, key);
    if (!verdict.valid) return { ok: false, reason: `key response is not signed by ${keyId}: ${verdict.reason}` };
    verifyKeys.set(keyId, key);
  }
  const oldVerifyKeys = new Map<string, { key: Uint8Array; expiredTs: number }>();
  if (isJsonObject(body.old_verify_keys)) {
    for (const [keyId, entry] of Object.entries(body.old_verify_keys)) {
      const key = decodeKey(entry);
      const expiredTs = isJsonObject(entry) ? entry.expired_ts : undefined;
      if (key && typeof expiredTs === "number") oldVerifyKeys.set(keyId, { key, expiredTs });
    }
  }
  return { ok: true, keys: { serverName: expectedServerName, validUntilTs: body.valid_until_ts, verifyKeys, oldVerifyKeys } };
}
