// Resolving server names (server-server-api "Resolving server names"): where to connect for a
// server name, with which Host header and which TLS name. The steps run in the spec's order and are
// numbered as there. A/AAAA lookups of the chosen host are left to the HTTP client (fetch), so a
// ResolvedServer may name a hostname rather than an address.
import { resolveSrv as dnsResolveSrv } from "node:dns/promises";
import { parseJson } from "../../protocol/canonical-json";
import { parseServerName, type ServerName } from "../../protocol/identifiers";
import { isJsonObject, ownMember } from "../../protocol/json";
import { systemClock, type Clock } from "../runtime";

/** The port of a server name without one, and without SRV records (registered with IANA as matrix-fed). */
export const DEFAULT_FEDERATION_PORT = 8448;

export interface ResolvedServer {
  /** The server name asked for (requests are signed with it, never with a delegated name). */
  readonly serverName: string;
  /** Where to connect: an IP literal (IPv6 without brackets) or a hostname whose A/AAAA records are used. */
  readonly host: string;
  readonly port: number;
  /** The `Host` header to send. */
  readonly hostHeader: string;
  /** The name the certificate must be valid for, sent as SNI unless it is an IP literal (spec "TLS"). */
  readonly tlsServerName: string;
}

export interface SrvRecord {
  readonly name: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
}

export interface WellKnownResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
}

/** The server name could not be resolved (it is not a valid server name). */
export class ServerNameResolutionError extends Error {
  constructor(
    readonly serverName: string,
    reason: string,
  ) {
    super(`cannot resolve server name ${JSON.stringify(serverName)}: ${reason}`);
    this.name = "ServerNameResolutionError";
  }
}

export interface ServerNameResolverOptions {
  /**
   * GET https://<hostname>/.well-known/matrix/server, redirects followed. Undefined when no
   * response came (DNS, connection, TLS, timeout). Default: {@link httpsWellKnownFetcher}().
   */
  readonly fetchWellKnown?: (hostname: string) => Promise<WellKnownResponse | undefined>;
  /** SRV records of a name; [] when it has none. Default: node:dns/promises (ENOTFOUND/ENODATA -> []). */
  readonly resolveSrv?: (name: string) => Promise<SrvRecord[]>;
  readonly clock?: Clock;
  /** In [0, 1), for the weighted choice among SRV records of one priority (RFC 2782). */
  readonly random?: () => number;
  /** Without cache headers, a well-known answer is kept this long. Default 24 h (the spec's advice). */
  readonly wellKnownDefaultCacheMs?: number;
  /** A well-known answer is never kept longer than this, whatever its headers say. Default 48 h. */
  readonly wellKnownMaxCacheMs?: number;
  /** Nor shorter: a `max-age=0` must not cost a well-known request per federation request. Default 5 min. */
  readonly wellKnownMinCacheMs?: number;
  /** An invalid or missing well-known answer is kept this long. Default 1 h. */
  readonly wellKnownFailureCacheMs?: number;
  /** SRV lookups (including "none") are kept this long; node's resolver gives no TTL. Default 10 min. */
  readonly srvCacheMs?: number;
  /** Entries per cache; the oldest go first. Default 10,000. */
  readonly maxCacheEntries?: number;
}

const HOUR = 3600_000;

interface CacheEntry<T> {
  readonly value: T;
  readonly expiresAt: number;
}

/** A map whose entries expire by the injected clock, bounded in size (oldest inserted go first). */
class ExpiringCache<T> {
  private readonly entries = new Map<string, CacheEntry<T>>();

  constructor(
    private readonly clock: Clock,
    private readonly capacity: number,
  ) {}

  get(key: string): T | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.clock.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: string, value: T, ttlMs: number): void {
    this.entries.delete(key);
    while (this.entries.size >= this.capacity) this.entries.delete(this.entries.keys().next().value as string);
    this.entries.set(key, { value, expiresAt: this.clock.now() + ttlMs });
  }
}

