// The outbound federation transport: one HTTP request to another homeserver, its name resolved
// (server-server-api "Resolving server names"), over TLS as the spec's "TLS" section and our config
// say, signed with X-Matrix ("Request Authentication"), its answer mapped to JSON or to an error.
import { readFileSync } from "node:fs";
import tls from "node:tls";
import type { Config } from "../../config/schema";
import { parseJson } from "../../protocol/canonical-json";
import type { ErrCode } from "../../protocol/errors";
import { isJsonObject, type JsonValue } from "../../protocol/json";
import { signRequest, type RequestSigner } from "../../protocol/x-matrix";
import { FederationUnreachableError, RemoteMatrixError, type FederationClient, type FederationRequestOptions } from "./contracts";
import { httpsWellKnownFetcher, readLimitedText, ServerNameResolver, type ResolvedServer } from "./discovery";
import type { Clock } from "../runtime";

export type FederationTransportConfig = Pick<
  Config["federation"],
  "verify_tls" | "tls_trusted_ca_path" | "tls_skip_verify_servers" | "plain_http_servers" | "request_timeout_ms"
>;

/** The TLS options of Bun's fetch that the federation client sets. */
export interface FederationTlsOptions {
  readonly rejectUnauthorized: boolean;
  /** SNI and the name the certificate is checked against; absent when it is the URL's host. */
  readonly serverName?: string;
  /** Trusted roots, when tls_trusted_ca_path adds some: the default roots plus that file. */
  readonly ca?: string[];
}

export type FederationFetch = (url: string, init: RequestInit & { tls?: FederationTlsOptions }) => Promise<Response>;

export interface HttpFederationClientOptions {
  /** Our server name: the X-Matrix origin. */
  readonly serverName: string;
  /** Signs as `serverName` (ServerKeyService fits). */
  readonly signer: RequestSigner;
  readonly config: FederationTransportConfig;
  readonly resolver: { resolve(serverName: string): Promise<ResolvedServer> };
  /** Default: Bun's fetch. */
  readonly fetch?: FederationFetch;
  /** Longer answers are abandoned (FederationUnreachableError). Default 100 MiB (send_join of a large room is big). */
  readonly maxResponseBytes?: number;
  /** The User-Agent header, e.g. `Portier/${PORTIER_VERSION}` (services do not import src/version). Default "Portier". */
  readonly userAgent?: string;
  /** Shared with the resolver's well-known fetches (see createHttpFederationClient); default: one from `config`. */
  readonly tlsPolicy?: FederationTlsPolicy;
}

/**
 * Who is trusted for which destination: the certificate is verified unless verify_tls is off or the
 * server name is in tls_skip_verify_servers (exact match); tls_trusted_ca_path adds roots to the
 * default ones. The CA file is read once, here, so a wrong path fails at start.
 */
export class FederationTlsPolicy {
  private readonly ca: string[] | undefined;
  private readonly skipVerify: ReadonlySet<string>;
  private readonly options = new Map<string, FederationTlsOptions>();

  constructor(private readonly config: FederationTransportConfig) {
    this.skipVerify = new Set(config.tls_skip_verify_servers);
    if (config.tls_trusted_ca_path !== undefined) {
      let extra: string;
      try {
        extra = readFileSync(config.tls_trusted_ca_path, "utf8");
      } catch (error) {
        throw new Error(`federation.tls_trusted_ca_path: cannot read ${config.tls_trusted_ca_path}: ${(error as Error).message}`);
      }
      if (!extra.includes("-----BEGIN CERTIFICATE-----")) throw new Error(`federation.tls_trusted_ca_path: ${config.tls_trusted_ca_path} holds no PEM certificate`);
      // Bun's `ca` replaces its roots, so the defaults are passed along with the extra ones.
      this.ca = [...defaultRootCertificates(), extra];
    }
  }

  verifies(serverName: string): boolean {
    return this.config.verify_tls && !this.skipVerify.has(serverName);
  }

