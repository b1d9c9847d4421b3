// Small string facts shared by the identifier parsers.

/** Length of `s` in UTF-8 bytes (identifier limits are in bytes, not UTF-16 units). */
export function utf8Length(s: string): number {
  let bytes = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return bytes;
}

/**
 * Whether `s` is made of "valid non-surrogate Unicode code points except `:` and NUL", the
 * opaque-part rule the appendices give historical user localparts, room ID localparts and alias
 * localparts. A lone UTF-16 surrogate in a JS string is such a surrogate code point.
 */
export function isOpaqueLocalpart(s: string): boolean {
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0x3a || (cp >= 0xd800 && cp <= 0xdfff)) return false;
  }
  return true;
}

/** The 255-byte cap on user IDs, room IDs, room aliases and event IDs (sigil and domain included). */
export const MAX_IDENTIFIER_BYTES = 255;