/** The outcome of a well-known lookup: the delegated server name, or why there is none. */
export type WellKnownResult = { readonly delegated: string; readonly parsed: ServerName } | { readonly error: string };

export class ServerNameResolver {
  private readonly fetchWellKnown: (hostname: string) => Promise<WellKnownResponse | undefined>;
  private readonly resolveSrv: (name: string) => Promise<SrvRecord[]>;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly wellKnownCache: ExpiringCache<WellKnownResult>;
  private readonly srvCache: ExpiringCache<readonly SrvRecord[]>;
  private readonly wellKnownInFlight = new Map<string, Promise<WellKnownResult>>();
  private readonly cachePolicy: WellKnownCachePolicy;
  private readonly failureCacheMs: number;
  private readonly srvCacheMs: number;

  constructor(options: ServerNameResolverOptions = {}) {
    this.fetchWellKnown = options.fetchWellKnown ?? httpsWellKnownFetcher();
    this.resolveSrv = options.resolveSrv ?? systemResolveSrv;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    const capacity = options.maxCacheEntries ?? 10_000;
    this.wellKnownCache = new ExpiringCache(this.clock, capacity);
    this.srvCache = new ExpiringCache(this.clock, capacity);
    this.cachePolicy = {
      defaultMs: options.wellKnownDefaultCacheMs ?? 24 * HOUR,
      maxMs: options.wellKnownMaxCacheMs ?? 48 * HOUR,
      minMs: options.wellKnownMinCacheMs ?? 5 * 60_000,
    };
    this.failureCacheMs = options.wellKnownFailureCacheMs ?? HOUR;
    this.srvCacheMs = options.srvCacheMs ?? 10 * 60_000;
  }

  /** Where and how to reach `serverName`. Throws ServerNameResolutionError for an invalid server name. */
  async resolve(serverName: string): Promise<ResolvedServer> {
    const parsed = parseServerName(serverName);
    if (!parsed.ok) throw new ServerNameResolutionError(serverName, parsed.error);
    const { host, kind, port } = parsed.value;

    // 1. An IP literal: that address, the given port or 8448; Host is the server name as given.
    if (kind !== "dns") return { serverName, host, port: port ?? DEFAULT_FEDERATION_PORT, hostHeader: serverName, tlsServerName: host };

    // 2. A hostname with an explicit port: Host is the server name with its port.
    if (port !== undefined) return { serverName, host, port, hostHeader: serverName, tlsServerName: host };

    // 3. /.well-known/matrix/server on the hostname.
    const wellKnown = await this.wellKnown(host);
    if ("delegated" in wellKnown) {
      const delegatedName = wellKnown.delegated;
      const { host: delegatedHost, kind: delegatedKind, port: delegatedPort } = wellKnown.parsed;
      // 3.1 A delegated IP literal: Host is the IP address, with the port if one was given.
      if (delegatedKind !== "dns") {
        return { serverName, host: delegatedHost, port: delegatedPort ?? DEFAULT_FEDERATION_PORT, hostHeader: delegatedName, tlsServerName: delegatedHost };
      }
      // 3.2 A delegated hostname with a port: Host is <delegated_hostname>:<delegated_port>.
      if (delegatedPort !== undefined) {
        return { serverName, host: delegatedHost, port: delegatedPort, hostHeader: `${delegatedHost}:${delegatedPort}`, tlsServerName: delegatedHost };
      }
      // 3.3 _matrix-fed._tcp.<delegated_hostname>, 3.4 (deprecated) _matrix._tcp.<delegated_hostname>.
      const srv = await this.srvTarget(delegatedHost);
      if (srv !== undefined) return { serverName, host: srv.name, port: srv.port, hostHeader: delegatedHost, tlsServerName: delegatedHost };
      // 3.5 No SRV record: the delegated hostname on 8448.
      return { serverName, host: delegatedHost, port: DEFAULT_FEDERATION_PORT, hostHeader: delegatedHost, tlsServerName: delegatedHost };
    }

    // 4. _matrix-fed._tcp.<hostname>, 5. (deprecated) _matrix._tcp.<hostname>: Host and certificate
    // stay <hostname>, since DNS alone cannot prove a delegation.
    const srv = await this.srvTarget(host);
    if (srv !== undefined) return { serverName, host: srv.name, port: srv.port, hostHeader: host, tlsServerName: host };

    // 6. The hostname itself on 8448.
    return { serverName, host, port: DEFAULT_FEDERATION_PORT, hostHeader: host, tlsServerName: host };
  }