  /** TLS options for a connection to `destination` whose certificate must name `tlsServerName`. */
  forConnection(destination: string, tlsServerName: string | undefined): FederationTlsOptions {
    const verify = this.verifies(destination);
    const key = `${verify}\n${tlsServerName ?? ""}`;
    let options = this.options.get(key);
    if (options === undefined) {
      options = {
        rejectUnauthorized: verify,
        ...(tlsServerName !== undefined ? { serverName: tlsServerName } : {}),
        ...(this.ca !== undefined ? { ca: this.ca } : {}),
      };
      // Identical objects per (verify, name) let connections be pooled; the set of names is small.
      if (this.options.size < 10_000) this.options.set(key, options);
    }
    return options;
  }

  /** For https://<hostname>/.well-known/matrix/server (redirects may change the host: no name is pinned). */
  forWellKnown(hostname: string): FederationTlsOptions {
    return this.forConnection(hostname, undefined);
  }
}

/** The roots Bun trusts by default (bundled, plus the system's where Bun reads them). */
function defaultRootCertificates(): string[] {
  const getCACertificates = (tls as { getCACertificates?: (type?: string) => string[] }).getCACertificates;
  return typeof getCACertificates === "function" ? getCACertificates("default") : [...tls.rootCertificates];
}

export class HttpFederationClient implements FederationClient {
  private readonly tlsPolicy: FederationTlsPolicy;
  private readonly plainHttp: ReadonlySet<string>;
  private readonly fetch: FederationFetch;
  private readonly maxResponseBytes: number;

  constructor(private readonly options: HttpFederationClientOptions) {
    this.tlsPolicy = options.tlsPolicy ?? new FederationTlsPolicy(options.config);
    this.plainHttp = new Set(options.config.plain_http_servers);
    this.fetch = options.fetch ?? ((url, init) => fetch(url, init as RequestInit));
    this.maxResponseBytes = options.maxResponseBytes ?? 100 * 1024 * 1024;
  }

  /**
   * Sends one request. `path` is the request path already percent-encoded by the caller
   * (`/_matrix/federation/v1/event/${encodeURIComponent(eventId)}`); it is not encoded again. The
   * query is encoded here, a key repeated for each value of an array. The signed `uri` is the path
   * and query as the URL parser normalised them, which is exactly what goes on the wire. PUT and
   * POST always carry a JSON body (`{}` when none is given), as the spec's "API standards" ask.
   */
  async request(method: "GET" | "PUT" | "POST", destination: string, path: string, options: FederationRequestOptions = {}): Promise<unknown> {
    if (!path.startsWith("/")) throw new TypeError(`federation request path must start with '/': ${JSON.stringify(path)}`);
    if (method === "GET" && options.body !== undefined) throw new TypeError("a GET request has no body");
    const timeoutMs = options.timeoutMs ?? this.options.config.request_timeout_ms;
    // The deadline starts before resolving, so time spent on well-known and SRV lookups counts too.
    const signal = AbortSignal.timeout(timeoutMs);

    let resolved: ResolvedServer;
    try {
      resolved = await this.options.resolver.resolve(destination);
    } catch (error) {
      throw new FederationUnreachableError(destination, describeError(error));
    }

    const plain = this.plainHttp.has(destination);
    const hostPart = resolved.host.includes(":") ? `[${resolved.host}]` : resolved.host;
    const url = new URL(`${plain ? "http" : "https"}://${hostPart}:${resolved.port}${withQuery(path, options.query)}`);
    const uri = url.pathname + url.search;

    const content: JsonValue | undefined = method === "GET" ? undefined : (options.body ?? {});
    const headers = new Headers({ Host: resolved.hostHeader, Accept: "application/json", "User-Agent": this.options.userAgent ?? "Portier" });
    if (content !== undefined) headers.set("Content-Type", "application/json");
    if (options.signed ?? true) {
      headers.set("Authorization", signRequest({ method, uri, origin: this.options.serverName, destination, content }, this.options.signer));
    }

    let response: Response;
    let text: string | undefined;
    try {
      // The certificate must name tlsServerName; when that is the URL's own host (an IP literal, a
      // hostname with a port), Bun checks it without being told, and sends no SNI for an IP.
      const tlsServerName = resolved.tlsServerName === resolved.host ? undefined : resolved.tlsServerName;
      response = await this.fetch(url.href, {
        method,
        headers,
        body: content === undefined ? undefined : JSON.stringify(content),
        signal,
        // Federation endpoints do not redirect; a 3xx is an answer, not somewhere else to sign for.
        redirect: "manual",
        ...(plain ? {} : { tls: this.tlsPolicy.forConnection(destination, tlsServerName) }),
      });
      text = await readLimitedText(response, this.maxResponseBytes);
    } catch (error) {
      if (signal.aborted) throw new FederationUnreachableError(destination, `no answer within ${timeoutMs} ms`);
      throw new FederationUnreachableError(destination, describeError(error));
    }
    if (text === undefined) throw new FederationUnreachableError(destination, `answer larger than ${this.maxResponseBytes} bytes`);

    if (response.status >= 200 && response.status < 300) {
      try {
        // Losslessly: PDUs of room versions 1-5 may hold floats whose exact text their hashes cover.
        return parseJson(text, { lossless: true });
      } catch {
        throw new FederationUnreachableError(destination, `status ${response.status} with a body that is not JSON`);
      }
    }
    throw remoteError(destination, response.status, text);
  }
}

