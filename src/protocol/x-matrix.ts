// Request authentication between servers (server-server-api "Request Authentication"): the request's
// method, target and body are wrapped in a JSON object, signed with the JSON signing algorithm, and
// the signature travels in an `Authorization: X-Matrix ...` header, whose syntax is RFC 9110 §11.4
// (auth-scheme, then comma-separated name=value auth-params; values are tokens or quoted-strings).
//
// Request JSON is signed and checked with non-strict canonical JSON: a /send transaction may carry
// PDUs of room versions 1-5 with floats, which Synapse signs as Python writes them. For every other
// body the two modes produce the same bytes.

import { ownMember, type JsonObject, type JsonValue } from "./json";
import { verifyJsonSignature } from "./signing/sign-json";

export const X_MATRIX_SCHEME = "X-Matrix";

export interface RequestSigningInput {
  /** The HTTP method as sent, e.g. "PUT". */
  readonly method: string;
  /** The request target exactly as sent on the wire: the path from `/_matrix/...`, plus `?` and the query if any. */
  readonly uri: string;
  /** Our server name (before any delegation). */
  readonly origin: string;
  /** The destination's server name (before any delegation). */
  readonly destination: string;
  /** The parsed JSON body; absent for requests without one. */
  readonly content?: JsonValue;
}

export interface XMatrixParams {
  readonly origin: string;
  readonly destination: string;
  readonly key: string;
  readonly sig: string;
}

export interface ParsedXMatrix {
  readonly origin: string;
  /** Absent when an older server left it out; recipients must accept that (spec, added in v1.3). */
  readonly destination?: string;
  readonly key: string;
  readonly sig: string;
}

/** The object whose signature goes into the X-Matrix header (step 1 of the spec's example). */
export function requestSigningJson(input: RequestSigningInput): JsonObject {
  const json: JsonObject = { method: input.method, uri: input.uri, origin: input.origin, destination: input.destination };
  if (input.content !== undefined) json.content = input.content;
  return json;
}

// RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
const TCHAR = "!#$%&'*+\\-.^_`|~0-9A-Za-z";
// Parameter values: a token, or (spec: "for compatibility with older servers") a token with colons.
const TOKEN_VALUE = new RegExp(`^[${TCHAR}:]+`);
const TOKEN_NAME = new RegExp(`^[${TCHAR}]+`);
const OWS = /^[ \t]*/;

/**
 * The Authorization header value. Values are always quoted (as the spec's example and every server
 * do); `"` and `\` are backslash-escaped, though server names, key IDs and base64 never hold them.
 */
