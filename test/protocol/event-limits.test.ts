// The size and shape limits of a PDU, and the number rules of the room version: a PDU that breaks
// them is named a problem, never thrown (a thrown error failed a whole backfilled batch).
import { describe, expect, test } from "bun:test";
import { checkEventLimits, MAX_AUTH_EVENTS } from "../../src/protocol/event-limits";
import { LosslessNumber, type JsonObject } from "../../src/protocol/json";

const pdu = (extra: JsonObject = {}): JsonObject => ({ type: "m.room.message", sender: "@a:x", room_id: "!r:x", content: { body: "hi" }, depth: 3, prev_events: [], auth_events: [], ...extra });

describe("checkEventLimits", () => {
  test("a PDU within the limits has no problem, strict or not", () => {
    expect(checkEventLimits(pdu(), true)).toBeUndefined();
    expect(checkEventLimits(pdu(), false)).toBeUndefined();
  });

  test("a float or an out-of-range integer: a problem under strict rules (room v6+), none before", () => {
    for (const value of [new LosslessNumber("1.1"), new LosslessNumber("9007199254740992")]) {
      const event = pdu({ content: { body: "hi", bad_val: value } });
      expect(checkEventLimits(event, true)).toMatchObject({ kind: "bad-shape", reason: expect.stringContaining("room version") });
      expect(checkEventLimits(event, false)).toBeUndefined();
    }
  });

  test("too many auth events, a NUL in the type, too large", () => {
    expect(checkEventLimits(pdu({ auth_events: Array.from({ length: MAX_AUTH_EVENTS + 1 }, (_, i) => `$${i}`) }), true)?.kind).toBe("bad-shape");
    expect(checkEventLimits(pdu({ type: "m.room\u0000x" }), true)?.kind).toBe("bad-shape");
    expect(checkEventLimits(pdu({ content: { body: "x".repeat(70_000) } }), true)?.kind).toBe("too-large");
  });
});
