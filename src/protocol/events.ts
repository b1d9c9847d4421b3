// The shapes of room events (PDUs) as the protocol code sees them (content/server-server-api.md, "PDUs";
// content/rooms/v*.md "Event format"). Fields are kept as received: a PDU is hashed and signed over
// every top-level key it carries, so nothing here may drop or reorder keys when stored.

import type { JsonObject, JsonValue } from "./json";

/** A v1/v2 event reference: [event_id, {sha256: reference hash}]. */
export type EventReferencePair = [string, { sha256: string }];

export interface Pdu extends JsonObject {
  type: string;
  sender: string;
  content: JsonObject;
  origin_server_ts: number;
  depth: number;
  /** v3+: event ids; v1/v2: [id, {sha256}] pairs. */
  prev_events: JsonValue[];
  auth_events: JsonValue[];
  hashes: { sha256: string } & JsonObject;
  signatures: { [server: string]: { [keyId: string]: string } };
}

/**
 * The parts of an event the authorization rules and state resolution read, with the event id
 * resolved (v1/v2 carry it in the PDU; v3+ derive it) and references flattened to ids.
 */
export interface RoomEvent {
  readonly event_id: string;
  /** Absent for the v12 create event. */
  readonly room_id?: string;
  readonly type: string;
  readonly state_key?: string;
  readonly sender: string;
  readonly content: JsonObject;
  readonly origin_server_ts: number;
  readonly depth: number;
  readonly prev_events: readonly string[];
  readonly auth_events: readonly string[];
  /** v1..v10: top-level; v11+: content.redacts. */
  readonly redacts?: string;
}

/** A state map key: `${type}\u0000${state_key}`. */
export type StateKey = string;
export const stateKey = (type: string, key: string): StateKey => `${type}\u0000${key}`;
export const splitStateKey = (k: StateKey): [string, string] => {
  const i = k.indexOf("\u0000");
  return [k.slice(0, i), k.slice(i + 1)];
};
/** type+state_key -> event id. */
export type StateMap = Map<StateKey, string>;
