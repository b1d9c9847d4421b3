// Unpadded Base64 and URL-safe unpadded Base64 (content/appendices.md, "Unpadded Base64").
// Encoders never pad; decoders accept padding too, as the appendix asks. Decoding is strict about
// the alphabet (Buffer's own decoder silently skips junk, which would let "ab!c" pass for "abc").

/** Input that is not Base64 of the expected alphabet. */
export class Base64Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = "Base64Error";
  }
}

const STANDARD = /^[A-Za-z0-9+/]*$/;
const URL_SAFE = /^[A-Za-z0-9_-]*$/;

/** UNPADDED_BASE64(bytes) with the standard alphabet (`+`, `/`). */
export function encodeBase64(bytes: Uint8Array): string {
  return asBuffer(bytes).toString("base64").replace(/=+$/, "");
}

/** Unpadded Base64 with the URL-safe alphabet (`-`, `_`), as v4+ event IDs use. */
export function encodeUrlSafeBase64(bytes: Uint8Array): string {
  return asBuffer(bytes).toString("base64url");
}

/** Decodes standard Base64, padded or not. Throws Base64Error. */
export function decodeBase64(text: string): Uint8Array {
  return decode(text, STANDARD, "base64");
}

/** Decodes URL-safe Base64, padded or not. Throws Base64Error. */
export function decodeUrlSafeBase64(text: string): Uint8Array {
  return decode(text, URL_SAFE, "base64url");
}

function decode(text: string, alphabet: RegExp, encoding: "base64" | "base64url"): Uint8Array {
  const unpadded = stripPadding(text);
  if (!alphabet.test(unpadded)) throw new Base64Error(`not ${encoding}: unexpected character`);
  // One leftover character carries only 6 bits: never a whole byte.
  if (unpadded.length % 4 === 1) throw new Base64Error(`not ${encoding}: impossible length ${unpadded.length}`);
  // Trailing bits of the last character are not checked to be zero: Python's decoder (and so
  // Synapse) ignores them, and real keys rely on it (the spec appendix's example seed ends in "1").
  const buffer = Buffer.from(unpadded, encoding);
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
}

/** Removes correct "=" padding; padding of the wrong length is an error. */
function stripPadding(text: string): string {
  const padStart = text.indexOf("=");
  if (padStart === -1) return text;
  const unpadded = text.slice(0, padStart);
  const padding = text.slice(padStart);
  const expected = (4 - (unpadded.length % 4)) % 4;
  if (!/^=+$/.test(padding) || padding.length !== expected) throw new Base64Error("not base64: bad padding");
  return unpadded;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
