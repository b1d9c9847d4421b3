// The protocol core: canonical JSON per KB, content hash, event ID, and Ed25519 sign/verify with the
// native (node:crypto) implementation against the @noble/ed25519 reference.
import { encodeCanonicalJson } from "../../src/protocol/canonical-json";
import { computeContentHash } from "../../src/protocol/signing/hashes";
import { computeEventId } from "../../src/protocol/signing/event-id";
import { nativeEd25519, referenceEd25519 } from "../../src/protocol/signing/ed25519";
import { signEvent, verifyEventSignatures } from "../../src/protocol/signing/event-signatures";
import { signingKeyFromSeed } from "../../src/protocol/signing/keys";
import { roomVersion } from "../../src/protocol/room-versions";
import type { JsonObject } from "../../src/protocol/json";
import { measure, ratio, report } from "./harness";

const v10 = roomVersion("10")!;
const key = signingKeyFromSeed("bench", new Uint8Array(32).fill(3));

function message(bodyBytes: number): JsonObject {
  return {
    room_id: "!bench:example.org",
    type: "m.room.message",
    sender: "@alice:example.org",
    content: { msgtype: "m.text", body: "ü".repeat(Math.floor(bodyBytes / 2)), "m.mentions": { user_ids: ["@bob:example.org"] }, nested: { z: 1, a: [1, 2, 3], "é": true } },
    origin_server_ts: 1_700_000_000_000,
    depth: 12,
    prev_events: ["$prev1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    auth_events: ["$authAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1", "$authAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA2", "$authAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA3"],
  };
}

const small = message(200);
const large = message(64 * 1024);
const smallKb = encodeCanonicalJson(small).length / 1024;
const largeKb = encodeCanonicalJson(large).length / 1024;

const encSmall = measure(`canonical JSON, ${smallKb.toFixed(1)} KB event`, () => encodeCanonicalJson(small));
const encLarge = measure(`canonical JSON, ${largeKb.toFixed(0)} KB event`, () => encodeCanonicalJson(large), 0.5, 5);
const stringify = measure(`JSON.stringify, ${smallKb.toFixed(1)} KB event (for scale)`, () => JSON.stringify(small));
report("Canonical JSON", [encSmall, encLarge, stringify]);
console.log(`canonical JSON throughput: ${((encLarge.opsPerSecond * largeKb) / 1024).toFixed(1)} MB/s on large events, ${((encSmall.opsPerSecond * smallKb) / 1024).toFixed(1)} MB/s on small`);
console.log(`µs per KB: ${(encLarge.microsPerOp / largeKb).toFixed(2)} (large), ${(encSmall.microsPerOp / smallKb).toFixed(2)} (small)`);

const signed = signEvent(small, v10, "example.org", key.keyId, key.seed);
const hash = measure("content hash (small event)", () => computeContentHash(small, v10));
const eventId = measure("event ID, v10 (redact + reference hash)", () => computeEventId(signed, v10));
report("Hashes and IDs", [hash, eventId]);

const msg = new TextEncoder().encode(encodeCanonicalJson(small));
const sig = nativeEd25519.sign(key.seed, msg);
const nSign = measure("Ed25519 sign, native", () => nativeEd25519.sign(key.seed, msg));
const rSign = measure("Ed25519 sign, noble (reference)", () => referenceEd25519.sign(key.seed, msg), 0.5, 10);
const nVerify = measure("Ed25519 verify, native", () => nativeEd25519.verify(key.publicKey, msg, sig));
const rVerify = measure("Ed25519 verify, noble (reference)", () => referenceEd25519.verify(key.publicKey, msg, sig), 0.5, 10);
report("Ed25519", [nSign, rSign, nVerify, rVerify]);
ratio("native / noble, sign", nSign, rSign);
ratio("native / noble, verify", nVerify, rVerify);

const lookup = () => key.publicKey;
const signEv = measure("sign a whole event (hash + redact + sign)", () => signEvent(small, v10, "example.org", key.keyId, key.seed));
const verifyEv = measure("verify a whole event's signatures", () => verifyEventSignatures(signed, v10, lookup));
report("Events", [signEv, verifyEv]);
