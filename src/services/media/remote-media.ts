// Media of other servers, fetched over federation (server-server-api "Content Repository"): first
// the authenticated GET /_matrix/federation/v1/media/download/{mediaId} (signed with X-Matrix, a
// multipart/mixed answer), and when the remote does not know that endpoint (404 M_UNRECOGNIZED) the
// deprecated /_matrix/media/v3/download with allow_remote=false, as the spec says. The bytes are read
// whole, up to the upload size limit. The federation client of contracts.ts answers JSON only, so
// this uses the same parts (server name resolution, TLS policy, request signing) for a binary answer.
import { MatrixError } from "../../protocol/errors";
import { signRequest, type RequestSigner } from "../../protocol/x-matrix";
import { parseJson } from "../../protocol/canonical-json";
import { isJsonObject } from "../../protocol/json";
import { ServerNameResolver, httpsWellKnownFetcher, type ResolvedServer } from "../federation/discovery";
import { FederationTlsPolicy, type FederationTransportConfig } from "../federation/federation-client";
import type { Clock } from "../runtime";
import { filenameFromDisposition } from "./disposition";
import { boundaryOf, MultipartError, parseMultipartMedia } from "./multipart";
import { readLimited, safeFetch } from "./safe-fetch";

export interface RemoteMedia {
  readonly contentType: string | undefined;
  readonly filename: string | undefined;
  readonly bytes: Uint8Array;
}

export interface RemoteMediaSource {
  /** The media's bytes and metadata, or a MatrixError: 404 M_NOT_FOUND, 502 M_TOO_LARGE, 502/504 unreachable. */
  download(serverName: string, mediaId: string, maxBytes: number): Promise<RemoteMedia>;
}

/** federation.enabled false: remote media is simply not there. */
export const noRemoteMedia: RemoteMediaSource = {
  download: async () => {
    throw new MatrixError("M_NOT_FOUND", "Remote media is not available: federation is disabled on this server");
  },
};

export interface FederationMediaClientOptions {
  readonly serverName: string;
  readonly signer: RequestSigner;
  readonly config: FederationTransportConfig;
  readonly clock?: Clock;
  readonly userAgent?: string;
}

export class FederationMediaClient implements RemoteMediaSource {
  private readonly tlsPolicy: FederationTlsPolicy;
  private readonly resolver: ServerNameResolver;
  private readonly plainHttp: ReadonlySet<string>;

  constructor(private readonly options: FederationMediaClientOptions) {
    this.tlsPolicy = new FederationTlsPolicy(options.config);
    this.resolver = new ServerNameResolver({
      fetchWellKnown: httpsWellKnownFetcher({ tls: (hostname) => this.tlsPolicy.forWellKnown(hostname) }),
      clock: options.clock,
    });
    this.plainHttp = new Set(options.config.plain_http_servers);
  }

  async download(serverName: string, mediaId: string, maxBytes: number): Promise<RemoteMedia> {
    const media = await this.fetchMedia(serverName, mediaId, maxBytes);
    if (media.bytes.byteLength > maxBytes) throw new MatrixError("M_TOO_LARGE", `${serverName}'s media is larger than ${maxBytes} bytes`, 502);
    return media;
  }

  private async fetchMedia(serverName: string, mediaId: string, maxBytes: number): Promise<RemoteMedia> {
    const id = encodeURIComponent(mediaId);
    const response = await this.get(serverName, `/_matrix/federation/v1/media/download/${id}?timeout_ms=20000`, true, maxBytes);
    if (response.status === 200) return this.fromMultipart(serverName, response, maxBytes);
    if (isUnrecognized(response)) {
      const legacy = await this.get(serverName, `/_matrix/media/v3/download/${encodeURIComponent(serverName)}/${id}?allow_remote=false`, false, maxBytes);
      if (legacy.status === 200) {
        return { contentType: legacy.headers.get("content-type") ?? undefined, filename: filenameFromDisposition(legacy.headers.get("content-disposition")), bytes: legacy.bytes };
      }
      throw remoteFailure(serverName, legacy);
    }
    throw remoteFailure(serverName, response);
  }

