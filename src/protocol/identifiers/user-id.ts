// User IDs (content/appendices.md "User Identifiers", "Historical User IDs"):
//
//   user_id = "@" user_id_localpart ":" server_name          ; at most 255 bytes in all
//   user_id_localpart = 1*user_id_char                        ; for IDs a server creates now
//   user_id_char = DIGIT / %x61-7A / "-" / "." / "=" / "_" / "/" / "+"
//
// IDs received from elsewhere are judged by the historical rule instead: the localpart may be any
// non-surrogate code points except ":" and NUL, empty included, because rooms hold such senders.

import { fail, ok, type ParseResult } from "./result";
import { parseServerName } from "./server-name";
import { isOpaqueLocalpart, MAX_IDENTIFIER_BYTES, utf8Length } from "./text";

export interface UserId {
  readonly localpart: string;
  readonly serverName: string;
  /**
   * False for the deprecated IDs the appendices call non-compliant: an empty localpart or one
   * with characters outside U+0021..U+007E. Such IDs are accepted in events but SHOULD NOT be
   * forwarded to clients outside the context of an event.
   */
  readonly compliant: boolean;
}

/**
 * "received": the historical grammar every server MUST accept (events, federation).
 * "new": the strict grammar for user IDs this server creates (registration, appservices).
 */
export type UserIdGrammar = "received" | "new";

const STRICT_LOCALPART = /^[a-z0-9._=\-/+]+$/;
const COMPLIANT_LOCALPART = /^[\x21-\x7e]+$/;

export function parseUserId(id: string, grammar: UserIdGrammar = "received"): ParseResult<UserId> {
  if (!id.startsWith("@")) return fail("user ID must start with '@'");
  const colon = id.indexOf(":");
  // The localpart cannot hold ":", so the first one ends it; the server name may hold more.
  if (colon < 0) return fail("user ID has no ':' before the server name");
  const localpart = id.slice(1, colon);
  const serverName = id.slice(colon + 1);
  if (utf8Length(id) > MAX_IDENTIFIER_BYTES) return fail(`user ID is longer than ${MAX_IDENTIFIER_BYTES} bytes`);
  if (grammar === "new") {
    const problem = newLocalpartProblem(localpart);
    if (problem) return fail(problem);
  } else if (!isOpaqueLocalpart(localpart)) {
    return fail("user ID localpart contains NUL or a lone surrogate");
  }
  const server = parseServerName(serverName);
  if (!server.ok) return fail(`user ID server name: ${server.error}`);
  return ok({ localpart, serverName, compliant: COMPLIANT_LOCALPART.test(localpart) });
}

export const isValidUserId = (id: string, grammar: UserIdGrammar = "received"): boolean =>
  parseUserId(id, grammar).ok;

/** Why `localpart` is not a legal localpart for a new user ID, or undefined when it is. */
function newLocalpartProblem(localpart: string): string | undefined {
  if (localpart.length === 0) return "user ID localpart is empty";
  if (!STRICT_LOCALPART.test(localpart)) {
    return "user ID localpart may only contain a-z, 0-9, '.', '_', '=', '-', '/' and '+'";
  }
  return undefined;
}

/**
 * Checks a localpart a client asks to register on `serverName`: the strict grammar, and the
 * 255-byte limit of the whole user ID it would make. Returns the user ID.
 */
export function validateNewUserLocalpart(localpart: string, serverName: string): ParseResult<string> {
  const problem = newLocalpartProblem(localpart);
  if (problem) return fail(problem);
  const id = `@${localpart}:${serverName}`;
  const parsed = parseUserId(id, "new");
  return parsed.ok ? ok(id) : fail(parsed.error);
}
