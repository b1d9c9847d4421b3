// Fetches a URL that a user (a URL preview) or another server (a federation media Location) chose,
// without letting them point this server at itself or its network: the host name is resolved here,
// every address it has is checked, and the connection goes to the checked address (so a second DNS
// answer cannot swap in another). Loopback, private, link-local, multicast, reserved and other
// non-public ranges are refused, and so are redirects to them. Size and time are limited.
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { MatrixError } from "../../protocol/errors";
import { inRange, ipv4ToInt, ipv6Groups, type AddressRange } from "../../protocol/ip-ranges";

export interface SafeFetchOptions {
  readonly maxBytes: number;
  readonly timeoutMs: number;
  readonly accept?: string;
  readonly userAgent?: string;
  /** Which addresses may be fetched: public unicast ones. Tests of the fetching itself may widen it. */
  readonly allowAddress?: (address: string) => boolean;
  /** The host's addresses; default: the system resolver (every A and AAAA record). */
  readonly resolve?: (hostname: string) => Promise<string[]>;
  readonly maxRedirects?: number;
  /** Verify https certificates (default); off only for test peers with self-signed ones. */
  readonly verifyTls?: boolean;
}

export interface FetchedResource {
  readonly url: string;
  readonly status: number;
  readonly headers: Headers;
  readonly bytes: Uint8Array;
}

/** Refused destinations: 403, as Synapse answers a URL whose address its IP range blacklist holds. */
export class BlockedAddressError extends MatrixError {
  constructor(host: string) {
    super("M_FORBIDDEN", `${host} is not a public address: it is not fetched`, 403);
  }
}

