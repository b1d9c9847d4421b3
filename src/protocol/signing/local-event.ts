// One of our own events signed, with its event ID taken from the same bytes. The signature covers
// the canonical JSON of the redacted event minus `signatures` and `unsigned` ("Signing events"),
// which is exactly what the reference hash is taken over ("Calculating the reference hash for an
// event"): the ID needs no second redaction and encoding.
import { encodeBase64, encodeUrlSafeBase64 } from "../base64";
import type { JsonObject } from "../json";
import type { RoomVersion } from "../room-versions";
import { nativeEd25519, type Ed25519 } from "./ed25519";
import { computeEventId } from "./event-id";
import { canonicalJsonBytes } from "../canonical-json";
import { contentHashed, hashesAllButThree, sha256 } from "./hashes";
import { redactEvent } from "./redaction";
import { signingInput, withSignature } from "./sign-json";

/** A signed event, its ID and (when known) the size the event limits count. */
export interface SignedWithId {
  signed: JsonObject;
  eventId: string;
  limitBytes?: number;
}

/**
 * signEvent and computeEventId in one: the same signed PDU and the same ID, from one encoding. Also
 * `limitBytes`, the size the event limits count (event-limits.ts: the event without `unsigned`): the
 * content hash's input is the event without `hashes` and `signatures` too, so the size is that
 * input's plus a comma and those two entries, without encoding the whole event again. Undefined when
 * the PDU carries another key the content hash leaves out.
 */
export function signEventWithId(
  pdu: JsonObject,
  version: RoomVersion,
  serverName: string,
  keyId: string,
  seed: Uint8Array,
  ed25519: Ed25519 = nativeEd25519,
): SignedWithId {
  const { hashed, inputBytes } = contentHashed(pdu, version);
  const input = signingInput(redactEvent(hashed, version), { strict: version.strictCanonicalJson });
  const signatures = withSignature(hashed.signatures, serverName, keyId, encodeBase64(ed25519.sign(seed, input)));
  const signed = { ...hashed, signatures };
  // {"a":1} and {"h":2,"s":3} make {"a":1,"h":2,"s":3} (in whichever key order): one comma more, two braces fewer.
  const limitBytes = hashesAllButThree(pdu) ? inputBytes + canonicalJsonBytes({ hashes: hashed.hashes!, signatures }).length - 1 : undefined;
  switch (version.eventIdFormat) {
    case "server-chosen":
      return { signed, eventId: computeEventId(signed, version), limitBytes };
    case "reference-hash-base64":
      return { signed, eventId: `$${encodeBase64(sha256(input))}`, limitBytes };
    case "reference-hash-urlsafe":
      return { signed, eventId: `$${encodeUrlSafeBase64(sha256(input))}`, limitBytes };
  }
}
