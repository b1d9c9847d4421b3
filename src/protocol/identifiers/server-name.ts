// Server names (content/appendices.md "Server Name"):
//
//   server_name = hostname [ ":" port ]
//   port        = 1*5DIGIT
//   hostname    = IPv4address / "[" IPv6address "]" / dns-name
//   IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT
//   IPv6address = 2*45IPv6char            ; and a valid RFC 3513 section 2.2 address
//   dns-name    = 1*255dns-char           ; DIGIT / ALPHA / "-" / "."
//
// Server names are case-sensitive, so nothing here lower-cases.

import { fail, ok, type ParseResult } from "./result";

export type HostKind = "dns" | "ipv4" | "ipv6";

export interface ServerName {
  /** The hostname as written; for IPv6 without the brackets. */
  readonly host: string;
  readonly kind: HostKind;
  readonly port?: number;
}

const IPV4_SHAPE = /^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$/;
const DNS_NAME = /^[A-Za-z0-9.-]{1,255}$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;
const HEX_GROUP = /^[0-9A-Fa-f]{1,4}$/;
const PORT = /^[0-9]{1,5}$/;

/** A dotted quad whose four numbers are each 0..255. */
export function isIPv4Address(s: string): boolean {
  return IPV4_SHAPE.test(s) && s.split(".").every((n) => Number(n) <= 255);
}

/** An IPv6 literal as RFC 3513 section 2.2 writes it: 8 hex groups, one "::", an IPv4 tail. */
export function isIPv6Address(s: string): boolean {
  if (!IPV6_CHARS.test(s)) return false;
  const halves = s.split("::");
  if (halves.length > 2) return false;
  const compressed = halves.length === 2;
  let groups = 0;
  for (let h = 0; h < halves.length; h++) {
    if (halves[h] === "") continue; // one side of "::" may be empty ("::1", "1::", "::")
    const parts = halves[h]!.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      const lastOfAddress = h === halves.length - 1 && i === parts.length - 1;
      if (lastOfAddress && part.includes(".")) {
        // x:x:x:x:x:x:d.d.d.d, the low 32 bits as an IPv4 address.
        if (!isIPv4Address(part)) return false;
        groups += 2;
      } else if (HEX_GROUP.test(part)) {
        groups += 1;
      } else {
        return false;
      }
    }
  }
  // "::" stands for one or more zero groups, so fewer than 8 must be written around it.
  return compressed ? groups <= 7 : groups === 8;
}

export function parseServerName(s: string): ParseResult<ServerName> {
  if (s.length === 0) return fail("server name is empty");
  let host: string;
  let rest: string;
  let kind: HostKind;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0) return fail("IPv6 literal has no closing ']'");
    host = s.slice(1, close);
    rest = s.slice(close + 1);
    if (!isIPv6Address(host)) return fail(`'${host}' is not a valid IPv6 address`);
    kind = "ipv6";
  } else {
    const colon = s.indexOf(":");
    host = colon < 0 ? s : s.slice(0, colon);
    rest = colon < 0 ? "" : s.slice(colon);
    if (IPV4_SHAPE.test(host)) {
      // Four 1-3 digit numbers match IPv4address, whose numbers must each be 0..255.
      if (!isIPv4Address(host)) return fail(`'${host}' is not a valid IPv4 address`);
      kind = "ipv4";
    } else if (DNS_NAME.test(host)) {
      kind = "dns";
    } else {
      return fail(`'${host}' is not a valid hostname`);
    }
  }
  if (rest === "") return ok({ host, kind });
  if (!rest.startsWith(":")) return fail("unexpected characters after the hostname");
  const portText = rest.slice(1);
  if (!PORT.test(portText)) return fail(`'${portText}' is not a valid port`);
  const port = Number(portText);
  // 1*5DIGIT admits 65536..99999, which no TCP port can be.
  if (port > 65535) return fail(`port ${port} is out of range`);
  return ok({ host, kind, port });
}

export const isValidServerName = (s: string): boolean => parseServerName(s).ok;
