import { describe, expect, test } from "bun:test";
import { decodeUrlSafeBase64, encodeBase64, encodeUrlSafeBase64 } from "../../src/protocol/base64";
import { LosslessNumber, type JsonObject } from "../../src/protocol/json";
import { roomVersion, type RoomVersion } from "../../src/protocol/room-versions";
import { computeEventId, EventIdError, eventReference, roomIdFromCreateEvent } from "../../src/protocol/signing/event-id";
import { serversRequiredToSign, signEvent, verifyEventSignatures, verifyEventSignaturesAsync, type VerifyKeyLookup } from "../../src/protocol/signing/event-signatures";
import { offThreadEd25519 } from "../../src/protocol/signing/ed25519";
import { checkContentHash, computeReferenceHash, withContentHash } from "../../src/protocol/signing/hashes";
import { redactEvent } from "../../src/protocol/signing/redaction";
import { serverKeys } from "./synapse-fixtures";

const { hs1, hs2 } = serverKeys();
const v = (id: string): RoomVersion => roomVersion(id) as RoomVersion;
const lookupKey: VerifyKeyLookup = (serverName, keyId) => [hs1, hs2].find((k) => k.serverName === serverName && k.keyId === keyId)?.publicKey;

function message(sender = `@alice:${hs1.serverName}`): JsonObject {
  return {
    type: "m.room.message",
    room_id: "!room:127.0.0.1:8448",
    sender,
    content: { msgtype: "m.text", body: "hello" },
    origin_server_ts: 1700000000000,
    depth: 3,
    prev_events: ["$prev"],
    auth_events: ["$create", "$pl", "$member"],
  };
}

describe("verifyEventSignaturesAsync (signatures checked off the thread) gives the synchronous verdict", () => {
  const both = async (pdu: JsonObject, version: RoomVersion, lookup: VerifyKeyLookup = lookupKey) => {
    const verdict = await verifyEventSignaturesAsync(pdu, version, lookup, offThreadEd25519);
    expect(verdict).toEqual(verifyEventSignatures(pdu, version, lookup));
    return verdict;
  };

  test("good, redacted, tampered, forged under a second key, unknown keys, missing servers", async () => {
    for (const id of ["1", "3", "10", "12"]) {
      const base = id === "1" ? { ...message(), event_id: `$abc:${hs1.serverName}` } : message();
      const signed = signEvent(base, v(id), hs1.serverName, hs1.keyId, hs1.seed);
      expect((await both(signed, v(id))).valid).toBe(true);
      expect((await both(redactEvent(signed, v(id)), v(id))).valid).toBe(true);
      expect((await both({ ...signed, depth: 4 }, v(id))).reason).toContain("forged or corrupt");
      expect((await both(signed, v(id), () => undefined)).reason).toBe(`no known key for any signature of ${hs1.serverName}`);
      expect((await both({ ...base }, v(id))).reason).toBe(`event is not signed by ${hs1.serverName}`);
    }
    const signed = signEvent(message(), v("10"), hs1.serverName, hs1.keyId, hs1.seed);
    const forged = signEvent(signed, v("10"), hs1.serverName, "ed25519:second", hs2.seed);
    const lookup: VerifyKeyLookup = (server, keyId) => (keyId === "ed25519:second" ? hs1.publicKey : lookupKey(server, keyId));
    const verdict = await both(forged, v("10"), lookup);
    expect(verdict.valid).toBe(false);
    expect(verdict.checked[hs1.serverName]["ed25519:second"].valid).toBe(false);
  });
});

