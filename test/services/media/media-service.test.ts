// The media service's thumbnail path with its parts observed: which standard size serves a request,
// how much of a file is read before it is known to be an image (its header only), how many renders
// hold a whole file at once (a few; the rest wait, and past a queue are refused), and that nothing
// but the standard sizes is ever stored.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { IMAGE_HEADER_BYTES, MAX_CONCURRENT_RENDERS, MAX_WAITING_RENDERS, MediaService, standardThumbnailFor } from "../../../src/services/media/media-service";
import { MediaFiles } from "../../../src/services/media/media-files";
import { noRemoteMedia } from "../../../src/services/media/remote-media";
import { inThreadThumbnailer, type Thumbnailer } from "../../../src/services/media/thumbnailer";
import type { RenderRequest, RenderResult } from "../../../src/services/media/thumbnail-render";
import { readImageInfo } from "../../../src/services/media/image-format";
import type { Stores } from "../../../src/storage/open";
import { testStores } from "../../helpers/databases";
import { silentLogger, tempDir } from "../../helpers/server";
import { makeImage } from "../../helpers/images";

const SERVER = "media.example";
const USER = "@u:media.example";

/** MediaFiles that records how many bytes each read asked for. */
class ObservedFiles extends MediaFiles {
  readonly wholeReads: string[] = [];
  readonly headReads: number[] = [];
  override async read(sha256: string): Promise<Uint8Array> {
    this.wholeReads.push(sha256);
    return super.read(sha256);
  }
  override async readHead(sha256: string, maxBytes: number): Promise<Uint8Array> {
    this.headReads.push(maxBytes);
    return super.readHead(sha256, maxBytes);
  }
}

/** A thumbnailer that records its renders and counts how many run at once; closed, they wait for open(). */
class ObservedThumbnailer implements Thumbnailer {
  running = 0;
  mostAtOnce = 0;
  readonly requests: RenderRequest[] = [];
  private readonly gates: (() => void)[] = [];
  constructor(private closed = false) {}
  async render(request: RenderRequest): Promise<RenderResult> {
    this.requests.push(request);
    this.running++;
    this.mostAtOnce = Math.max(this.mostAtOnce, this.running);
    if (this.closed) await new Promise<void>((resolve) => this.gates.push(resolve));
    this.running--;
    return inThreadThumbnailer.render(request);
  }
  open(): void {
    this.closed = false;
    for (const release of this.gates.splice(0)) release();
  }
  stop(): void {}
}

let stores: Stores;
let files: ObservedFiles;
beforeEach(async () => {
  stores = await testStores();
  files = new ObservedFiles(join(tempDir(), "media"));
});
afterEach(async () => {
  await stores.db.close();
});

function service(thumbnailer: Thumbnailer = inThreadThumbnailer, maxImagePixels = 32_000_000): MediaService {
  return new MediaService(
    { store: stores.media, files, thumbnailer, remote: noRemoteMedia, previewer: undefined, clock: { now: () => Date.now() }, logger: silentLogger },
    { serverName: SERVER, maxUploadSize: 8 * 1024 * 1024, maxImagePixels, maxPendingUploads: 5, unusedExpirationMs: 86_400_000 },
  );
}

async function upload(media: MediaService, bytes: Uint8Array, contentType = "image/png"): Promise<string> {
  const uri = await media.upload(USER, { body: new Blob([bytes]).stream(), declaredLength: bytes.byteLength, contentType, filename: undefined });
  return uri.slice(`mxc://${SERVER}/`.length);
}

const ask = (width: number, height: number, method: "crop" | "scale") => ({ width, height, method, allowRemote: false, timeoutMs: 0 });

describe("thumbnail sizes", () => {
  test("a request is served by the smallest standard size of its method covering it, else the largest", () => {
    expect(standardThumbnailFor({ width: 20, height: 30, method: "crop" })).toEqual({ width: 32, height: 32, method: "crop" });
    expect(standardThumbnailFor({ width: 33, height: 1, method: "crop" })).toEqual({ width: 96, height: 96, method: "crop" });
    expect(standardThumbnailFor({ width: 97, height: 96, method: "crop" })).toEqual({ width: 96, height: 96, method: "crop" });
    expect(standardThumbnailFor({ width: 1, height: 1, method: "scale" })).toEqual({ width: 320, height: 240, method: "scale" });
    expect(standardThumbnailFor({ width: 321, height: 100, method: "scale" })).toEqual({ width: 640, height: 480, method: "scale" });
    expect(standardThumbnailFor({ width: 700, height: 500, method: "scale" })).toEqual({ width: 800, height: 600, method: "scale" });
    expect(standardThumbnailFor({ width: 5000, height: 10, method: "scale" })).toEqual({ width: 800, height: 600, method: "scale" });
  });

  test("client-chosen sizes are never rendered or stored: only standard sizes are, once each", async () => {
    const thumbnailer = new ObservedThumbnailer();
    const media = service(thumbnailer);
    const id = await upload(media, await makeImage("png", 1600, 1200));
    const sizes: [number, number, "crop" | "scale"][] = [[97, 97, "crop"], [98, 99, "crop"], [150, 150, "crop"], [801, 601, "scale"], [900, 700, "scale"], [1000, 10, "scale"]];
    for (const [width, height, method] of sizes) {
      const served = await media.thumbnail(SERVER, id, ask(width, height, method));
      const info = readImageInfo(new Uint8Array(await served.body.arrayBuffer()));
      expect([width, height, method, info?.width, info?.height]).toEqual([width, height, method, method === "crop" ? 96 : 800, method === "crop" ? 96 : 600]);
    }
    // Two renders in all (96x96 crop, 800x600 scale); the rest were served from them.
    expect(thumbnailer.requests.map((r) => `${r.width}x${r.height} ${r.method}`)).toEqual(["96x96 crop", "800x600 scale"]);
    const rows = await stores.db.all<{ width: number; height: number; method: string }>("SELECT width, height, method FROM media_thumbnails ORDER BY width");
    expect(rows).toEqual([{ width: 96, height: 96, method: "crop" }, { width: 800, height: 600, method: "scale" }]);
  });

  test("an image no larger than the request is served as it is, even past every standard size", async () => {
    const media = service();
    const png = await makeImage("png", 900, 700);
    const id = await upload(media, png);
    const served = await media.thumbnail(SERVER, id, ask(1000, 1000, "scale"));
    expect(new Uint8Array(await served.body.arrayBuffer()) as Uint8Array).toEqual(png);
    expect(files.wholeReads).toEqual([]);
    expect(await stores.db.all("SELECT * FROM media_thumbnails")).toEqual([]);
  });
});

