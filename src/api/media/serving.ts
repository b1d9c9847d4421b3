// The headers media is served with (client-server-api "Content repository"): the spec's
// Content-Security-Policy and Cross-Origin-Resource-Policy, Content-Disposition inline only for the
// types the spec lists as safe (HTML, SVG, JavaScript and the rest go out as attachments, with
// nosniff so a browser cannot decide otherwise), and long caching: an mxc:// URI's content never changes.
import { MatrixError } from "../../protocol/errors";
import { contentDisposition, isInlineSafe } from "../../services/media/disposition";
import type { ServedContent } from "../../services/media/media-service";
import type { ThumbnailMethod } from "../../services/media/thumbnail-render";
import { CORS_HEADERS } from "../middleware/http";

export const MEDIA_CSP = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';";

export interface ServeOptions {
  /** A file name from the request path, which replaces the stored one. */
  readonly filename?: string;
  /** Thumbnails are always inline (the spec requires it; they are images we made or checked). */
  readonly thumbnail?: boolean;
  /**
   * Authenticated downloads may be cached by the browser only: a shared cache would hand them to
   * requests without a token.
   */
  readonly authenticated: boolean;
}

export function mediaHeaders(content: ServedContent, options: ServeOptions): Record<string, string> {
  const disposition = options.thumbnail || isInlineSafe(content.contentType) ? "inline" : "attachment";
  return {
    ...CORS_HEADERS,
    "Content-Type": content.contentType,
    "Content-Disposition": contentDisposition(disposition, options.filename ?? content.filename),
    "Content-Security-Policy": MEDIA_CSP,
    "Cross-Origin-Resource-Policy": "cross-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": `${options.authenticated ? "private" : "public"}, max-age=31536000, immutable`,
    ETag: `"${content.sha256}"`,
  };
}

/** The content, or 304 when the client holds it already (If-None-Match). */
export function serveContent(request: Request, content: ServedContent, options: ServeOptions): Response {
  const headers = mediaHeaders(content, options);
  const match = request.headers.get("if-none-match");
  if (match !== null && match.split(",").some((tag) => tag.trim().replace(/^W\//, "") === headers.ETag)) {
    const { "Content-Type": _type, "Content-Disposition": _disposition, ...rest } = headers;
    return new Response(null, { status: 304, headers: rest });
  }
  return new Response(content.body, { status: 200, headers: { ...headers, "Content-Length": String(content.size) } });
}

/** timeout_ms: a non-negative integer, 20 s by default. */
export function timeoutOf(query: Record<string, string | undefined>): number {
  const raw = query.timeout_ms;
  if (raw === undefined || raw === "") return 20_000;
  if (!/^\d{1,15}$/.test(raw)) throw new MatrixError("M_INVALID_PARAM", "timeout_ms must be a non-negative integer");
  return Number(raw);
}

/** allow_remote: true unless "false". */
export function allowRemoteOf(query: Record<string, string | undefined>): boolean {
  const raw = query.allow_remote;
  if (raw === undefined || raw === "" || raw === "true") return true;
  if (raw === "false") return false;
  throw new MatrixError("M_INVALID_PARAM", "allow_remote must be true or false");
}

/** width, height (required positive integers) and method (scale by default, as in Synapse). */
export function thumbnailParams(query: Record<string, string | undefined>): { width: number; height: number; method: ThumbnailMethod } {
  const dimension = (name: "width" | "height") => {
    const raw = query[name];
    if (raw === undefined || raw === "") throw new MatrixError("M_MISSING_PARAM", `Missing parameter: ${name}`);
    if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1) throw new MatrixError("M_INVALID_PARAM", `${name} must be a positive integer`);
    return Number(raw);
  };
  const width = dimension("width");
  const height = dimension("height");
  const method = query.method === undefined || query.method === "" ? "scale" : query.method;
  if (method !== "crop" && method !== "scale") throw new MatrixError("M_INVALID_PARAM", "method must be crop or scale");
  return { width, height, method };
}

/** The Content-Length header as a number, when there is a valid one. */
export function declaredLength(request: Request): number | undefined {
  const raw = request.headers.get("content-length");
  return raw !== null && /^\d{1,15}$/.test(raw) ? Number(raw) : undefined;
}
