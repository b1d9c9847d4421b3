// From a PDU as it travels (content/server-server-api.md "PDUs") to the RoomEvent view that the
// authorization rules and state resolution read: the event ID resolved per room version and
// prev_events/auth_events flattened to IDs (v1/v2 carry [id, {sha256}] pairs).
import type { RoomEvent } from "./events";
import { isJsonObject, type JsonObject, type JsonValue } from "./json";
import type { RoomVersion } from "./room-versions";
import { computeEventId } from "./signing/event-id";

export class PduFormatError extends Error {
  override name = "PduFormatError";
}

function referenceIds(value: JsonValue | undefined, field: string, version: RoomVersion): string[] {
  if (!Array.isArray(value)) throw new PduFormatError(`${field} must be an array`);
  return value.map((ref) => {
    if (version.eventIdFormat === "server-chosen") {
      if (Array.isArray(ref) && typeof ref[0] === "string") return ref[0];
      throw new PduFormatError(`${field} entries must be [event_id, {sha256}] pairs in room version ${version.id}`);
    }
    if (typeof ref === "string") return ref;
    throw new PduFormatError(`${field} entries must be event IDs in room version ${version.id}`);
  });
}

/** The event's ID and the fields the rules read; throws PduFormatError for a malformed PDU. */
export function roomEventFromPdu(pdu: JsonObject, version: RoomVersion, knownEventId?: string): RoomEvent {
  const str = (field: string, optional = false): string | undefined => {
    const v = pdu[field];
    if (v === undefined && optional) return undefined;
    if (typeof v !== "string") throw new PduFormatError(`${field} must be a string`);
    return v;
  };
  const int = (field: string): number => {
    const v = pdu[field];
    if (typeof v !== "number" || !Number.isInteger(v)) throw new PduFormatError(`${field} must be an integer`);
    return v;
  };
  if (!isJsonObject(pdu.content)) throw new PduFormatError("content must be an object");
  const type = str("type")!;
  const redacts = version.redactsInContent ? pdu.content.redacts : pdu.redacts;
  return {
    event_id: knownEventId ?? computeEventId(pdu, version),
    room_id: str("room_id", type === "m.room.create" && version.roomIdFromCreateEvent),
    type,
    state_key: str("state_key", true),
    sender: str("sender")!,
    content: pdu.content,
    origin_server_ts: int("origin_server_ts"),
    depth: int("depth"),
    prev_events: referenceIds(pdu.prev_events, "prev_events", version),
    auth_events: referenceIds(pdu.auth_events, "auth_events", version),
    ...(typeof redacts === "string" ? { redacts } : {}),
  };
}