describe("what a thumbnail request reads", () => {
  test("a file that is not an image is judged from its first bytes, never read whole", async () => {
    const media = service();
    const bytes = new Uint8Array(3 * 1024 * 1024).fill(0x41);
    const id = await upload(media, bytes, "image/png");
    const error = await media.thumbnail(SERVER, id, ask(32, 32, "crop")).catch((e) => e);
    expect([error.status, error.errcode]).toEqual([400, "M_UNKNOWN"]);
    expect(files.wholeReads).toEqual([]);
    expect(files.headReads).toEqual([IMAGE_HEADER_BYTES]);
    expect(IMAGE_HEADER_BYTES).toBeLessThan(bytes.byteLength);
  });

  test("an image over max_image_pixels is refused from its header, never read whole", async () => {
    const media = service(inThreadThumbnailer, 10_000);
    const id = await upload(media, await makeImage("png", 200, 200));
    const error = await media.thumbnail(SERVER, id, ask(32, 32, "crop")).catch((e) => e);
    expect([error.status, error.errcode]).toEqual([413, "M_TOO_LARGE"]);
    expect(files.wholeReads).toEqual([]);
  });

  test("a few renders hold a whole file at once; the others wait, and past the queue are refused (429)", async () => {
    // Different media each: requests for one media's thumbnail share a single render anyway.
    const upTo = async (count: number) => {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) ids.push(await upload(media, await makeImage("png", 40 + i, 40)));
      return ids;
    };
    let thumbnailer = new ObservedThumbnailer(true);
    let media = service(thumbnailer);
    const ids = await upTo(6);
    const answers = ids.map((id) => media.thumbnail(SERVER, id, ask(32, 32, "crop")).then((s) => s.size));
    await Bun.sleep(50);
    expect(thumbnailer.running).toBe(MAX_CONCURRENT_RENDERS);
    expect(files.wholeReads.length).toBe(MAX_CONCURRENT_RENDERS);
    thumbnailer.open();
    expect((await Promise.all(answers)).every((size) => size > 0)).toBe(true);
    expect(thumbnailer.requests.length).toBe(ids.length);
    expect(thumbnailer.mostAtOnce).toBe(MAX_CONCURRENT_RENDERS);

    // A full queue: the next request is refused at once, holding nothing.
    thumbnailer = new ObservedThumbnailer(true);
    media = service(thumbnailer);
    const many = await upTo(MAX_CONCURRENT_RENDERS + MAX_WAITING_RENDERS + 1);
    const queued = many.slice(0, -1).map((id) => media.thumbnail(SERVER, id, ask(32, 32, "crop")).then(() => "ok", (e) => e.errcode as string));
    await Bun.sleep(50);
    const reads = files.wholeReads.length;
    const refused = await media.thumbnail(SERVER, many[many.length - 1]!, ask(32, 32, "crop")).catch((e) => e);
    expect([refused.status, refused.errcode, typeof refused.extra?.retry_after_ms]).toEqual([429, "M_LIMIT_EXCEEDED", "number"]);
    expect(files.wholeReads.length).toBe(reads);
    thumbnailer.open();
    expect((await Promise.all(queued)).every((r) => r === "ok")).toBe(true);
  }, 30_000);
});

describe("temporary files", () => {
  test("what a crashed upload left in tmp/ is removed when the files are opened", async () => {
    const root = join(tempDir(), "media");
    const first = new MediaFiles(root);
    const stored = await first.writeBytes(new TextEncoder().encode("kept"));
    await Bun.write(join(root, "tmp", "123-deadbeef"), new Uint8Array(1024));
    const reopened = new MediaFiles(root);
    expect(await Array.fromAsync(new Bun.Glob("*").scan({ cwd: join(root, "tmp"), onlyFiles: true }))).toEqual([]);
    expect(new TextDecoder().decode(await reopened.read(stored.sha256))).toBe("kept");
    expect(new TextDecoder().decode(await reopened.readHead(stored.sha256, 2))).toBe("ke");
  });
});