describe("signEvent and verifyEventSignatures round trip", () => {
  for (const id of ["3", "4", "10", "11", "12"]) {
    test(`room version ${id}: signature survives redaction, content hash does not`, () => {
      const signed = signEvent(message(), v(id), hs1.serverName, hs1.keyId, hs1.seed);
      expect(checkContentHash(signed, v(id)).valid).toBe(true);
      expect(verifyEventSignatures(signed, v(id), lookupKey).valid).toBe(true);
      const redacted = redactEvent(signed, v(id));
      expect(verifyEventSignatures(redacted, v(id), lookupKey).valid).toBe(true);
      expect(checkContentHash(redacted, v(id))).toMatchObject({ valid: false, problem: "mismatch" });
      expect(computeEventId(redacted, v(id))).toBe(computeEventId(signed, v(id)));
      const tampered = { ...signed, depth: 4 };
      expect(verifyEventSignatures(tampered, v(id), lookupKey).valid).toBe(false);
    });
  }

  test("a second server's signature is added beside the first", () => {
    const once = signEvent(message(), v("10"), hs1.serverName, hs1.keyId, hs1.seed);
    const twice = signEvent(once, v("10"), hs2.serverName, hs2.keyId, hs2.seed);
    expect(twice.hashes).toEqual(once.hashes);
    expect(Object.keys(twice.signatures)).toEqual([hs1.serverName, hs2.serverName]);
    expect(verifyEventSignatures(twice, v("10"), lookupKey).checked[hs1.serverName][hs1.keyId].valid).toBe(true);
  });

  test("v1/v2 need the event ID's server too", () => {
    const pdu = { ...message(), event_id: `$abc:${hs2.serverName}` };
    expect(serversRequiredToSign(pdu, v("1"))).toEqual([hs1.serverName, hs2.serverName]);
    const signedByOne = signEvent(pdu, v("1"), hs1.serverName, hs1.keyId, hs1.seed);
    expect(verifyEventSignatures(signedByOne, v("1"), lookupKey)).toMatchObject({ valid: false, reason: `event is not signed by ${hs2.serverName}` });
    const signedByBoth = signEvent(signedByOne, v("1"), hs2.serverName, hs2.keyId, hs2.seed);
    expect(verifyEventSignatures(signedByBoth, v("1"), lookupKey).valid).toBe(true);
  });

  test("unknown keys are skipped, but a server needs at least one known key", () => {
    const signed = signEvent(message(), v("10"), hs1.serverName, hs1.keyId, hs1.seed);
    const withUnknown = signEvent(signed, v("10"), hs1.serverName, "ed25519:unknown", hs2.seed);
    expect(verifyEventSignatures(withUnknown, v("10"), lookupKey).valid).toBe(true);
    expect(verifyEventSignatures(signed, v("10"), () => undefined)).toMatchObject({
      valid: false,
      reason: `no known key for any signature of ${hs1.serverName}`,
    });
  });

  test("a known key with a bad signature fails even if another key's is good", () => {
    const signed = signEvent(message(), v("10"), hs1.serverName, hs1.keyId, hs1.seed);
    // hs2's key filed under a second hs1 key ID the lookup resolves to hs1's public key.
    const forged = signEvent(signed, v("10"), hs1.serverName, "ed25519:second", hs2.seed);
    const lookup: VerifyKeyLookup = (server, keyId) => (keyId === "ed25519:second" ? hs1.publicKey : lookupKey(server, keyId));
    expect(verifyEventSignatures(forged, v("10"), lookup).valid).toBe(false);
  });

  test("a third-party invite does not need the sender's server", () => {
    const invite: JsonObject = {
      ...message(`@alice:${hs1.serverName}`),
      type: "m.room.member",
      state_key: "@carol:elsewhere",
      content: { membership: "invite", third_party_invite: { display_name: "c...", signed: { mxid: "@carol:elsewhere", token: "t" } } },
    };
    expect(serversRequiredToSign(invite, v("10"))).toEqual([]);
    expect(serversRequiredToSign({ ...invite, content: { membership: "invite" } }, v("10"))).toEqual([hs1.serverName]);
  });

  test("a received __proto__ key is hashed and signed like any other key", () => {
    const pdu = JSON.parse(`{"__proto__":{"x":1},${JSON.stringify(message()).slice(1)}`);
    const signed = signEvent(pdu, v("10"), hs1.serverName, hs1.keyId, hs1.seed);
    expect(Object.hasOwn(signed, "__proto__")).toBe(true);
    expect(checkContentHash(signed, v("10")).valid).toBe(true);
    const { ["__proto__"]: _dropped, ...without } = signed;
    expect(Object.hasOwn(without, "__proto__")).toBe(false);
    expect(checkContentHash(without, v("10")).valid).toBe(false);
  });

  test("a sender without a server name fails", () => {
    expect(verifyEventSignatures(message("@nobody"), v("10"), lookupKey)).toMatchObject({ valid: false });
  });

  test("v1-v5 sign floats the Synapse way; v6+ refuses them in signed keys", () => {
    const powerLevels: JsonObject = { ...message(), type: "m.room.power_levels", state_key: "", content: { ban: new LosslessNumber("50.0") } };
    const signed = signEvent(powerLevels, v("5"), hs1.serverName, hs1.keyId, hs1.seed);
    expect(verifyEventSignatures(signed, v("5"), lookupKey).valid).toBe(true);
    expect(() => signEvent(powerLevels, v("6"), hs1.serverName, hs1.keyId, hs1.seed)).toThrow("float");
    expect(verifyEventSignatures(signed, v("6"), lookupKey).reason).toContain("float");
  });
});

describe("event IDs", () => {
  const pdu = withContentHash(message(), v("4"));
  const hash = computeReferenceHash(pdu, v("4"));

  test("v1/v2 take the PDU's own event_id", () => {
    expect(computeEventId({ ...pdu, event_id: "$x:example.org" }, v("2"))).toBe("$x:example.org");
    expect(() => computeEventId(pdu, v("1"))).toThrow(EventIdError);
  });

  test("v3 uses standard base64, v4+ URL-safe, both unpadded", () => {
    expect(computeEventId(pdu, v("3"))).toBe(`$${encodeBase64(computeReferenceHash(pdu, v("3")))}`);
    expect(computeEventId(pdu, v("4"))).toBe(`$${encodeUrlSafeBase64(hash)}`);
    expect(computeEventId(pdu, v("4"))).toMatch(/^\$[A-Za-z0-9_-]{43}$/);
    expect(eventReference(pdu, v("4"))).toBe(computeEventId(pdu, v("4")));
  });

  test("v1/v2 references are [event_id, {sha256}]", () => {
    const withId = { ...pdu, event_id: "$x:example.org" };
    expect(eventReference(withId, v("1"))).toEqual(["$x:example.org", { sha256: encodeBase64(computeReferenceHash(withId, v("1"))) }]);
  });

  test("v12: the room ID is the create event's reference hash, the create event has no room_id", () => {
    const create: JsonObject = {
      type: "m.room.create",
      state_key: "",
      sender: `@alice:${hs1.serverName}`,
      content: { room_version: "12" },
      origin_server_ts: 1700000000000,
      depth: 1,
      prev_events: [],
      auth_events: [],
    };
    const signed = signEvent(create, v("12"), hs1.serverName, hs1.keyId, hs1.seed);
    const roomId = roomIdFromCreateEvent(signed, v("12"));
    expect(roomId).toBe(`!${computeEventId(signed, v("12")).slice(1)}`);
    expect(decodeUrlSafeBase64(roomId.slice(1))).toEqual(computeReferenceHash(signed, v("12")));
    expect(() => roomIdFromCreateEvent(signed, v("11"))).toThrow(EventIdError);
  });
});