  private async fromMultipart(serverName: string, response: { headers: Headers; bytes: Uint8Array }, maxBytes: number): Promise<RemoteMedia> {
    const boundary = boundaryOf(response.headers.get("content-type"));
    if (boundary === undefined) throw new MatrixError("M_UNKNOWN", `${serverName} answered the media download without multipart/mixed`, 502);
    let part;
    try {
      part = parseMultipartMedia(response.bytes, boundary);
    } catch (error) {
      if (error instanceof MultipartError) throw new MatrixError("M_UNKNOWN", `${serverName} answered a malformed multipart body: ${error.message}`, 502);
      throw error;
    }
    if (part.kind === "bytes") {
      return { contentType: part.headers.get("content-type") ?? undefined, filename: filenameFromDisposition(part.headers.get("content-disposition")), bytes: part.bytes };
    }
    // A Location (a CDN, say) is an address another server chose: fetched only if it is public.
    const fetched = await safeFetch(part.location, { maxBytes, timeoutMs: this.options.config.request_timeout_ms, userAgent: this.options.userAgent });
    if (fetched.status !== 200) throw new MatrixError("M_UNKNOWN", `${serverName}'s media location answered ${fetched.status}`, 502);
    return { contentType: fetched.headers.get("content-type") ?? undefined, filename: filenameFromDisposition(fetched.headers.get("content-disposition")), bytes: fetched.bytes };
  }

  private async get(destination: string, pathAndQuery: string, signed: boolean, maxBytes: number): Promise<{ status: number; headers: Headers; bytes: Uint8Array }> {
    const timeoutMs = this.options.config.request_timeout_ms;
    const signal = AbortSignal.timeout(timeoutMs);
    let resolved: ResolvedServer;
    try {
      resolved = await this.resolver.resolve(destination);
    } catch (error) {
      throw new MatrixError("M_UNKNOWN", `Could not reach ${destination}: ${(error as Error).message}`, 502);
    }
    const plain = this.plainHttp.has(destination);
    const hostPart = resolved.host.includes(":") ? `[${resolved.host}]` : resolved.host;
    const url = new URL(`${plain ? "http" : "https"}://${hostPart}:${resolved.port}${pathAndQuery}`);
    const headers = new Headers({ Host: resolved.hostHeader, "User-Agent": this.options.userAgent ?? "Portier" });
    if (signed) {
      headers.set("Authorization", signRequest({ method: "GET", uri: url.pathname + url.search, origin: this.options.serverName, destination }, this.options.signer));
    }
    const tlsServerName = resolved.tlsServerName === resolved.host ? undefined : resolved.tlsServerName;
    let response: Response;
    try {
      response = await fetch(url.href, {
        method: "GET",
        headers,
        signal,
        redirect: "manual",
        ...(plain ? {} : { tls: this.tlsPolicy.forConnection(destination, tlsServerName) }),
      } as RequestInit);
    } catch (error) {
      if (signal.aborted) throw new MatrixError("M_UNKNOWN", `${destination} did not answer within ${timeoutMs} ms`, 504);
      throw new MatrixError("M_UNKNOWN", `Could not reach ${destination}: ${(error as Error).message}`, 502);
    }
    // The multipart framing adds a little to the media itself.
    const bytes = await readLimited(response, response.status === 200 ? maxBytes + 64 * 1024 : 64 * 1024, signal);
    return { status: response.status, headers: response.headers, bytes };
  }
}

function errorBody(response: { bytes: Uint8Array }): { errcode?: unknown; error?: unknown } | undefined {
  try {
    const body = parseJson(new TextDecoder().decode(response.bytes));
    return isJsonObject(body) ? body : undefined;
  } catch {
    return undefined;
  }
}

/** The remote does not have the authenticated endpoint (an older server). */
function isUnrecognized(response: { status: number; bytes: Uint8Array }): boolean {
  if (response.status !== 404 && response.status !== 405 && response.status !== 400) return false;
  const body = errorBody(response);
  return body === undefined ? response.status !== 400 : body.errcode === "M_UNRECOGNIZED";
}

function remoteFailure(serverName: string, response: { status: number; bytes: Uint8Array }): MatrixError {
  const body = errorBody(response);
  if (response.status === 404) return new MatrixError("M_NOT_FOUND", `${serverName} does not have this media`);
  if (body?.errcode === "M_TOO_LARGE") return new MatrixError("M_TOO_LARGE", `${serverName}'s media is too large`, 502);
  if (body?.errcode === "M_NOT_YET_UPLOADED") return new MatrixError("M_NOT_YET_UPLOADED", `${serverName}'s media has not been uploaded yet`, 504);
  return new MatrixError("M_UNKNOWN", `${serverName} answered ${response.status} for the media`, 502);
}
