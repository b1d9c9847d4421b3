// What an image really is, from its first bytes, and how many pixels it has, read from its header
// without decoding it. Thumbnails are made only of these four formats, whatever Content-Type the
// uploader claimed, and only when the pixel count is within the limit: a small file can declare a
// huge image, and decoding it would take the server's memory.

export type ImageFormat = "png" | "jpeg" | "gif" | "webp";

export interface ImageInfo {
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
}

export const IMAGE_CONTENT_TYPES: Readonly<Record<ImageFormat, string>> = {
  png: "image/png",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
};

const startsWith = (bytes: Uint8Array, prefix: readonly number[], at = 0) => prefix.every((b, i) => bytes[at + i] === b);
const ascii = (bytes: Uint8Array, at: number, length: number) => String.fromCharCode(...bytes.subarray(at, at + length));
const be16 = (b: Uint8Array, at: number) => (b[at]! << 8) | b[at + 1]!;
const be32 = (b: Uint8Array, at: number) => ((b[at]! << 24) >>> 0) + ((b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!);
const le16 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
const le24 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);

/** The format and size the header declares, or undefined when these bytes are none of the four formats. */
export function readImageInfo(bytes: Uint8Array): ImageInfo | undefined {
  const info = readHeader(bytes);
  return info && info.width > 0 && info.height > 0 ? info : undefined;
}

function readHeader(bytes: Uint8Array): ImageInfo | undefined {
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) {
    if (bytes.length < 24 || ascii(bytes, 12, 4) !== "IHDR") return undefined;
    return { format: "png", width: be32(bytes, 16), height: be32(bytes, 20) };
  }
  if (bytes.length >= 10 && (ascii(bytes, 0, 6) === "GIF87a" || ascii(bytes, 0, 6) === "GIF89a")) {
    return { format: "gif", width: le16(bytes, 6), height: le16(bytes, 8) };
  }
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return jpegInfo(bytes);
  if (bytes.length >= 30 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP") return webpInfo(bytes);
  return undefined;
}

/** The size is in the first start-of-frame segment (SOF0..SOF15 but DHT, JPG and DAC). */
function jpegInfo(bytes: Uint8Array): ImageInfo | undefined {
  let at = 2;
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) return undefined;
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2; // markers without a length
      continue;
    }
    const length = be16(bytes, at + 2);
    if (length < 2) return undefined;
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { format: "jpeg", height: be16(bytes, at + 5), width: be16(bytes, at + 7) };
    }
    if (marker === 0xda || marker === 0xd9) return undefined; // image data before any frame header
    at += 2 + length;
  }
  return undefined;
}

function webpInfo(bytes: Uint8Array): ImageInfo | undefined {
  const chunk = ascii(bytes, 12, 4);
  if (chunk === "VP8 ") {
    // Lossy: a 3-byte frame tag, the start code 9d 01 2a, then 14-bit width and height.
    if (!startsWith(bytes, [0x9d, 0x01, 0x2a], 23)) return undefined;
    return { format: "webp", width: le16(bytes, 26) & 0x3fff, height: le16(bytes, 28) & 0x3fff };
  }
  if (chunk === "VP8L") {
    // Lossless: the signature 0x2f, then width - 1 and height - 1 in 14 bits each.
    if (bytes[20] !== 0x2f) return undefined;
    const b1 = bytes[21]!, b2 = bytes[22]!, b3 = bytes[23]!, b4 = bytes[24]!;
    return { format: "webp", width: 1 + (b1 | ((b2 & 0x3f) << 8)), height: 1 + ((b2 >> 6) | (b3 << 2) | ((b4 & 0x0f) << 10)) };
  }
  if (chunk === "VP8X") {
    // Extended (alpha, animation): the canvas size, 24 bits each, minus one.
    return { format: "webp", width: 1 + le24(bytes, 24), height: 1 + le24(bytes, 27) };
  }
  return undefined;
}
