// Hashing, signing and checking signatures of events (server-server-api.md, "Adding hashes and
// signatures to outgoing events", "Validating hashes and signatures on received events").
// Signatures cover the redacted event, so they stay valid when an event is redacted.

import { encodeBase64 } from "../base64";
import { canonicalJsonBytes, CanonicalJsonError } from "../canonical-json";
import { isJsonObject, ownMember, type JsonObject } from "../json";
import type { RoomVersion } from "../room-versions";
import { nativeEd25519, type Ed25519 } from "./ed25519";
import { referenceHashInput, withContentHash } from "./hashes";
import { ED25519, parseKeyId } from "./keys";
import { redactEvent } from "./redaction";
import { checkSignature, signingInput, verifyJsonSignature, withSignature, type SignatureVerdict, type Signatures } from "./sign-json";

/** The public key of serverName's keyId, or undefined when unknown (or expired for this event). */
export type VerifyKeyLookup = (serverName: string, keyId: string) => Uint8Array | undefined;

/**
 * Adds the content hash, then signs the redacted form and copies the signature back (keeping any
 * other server's signatures). A v1/v2 PDU must already carry its event_id.
 */
export function signEvent<T extends JsonObject>(
  pdu: T,
  version: RoomVersion,
  serverName: string,
  keyId: string,
  seed: Uint8Array,
  ed25519: Ed25519 = nativeEd25519,
): T & { signatures: Signatures } {
  const hashed = withContentHash(pdu, version);
  const input = signingInput(redactEvent(hashed, version), { strict: version.strictCanonicalJson });
  const signature = encodeBase64(ed25519.sign(seed, input));
  return { ...hashed, signatures: withSignature(hashed.signatures, serverName, keyId, signature) };
}

/** One server's signature on an event, checked over the event's redacted form. */
export function verifyEventSignature(
  pdu: JsonObject,
  version: RoomVersion,
  serverName: string,
  keyId: string,
  publicKey: Uint8Array,
  ed25519: Ed25519 = nativeEd25519,
): SignatureVerdict {
  return verifyJsonSignature(redactEvent(pdu, version), serverName, keyId, publicKey, { strict: version.strictCanonicalJson, ed25519 });
}

export interface EventSignaturesVerdict {
  readonly valid: boolean;
  /** Why the event fails; absent when valid. */
  readonly reason?: string;
  /** The servers whose signatures were required. */
  readonly requiredServers: readonly string[];
  /** Every signature that was checked (required server, known ed25519 key), and its verdict. */
  readonly checked: { readonly [serverName: string]: { readonly [keyId: string]: SignatureVerdict } };
}

/**
 * Checks the signatures an event needs: from the sender's server, and in v1/v2 from the server in the
 * event ID as well. Signatures under unknown keys are skipped; each required server needs at least one
 * signature under a known key, and every such signature must be valid. Only the redacted form is
 * read here: checkContentHash is what holds the full event of a v6+ room to the strict JSON rules.
 * Key validity (expiry against origin_server_ts, from v5) is the lookup's business.
 */
export function verifyEventSignatures(
  pdu: JsonObject,
  version: RoomVersion,
  lookupKey: VerifyKeyLookup,
  ed25519: Ed25519 = nativeEd25519,
): EventSignaturesVerdict {
  const checkedEntries: [string, { [keyId: string]: SignatureVerdict }][] = [];
  const required = serversRequiredToSign(pdu, version);
  const requiredServers = required ?? [];
  // Server names come from the event, so keys are defined as data (a "__proto__" server stays a key).
  const checked = () => Object.fromEntries(checkedEntries);
  const fail = (reason: string): EventSignaturesVerdict => ({ valid: false, reason, requiredServers, checked: checked() });
  if (required === undefined) return fail("sender or event_id has no server name");
  let input: Uint8Array;
  try {
    input = canonicalJsonBytes(referenceHashInput(pdu, version), { strict: version.strictCanonicalJson });
  } catch (error) {
    if (error instanceof CanonicalJsonError) return fail(`event is not canonical JSON: ${error.message}`);
    throw error;
  }
  for (const serverName of requiredServers) {
    const verdicts = checkServerSignatures(pdu, serverName, input, lookupKey, ed25519);
    checkedEntries.push([serverName, verdicts]);
    const problem = serverProblem(serverName, verdicts, pdu);
    if (problem !== undefined) return fail(problem);
  }
  return { valid: true, requiredServers, checked: checked() };
}