/**
 * The client and its resolver wired together: one TLS policy for federation requests and for the
 * resolver's /.well-known/matrix/server fetches (so tls_trusted_ca_path and the skip list apply to
 * both), SRV through the system's DNS.
 */
export function createHttpFederationClient(options: {
  readonly serverName: string;
  readonly signer: RequestSigner;
  readonly config: FederationTransportConfig;
  readonly clock?: Clock;
  readonly userAgent?: string;
}): { client: HttpFederationClient; resolver: ServerNameResolver } {
  const tlsPolicy = new FederationTlsPolicy(options.config);
  const resolver = new ServerNameResolver({
    fetchWellKnown: httpsWellKnownFetcher({ tls: (hostname) => tlsPolicy.forWellKnown(hostname) }),
    clock: options.clock,
  });
  const client = new HttpFederationClient({ ...options, resolver, tlsPolicy });
  return { client, resolver };
}

/** The path with the query appended (`&` when the path already has one); arrays repeat the key. */
function withQuery(path: string, query: FederationRequestOptions["query"]): string {
  if (query === undefined) return path;
  const pairs: string[] = [];
  for (const [key, value] of Object.entries(query)) {
    const values: readonly string[] = typeof value === "string" ? [value] : value;
    for (const v of values) pairs.push(`${encodeURIComponent(key)}=${encodeURIComponent(v)}`);
  }
  if (pairs.length === 0) return path;
  return `${path}${path.includes("?") ? "&" : "?"}${pairs.join("&")}`;
}

/** A non-2xx answer: the remote errcode when the body is a Matrix error, else one by status. */
function remoteError(destination: string, status: number, text: string): RemoteMatrixError {
  let body: unknown;
  try {
    body = parseJson(text);
  } catch {
    body = undefined;
  }
  if (isJsonObject(body) && typeof body.errcode === "string") {
    const { errcode, error, ...extra } = body;
    const message = typeof error === "string" ? error : `${destination} answered ${status} ${errcode}`;
    // The remote may use errcodes we do not list; they are passed on as they came.
    return new RemoteMatrixError(destination, errcode as ErrCode, message, status, extra);
  }
  const errcode: ErrCode = status === 404 || status === 405 ? "M_UNRECOGNIZED" : "M_UNKNOWN";
  return new RemoteMatrixError(destination, errcode, `${destination} answered ${status} without a Matrix error`, status);
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  return typeof code === "string" && !error.message.includes(code) ? `${code}: ${error.message}` : error.message;
}
