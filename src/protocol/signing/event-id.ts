// Event IDs per room version (content/rooms/fragments/v1-event-ids.md, v3.md "Event IDs",
// v4-event-ids.md) and the v12 room ID, all derived from the reference hash.

import { encodeBase64, encodeUrlSafeBase64 } from "../base64";
import type { JsonObject, JsonValue } from "../json";
import type { RoomVersion } from "../room-versions";
import { computeReferenceHash } from "./hashes";

export class EventIdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EventIdError";
  }
}

/**
 * The ID of an event. v1/v2: chosen by the origin server and carried in the PDU's `event_id` (which
 * the reference hash and signatures cover). v3: "$" + unpadded base64 of the reference hash.
 * v4+: the same in URL-safe base64.
 */
export function computeEventId(pdu: JsonObject, version: RoomVersion): string {
  switch (version.eventIdFormat) {
    case "server-chosen":
      if (typeof pdu.event_id !== "string") throw new EventIdError(`room version ${version.id} events carry their event_id`);
      return pdu.event_id;
    case "reference-hash-base64":
      return `$${encodeBase64(computeReferenceHash(pdu, version))}`;
    case "reference-hash-urlsafe":
      return `$${encodeUrlSafeBase64(computeReferenceHash(pdu, version))}`;
  }
}

/** How other events point at this one in prev_events/auth_events: v1/v2 [id, {sha256}], else the ID. */
export function eventReference(pdu: JsonObject, version: RoomVersion): JsonValue {
  const eventId = computeEventId(pdu, version);
  if (version.eventIdFormat !== "server-chosen") return eventId;
  return [eventId, { sha256: encodeBase64(computeReferenceHash(pdu, version)) }];
}

/** v12: the room ID is "!" + the URL-safe reference hash of its m.room.create event. */
export function roomIdFromCreateEvent(createPdu: JsonObject, version: RoomVersion): string {
  if (!version.roomIdFromCreateEvent) throw new EventIdError(`room version ${version.id} room IDs are not derived from the create event`);
  return `!${encodeUrlSafeBase64(computeReferenceHash(createPdu, version))}`;
}
