// Matrix identifiers (content/appendices.md "Identifier Grammar"): parse and validate, returning
// errors as values.

export { type ParseResult } from "./result";
export { type HostKind, type ServerName, parseServerName, isValidServerName, isIPv4Address, isIPv6Address } from "./server-name";
export { type UserId, type UserIdGrammar, parseUserId, isValidUserId, validateNewUserLocalpart } from "./user-id";
export { type RoomId, parseRoomId, isValidRoomId, SHA256_BASE64_LENGTH } from "./room-id";
export { type EventId, parseEventId, isValidEventId } from "./event-id";
export { type RoomAlias, parseRoomAlias, isValidRoomAlias } from "./room-alias";
export { utf8Length, MAX_IDENTIFIER_BYTES } from "./text";

/**
 * The server name of a "&localpart:domain" identifier: everything after its first ':'. Undefined
 * when there is none (v3+ event IDs, v12 room IDs). Does not validate; the auth rules use it to
 * compare domains of IDs that already passed the event-format checks.
 */
export function serverNameOf(id: string): string | undefined {
  const colon = id.indexOf(":");
  return colon < 0 ? undefined : id.slice(colon + 1);
}