  /** The (cached) well-known answer of a hostname; concurrent lookups of one hostname share a request. */
  private async wellKnown(hostname: string): Promise<WellKnownResult> {
    const cached = this.wellKnownCache.get(hostname);
    if (cached !== undefined) return cached;
    let pending = this.wellKnownInFlight.get(hostname);
    if (pending === undefined) {
      pending = this.lookUpWellKnown(hostname).finally(() => this.wellKnownInFlight.delete(hostname));
      this.wellKnownInFlight.set(hostname, pending);
    }
    return pending;
  }

  private async lookUpWellKnown(hostname: string): Promise<WellKnownResult> {
    let response: WellKnownResponse | undefined;
    try {
      response = await this.fetchWellKnown(hostname);
    } catch {
      response = undefined;
    }
    const result = interpretWellKnown(response);
    // Successful answers by their cache headers; errors (non-200, bad JSON, no response) for an hour.
    const ttl = "delegated" in result ? wellKnownCacheMs(response!.headers, this.clock.now(), this.cachePolicy) : this.failureCacheMs;
    this.wellKnownCache.set(hostname, result, ttl);
    return result;
  }

  /** The SRV target for a hostname: _matrix-fed._tcp first, then the deprecated _matrix._tcp. */
  private async srvTarget(hostname: string): Promise<SrvRecord | undefined> {
    for (const service of ["_matrix-fed._tcp", "_matrix._tcp"]) {
      const records = await this.srvRecords(`${service}.${hostname}`);
      const chosen = chooseSrvRecord(records, this.random);
      if (chosen !== undefined) return chosen;
    }
    return undefined;
  }

  private async srvRecords(name: string): Promise<readonly SrvRecord[]> {
    const cached = this.srvCache.get(name);
    if (cached !== undefined) return cached;
    let records: SrvRecord[];
    try {
      records = await this.resolveSrv(name);
    } catch {
      // A failing DNS server (SERVFAIL, timeout): no records this time, asked again next time.
      return [];
    }
    this.srvCache.set(name, records, this.srvCacheMs);
    return records;
  }
}

/** Reads a well-known response: a 200 with a JSON object whose `m.server` is a valid server name. */
export function interpretWellKnown(response: WellKnownResponse | undefined): WellKnownResult {
  if (response === undefined) return { error: "no response" };
  if (response.status !== 200) return { error: `status ${response.status}` };
  let body: unknown;
  try {
    // Whatever the Content-Type says, the body is read as JSON (the spec's wellknown schema).
    body = parseJson(response.body);
  } catch {
    return { error: "not JSON" };
  }
  if (!isJsonObject(body)) return { error: "not a JSON object" };
  const server = ownMember(body, "m.server");
  if (typeof server !== "string") return { error: "no m.server string" };
  const parsed = parseServerName(server);
  if (!parsed.ok) return { error: `m.server is not a server name: ${parsed.error}` };
  return { delegated: server, parsed: parsed.value };
}

export interface WellKnownCachePolicy {
  readonly defaultMs: number;
  readonly maxMs: number;
  readonly minMs: number;
}

/**
 * How long to keep a well-known answer: Cache-Control max-age (no-store/no-cache: as short as
 * allowed), else Expires (against the Date header when there is one), else the default; always
 * within [minMs, maxMs].
 */
