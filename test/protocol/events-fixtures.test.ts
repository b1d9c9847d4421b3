// Every PDU Synapse 1.67.0 stored in the fixture rooms (v1-v10) and the federation runs: our content
// hash, reference hash, event ID, redaction and signature checks must equal Synapse's, byte for byte.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { encodeBase64 } from "../../src/protocol/base64";
import { isJsonObject, type JsonObject } from "../../src/protocol/json";
import { roomVersion, type RoomVersion } from "../../src/protocol/room-versions";
import { computeEventId, eventReference } from "../../src/protocol/signing/event-id";
import { signEvent, verifyEventSignature, verifyEventSignatures, type VerifyKeyLookup } from "../../src/protocol/signing/event-signatures";
import {
  checkContentHash,
  computeContentHash,
  computeReferenceHash,
  contentHashCanonical,
  referenceHashCanonical,
} from "../../src/protocol/signing/hashes";
import { redactEvent } from "../../src/protocol/signing/redaction";
import { loadFixture, serverKeys, type EventRecord, type Fixture } from "./synapse-fixtures";

const { hs1, hs2 } = serverKeys();
const KEYS = [hs1, hs2];
const lookupKey: VerifyKeyLookup = (serverName, keyId) =>
  KEYS.find((k) => k.serverName === serverName && k.keyId === keyId)?.publicKey;

function version(id: string): RoomVersion {
  const found = roomVersion(id);
  if (found === undefined) throw new Error(`unknown room version ${id}`);
  return found;
}

const serverOf = (id: string) => id.slice(id.indexOf(":") + 1);

function withoutUnsigned(pdu: JsonObject): JsonObject {
  const { unsigned: _unsigned, ...rest } = pdu;
  return rest;
}

interface Source {
  name: string;
  version: RoomVersion;
  records: EventRecord[];
}

const ROOM_FILES = Array.from({ length: 10 }, (_, i) => `rooms-v${i + 1}.json`);
const rooms: Record<string, Fixture> = Object.fromEntries(ROOM_FILES.map((file) => [file, loadFixture(file)]));
const knock = loadFixture("federation-knock.json");
const auth = loadFixture("federation-auth.json");

const sources: Source[] = [
  ...ROOM_FILES.map((file) => ({ name: file, version: version(rooms[file].room_version), records: rooms[file].events })),
  { name: "federation-knock.json hs1", version: version(knock.room_version), records: knock.room_events_on_hs1 },
  { name: "federation-knock.json hs2", version: version(knock.room_version), records: knock.room_events_on_hs2 },
  {
    name: "federation-auth.json",
    version: version(auth.room_version),
    records: auth.cases.map((c: Fixture) => ({ event_id: c.event_id, label: c.case, pdu: c.pdu_sent, derived: c.derived })),
  },
];

test("the fixtures hold the 317 PDU records the README counts", () => {
  expect(sources.reduce((n, s) => n + s.records.length, 0)).toBe(317);
});

describe.each(sources)("$name", ({ version, records }) => {
  test.each(records.map((r) => [r.label, r] as const))("%s", (_label, record) => {
    const { pdu, derived } = record;

    // Content hash: input text, digest, and whether it matches hashes.sha256.
    expect(contentHashCanonical(pdu, version)).toBe(derived.content_hash_input_canonical);
    expect(encodeBase64(computeContentHash(pdu, version))).toBe(derived.content_hash_sha256);
    expect(checkContentHash(pdu, version).valid).toBe(derived.content_hash_matches_pdu);

    // Reference hash (the redacted event minus signatures and unsigned) and the event ID.
    expect(referenceHashCanonical(pdu, version)).toBe(derived.reference_hash_input_canonical);
    expect(encodeBase64(computeReferenceHash(pdu, version))).toBe(derived.reference_hash_sha256);
    expect(computeEventId(pdu, version)).toBe(derived.event_id);
    expect(derived.event_id === record.event_id).toBe(derived.event_id_matches);

    // Each signature, over the redacted form, against keys.json.
    for (const [server, byKey] of Object.entries(derived.signatures_verified)) {
      for (const [keyId, expected] of Object.entries(byKey)) {
        const publicKey = lookupKey(server, keyId);
        if (publicKey === undefined) throw new Error(`no key ${server} ${keyId}`);
        expect(verifyEventSignature(pdu, version, server, keyId, publicKey).valid).toBe(expected);
      }
    }

    // The event as a whole: the sender's server (and in v1/v2 the event ID's server) must have signed.
    const required = [serverOf(pdu.sender as string)];
    if (version.eventIdFormat === "server-chosen") required.push(serverOf(record.event_id));
    const signedByRequired = required.every((server) => derived.signatures_verified[server] !== undefined);
    const allValid = Object.values(derived.signatures_verified).every((byKey) => Object.values(byKey).every(Boolean));
    expect(verifyEventSignatures(pdu, version, lookupKey).valid).toBe(signedByRequired && allValid);
  });
});

