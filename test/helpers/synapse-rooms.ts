// Loads the Synapse 1.67 fixture rooms (../shared/fixtures/synapse, see its README.md) as
// RoomEvents. JSON.parse is enough here: the floats in v1..v5 content do not matter to the auth
// rules, only to hashing.

import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { RoomEvent } from "../../src/protocol/events";
import { isJsonObject, type JsonObject, type JsonValue } from "../../src/protocol/json";

/** test/fixtures/synapse when the vectors are copied into the repo, else the shared folder. */
export function synapseFixturePath(file: string): string {
  const candidates = [
    join(import.meta.dir, "../fixtures/synapse", file),
    join(import.meta.dir, "../../../shared/fixtures/synapse", file),
  ];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`Synapse fixture ${file} not found in ${candidates.join(" or ")}`);
  return found;
}

export function loadSynapseFixture<T = JsonObject>(file: string): T {
  return JSON.parse(readFileSync(synapseFixturePath(file), "utf8")) as T;
}

/** One record of a room's `events[]` (fields the auth tests use). */
export interface SynapseEventRecord {
  event_id: string;
  label: string;
  rejected: boolean;
  rejection_reason: string | null;
  outlier: boolean;
  pdu: JsonObject;
  state_before: [string, string, string][] | null;
  derived: { event_id: string; signatures_verified: Record<string, Record<string, boolean>> };
}

export interface SynapseRoomFixture {
  room_version: string;
  room_id: string;
  events: SynapseEventRecord[];
}

/** v1/v2 references are [id, {sha256}] pairs; later versions plain IDs. */
function referenceIds(refs: JsonValue | undefined): string[] {
  if (!Array.isArray(refs)) return [];
  return refs.map((r) => (Array.isArray(r) ? String(r[0]) : String(r)));
}

/** The RoomEvent view of a stored PDU, with the event ID the fixture derived for it. */
export function roomEventFromPdu(pdu: JsonObject, eventId: string): RoomEvent {
  const content = isJsonObject(pdu.content) ? pdu.content : {};
  const redacts = typeof pdu.redacts === "string" ? pdu.redacts : typeof content.redacts === "string" ? content.redacts : undefined;
  return {
    event_id: eventId,
    ...(typeof pdu.room_id === "string" ? { room_id: pdu.room_id } : {}),
    type: String(pdu.type),
    ...(typeof pdu.state_key === "string" ? { state_key: pdu.state_key } : {}),
    sender: String(pdu.sender),
    content,
    origin_server_ts: Number(pdu.origin_server_ts),
    depth: Number(pdu.depth),
    prev_events: referenceIds(pdu.prev_events),
    auth_events: referenceIds(pdu.auth_events),
    ...(redacts === undefined ? {} : { redacts }),
  };
}

/** Whether the fixture verified a signature of `server` on the record's PDU. */
export function signedByFromRecord(record: { derived: SynapseEventRecord["derived"] }): (server: string) => boolean {
  return (server) => Object.values(record.derived.signatures_verified?.[server] ?? {}).some(Boolean);
}