export function wellKnownCacheMs(headers: Headers, now: number, policy: WellKnownCachePolicy): number {
  const clamp = (ms: number) => Math.min(policy.maxMs, Math.max(policy.minMs, ms));
  const cacheControl = headers.get("cache-control");
  if (cacheControl !== null) {
    const directives = cacheControl.split(",").map((d) => d.trim().toLowerCase());
    if (directives.some((d) => d === "no-store" || d === "no-cache")) return clamp(0);
    for (const directive of directives) {
      const match = /^max-age\s*=\s*"?(\d+)"?$/.exec(directive);
      if (match) return clamp(Number(match[1]) * 1000);
    }
  }
  const expires = headers.get("expires");
  if (expires !== null) {
    const expiresAt = Date.parse(expires);
    // An unparseable Expires (often "0" or "-1") means already expired (RFC 9111 §5.3).
    if (Number.isNaN(expiresAt)) return clamp(0);
    const dateHeader = headers.get("date");
    const date = dateHeader === null ? NaN : Date.parse(dateHeader);
    return clamp(expiresAt - (Number.isNaN(date) ? now : date));
  }
  return clamp(policy.defaultMs);
}

/**
 * RFC 2782 selection: the lowest priority wins; among equals, a random pick weighted by `weight`
 * (zero-weight records only when all are zero). A target of "." means "no service here".
 */
export function chooseSrvRecord(records: readonly SrvRecord[], random: () => number): SrvRecord | undefined {
  const usable = records
    .map((r) => ({ ...r, name: r.name.replace(/\.$/, "") }))
    .filter((r) => r.name !== "" && Number.isInteger(r.port) && r.port > 0 && r.port <= 65535);
  if (usable.length === 0) return undefined;
  const lowest = Math.min(...usable.map((r) => r.priority));
  const group = usable.filter((r) => r.priority === lowest);
  const total = group.reduce((sum, r) => sum + r.weight, 0);
  if (total === 0) return group[Math.min(group.length - 1, Math.floor(random() * group.length))];
  let point = random() * total;
  for (const record of group) {
    if (record.weight === 0) continue;
    point -= record.weight;
    if (point < 0) return record;
  }
  return group.filter((r) => r.weight > 0).at(-1);
}

async function systemResolveSrv(name: string): Promise<SrvRecord[]> {
  try {
    return await dnsResolveSrv(name);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === "ENOTFOUND" || code === "ENODATA") return [];
    throw error;
  }
}

export interface HttpsWellKnownFetcherOptions {
  /** Default 10 s for the whole lookup, redirects included. */
  readonly timeoutMs?: number;
  /** Larger answers are not read. Default 64 KiB. */
  readonly maxBytes?: number;
  /** TLS settings per hostname (trusted CAs, skip-verify); default: Bun's. */
  readonly tls?: (hostname: string) => { readonly rejectUnauthorized?: boolean; readonly ca?: string[] } | undefined;
  readonly fetch?: (url: string, init: RequestInit & { tls?: object }) => Promise<Response>;
}

/** GETs https://<hostname>/.well-known/matrix/server with fetch; redirects followed (fetch stops loops after 20). */
export function httpsWellKnownFetcher(options: HttpsWellKnownFetcherOptions = {}): (hostname: string) => Promise<WellKnownResponse | undefined> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxBytes = options.maxBytes ?? 64 * 1024;
  const doFetch = options.fetch ?? ((url, init) => fetch(url, init as RequestInit));
  return async (hostname) => {
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const tls = options.tls?.(hostname);
      const response = await doFetch(`https://${hostname}/.well-known/matrix/server`, { redirect: "follow", signal, ...(tls ? { tls } : {}) });
      const body = await readLimitedText(response, maxBytes);
      if (body === undefined) return { status: response.status, headers: response.headers, body: "" };
      return { status: response.status, headers: response.headers, body };
    } catch {
      return undefined;
    }
  };
}

/** The body as UTF-8 text, or undefined (the body cancelled) when it is longer than maxBytes. */
export async function readLimitedText(response: Response, maxBytes: number): Promise<string | undefined> {
  const declared = Number(response.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) {
    await response.body?.cancel().catch(() => {});
    return undefined;
  }
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.byteLength;
    if (length > maxBytes) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}