describe("signEvent reproduces Synapse's hashes and signatures", () => {
  // Ed25519 is deterministic: re-signing the unsigned PDU must give the very same bytes.
  for (const { name, version, records } of sources) {
    test(name, () => {
      let resigned = 0;
      for (const { pdu, derived } of records) {
        if (!derived.content_hash_matches_pdu) continue;
        const { hashes: _hashes, signatures, unsigned: _unsigned, ...bare } = pdu;
        for (const key of KEYS) {
          const expected = isJsonObject(signatures) ? (signatures[key.serverName] as JsonObject | undefined)?.[key.keyId] : undefined;
          if (expected === undefined || derived.signatures_verified[key.serverName]?.[key.keyId] !== true) continue;
          const signed = signEvent(bare, version, key.serverName, key.keyId, key.seed);
          expect(signed.hashes).toEqual(pdu.hashes as never);
          expect(signed.signatures[key.serverName][key.keyId]).toBe(expected as string);
          resigned++;
        }
      }
      expect(resigned).toBeGreaterThan(0);
    });
  }
});

describe("v1/v2 [event_id, {sha256}] references carry the referenced event's reference hash", () => {
  for (const file of ["rooms-v1.json", "rooms-v2.json"]) {
    test(file, () => {
      const room = rooms[file];
      const v = version(room.room_version);
      const byId = new Map<string, JsonObject>(room.events.map((r: EventRecord) => [r.event_id, r.pdu]));
      let checked = 0;
      for (const { pdu } of room.events as EventRecord[]) {
        for (const reference of [...(pdu.prev_events as Fixture[]), ...(pdu.auth_events as Fixture[])]) {
          const target = byId.get(reference[0]);
          if (target === undefined) throw new Error(`unknown reference ${reference[0]}`);
          expect(eventReference(target, v)).toEqual(reference);
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(100);
    });
  }
});

describe("redaction equals Synapse's prune_event_dict (minus unsigned, which the spec drops)", () => {
  for (const file of ROOM_FILES) {
    test(file, () => {
      const room = rooms[file];
      const v = version(room.room_version);
      const { event_id, pruned_pdu } = room.redacted_event;
      const original = (room.events as EventRecord[]).find((r) => r.event_id === event_id);
      if (original === undefined) throw new Error("redacted event not found");
      const redacted = redactEvent(original.pdu, v);
      expect(redacted).toEqual(withoutUnsigned(pruned_pdu));
      expect(redacted.unsigned).toBeUndefined();
      // The pruned copy keeps its ID and signatures; only its content hash no longer matches.
      expect(computeEventId(pruned_pdu, v)).toBe(event_id);
      expect(verifyEventSignatures(pruned_pdu, v, lookupKey).valid).toBe(true);
      expect(checkContentHash(pruned_pdu, v)).toMatchObject({ valid: false, problem: "mismatch" });
    });
  }

  test("every PDU, redacted, is exactly the reference hash input plus signatures", () => {
    for (const { version: v, records } of sources) {
      for (const { pdu, derived } of records) {
        const { signatures: _signatures, ...redacted } = redactEvent(pdu, v);
        expect(JSON.stringify(Object.keys(redacted).sort())).toBe(JSON.stringify(Object.keys(JSON.parse(derived.reference_hash_input_canonical)).sort()));
      }
    }
  });

  test("federation-auth: the hash-mismatch PDU is stored pruned", () => {
    const c = auth.cases.find((c: Fixture) => c.hs1_outcome.includes("content pruned"));
    const v = version(auth.room_version);
    expect(checkContentHash(c.pdu_sent, v)).toMatchObject({ valid: false, problem: "mismatch" });
    expect(verifyEventSignatures(c.pdu_sent, v, lookupKey).valid).toBe(true);
    expect(redactEvent(c.pdu_sent, v)).toEqual(withoutUnsigned(c.hs1_stored.pdu));
  });

  test("federation-knock: the redacted message served over GET /event keeps its ID and signature", () => {
    const v = version(knock.room_version);
    const served = knock.redacted_event.served_by_hs1_federation_GET_event.body.pdus[0];
    expect(computeEventId(served, v)).toBe(knock.redacted_event.event_id);
    expect(verifyEventSignatures(served, v, lookupKey).valid).toBe(true);
    expect(checkContentHash(served, v).valid).toBe(false);
  });
});

describe("federation-knock: knock, invite and join as stored on both servers", () => {
  const v = version(knock.room_version);
  for (const step of ["knock", "invite", "join"]) {
    for (const [view, stored] of Object.entries(knock[step] as Record<string, Fixture>)) {
      if (!isJsonObject(stored) || !isJsonObject(stored.pdu)) continue;
      test(`${step} ${view}`, () => {
        const pdu = stored.pdu as JsonObject;
        expect(computeEventId(pdu, v)).toBe(knock[step].event_id);
        expect(checkContentHash(pdu, v).valid).toBe(true);
        const verdict = verifyEventSignatures(pdu, v, lookupKey);
        expect(verdict.valid).toBe(true);
        // Every signature it carries checks out, e.g. both servers' on the remote invite.
        for (const [server, byKey] of Object.entries(pdu.signatures as Record<string, Record<string, string>>)) {
          for (const keyId of Object.keys(byKey)) {
            expect(verifyEventSignature(pdu, v, server, keyId, lookupKey(server, keyId) as Uint8Array).valid).toBe(true);
          }
        }
      });
    }
  }
});

describe("federation-auth: events hs1 dropped for their signatures", () => {
  const v = version(auth.room_version);
  const find = (prefix: string) => auth.cases.find((c: Fixture) => c.case.startsWith(prefix));

  test("a corrupted signature fails as a bad signature", () => {
    const verdict = verifyEventSignatures(find("dropped: invalid signature").pdu_sent, v, lookupKey);
    expect(verdict.valid).toBe(false);
    expect(verdict.checked["127.0.0.1:8450"]["ed25519:a_7292cc"]).toMatchObject({ valid: false, problem: "bad-signature" });
  });

  test("a signature from a server other than the sender's is not enough", () => {
    const verdict = verifyEventSignatures(find("dropped: sender's server did not sign").pdu_sent, v, lookupKey);
    expect(verdict.valid).toBe(false);
    expect(verdict.requiredServers).toEqual(["127.0.0.1:8448"]);
    expect(verdict.reason).toBe("event is not signed by 127.0.0.1:8448");
  });
});

describe("room versions 1-5: floats are hashed as Python wrote them", () => {
  for (const file of ROOM_FILES.slice(0, 5)) {
    test(`${file}: only the lossless parse reproduces the float event's hashes`, () => {
      const room = rooms[file];
      const v = version(room.room_version);
      const record = (room.events as EventRecord[]).find((r) => r.label.includes("floats"));
      if (record === undefined) throw new Error("float event not found");
      expect(record.derived.content_hash_input_canonical).toContain("1e+100");
      expect(encodeBase64(computeContentHash(record.pdu, v))).toBe(record.derived.content_hash_sha256);
      // The same event read with JSON.parse: `1.0` becomes 1 and the hash no longer matches.
      const raw = readFileSync(join(import.meta.dir, "../fixtures/synapse", file), "utf8");
      const lossy = (JSON.parse(raw).events as EventRecord[]).find((r) => r.event_id === record.event_id) as EventRecord;
      expect(encodeBase64(computeContentHash(lossy.pdu, v))).not.toBe(record.derived.content_hash_sha256);
    });
  }

  test("room version 6+ refuses to hash a float: the content hash check says discard, not redact", () => {
    const room = rooms["rooms-v5.json"];
    const record = (room.events as EventRecord[]).find((r) => r.label.includes("floats")) as EventRecord;
    expect(() => computeContentHash(record.pdu, version("6"))).toThrow("float");
    expect(checkContentHash(record.pdu, version("6"))).toMatchObject({ valid: false, problem: "not-canonical-json" });
    // The float sits in content, which redaction removes, so the signature check alone cannot see it.
    expect(verifyEventSignatures(record.pdu, version("6"), lookupKey).valid).toBe(true);
  });
});
