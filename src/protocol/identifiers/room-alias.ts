// Room aliases (content/appendices.md "Room Aliases"): "#" localpart ":" server_name, the
// localpart any non-surrogate code points except ":" and NUL, at most 255 bytes in all.

import { fail, ok, type ParseResult } from "./result";
import { parseServerName } from "./server-name";
import { isOpaqueLocalpart, MAX_IDENTIFIER_BYTES, utf8Length } from "./text";

export interface RoomAlias {
  readonly localpart: string;
  readonly serverName: string;
}

export function parseRoomAlias(alias: string): ParseResult<RoomAlias> {
  if (!alias.startsWith("#")) return fail("room alias must start with '#'");
  if (utf8Length(alias) > MAX_IDENTIFIER_BYTES) return fail(`room alias is longer than ${MAX_IDENTIFIER_BYTES} bytes`);
  const colon = alias.indexOf(":");
  if (colon < 0) return fail("room alias has no ':' before the server name");
  const localpart = alias.slice(1, colon);
  const serverName = alias.slice(colon + 1);
  if (localpart.length === 0) return fail("room alias localpart is empty");
  if (!isOpaqueLocalpart(localpart)) return fail("room alias localpart contains NUL or a lone surrogate");
  const server = parseServerName(serverName);
  if (!server.ok) return fail(`room alias server name: ${server.error}`);
  return ok({ localpart, serverName });
}

export const isValidRoomAlias = (alias: string): boolean => parseRoomAlias(alias).ok;
