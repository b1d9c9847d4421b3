// signEventWithId: the PDU signEvent gives and the ID computeEventId gives, in every room version.
import { expect, test } from "bun:test";
import type { JsonObject } from "../../src/protocol/json";
import { ROOM_VERSIONS } from "../../src/protocol/room-versions";
import { computeEventId } from "../../src/protocol/signing/event-id";
import { signEvent } from "../../src/protocol/signing/event-signatures";
import { signEventWithId } from "../../src/protocol/signing/local-event";
import { canonicalJsonBytes } from "../../src/protocol/canonical-json";
import { checkEventLimits, MAX_PDU_BYTES } from "../../src/protocol/event-limits";

const seed = new Uint8Array(32).fill(7);

for (const [id, version] of ROOM_VERSIONS) {
  test(`room version ${id}: the same signed event and event ID as signEvent and computeEventId`, () => {
    const pdus: JsonObject[] = [
      { room_id: "!r:example.org", type: "m.room.message", sender: "@a:example.org", content: { msgtype: "m.text", body: "héllo \u0001 \"😀\"" }, origin_server_ts: 1700000000000, depth: 12, prev_events: ["$p"], auth_events: ["$a", "$b"] },
      // A state event (its content partly kept by redaction) carrying unsigned and another server's signature.
      { room_id: "!r:example.org", type: "m.room.power_levels", state_key: "", sender: "@a:example.org", content: { users: { "@a:example.org": 100 }, ban: 50, extra: "dropped" }, origin_server_ts: 1, depth: 3, prev_events: [], auth_events: [], unsigned: { age: 5 }, signatures: { "other.org": { "ed25519:x": "c2ln" } } },
    ];
    for (const base of pdus) {
      const pdu: JsonObject = { ...base, ...(version.eventIdFormat === "server-chosen" ? { event_id: "$chosen:example.org" } : {}) };
      const { signed, eventId } = signEventWithId(pdu, version, "example.org", "ed25519:k", seed);
      const expected = signEvent(pdu, version, "example.org", "ed25519:k", seed);
      expect(signed).toEqual(expected);
      expect(eventId).toBe(computeEventId(expected, version));
    }
  });

  test(`room version ${id}: limitBytes is the size the event limits count, without encoding the event again`, () => {
    const sizeCounted = (signed: JsonObject) => {
      const { unsigned: _u, ...rest } = signed;
      return canonicalJsonBytes(rest, { strict: version.strictCanonicalJson }).length;
    };
    const bodies = ["", "héllo \u0001 \"😀\" \\ \u2028", "x".repeat(MAX_PDU_BYTES - 600)];
    for (const body of bodies) {
      const pdu: JsonObject = { room_id: "!r:example.org", type: "m.room.message", sender: "@a:example.org", content: { msgtype: "m.text", body, n: [1, -2, { z: null, a: true }] }, origin_server_ts: 1700000000000, depth: 12, prev_events: ["$p"], auth_events: ["$a"], hashes: { other: "kept" }, unsigned: { age: 1 }, ...(version.eventIdFormat === "server-chosen" ? { event_id: "$chosen:example.org" } : {}) };
      const { signed, limitBytes } = signEventWithId(pdu, version, "example.org", "ed25519:k", seed);
      expect(limitBytes).toBe(sizeCounted(signed));
      // The limit decides the same either way, at the edge too.
      expect(checkEventLimits(signed, version.strictCanonicalJson, limitBytes)).toEqual(checkEventLimits(signed, version.strictCanonicalJson));
    }
    // A key the content hash leaves out but the size counts: no shortcut.
    expect(signEventWithId({ room_id: "!r:example.org", type: "t", sender: "@a:example.org", content: {}, origin_server_ts: 1, depth: 1, prev_events: [], auth_events: [], age_ts: 5, ...(version.eventIdFormat === "server-chosen" ? { event_id: "$chosen:example.org" } : {}) }, version, "example.org", "ed25519:k", seed).limitBytes).toBeUndefined();
  });
}
