// How media is presented to a browser (client-server-api "Serving inline content"): inline only for
// content types that cannot run script when rendered as what they claim to be; everything else, HTML
// and SVG and JavaScript among them, as an attachment. The file name goes in Content-Disposition as
// RFC 6266 says, with RFC 5987 encoding when it is not plain ASCII.

/** The spec's list of types servers may serve inline. */
const INLINE_TYPES = new Set([
  "text/css",
  "text/plain",
  "text/csv",
  "application/json",
  "application/ld+json",
  "image/jpeg",
  "image/gif",
  "image/png",
  "image/apng",
  "image/webp",
  "image/avif",
  "video/mp4",
  "video/webm",
  "video/ogg",
  "video/quicktime",
  "audio/mp4",
  "audio/webm",
  "audio/aac",
  "audio/mpeg",
  "audio/ogg",
  "audio/wave",
  "audio/wav",
  "audio/x-wav",
  "audio/x-pn-wav",
  "audio/flac",
  "audio/x-flac",
]);

/** "Text/HTML; charset=utf-8" -> "text/html". */
export function mediaTypeEssence(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

const TOKEN_CHARS = String.raw`[!#$%&'*+\-.^_\x60|~0-9A-Za-z]+`;
/** RFC 9110 media-type: type "/" subtype, then parameters; OWS is spaces and tabs. */
const MEDIA_TYPE = new RegExp(String.raw`^[ \t]*(${TOKEN_CHARS})/(${TOKEN_CHARS})[ \t]*`);
/** One `; name=value` parameter (RFC 9110 allows it empty), the value a token or a quoted-string (without obs-text). */
const QUOTED = String.raw`"((?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*)"`;
const PARAMETER = new RegExp(String.raw`^[ \t]*;[ \t]*(?:(${TOKEN_CHARS})=(?:(${TOKEN_CHARS})|${QUOTED})[ \t]*)?`);
/** A plain charset name (utf-8, iso-8859-1, windows-1252...). */
const CHARSET = /^[a-z0-9][a-z0-9._+:-]{0,39}$/i;

/**
 * A Content-Type value reduced to what is kept and sent back: "type/subtype" in lower case, with a
 * charset parameter when it is a plain charset name; every other parameter is dropped. Undefined
 * when the value is not one well-formed media type: a comma makes a header a list, whose last entry
 * a browser may take (`text/plain;charset=x,text/html` is HTML to it), so such a value is not kept.
 */
export function normaliseContentType(value: string | undefined): string | undefined {
  if (value === undefined || value.length > 255) return undefined;
  const type = MEDIA_TYPE.exec(value);
  if (type === null) return undefined;
  let charset: string | undefined;
  let rest = value.slice(type[0].length);
  while (rest !== "") {
    const parameter = PARAMETER.exec(rest);
    if (parameter === null) return undefined;
    const parameterValue = parameter[2] ?? parameter[3]?.replace(/\\(.)/g, "$1") ?? "";
    if (parameter[1]?.toLowerCase() === "charset" && charset === undefined && CHARSET.test(parameterValue)) charset = parameterValue.toLowerCase();
    rest = rest.slice(parameter[0].length);
  }
  const essence = `${type[1]}/${type[2]}`.toLowerCase();
  return charset === undefined ? essence : `${essence}; charset=${charset}`;
}

/** Inline only for a well-formed type of the spec's list, decided on that parsed type alone. */
export function isInlineSafe(contentType: string | undefined): boolean {
  const normal = normaliseContentType(contentType);
  return normal !== undefined && INLINE_TYPES.has(normal.split(";")[0]!);
}

/** RFC 7230 token characters: a name made only of these needs no quotes. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Printable ASCII: quotable (with " and \ escaped). */
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

/** The Content-Disposition value: `inline` or `attachment`, with the file name when there is one. */
export function contentDisposition(type: "inline" | "attachment", filename: string | undefined): string {
  if (filename === undefined || filename === "") return type;
  if (TOKEN.test(filename)) return `${type}; filename=${filename}`;
  if (PRINTABLE_ASCII.test(filename)) return `${type}; filename="${filename.replace(/["\\]/g, "\\$&")}"`;
  // RFC 5987 ext-value: UTF-8, percent-encoded except attr-char.
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${type}; filename*=utf-8''${encoded}`;
}

/** The file name a Content-Disposition header gives (filename* preferred), if any. */
export function filenameFromDisposition(header: string | null): string | undefined {
  if (header === null) return undefined;
  const extended = /;\s*filename\*\s*=\s*([^;]+)/i.exec(header);
  if (extended) {
    const match = /^\s*(utf-8|iso-8859-1)'[^']*'(.*?)\s*$/i.exec(extended[1]!);
    if (match) {
      try {
        if (match[1]!.toLowerCase() === "utf-8") return decodeURIComponent(match[2]!);
        return match[2]!.replace(/%([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
      } catch {
        // a malformed escape: fall back to the plain parameter
      }
    }
  }
  const quoted = /;\s*filename\s*=\s*"((?:[^"\\]|\\.)*)"/i.exec(header);
  if (quoted) return quoted[1]!.replace(/\\(.)/g, "$1");
  const token = /;\s*filename\s*=\s*([^;\s]+)/i.exec(header);
  return token?.[1];
}