const systemResolve = async (hostname: string) => (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/** IPv4 ranges that are not public unicast (RFC 6890 and friends): [base, prefix length]. */
const BLOCKED_V4: readonly (readonly [string, number])[] = [
  ["0.0.0.0", 8], // "this network"
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local (cloud metadata services live here)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.88.99.0", 24], // 6to4 relay anycast
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, and the broadcast address
];

function isPublicIPv4(address: string): boolean {
  const value = ipv4ToInt(address);
  return !BLOCKED_V4.some(([base, bits]) => {
    const size = 2 ** (32 - bits);
    const start = ipv4ToInt(base);
    return value >= start && value < start + size;
  });
}


/**
 * Public IPv6 is global unicast, 2000::/3, less its special ranges; outside it, only the two forms
 * that carry an IPv4 address a host really connects to (IPv4-mapped, and the well-known NAT64
 * prefix), judged by that address. Everything else is refused whole: the IPv4-compatible ::/96
 * (::7f00:1 is 127.0.0.1 to some stacks), SIIT's ::ffff:0:0:0/96, the local-use NAT64 prefix
 * 64:ff9b:1::/48 (RFC 8215: a network's own translator, reaching anything behind it), unique and
 * link local, multicast, discard-only, and whatever is not allocated yet.
 */
function isPublicIPv6(address: string): boolean {
  const g = ipv6Groups(address);
  if (g === undefined) return false;
  const embeddedV4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return isPublicIPv4(embeddedV4(g[6]!, g[7]!)); // IPv4-mapped ::ffff:0:0/96
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return isPublicIPv4(embeddedV4(g[6]!, g[7]!)); // NAT64 64:ff9b::/96 (RFC 6052)
  if ((g[0]! & 0xe000) !== 0x2000) return false; // not global unicast 2000::/3
  if (g[0] === 0x2002) return isPublicIPv4(embeddedV4(g[1]!, g[2]!)); // 6to4 2002::/16
  if (g[0] === 0x2001 && g[1]! < 0x200) return false; // 2001::/23 IETF protocol assignments (Teredo, ORCHID, ...)
  if (g[0] === 0x2001 && g[1] === 0x0db8) return false; // documentation 2001:db8::/32
  if (g[0] === 0x3fff && g[1]! < 0x1000) return false; // documentation 3fff::/20 (RFC 9637)
  return true;
}

/** Public addresses, and those in the operator's allowed ranges (media.url_preview_ip_range_whitelist). */
export function publicOrAllowed(ranges: readonly AddressRange[]): (address: string) => boolean {
  if (ranges.length === 0) return isPublicAddress;
  return (address) => isPublicAddress(address) || ranges.some((range) => inRange(address, range));
}

/** Whether an IP address is public unicast: the only kind a user-chosen URL may reach. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return isPublicIPv4(address);
  if (family === 6) return isPublicIPv6(address);
  return false;
}

/** GETs `url` (http or https), following at most `maxRedirects` redirects, each one checked again. */
export async function safeFetch(url: string, options: SafeFetchOptions): Promise<FetchedResource> {
  const allow = options.allowAddress ?? isPublicAddress;
  const resolve = options.resolve ?? systemResolve;
  const signal = AbortSignal.timeout(options.timeoutMs);
  let current = url;
  for (let redirects = 0; ; redirects++) {
    let target: URL;
    try {
      target = new URL(current);
    } catch {
      throw new MatrixError("M_INVALID_PARAM", "Not a valid URL");
    }
    if (target.protocol !== "http:" && target.protocol !== "https:") throw new MatrixError("M_INVALID_PARAM", "Only http and https URLs are fetched");
    if (target.username || target.password) throw new MatrixError("M_INVALID_PARAM", "URLs with credentials are not fetched");
    const hostname = target.hostname.startsWith("[") ? target.hostname.slice(1, -1) : target.hostname;
    let addresses: string[];
    if (isIP(hostname)) addresses = [hostname];
    else {
      try {
        addresses = await resolve(hostname);
      } catch {
        throw new MatrixError("M_UNKNOWN", `Could not resolve ${hostname}`, 502);
      }
    }
    // Any refused address refuses the name: which one a connection would use is not ours to pick.
    if (addresses.length === 0 || !addresses.every(allow)) throw new BlockedAddressError(hostname);
    const address = addresses[0]!;
    const literal = isIP(address) === 6 ? `[${address}]` : address;
    const direct = `${target.protocol}//${literal}${target.port ? `:${target.port}` : ""}${target.pathname}${target.search}`;
    let response: Response;
    try {
      response = await fetch(direct, {
        method: "GET",
        redirect: "manual",
        signal,
        headers: { Host: target.host, Accept: options.accept ?? "*/*", "User-Agent": options.userAgent ?? "Portier" },
        // The certificate must still be valid for the name, not the address connected to.
        ...(target.protocol === "https:"
          ? { tls: { ...(isIP(hostname) === 0 ? { serverName: hostname } : {}), ...(options.verifyTls === false ? { rejectUnauthorized: false } : {}) } }
          : {}),
      } as RequestInit);
    } catch (error) {
      if (signal.aborted) throw new MatrixError("M_UNKNOWN", `No answer from ${target.host} within ${options.timeoutMs} ms`, 504);
      throw new MatrixError("M_UNKNOWN", `Could not fetch from ${target.host}: ${(error as Error).message}`, 502);
    }
    const location = response.headers.get("location");
    if (response.status >= 300 && response.status < 400 && location !== null) {
      await response.body?.cancel().catch(() => {});
      if (redirects >= (options.maxRedirects ?? 5)) throw new MatrixError("M_UNKNOWN", "Too many redirects", 502);
      current = new URL(location, target).href;
      continue;
    }
    const bytes = await readLimited(response, options.maxBytes, signal);
    return { url: target.href, status: response.status, headers: response.headers, bytes };
  }
}

/** The body, at most maxBytes of it (502 M_TOO_LARGE past that, as for remote media too large to serve). */
export async function readLimited(response: Response, maxBytes: number, signal?: AbortSignal): Promise<Uint8Array> {
  const tooLarge = () => new MatrixError("M_TOO_LARGE", `The remote content is larger than ${maxBytes} bytes`, 502);
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (response.body === null) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  try {
    while (true) {
      const { done, value } = await reader.read();
      if (done) break;
      length += value.byteLength;
      if (length > maxBytes) throw tooLarge();
      chunks.push(value);
    }
  } catch (error) {
    await reader.cancel().catch(() => {});
    if (error instanceof MatrixError) throw error;
    if (signal?.aborted) throw new MatrixError("M_UNKNOWN", "The remote content did not arrive in time", 504);
    throw new MatrixError("M_UNKNOWN", `Reading the remote content failed: ${(error as Error).message}`, 502);
  }
  return Buffer.concat(chunks);
}
