// Size and shape limits every PDU must meet (server-server-api "Size limits"; the PDU schema's
// maxItems for prev_events and auth_events). Servers drop events past them, so Portier refuses to
// build one and drops any it receives.
import { utf8Length } from "./identifiers";
import type { JsonObject } from "./json";
import { CanonicalJsonError, canonicalJsonBytes } from "./canonical-json";

export const MAX_PDU_BYTES = 65536;
export const MAX_ID_BYTES = 255;
export const MAX_PREV_EVENTS = 20;
export const MAX_AUTH_EVENTS = 10;

export type LimitProblem = { kind: "too-large" | "bad-shape"; reason: string };

/**
 * Why a PDU breaks the limits, or undefined when it keeps them. `strict`: the room version's number
 * rules. `knownBytes`: its size as counted here, when the caller has it from an encoding that
 * already checked the number rules (signEventWithId's limitBytes).
 */
export function checkEventLimits(pdu: JsonObject, strict: boolean, knownBytes?: number): LimitProblem | undefined {
  for (const field of ["type", "state_key", "sender", "room_id", "event_id"] as const) {
    const value = pdu[field];
    if (typeof value !== "string") continue;
    if (utf8Length(value) > MAX_ID_BYTES) return { kind: "bad-shape", reason: `${field} is longer than ${MAX_ID_BYTES} bytes` };
    // Type and state key are joined with NUL in state maps; neither may contain one.
    if ((field === "type" || field === "state_key") && value.includes("\u0000")) return { kind: "bad-shape", reason: `${field} contains a NUL character` };
  }
  if (Array.isArray(pdu.prev_events) && pdu.prev_events.length > MAX_PREV_EVENTS) return { kind: "bad-shape", reason: `more than ${MAX_PREV_EVENTS} prev_events` };
  if (Array.isArray(pdu.auth_events) && pdu.auth_events.length > MAX_AUTH_EVENTS) return { kind: "bad-shape", reason: `more than ${MAX_AUTH_EVENTS} auth_events` };
  // The limit covers the whole event, signatures included. `unsigned` is left out: it is not part
  // of what is signed, and servers add to it in transit (Synapse counts it, less redacted_because).
  let size: number;
  try {
    size = knownBytes ?? canonicalJsonBytes(withoutUnsigned(pdu), { strict }).length;
  } catch (error) {
    // A float, or an integer out of range, where the room version allows none.
    if (error instanceof CanonicalJsonError) return { kind: "bad-shape", reason: `not valid JSON for the room version: ${error.message}` };
    throw error;
  }
  if (size > MAX_PDU_BYTES) return { kind: "too-large", reason: `event is ${size} bytes, more than ${MAX_PDU_BYTES}` };
  return undefined;
}

/** What the size counts: the event without `unsigned` (nor a `signatures` that is null or empty text). */
function withoutUnsigned(pdu: JsonObject): JsonObject {
  const { signatures, unsigned: _u, ...rest } = pdu;
  return signatures ? { ...rest, signatures } : rest;
}
