// One of our own events signed, with its event ID taken from the same bytes. The signature covers
// the canonical JSON of the redacted event minus `signatures` and `unsigned` ("Signing events"),
// which is exactly what the reference hash is taken over ("Calculating the reference hash for an
// event"): the ID needs no second redaction and encoding.
import { encodeBase64, encodeUrlSafeBase64 } from "../base64";
import type { JsonObject } from "../json";
import type { RoomVersion } from "../room-versions";
import { nativeEd25519, type Ed25519 } from "./ed25519";
import { computeEventId } from "./event-id";
import { sha256, withContentHash } from "./hashes";
import { redactEvent } from "./redaction";
import { signingInput, withSignature } from "./sign-json";

/** signEvent and computeEventId in one: the same signed PDU and the same ID, from one encoding. */
export function signEventWithId(
  pdu: JsonObject,
  version: RoomVersion,
  serverName: string,
  keyId: string,
  seed: Uint8Array,
  ed25519: Ed25519 = nativeEd25519,
): { signed: JsonObject; eventId: string } {
  const hashed = withContentHash(pdu, version);
  const input = signingInput(redactEvent(hashed, version), { strict: version.strictCanonicalJson });
  const signed = { ...hashed, signatures: withSignature(hashed.signatures, serverName, keyId, encodeBase64(ed25519.sign(seed, input))) };
  switch (version.eventIdFormat) {
    case "server-chosen":
      return { signed, eventId: computeEventId(signed, version) };
    case "reference-hash-base64":
      return { signed, eventId: `$${encodeBase64(sha256(input))}` };
    case "reference-hash-urlsafe":
      return { signed, eventId: `$${encodeUrlSafeBase64(sha256(input))}` };
  }
}
