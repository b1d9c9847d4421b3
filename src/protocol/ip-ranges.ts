// IP addresses and CIDR ranges, as text: an IPv6 address's groups (an embedded IPv4 tail included),
// ranges parsed ("10.0.0.0/8", "::1/128", a bare address for itself) and matched. The media
// fetcher's allowed ranges and the config that names them share these.
import { isIP } from "node:net";

/** An IPv4 address as one number. */
export function ipv4ToInt(address: string): number {
  return address.split(".").reduce((n, part) => n * 256 + Number(part), 0);
}

/** The 8 groups of an IPv6 address as numbers (an embedded dotted IPv4 tail included). */
export function ipv6Groups(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (tail) {
    const v4 = ipv4ToInt(tail[1]!);
    text = `${text.slice(0, -tail[1]!.length)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const parse = (s: string) => (s === "" ? [] : s.split(":").map((g) => parseInt(g, 16)));
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const groups = rest === undefined ? left : [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

/** A CIDR range ("10.0.0.0/8", "::1/128"; a bare address is the one address), or undefined when it is not one. */
export interface AddressRange {
  readonly family: 4 | 6;
  readonly groups: readonly number[];
  readonly bits: number;
}

export function parseAddressRange(text: string): AddressRange | undefined {
  const [address = "", prefix, extra] = text.trim().split("/");
  if (extra !== undefined) return undefined;
  const family = isIP(address);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const bits = prefix === undefined ? max : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  if (!(bits >= 0 && bits <= max)) return undefined;
  const groups = family === 4 ? address.split(".").map(Number) : ipv6Groups(address);
  return groups ? { family: family as 4 | 6, groups, bits } : undefined;
}

/** Whether the address lies in the range (IPv4 in IPv4 ranges, IPv6 in IPv6 ranges). */
export function inRange(address: string, range: AddressRange): boolean {
  const family = isIP(address);
  if (family !== range.family) return false;
  const groups = family === 4 ? address.split(".").map(Number) : ipv6Groups(address);
  if (!groups) return false;
  const width = family === 4 ? 8 : 16;
  let left = range.bits;
  for (let i = 0; i < groups.length && left > 0; i++, left -= width) {
    const take = Math.min(width, left);
    const shift = width - take;
    if (groups[i]! >> shift !== range.groups[i]! >> shift) return false;
  }
  return true;
}

