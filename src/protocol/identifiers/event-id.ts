// Event IDs (content/appendices.md "Event IDs"; content/rooms/v1.md, v3.md, v4.md "Event IDs").
//
//   v1, v2: "$" opaque_id ":" server_name, chosen by the origin server;
//   v3:     "$" + standard unpadded base64 of the sha256 reference hash (may hold '+' and '/');
//   v4+:    "$" + URL-safe unpadded base64 of it ('-' and '_').
// Always at most 255 bytes.

import type { EventIdFormat } from "../room-versions";
import { fail, ok, type ParseResult } from "./result";
import { SHA256_BASE64_LENGTH } from "./room-id";
import { parseServerName } from "./server-name";
import { isOpaqueLocalpart, MAX_IDENTIFIER_BYTES, utf8Length } from "./text";

export type EventId =
  | { readonly kind: "server"; readonly opaqueId: string; readonly serverName: string }
  /** v3+: the reference hash (without the sigil). */
  | { readonly kind: "hash"; readonly hash: string };

const STANDARD_HASH = /^[A-Za-z0-9+/]{43}$/;
const URL_SAFE_HASH = /^[A-Za-z0-9_-]{43}$/;
const ANY_HASH = /^[A-Za-z0-9+/_-]{43}$/;

/**
 * Parses an event ID. With `format` (a room version's `eventIdFormat`) only that form is accepted;
 * without it, any of the three.
 */
export function parseEventId(id: string, format?: EventIdFormat): ParseResult<EventId> {
  if (!id.startsWith("$")) return fail("event ID must start with '$'");
  if (utf8Length(id) > MAX_IDENTIFIER_BYTES) return fail(`event ID is longer than ${MAX_IDENTIFIER_BYTES} bytes`);
  const colon = id.indexOf(":");
  if (format === "server-chosen" || (format === undefined && colon >= 0)) {
    if (colon < 0) return fail("event ID needs a ':' and a server name in this room version");
    const opaqueId = id.slice(1, colon);
    const serverName = id.slice(colon + 1);
    if (opaqueId.length === 0) return fail("event ID localpart is empty");
    if (!isOpaqueLocalpart(opaqueId)) return fail("event ID localpart contains NUL or a lone surrogate");
    const server = parseServerName(serverName);
    if (!server.ok) return fail(`event ID server name: ${server.error}`);
    return ok({ kind: "server", opaqueId, serverName });
  }
  const hash = id.slice(1);
  const shape =
    format === "reference-hash-base64" ? STANDARD_HASH : format === "reference-hash-urlsafe" ? URL_SAFE_HASH : ANY_HASH;
  if (!shape.test(hash)) {
    const alphabet =
      format === "reference-hash-base64" ? "standard " : format === "reference-hash-urlsafe" ? "URL-safe " : "";
    return fail(`event ID must be '$' + ${SHA256_BASE64_LENGTH} ${alphabet}unpadded base64 characters`);
  }
  return ok({ kind: "hash", hash });
}

export const isValidEventId = (id: string, format?: EventIdFormat): boolean => parseEventId(id, format).ok;
