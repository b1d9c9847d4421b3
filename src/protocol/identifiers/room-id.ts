// Room IDs (content/appendices.md "Room IDs"; content/rooms/v12.md "Event format").
//
// Room versions 1..11: "!" opaque_id ":" server_name, the opaque part being any non-surrogate
// code points except ":" and NUL. Room version 12: the create event's ID with "!" for "$", that
// is "!" + the URL-safe unpadded base64 of a sha256 reference hash. Either way at most 255 bytes.

import type { RoomVersion } from "../room-versions";
import { fail, ok, type ParseResult } from "./result";
import { parseServerName } from "./server-name";
import { isOpaqueLocalpart, MAX_IDENTIFIER_BYTES, utf8Length } from "./text";

export type RoomId =
  | { readonly kind: "server"; readonly opaqueId: string; readonly serverName: string }
  /** v12: the reference hash of the m.room.create event (without the sigil). */
  | { readonly kind: "hash"; readonly hash: string };

/** Unpadded base64 of 32 bytes (a sha256) is 43 characters. */
export const SHA256_BASE64_LENGTH = 43;
const URL_SAFE_HASH = /^[A-Za-z0-9_-]{43}$/;

/**
 * Parses a room ID. With `version`, only the form that version uses is accepted; without it,
 * either form (a hash form has no ':', a server form always has one).
 */
export function parseRoomId(id: string, version?: RoomVersion): ParseResult<RoomId> {
  if (!id.startsWith("!")) return fail("room ID must start with '!'");
  if (utf8Length(id) > MAX_IDENTIFIER_BYTES) return fail(`room ID is longer than ${MAX_IDENTIFIER_BYTES} bytes`);
  const wantHash = version?.roomIdFromCreateEvent;
  const colon = id.indexOf(":");
  if (colon < 0) {
    if (wantHash === false) return fail(`room version ${version!.id} room IDs need a ':' and a server name`);
    const hash = id.slice(1);
    if (!URL_SAFE_HASH.test(hash)) {
      return fail("room ID without a server name must be '!' + 43 URL-safe unpadded base64 characters");
    }
    return ok({ kind: "hash", hash });
  }
  if (wantHash === true) return fail(`room version ${version!.id} room IDs have no server name`);
  const opaqueId = id.slice(1, colon);
  const serverName = id.slice(colon + 1);
  if (opaqueId.length === 0) return fail("room ID localpart is empty");
  if (!isOpaqueLocalpart(opaqueId)) return fail("room ID localpart contains NUL or a lone surrogate");
  const server = parseServerName(serverName);
  if (!server.ok) return fail(`room ID server name: ${server.error}`);
  return ok({ kind: "server", opaqueId, serverName });
}

export const isValidRoomId = (id: string, version?: RoomVersion): boolean => parseRoomId(id, version).ok;
