// The HTTP conventions every Portier endpoint shares: CORS (client-server-api "Web Browser Clients"),
// JSON request bodies with a size limit, and one error mapper from MatrixError to {errcode, error}.
import { Elysia } from "elysia";
import { MatrixError, type ErrCode } from "../../protocol/errors";
import { parseJson } from "../../protocol/canonical-json";
import type { Logger } from "../../services/runtime";

export const CORS_HEADERS: Readonly<Record<string, string>> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
  "Access-Control-Allow-Headers": "X-Requested-With, Content-Type, Authorization",
};

export function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...CORS_HEADERS, ...headers },
  });
}

export function errorResponse(error: MatrixError): Response {
  // 429s say when to come back in the header too (RFC 9110 Retry-After, whole seconds, rounded up),
  // for clients and proxies that read the header rather than retry_after_ms.
  const retryAfterMs = error.extra.retry_after_ms;
  if (error.errcode === "M_LIMIT_EXCEEDED" && typeof retryAfterMs === "number" && retryAfterMs >= 0) {
    return jsonResponse(error.toJSON(), error.status, { "Retry-After": String(Math.ceil(retryAfterMs / 1000)) });
  }
  return jsonResponse(error.toJSON(), error.status);
}

/**
 * Parses a request body as JSON whatever its Content-Type says (clients are not consistent about it).
 * `lossless`: numbers that are not safe integers keep their exact text (LosslessNumber), for bodies
 * whose signatures and hashes cover them: another server's request may carry a room v1..v5 PDU
 * with a float, and "1.0" read as 1 would no longer match the X-Matrix signature or content hash.
 */
export async function readJsonBody(request: Request, maxBytes: number, options: { lossless?: boolean } = {}): Promise<unknown> {
  const tooLarge = () => new MatrixError("M_TOO_LARGE", `Request body is larger than ${maxBytes} bytes`);
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge();
  const bytes = await readBodyUpTo(request, maxBytes, tooLarge);
  if (bytes.byteLength === 0) return undefined;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new MatrixError("M_NOT_JSON", "Request body is not valid UTF-8");
  }
  try {
    return options.lossless ? parseJson(text, { lossless: true }) : JSON.parse(text);
  } catch {
    throw new MatrixError("M_NOT_JSON", "Content not JSON.");
  }
}

/**
 * The body as a stream, abandoned at the first chunk past `maxBytes`: a chunked body declares no
 * length, and the server's own body limit is the (much larger) media upload limit.
 */
