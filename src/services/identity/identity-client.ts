// Outbound requests to identity servers (identity-service-api), on behalf of a client's
// /account/3pid/bind, /unbind, /delete and of account deactivation. The client names the server
// (host[:port]), so the request must not let a user point this homeserver at itself or its network:
// the name is resolved here, every address is checked (public unicast only; loopback too when
// identity.allow_loopback is on), the connection goes to the checked address, and redirects are
// not followed. HTTPS by default; TLS and plain-HTTP exceptions are named in the config.
import { readFileSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import tls from "node:tls";
import type { Config } from "../../config/schema";
import { MatrixError } from "../../protocol/errors";
import { parseServerName } from "../../protocol/identifiers/server-name";
import type { JsonObject } from "../../protocol/json";
import { signRequest, type RequestSigner } from "../../protocol/x-matrix";
import { isPublicAddress, readLimited } from "../media/safe-fetch";

export type IdentityTransportConfig = Config["identity"];

export interface IdentityServerClientOptions {
  /** Our server name: the X-Matrix origin of signed requests. */
  readonly serverName: string;
  readonly signer: RequestSigner;
  readonly config: IdentityTransportConfig;
  /** A host's addresses; default: the system resolver (every A and AAAA record). */
  readonly resolve?: (hostname: string) => Promise<string[]>;
  readonly userAgent?: string;
}

export interface IdentityAnswer {
  readonly status: number;
  /** The answer's JSON object, when it was one. */
  readonly body: JsonObject | undefined;
}

/** Identity servers' answers are small; a larger one is abandoned. */
const MAX_ANSWER_BYTES = 1024 * 1024;

const systemResolve = async (hostname: string) => (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return address.startsWith("127.");
  if (family !== 6) return false;
  const lower = address.toLowerCase();
  if (/^(0{0,4}:){2,7}0{0,3}1$/.test(lower) || lower === "::1") return true;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  return mapped !== null && mapped[1]!.startsWith("127.");
}

function defaultRootCertificates(): string[] {
  const getCACertificates = (tls as { getCACertificates?: (type?: string) => string[] }).getCACertificates;
  return typeof getCACertificates === "function" ? getCACertificates("default") : [...tls.rootCertificates];
}

export class IdentityServerClient {
  private readonly ca: string[] | undefined;
  private readonly resolve: (hostname: string) => Promise<string[]>;

  constructor(private readonly options: IdentityServerClientOptions) {
    this.resolve = options.resolve ?? systemResolve;
    const caPath = options.config.tls_trusted_ca_path;
    if (caPath !== undefined) {
      let extra: string;
      try {
        extra = readFileSync(caPath, "utf8");
      } catch (error) {
        throw new Error(`identity.tls_trusted_ca_path: cannot read ${caPath}: ${(error as Error).message}`);
      }
      if (!extra.includes("-----BEGIN CERTIFICATE-----")) throw new Error(`identity.tls_trusted_ca_path: ${caPath} holds no PEM certificate`);
      // Bun's `ca` replaces its roots, so the defaults are passed along with the extra ones.
      this.ca = [...defaultRootCertificates(), extra];
    }
  }

  /** POST /_matrix/identity/v2/3pid/bind, authenticated by the user's identity-server access token. */
  bind(idServer: string, accessToken: string, body: JsonObject): Promise<IdentityAnswer> {
    return this.post(idServer, "/_matrix/identity/v2/3pid/bind", body, { Authorization: `Bearer ${accessToken}` });
  }

  /**
   * POST /_matrix/identity/v2/3pid/unbind, signed by this homeserver (identity-service-api: "the
   * request is signed by the homeserver which controls the user_id"), as X-Matrix with the identity
   * server as destination, as Synapse signs it.
   */
  unbind(idServer: string, body: JsonObject): Promise<IdentityAnswer> {
    const path = "/_matrix/identity/v2/3pid/unbind";
    const authorization = signRequest({ method: "POST", uri: path, origin: this.options.serverName, destination: idServer, content: body }, this.options.signer);
    return this.post(idServer, path, body, { Authorization: authorization });
  }

  /** GET /_matrix/identity/v2/hash_details: the pepper and the lookup algorithms the server supports. */
  hashDetails(idServer: string, accessToken: string): Promise<IdentityAnswer> {
    return this.request("GET", idServer, "/_matrix/identity/v2/hash_details", undefined, { Authorization: `Bearer ${accessToken}` });
  }

  /** POST /_matrix/identity/v2/lookup: the Matrix IDs bound to hashed (or, with "none", plain) 3PIDs. */
  lookup(idServer: string, accessToken: string, body: JsonObject): Promise<IdentityAnswer> {
    return this.post(idServer, "/_matrix/identity/v2/lookup", body, { Authorization: `Bearer ${accessToken}` });
  }

  /** POST /_matrix/identity/v2/store-invite: records a pending third-party invite; answers its token and keys. */
  storeInvite(idServer: string, accessToken: string, body: JsonObject): Promise<IdentityAnswer> {
    return this.post(idServer, "/_matrix/identity/v2/store-invite", body, { Authorization: `Bearer ${accessToken}` });
  }

  /**
   * GETs a third-party invite key's `key_validity_url` with `?public_key=` (identity-service-api
   * "Key management": answers `{valid}`), "using the provided URL rather than constructing a new
   * one". The URL comes from a room event, so it passes the same address checks as an id_server:
   * its host[:port] is taken as the identity server's name, and plain http only where the config
   * names that server.
   */
  async keyValidity(keyValidityUrl: string, publicKey: string): Promise<IdentityAnswer> {
    let url: URL;
    try {
      url = new URL(keyValidityUrl);
    } catch {
      throw new MatrixError("M_FORBIDDEN", `key_validity_url is not a URL: ${keyValidityUrl}`);
    }
    const idServer = url.host;
    const plain = this.options.config.plain_http_servers.includes(idServer);
    if (url.protocol !== "https:" && !(url.protocol === "http:" && plain)) throw new MatrixError("M_FORBIDDEN", `key_validity_url must be https: ${keyValidityUrl}`);
    url.searchParams.set("public_key", publicKey);
    return this.request("GET", idServer, `${url.pathname}${url.search}`, undefined, {});
  }

  private post(idServer: string, path: string, body: JsonObject, extraHeaders: Record<string, string>): Promise<IdentityAnswer> {
    return this.request("POST", idServer, path, body, extraHeaders);
  }

  private async request(method: "GET" | "POST", idServer: string, path: string, body: JsonObject | undefined, extraHeaders: Record<string, string>): Promise<IdentityAnswer> {
    const parsed = parseServerName(idServer);
    if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `id_server is not a server name (host[:port]): ${parsed.error}`);
    const { host, port } = parsed.value;
    let addresses: string[];
    if (isIP(host)) addresses = [host];
    else {
      try {
        addresses = await this.resolve(host);
      } catch {
        throw new MatrixError("M_UNKNOWN", `Could not resolve the identity server ${host}`, 502);
      }
    }
    const allowed = (a: string) => isPublicAddress(a) || (this.options.config.allow_loopback && isLoopbackAddress(a));
    // Any refused address refuses the name: which one a connection would use is not ours to pick.
    if (addresses.length === 0 || !addresses.every(allowed)) throw new MatrixError("M_SERVER_NOT_TRUSTED", `The identity server ${idServer} is not on a public address`, 400);
    const address = addresses[0]!;
    const plain = this.options.config.plain_http_servers.includes(idServer);
    const literal = isIP(address) === 6 ? `[${address}]` : address;
    const url = `${plain ? "http" : "https"}://${literal}:${port ?? (plain ? 80 : 443)}${path}`;
    const verify = this.options.config.verify_tls && !this.options.config.tls_skip_verify_servers.includes(idServer);
    const timeoutMs = this.options.config.request_timeout_ms;
    const signal = AbortSignal.timeout(timeoutMs);
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        redirect: "manual",
        signal,
        headers: { Host: idServer, ...(body !== undefined ? { "Content-Type": "application/json" } : {}), Accept: "application/json", "User-Agent": this.options.userAgent ?? "Portier", ...extraHeaders },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        // The certificate must be valid for the name, not for the address connected to.
        ...(plain ? {} : { tls: { rejectUnauthorized: verify, ...(isIP(host) === 0 ? { serverName: host } : {}), ...(this.ca ? { ca: this.ca } : {}) } }),
      } as RequestInit);
    } catch (error) {
      if (signal.aborted) throw new MatrixError("M_UNKNOWN", `The identity server ${idServer} did not answer within ${timeoutMs} ms`, 504);
      throw new MatrixError("M_UNKNOWN", `Could not reach the identity server ${idServer}: ${(error as Error).message}`, 502);
    }
    const bytes = await readLimited(response, MAX_ANSWER_BYTES, signal);
    let json: unknown;
    try {
      json = bytes.length > 0 ? JSON.parse(new TextDecoder().decode(bytes)) : undefined;
    } catch {
      json = undefined;
    }
    const isObject = typeof json === "object" && json !== null && !Array.isArray(json);
    return { status: response.status, body: isObject ? (json as JsonObject) : undefined };
  }
}