/**
 * verifyEventSignatures with the Ed25519 checks run by an asynchronous verifier (off the caller's
 * thread). The rules run once with every signature taken as good, recording what to check; when all
 * checks pass, that verdict stands; when one fails, the rules run again synchronously to say which.
 */
export async function verifyEventSignaturesAsync(
  pdu: JsonObject,
  version: RoomVersion,
  lookupKey: VerifyKeyLookup,
  verifier: { verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> },
): Promise<EventSignaturesVerdict> {
  const checks: Promise<boolean>[] = [];
  const recording: Ed25519 = {
    sign: (seed, message) => nativeEd25519.sign(seed, message),
    publicKeyFromSeed: (seed) => nativeEd25519.publicKeyFromSeed(seed),
    verify: (publicKey, message, signature) => {
      checks.push(verifier.verify(publicKey, message, signature));
      return true;
    },
  };
  const optimistic = verifyEventSignatures(pdu, version, lookupKey, recording);
  if (!optimistic.valid) return optimistic;
  if ((await Promise.all(checks)).every(Boolean)) return optimistic;
  return verifyEventSignatures(pdu, version, lookupKey);
}

function checkServerSignatures(
  pdu: JsonObject,
  serverName: string,
  input: Uint8Array,
  lookupKey: VerifyKeyLookup,
  ed25519: Ed25519,
): { [keyId: string]: SignatureVerdict } {
  const verdicts: { [keyId: string]: SignatureVerdict } = {};
  const fromServer = ownMember(pdu.signatures, serverName);
  if (!isJsonObject(fromServer)) return verdicts;
  for (const [keyId, signature] of Object.entries(fromServer)) {
    // "Removes any signing key identifiers ... with algorithms it doesn't understand."
    if (parseKeyId(keyId)?.algorithm !== ED25519) continue;
    const publicKey = lookupKey(serverName, keyId);
    if (publicKey === undefined) continue;
    verdicts[keyId] =
      typeof signature === "string"
        ? checkSignature(input, signature, serverName, keyId, publicKey, ed25519)
        : { valid: false, problem: "malformed-signature", reason: `Signature for ${serverName}, ${keyId} is not a string` };
  }
  return verdicts;
}

function serverProblem(serverName: string, verdicts: { [keyId: string]: SignatureVerdict }, pdu: JsonObject): string | undefined {
  const results = Object.values(verdicts);
  if (results.length === 0) {
    const signed = isJsonObject(ownMember(pdu.signatures, serverName));
    return signed ? `no known key for any signature of ${serverName}` : `event is not signed by ${serverName}`;
  }
  for (const verdict of results) {
    if (!verdict.valid) return verdict.reason;
  }
  return undefined;
}

/**
 * The servers that must have signed an event; undefined if an ID lacks a server name. A third-party
 * invite is exempt from the sender's server: the spec lets another server send it on the sender's
 * behalf (its proof is the token signature, checked by the auth rules).
 */
export function serversRequiredToSign(pdu: JsonObject, version: RoomVersion): string[] | undefined {
  const servers = new Set<string>();
  if (!isThirdPartyInvite(pdu)) {
    const senderServer = serverNameOf(pdu.sender);
    if (senderServer === undefined) return undefined;
    servers.add(senderServer);
  }
  if (version.eventIdFormat === "server-chosen") {
    const eventIdServer = serverNameOf(pdu.event_id);
    if (eventIdServer === undefined) return undefined;
    servers.add(eventIdServer);
  }
  return [...servers];
}

function isThirdPartyInvite(pdu: JsonObject): boolean {
  const content = pdu.content;
  return pdu.type === "m.room.member" && isJsonObject(content) && content.membership === "invite" && isJsonObject(content.third_party_invite);
}

/** The server name of a "@user:server" or "$id:server" identifier (everything after the first colon). */
function serverNameOf(id: unknown): string | undefined {
  if (typeof id !== "string") return undefined;
  const colon = id.indexOf(":");
  return colon === -1 || colon === id.length - 1 ? undefined : id.slice(colon + 1);
}
