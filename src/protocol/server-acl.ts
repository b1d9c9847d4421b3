// Server access control lists (client-server-api "Server Access Control Lists (ACLs) for rooms", the
// m.room.server_acl event schema, and server-server-api "Server Access Control Lists (ACLs)").
//
// The rules, in the schema's order:
//   1. no m.room.server_acl event in the room state: allow;
//   2. the server name is an IP literal and allow_ip_literals is false: deny;
//   3. the server name matches an entry of `deny`: deny;
//   4. the server name matches an entry of `allow`: allow;
//   5. otherwise: deny.
// The port is never considered ("evil.com:8448" is "evil.com"); patterns are case-insensitive globs
// (appendices "Glob-style matching": `*` any run of characters, `?` exactly one).
//
// A malformed ACL is read leniently, field by field, the way deployed servers read it:
// - allow_ip_literals that is not a boolean counts as absent (true);
// - allow / deny that is not an array counts as an empty list (so a non-list `allow` denies all);
// - an entry of a list that is not a string matches nothing;
// - content that is not an object at all is read as `{}` (deny everyone, as a missing `allow` does).
import { isIPv4Address, isIPv6Address } from "./identifiers";
import { isJsonObject } from "./json";

/**
 * Whether `serverName` may take part in a room whose m.room.server_acl content is `content`;
 * `undefined` means the room has no ACL event (rule 1: allow).
 */
export function serverAllowedByAcl(content: unknown, serverName: string): boolean {
  if (content === undefined) return true;
  const acl = isJsonObject(content) ? content : {};
  const host = hostOf(serverName);

  // 2. IP literals, when the room refuses them.
  if (acl.allow_ip_literals === false && isIpLiteral(host)) return false;
  // 3. deny wins over allow.
  if (entries(acl.deny).some((pattern) => globMatches(pattern, host))) return false;
  // 4, 5.
  return entries(acl.allow).some((pattern) => globMatches(pattern, host));
}

/** The hostname of a server name, without its port; an IPv6 literal keeps its brackets. */
export function hostOf(serverName: string): string {
  if (serverName.startsWith("[")) {
    const close = serverName.indexOf("]");
    return close < 0 ? serverName : serverName.slice(0, close + 1);
  }
  const colon = serverName.indexOf(":");
  return colon < 0 ? serverName : serverName.slice(0, colon);
}

function isIpLiteral(host: string): boolean {
  if (host.startsWith("[") && host.endsWith("]")) return isIPv6Address(host.slice(1, -1));
  return isIPv4Address(host);
}

/** The string entries of a list field; anything else is no entries. */
function entries(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((entry): entry is string => typeof entry === "string") : [];
}

/**
 * Case-insensitive glob match of the whole `text`: `*` matches any run of characters (also none),
 * `?` exactly one. Iterative with one backtrack point (the last `*`), so a pattern of many stars
 * costs O(pattern × text) at worst, never exponential time as a naive regex translation could.
 */
export function globMatches(pattern: string, text: string): boolean {
  // Compare code points, so that `?` matches one character even outside the BMP.
  const p = [...pattern.toLowerCase()];
  const t = [...text.toLowerCase()];
  let pi = 0;
  let ti = 0;
  let star = -1;
  let resume = 0;
  while (ti < t.length) {
    if (pi < p.length && p[pi] === "*") {
      star = pi++;
      resume = ti;
    } else if (pi < p.length && (p[pi] === "?" || p[pi] === t[ti])) {
      pi++;
      ti++;
    } else if (star >= 0) {
      // Let the last star swallow one more character and try again after it.
      pi = star + 1;
      ti = ++resume;
    } else {
      return false;
    }
  }
  while (pi < p.length && p[pi] === "*") pi++;
  return pi === p.length;
}
