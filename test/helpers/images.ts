// Test images made on the spot: a pattern of pixels encoded as PNG, JPEG, GIF or WebP with the same
// ImageMagick (WebAssembly) the server uses, so tests ship no binary fixtures.
import { ImageMagick, MagickFormat, MagickReadSettings } from "@imagemagick/magick-wasm";
import { initializeRenderer } from "../../src/services/media/thumbnail-render";

const FORMATS = { png: MagickFormat.Png, jpeg: MagickFormat.Jpeg, gif: MagickFormat.Gif, webp: MagickFormat.WebP } as const;

/** A width x height image with a gradient and a diagonal pattern (so JPEG has something to encode). */
export async function makeImage(format: keyof typeof FORMATS, width: number, height: number): Promise<Uint8Array> {
  await initializeRenderer();
  const raw = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      raw[i] = (x * 255) / width;
      raw[i + 1] = (y * 255) / height;
      raw[i + 2] = ((x + y) & 32) === 0 ? 40 : 220;
    }
  }
  const settings = new MagickReadSettings({ format: MagickFormat.Rgb, width, height });
  settings.depth = 8;
  return ImageMagick.read(raw, settings, (image) => {
    if (format === "jpeg") image.quality = 85;
    return image.write(FORMATS[format], (data) => Uint8Array.from(data));
  });
}

/** A GIF of two frames (red, then blue), to check that thumbnails take the first. */
export async function makeAnimatedGif(width: number, height: number): Promise<Uint8Array> {
  await initializeRenderer();
  const frames: Uint8Array[] = [];
  for (const [r, g, b] of [[255, 0, 0], [0, 0, 255]] as const) {
    const raw = new Uint8Array(width * height * 3);
    for (let i = 0; i < raw.length; i += 3) [raw[i], raw[i + 1], raw[i + 2]] = [r, g, b];
    frames.push(raw);
  }
  const { MagickImageCollection, MagickImage } = await import("@imagemagick/magick-wasm");
  const collection = MagickImageCollection.create();
  for (const raw of frames) {
    const image = MagickImage.create();
    const settings = new MagickReadSettings({ format: MagickFormat.Rgb, width, height });
    settings.depth = 8;
    image.read(raw, settings);
    image.animationDelay = 10;
    collection.push(image);
  }
  try {
    return collection.write(MagickFormat.Gif, (data) => Uint8Array.from(data));
  } finally {
    collection.dispose();
  }
}

/** The color of the pixel in the middle of an image, as [r, g, b] (0..255). */
export async function middlePixel(bytes: Uint8Array): Promise<[number, number, number]> {
  await initializeRenderer();
  return ImageMagick.read(bytes, (image) =>
    image.getPixels((pixels) => {
      const p = pixels.getPixel(Math.floor(image.width / 2), Math.floor(image.height / 2));
      return [p[0]!, p[1]!, p[2]!] as [number, number, number];
    }),
  );
}
