// Third-party invites (client-server-api "Third-party invites", auth rule 5.4.1.7): the identity
// server signs `{mxid, token, ...}` with the private half of a key that the room's
// m.room.third_party_invite event lists. The key may be standard or URL-safe unpadded Base64; the
// signature is unpadded Base64 (either alphabet accepted, as Synapse's decode_base64 does).
import { Base64Error, decodeBase64, decodeUrlSafeBase64 } from "../base64";
import { CanonicalJsonError } from "../canonical-json";
import { isJsonObject, ownMember, type JsonObject } from "../json";
import { nativeEd25519, PUBLIC_KEY_LENGTH, SIGNATURE_LENGTH, type Ed25519 } from "./ed25519";
import { signingInput } from "./sign-json";

/** One key of an m.room.third_party_invite event, with the URL that says whether it is revoked. */
export interface ThirdPartyInviteKey {
  readonly publicKey: string;
  /** Absent: "the key must be considered valid indefinitely" (public_keys entries only). */
  readonly keyValidityUrl?: string;
}

function decodeEitherAlphabet(text: string): Uint8Array | undefined {
  try {
    return /[-_]/.test(text) ? decodeUrlSafeBase64(text) : decodeBase64(text);
  } catch (error) {
    if (error instanceof Base64Error) return undefined;
    throw error;
  }
}

/** Whether `signature` is a valid ed25519 signature of `signed` (minus signatures/unsigned) under `publicKey`. */
export function verifyThirdPartyInviteSignature(signed: JsonObject, signature: string, publicKey: string, ed25519: Ed25519 = nativeEd25519): boolean {
  const key = decodeEitherAlphabet(publicKey);
  const sig = decodeEitherAlphabet(signature);
  if (key?.length !== PUBLIC_KEY_LENGTH || sig?.length !== SIGNATURE_LENGTH) return false;
  let message: Uint8Array;
  try {
    message = signingInput(signed);
  } catch (error) {
    if (error instanceof CanonicalJsonError) return false;
    throw error;
  }
  return ed25519.verify(key, message, sig);
}

/** The keys an m.room.third_party_invite event's content names: `public_key` (with `key_validity_url`) and each of `public_keys`. */
export function thirdPartyInviteKeys(content: JsonObject): ThirdPartyInviteKey[] {
  const keys: ThirdPartyInviteKey[] = [];
  const single = ownMember(content, "public_key");
  const singleUrl = ownMember(content, "key_validity_url");
  if (typeof single === "string") keys.push({ publicKey: single, ...(typeof singleUrl === "string" ? { keyValidityUrl: singleUrl } : {}) });
  const list = ownMember(content, "public_keys");
  if (Array.isArray(list)) {
    for (const entry of list) {
      const key = ownMember(entry, "public_key");
      const url = ownMember(entry, "key_validity_url");
      if (typeof key === "string") keys.push({ publicKey: key, ...(typeof url === "string" ? { keyValidityUrl: url } : {}) });
    }
  }
  return keys;
}

/** The event's keys under which some signature of `signed` verifies (none when `signed` carries none). */
export function keysThatSigned(signed: JsonObject, content: JsonObject, ed25519: Ed25519 = nativeEd25519): ThirdPartyInviteKey[] {
  const signatures = ownMember(signed, "signatures");
  if (!isJsonObject(signatures)) return [];
  const all: string[] = [];
  for (const byKeyId of Object.values(signatures)) {
    if (!isJsonObject(byKeyId)) continue;
    for (const signature of Object.values(byKeyId)) if (typeof signature === "string") all.push(signature);
  }
  return thirdPartyInviteKeys(content).filter((key) => all.some((signature) => verifyThirdPartyInviteSignature(signed, signature, key.publicKey, ed25519)));
}