async function readBodyUpTo(request: Request, maxBytes: number, tooLarge: () => Error): Promise<Uint8Array> {
  if (request.body === null) return new Uint8Array(0);
  // A declared length (already held to maxBytes) bounds what the server reads: the body in one
  // read, without a promise per chunk. Checked again in case the declaration was wrong. A chunked
  // body (whose length is not known) is read chunk by chunk below.
  const declared = request.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared) && !request.headers.has("transfer-encoding")) {
    const bytes = new Uint8Array(await request.arrayBuffer());
    if (bytes.byteLength > maxBytes) throw tooLarge();
    return bytes;
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    length += value.byteLength;
    if (length > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

/**
 * The parsed body of a request under /_matrix/media/: media uploads are read by their routes as a
 * stream of bytes, against media.max_upload_size, never buffered or parsed here as JSON.
 */
export const RAW_BODY: Readonly<Record<string, never>> = Object.freeze({});
const RAW_BODY_PREFIX = "/_matrix/media/";

/** Bodies signed by other servers: federation requests, key queries (answered as a notary), policy server requests. */
const SIGNED_BODY_PREFIXES = ["/_matrix/federation/", "/_matrix/key/", "/_matrix/policy/"];

interface RouteShape {
  method: string;
  pattern: RegExp;
}

function routePattern(path: string): RegExp {
  const source = path
    .split("/")
    .map((part) => (part.startsWith(":") ? "[^/]+" : part === "*" ? ".*" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return new RegExp(`^${source}$`);
}

/**
 * Unknown endpoint -> 404 M_UNRECOGNIZED; known path with another method -> 405 M_UNRECOGNIZED
 * (client-server-api: "Unrecognized endpoint" / "unsupported method").
 */
const compiledShapes = new WeakMap<readonly unknown[], { count: number; shapes: RouteShape[] }>();

/** The routes' patterns, compiled once per route table (recompiled only if routes were added since). */
function shapesOf(routes: readonly { method: string; path: string }[]): RouteShape[] {
  const hit = compiledShapes.get(routes);
  if (hit && hit.count === routes.length) return hit.shapes;
  const shapes = routes.map((r) => ({ method: r.method, pattern: routePattern(r.path) }));
  compiledShapes.set(routes, { count: routes.length, shapes });
  return shapes;
}

export function unrecognized(routes: readonly { method: string; path: string }[], request: Request): Response {
  const shapes = shapesOf(routes);
  const path = new URL(request.url).pathname;
  const methods = shapes.filter((s) => s.pattern.test(path)).map((s) => s.method);
  if (methods.length > 0) {
    return jsonResponse({ errcode: "M_UNRECOGNIZED", error: `Method ${request.method} not allowed on ${path}` }, 405, {
      Allow: [...new Set(methods)].join(", "),
    });
  }
  return jsonResponse({ errcode: "M_UNRECOGNIZED", error: "Unrecognized request" }, 404);
}

export interface HttpOptions {
  maxBodyBytes: number;
  logger: Logger;
}

/**
 * Which part of a request URL holds a percent-escape that does not decode (a lone `%`, `%zz`, bytes
 * that are not UTF-8, an encoded surrogate): "path" or "query"; undefined when all decode.
 */
export function badPercentEncoding(url: string): "path" | "query" | undefined {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  const rest = start === -1 ? "" : url.slice(start);
  const hash = rest.indexOf("#");
  const target = hash === -1 ? rest : rest.slice(0, hash);
  const q = target.indexOf("?");
  const decodes = (part: string) => {
    if (!part.includes("%")) return true;
    try {
      decodeURIComponent(part);
      return true;
    } catch {
      return false;
    }
  };
  if (!(q === -1 ? target : target.slice(0, q)).split("/").every(decodes)) return "path";
  if (q !== -1 && !target.slice(q + 1).split("&").every((pair) => pair.split("=").every((x) => decodes(x.replace(/\+/g, " "))))) return "query";
  return undefined;
}

/** The base app: every controller is mounted on what this returns. */
export function createHttpApp(options: HttpOptions) {
  const app = new Elysia()
    .onRequest(({ request }) => {
      // CORS preflight: answered for every path, as the spec asks.
      if (request.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS_HEADERS });
      // Decided once for every route: an identifier or parameter that does not even decode is the
      // client's mistake (400), never a handler's crash.
      const bad = badPercentEncoding(request.url);
      if (bad) return errorResponse(new MatrixError("M_INVALID_PARAM", `Invalid percent-encoding in the request ${bad}`));
    })
    .onParse(async ({ request }) => {
      const path = new URL(request.url).pathname;
      if (path.startsWith(RAW_BODY_PREFIX)) return RAW_BODY;
      return readJsonBody(request, options.maxBodyBytes, { lossless: SIGNED_BODY_PREFIXES.some((p) => path.startsWith(p)) });
    })
    .onAfterHandle(({ set }) => {
      Object.assign(set.headers, CORS_HEADERS);
    })
    .onError(({ code, error, request }) => {
      if (error instanceof MatrixError) return errorResponse(error);
      // Errors thrown while parsing the body arrive wrapped, with ours as the cause.
      const cause = (error as { cause?: unknown })?.cause;
      if (cause instanceof MatrixError) return errorResponse(cause);
      // Protocol errors that carry a Matrix errcode (CanonicalJsonError: M_BAD_JSON, JsonParseError:
      // M_NOT_JSON) are the client's input, not a server fault.
      for (const e of [error, cause]) {
        const errcode = (e as { errcode?: unknown })?.errcode;
        if (typeof errcode === "string" && /^M_[A-Z_]+$/.test(errcode)) return errorResponse(new MatrixError(errcode as ErrCode, (e as Error).message, 400));
      }
      switch (code) {
        case "NOT_FOUND":
          return unrecognized(app.routes, request);
        case "PARSE":
          return errorResponse(new MatrixError("M_NOT_JSON", "Content not JSON."));
        case "VALIDATION": // only from path/query schemas; bodies go through validateBody
          return errorResponse(new MatrixError("M_INVALID_PARAM", "Invalid request parameters"));
        default:
          options.logger.log("error", "unhandled error", { path: new URL(request.url).pathname, error: String((error as Error)?.stack ?? error) });
          return errorResponse(new MatrixError("M_UNKNOWN", "Internal server error", 500));
      }
    });
  return app;
}