export function formatXMatrix(p: XMatrixParams): string {
  const quote = (value: string) => `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
  return `${X_MATRIX_SCHEME} origin=${quote(p.origin)},destination=${quote(p.destination)},key=${quote(p.key)},sig=${quote(p.sig)}`;
}

/**
 * Parses an `Authorization` header value of the X-Matrix scheme. Undefined when the scheme is
 * another, the syntax is broken (unterminated quote, a control character, a parameter named twice)
 * or origin, key or sig is missing or empty. Parameter names are case-insensitive; unknown ones are
 * ignored.
 */
export function parseXMatrix(header: string): ParsedXMatrix | undefined {
  const schemeEnd = header.search(/[ \t]/);
  if (schemeEnd < 0) return undefined;
  if (header.slice(0, schemeEnd).toLowerCase() !== X_MATRIX_SCHEME.toLowerCase()) return undefined;
  const params = parseAuthParams(header.slice(schemeEnd));
  if (params === undefined) return undefined;
  const origin = params.get("origin");
  const key = params.get("key");
  const sig = params.get("sig");
  if (!origin || !key || !sig) return undefined;
  const destination = params.get("destination");
  return destination === undefined ? { origin, key, sig } : { origin, destination, key, sig };
}

/** `1*SP #auth-param`, with auth-param = token BWS "=" BWS ( token / quoted-string ). */
function parseAuthParams(text: string): Map<string, string> | undefined {
  const params = new Map<string, string>();
  let rest = text.replace(OWS, "");
  if (rest === "") return undefined;
  while (true) {
    // #rule: empty list elements are accepted and ignored (RFC 9110 §5.6.1).
    while (rest.startsWith(",")) rest = rest.slice(1).replace(OWS, "");
    if (rest === "") break;
    const name = TOKEN_NAME.exec(rest)?.[0];
    if (name === undefined) return undefined;
    rest = rest.slice(name.length).replace(OWS, "");
    if (!rest.startsWith("=")) return undefined;
    rest = rest.slice(1).replace(OWS, "");
    let value: string;
    if (rest.startsWith('"')) {
      const quoted = readQuotedString(rest);
      if (quoted === undefined) return undefined;
      value = quoted.value;
      rest = rest.slice(quoted.length);
    } else {
      const token = TOKEN_VALUE.exec(rest)?.[0];
      if (token === undefined) return undefined;
      value = token;
      rest = rest.slice(token.length);
    }
    const lower = name.toLowerCase();
    // RFC 9110 §11.2: each parameter name occurs only once.
    if (params.has(lower)) return undefined;
    params.set(lower, value);
    rest = rest.replace(OWS, "");
    if (rest === "") break;
    if (!rest.startsWith(",")) return undefined;
  }
  return params;
}

/**
 * quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE, with qdtext = HTAB / SP / %x21 /
 * %x23-5B / %x5D-7E / obs-text and quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).
 */
function readQuotedString(text: string): { value: string; length: number } | undefined {
  let value = "";
  for (let i = 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) return { value, length: i + 1 };
    if (c === 0x5c) {
      i++;
      if (i >= text.length) return undefined;
      const escaped = text.charCodeAt(i);
      if (!isQuotedPairChar(escaped)) return undefined;
      value += text[i];
      continue;
    }
    if (!isQuotedPairChar(c)) return undefined;
    value += text[i];
  }
  return undefined;
}

/** HTAB / SP / VCHAR / obs-text: anything but the other control characters and DEL. */
function isQuotedPairChar(c: number): boolean {
  return c === 0x09 || (c >= 0x20 && c !== 0x7f && c <= 0xff);
}

export interface RequestSigner {
  readonly keyId: string;
  /** Returns the object with this server's signature added under signatures[origin][keyId]. */
  sign<T extends JsonObject>(object: T, options?: { readonly strict?: boolean }): T;
}

/** Signs a request and returns its Authorization header value. */
export function signRequest(input: RequestSigningInput, signer: RequestSigner): string {
  const signed = signer.sign(requestSigningJson(input), { strict: false });
  const sig = ownMember(ownMember(signed.signatures, input.origin), signer.keyId);
  if (typeof sig !== "string") throw new Error(`the signer did not sign as ${input.origin} with ${signer.keyId}`);
  return formatXMatrix({ origin: input.origin, destination: input.destination, key: signer.keyId, sig });
}

export interface VerifyRequestInput {
  /** The parsed Authorization header. */
  readonly header: ParsedXMatrix;
  readonly method: string;
  /** The request target as received: path and query, exactly as on the wire. */
  readonly uri: string;
  /** Our own server name: the request's destination. */
  readonly serverName: string;
  /** The parsed JSON body, if the request had one (parse losslessly to check v1-v5 PDUs with floats). */
  readonly content?: JsonValue;
  /** The public key of `header.key` of `header.origin`, fetched by the caller. */
  readonly publicKey: Uint8Array;
}

export type RequestVerdict = { readonly valid: true } | { readonly valid: false; readonly reason: string };

/**
 * Checks an X-Matrix signature. A request naming another destination is refused (the spec's 401);
 * one without a destination (older servers) is checked as signed for us.
 */
export function verifyRequest(input: VerifyRequestInput): RequestVerdict {
  const { header } = input;
  if (header.destination !== undefined && header.destination !== input.serverName) {
    return { valid: false, reason: `Request is for ${header.destination}, not for this server (${input.serverName})` };
  }
  const json = requestSigningJson({
    method: input.method,
    uri: input.uri,
    origin: header.origin,
    destination: input.serverName,
    content: input.content,
  });
  json.signatures = { [header.origin]: { [header.key]: header.sig } };
  const verdict = verifyJsonSignature(json, header.origin, header.key, input.publicKey, { strict: false });
  return verdict.valid ? { valid: true } : { valid: false, reason: verdict.reason };
}
