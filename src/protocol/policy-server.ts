// Policy servers (server-server-api "Policy Servers", spec v1.18): a room names one in its
// m.room.policy state event (`via` and an ed25519 public key); while that server has a joined member,
// every event but the m.room.policy state event itself carries the policy server's signature, made
// like an event signature (over the redacted event) with the key of the state event, always under
// the key ID ed25519:policy_server.
import { Base64Error, decodeBase64, encodeBase64 } from "./base64";
import { canonicalJsonBytes, CanonicalJsonError } from "./canonical-json";
import { isJsonObject, ownMember, type JsonObject } from "./json";
import type { RoomVersion } from "./room-versions";
import { nativeEd25519, PUBLIC_KEY_LENGTH, type Ed25519 } from "./signing/ed25519";
import { referenceHashInput } from "./signing/hashes";
import { checkSignature, type Signatures } from "./signing/sign-json";

export const POLICY_SERVER_KEY_ID = "ed25519:policy_server";

/** A valid m.room.policy content: the policy server's name and its ed25519 public key. */
export interface PolicyServerConfig {
  readonly via: string;
  readonly publicKey: Uint8Array;
  readonly publicKeyBase64: string;
}

/**
 * The policy server an m.room.policy content names, when it is valid ("content contains at least a
 * string `via` and an object `public_keys` with a string `ed25519`"; a key that is not 32 bytes of
 * base64 can verify nothing, so it counts as invalid too). Whether the server has a joined member
 * is the caller's to check.
 */
export function policyServerConfig(content: unknown): PolicyServerConfig | undefined {
  if (!isJsonObject(content) || typeof content.via !== "string" || content.via === "" || !isJsonObject(content.public_keys)) return undefined;
  const key = ownMember(content.public_keys, "ed25519");
  if (typeof key !== "string") return undefined;
  try {
    const publicKey = decodeBase64(key);
    return publicKey.length === PUBLIC_KEY_LENGTH ? { via: content.via, publicKey, publicKeyBase64: key } : undefined;
  } catch (error) {
    if (error instanceof Base64Error) return undefined;
    throw error;
  }
}

/** Every event needs the policy server's signature but the m.room.policy state event with an empty state key. */
export function needsPolicySignature(pdu: { readonly type?: unknown; readonly state_key?: unknown }): boolean {
  return !(pdu.type === "m.room.policy" && pdu.state_key === "");
}

function signedBytes(pdu: JsonObject, version: RoomVersion): Uint8Array | undefined {
  try {
    return canonicalJsonBytes(referenceHashInput(pdu, version), { strict: version.strictCanonicalJson });
  } catch (error) {
    if (error instanceof CanonicalJsonError) return undefined;
    throw error;
  }
}

/** Whether the event carries a valid signature of the policy server under the room's policy key. */
export function hasValidPolicySignature(pdu: JsonObject, version: RoomVersion, config: PolicyServerConfig, ed25519: Ed25519 = nativeEd25519): boolean {
  const fromServer = ownMember(pdu.signatures, config.via);
  const signature = isJsonObject(fromServer) ? ownMember(fromServer, POLICY_SERVER_KEY_ID) : undefined;
  if (typeof signature !== "string") return false;
  const input = signedBytes(pdu, version);
  return input !== undefined && checkSignature(input, signature, config.via, POLICY_SERVER_KEY_ID, config.publicKey, ed25519).valid;
}

/** The policy server's answer to /_matrix/policy/v1/sign: its one signature of the event. */
export function policySignature(pdu: JsonObject, version: RoomVersion, serverName: string, seed: Uint8Array, ed25519: Ed25519 = nativeEd25519): Signatures {
  const input = canonicalJsonBytes(referenceHashInput(pdu, version), { strict: version.strictCanonicalJson });
  return { [serverName]: { [POLICY_SERVER_KEY_ID]: encodeBase64(ed25519.sign(seed, input)) } };
}

/** The event with the policy server's signature added beside the ones it has. */
export function withPolicySignature(pdu: JsonObject, server: string, signature: string): JsonObject {
  const existing = isJsonObject(pdu.signatures) ? pdu.signatures : {};
  const fromServer = ownMember(existing, server);
  return { ...pdu, signatures: { ...existing, [server]: { ...(isJsonObject(fromServer) ? fromServer : {}), [POLICY_SERVER_KEY_ID]: signature } } };
}
