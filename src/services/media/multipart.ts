// multipart/mixed as the federation media endpoints use it (server-server-api "Content Repository"):
// exactly two parts, JSON metadata ({} for now) and then the media, either its bytes with
// Content-Type and Content-Disposition, or a Location header where the bytes can be fetched.
import { randomBytes } from "node:crypto";

export interface MediaPart {
  readonly contentType: string;
  readonly contentDisposition: string;
  readonly body: Uint8Array;
}

/** The response body and its Content-Type for our own media. */
export function multipartMedia(part: MediaPart): { body: Blob; contentType: string } {
  const boundary = randomBytes(16).toString("hex");
  const head =
    `--${boundary}\r\nContent-Type: application/json\r\n\r\n{}\r\n` +
    `--${boundary}\r\nContent-Type: ${part.contentType}\r\nContent-Disposition: ${part.contentDisposition}\r\n\r\n`;
  const body = new Blob([head, part.body, `\r\n--${boundary}--\r\n`]);
  return { body, contentType: `multipart/mixed; boundary=${boundary}` };
}

export type ParsedMediaPart =
  | { readonly kind: "bytes"; readonly headers: Headers; readonly bytes: Uint8Array }
  | { readonly kind: "location"; readonly location: string };

export class MultipartError extends Error {}

/** The boundary parameter of a multipart/mixed Content-Type (RFC 2046 5.1.1), quoted or not. */
export function boundaryOf(contentType: string | null): string | undefined {
  if (contentType === null || !/^\s*multipart\/mixed\s*;/i.test(contentType)) return undefined;
  const match = /;\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

const CRLF_CRLF = new Uint8Array([13, 10, 13, 10]);

function indexOf(haystack: Uint8Array, needle: Uint8Array, from: number): number {
  // Buffer's indexOf is a native search; a 50 MB body is scanned once.
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).indexOf(Buffer.from(needle.buffer, needle.byteOffset, needle.byteLength), from);
}

/** The second part of a two-part federation media answer (the first, the JSON metadata, is ignored). */
export function parseMultipartMedia(body: Uint8Array, boundary: string): ParsedMediaPart {
  const delimiter = new TextEncoder().encode(`--${boundary}`);
  const parts: { headers: Headers; bytes: Uint8Array }[] = [];
  let at = indexOf(body, delimiter, 0);
  if (at < 0) throw new MultipartError("no boundary in the body");
  while (parts.length < 2) {
    at += delimiter.length;
    if (body[at] === 45 && body[at + 1] === 45) break; // "--": the closing delimiter
    // Whatever follows the boundary on its line (transport padding) ends with CRLF.
    const lineEnd = indexOf(body, new Uint8Array([13, 10]), at);
    if (lineEnd < 0) throw new MultipartError("truncated part");
    const headerEnd = indexOf(body, CRLF_CRLF, lineEnd);
    let headers: Headers;
    let contentStart: number;
    if (headerEnd === lineEnd) {
      headers = new Headers(); // no headers at all
      contentStart = lineEnd + 4;
    } else {
      if (headerEnd < 0) throw new MultipartError("part headers do not end");
      headers = parseHeaders(new TextDecoder().decode(body.subarray(lineEnd + 2, headerEnd)));
      contentStart = headerEnd + 4;
    }
    const next = indexOf(body, new Uint8Array([13, 10, ...delimiter]), contentStart);
    if (next < 0) throw new MultipartError("part does not end");
    parts.push({ headers, bytes: body.subarray(contentStart, next) });
    at = next + 2;
  }
  const media = parts[1];
  if (media === undefined) throw new MultipartError(`expected two parts, got ${parts.length}`);
  const location = media.headers.get("location");
  if (location !== null) return { kind: "location", location };
  return { kind: "bytes", headers: media.headers, bytes: media.bytes };
}

function parseHeaders(text: string): Headers {
  const headers = new Headers();
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    try {
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    } catch {
      // a header name or value Headers refuses: ignored, as unknown headers are
    }
  }
  return headers;
}
