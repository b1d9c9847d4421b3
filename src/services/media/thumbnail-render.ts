// Makes one thumbnail with ImageMagick compiled to WebAssembly (@imagemagick/magick-wasm). Chosen
// over the alternatives because it is the one tried that both decodes all four formats (PNG, JPEG,
// WebP, GIF) and runs inside the compiled binary: sharp's native libvips is not found there,
// @napi-rs/image cannot read GIF, imagescript needs a native addon for JPEG and cannot read WebP,
// jimp cannot read WebP; photon (Rust, WebAssembly) reads all four but decodes a 4,000 px JPEG in
// about 1.5 s where ImageMagick, told the size it needs, decodes it at 1/8 scale in about 0.15 s.
// Decoders run inside the WebAssembly sandbox, with no delegates or shell; the format is fixed from
// the sniffed magic bytes, so bytes are never read as SVG, MVG, MSL or any other coder.
import { ImageMagick, initializeImageMagick, MagickFormat, MagickGeometry, MagickReadSettings, ResourceLimits, type IMagickImage } from "@imagemagick/magick-wasm";
// A file import: `bun build --compile` carries the 15 MB module inside dist/portier.
// @ts-expect-error -- .wasm files have no type declarations
import magickWasmPath from "@imagemagick/magick-wasm/magick.wasm" with { type: "file" };
import type { ImageFormat } from "./image-format";

export type ThumbnailMethod = "crop" | "scale";

export interface RenderRequest {
  readonly bytes: Uint8Array;
  /** The format the magic bytes say (never the uploader's Content-Type). */
  readonly format: ImageFormat;
  readonly width: number;
  readonly height: number;
  readonly method: ThumbnailMethod;
  /**
   * media.max_image_pixels: the most pixels any image decoded for this render may have. The media
   * service always gives it; without it (benchmarks) only the width and height limits apply.
   */
  readonly maxPixels?: number;
}

export type RenderResult =
  | { readonly kind: "thumbnail"; readonly bytes: Uint8Array; readonly contentType: "image/jpeg" | "image/png"; readonly width: number; readonly height: number }
  /** The image is no larger than asked for: the spec has the original served instead (never upscaled). */
  | { readonly kind: "original" }
  | { readonly kind: "undecodable"; readonly reason: string };

const READ_FORMAT: Record<ImageFormat, MagickFormat> = {
  png: MagickFormat.Png,
  jpeg: MagickFormat.Jpeg,
  gif: MagickFormat.Gif,
  webp: MagickFormat.WebP,
};

let ready: Promise<void> | undefined;

/** Loads the WebAssembly module once (about 0.3 s), on the first thumbnail. */
export function initializeRenderer(): Promise<void> {
  ready ??= (async () => {
    await initializeImageMagick(await Bun.file(magickWasmPath as string).bytes());
    // The pixel limit is checked from the header before decoding; these are the backstop, with the
    // area limit set for each render. No pixel cache on "disk": past the area limit ImageMagick would
    // move it there, and its disk is the WebAssembly module's memory.
    ResourceLimits.width = 65_535n;
    ResourceLimits.height = 65_535n;
    ResourceLimits.disk = 0n;
  })();
  return ready;
}

/**
 * The thumbnail's size for an image of `w` x `h` (client-server-api "Thumbnails"): never smaller than
 * asked for where the image allows it, never upscaled. "scale" keeps the aspect ratio and covers the
 * requested box; "crop" covers it and cuts the overflow from the middle, to the requested aspect.
 */
export function thumbnailGeometry(w: number, h: number, request: { width: number; height: number; method: ThumbnailMethod }): { scaledWidth: number; scaledHeight: number; cropWidth: number; cropHeight: number } | undefined {
  if (w <= request.width && h <= request.height) return undefined;
  const factor = Math.min(1, Math.max(request.width / w, request.height / h));
  const scaledWidth = Math.max(1, Math.round(w * factor));
  const scaledHeight = Math.max(1, Math.round(h * factor));
  if (request.method === "scale") {
    if (factor === 1) return undefined;
    return { scaledWidth, scaledHeight, cropWidth: scaledWidth, cropHeight: scaledHeight };
  }
  return { scaledWidth, scaledHeight, cropWidth: Math.min(request.width, scaledWidth), cropHeight: Math.min(request.height, scaledHeight) };
}

export async function renderThumbnail(request: RenderRequest): Promise<RenderResult> {
  await initializeRenderer();
  const settings = new MagickReadSettings({ format: READ_FORMAT[request.format], frameIndex: 0, frameCount: 1 });
  // JPEG: decode at the smallest 1/2^n scale that is still at least twice the size needed (square,
  // so that it still is once an EXIF orientation has turned the image by 90 degrees).
  const hint = 2 * Math.max(request.width, request.height);
  if (request.format === "jpeg") settings.setDefine(MagickFormat.Jpeg, "size", `${hint}x${hint}`);
  // A frame may be larger than the canvas the header declares (a GIF's logical screen, a WebP's
  // VP8X canvas): the area limit refuses any image past max_image_pixels, whatever the header said.
  // Set for this render only (reads are synchronous), so other users of the module keep theirs.
  const previousArea = ResourceLimits.area;
  // (ImageMagick allows strictly fewer pixels than the limit.)
  if (request.maxPixels !== undefined) ResourceLimits.area = BigInt(request.maxPixels) + 1n;
  try {
    return ImageMagick.read(request.bytes, settings, (image: IMagickImage): RenderResult => {
      image.autoOrient();
      image.resetPage();
      // (A JPEG decoded at a reduced scale is still at least twice the requested size, so the
      // comparison with the request stays true to the original.)
      const geometry = thumbnailGeometry(image.width, image.height, request);
      if (geometry === undefined) return { kind: "original" };
      const resize = new MagickGeometry(geometry.scaledWidth, geometry.scaledHeight);
      resize.ignoreAspectRatio = true;
      // thumbnail() is resize() that also drops metadata (EXIF with its GPS position, comments).
      image.thumbnail(resize);
      if (geometry.cropWidth < geometry.scaledWidth || geometry.cropHeight < geometry.scaledHeight) {
        const x = Math.floor((geometry.scaledWidth - geometry.cropWidth) / 2);
        const y = Math.floor((geometry.scaledHeight - geometry.cropHeight) / 2);
        image.crop(new MagickGeometry(x, y, geometry.cropWidth, geometry.cropHeight));
        image.resetPage();
      }
      image.strip();
      // A JPEG stays a JPEG; anything else may have transparency, which PNG keeps.
      const jpeg = request.format === "jpeg";
      if (jpeg) image.quality = 80;
      const width = image.width;
      const height = image.height;
      return image.write(jpeg ? MagickFormat.Jpeg : MagickFormat.Png, (data) => ({
        kind: "thumbnail" as const,
        bytes: Uint8Array.from(data),
        contentType: jpeg ? ("image/jpeg" as const) : ("image/png" as const),
        width,
        height,
      }));
    });
  } catch (error) {
    return { kind: "undecodable", reason: error instanceof Error ? error.message : String(error) };
  } finally {
    ResourceLimits.area = previousArea;
  }
}
