// The content repository (client-server-api "Content repository"): uploads, ids created ahead of
// their upload, downloads of our media and of other servers' (fetched once and cached), thumbnails
// (made once per standard size and kept), the upload configuration and URL previews.
import { MatrixError } from "../../protocol/errors";
import type { MediaRecord, MediaStore } from "../../storage/stores";
import type { Clock, Logger } from "../runtime";
import { normaliseContentType } from "./disposition";
import { IMAGE_CONTENT_TYPES, readImageInfo, type ImageInfo } from "./image-format";
import type { MediaFiles } from "./media-files";
import { checkMediaAddress, mxcUri, newMediaId } from "./media-ids";
import type { RemoteMediaSource } from "./remote-media";
import type { ThumbnailMethod } from "./thumbnail-render";
import type { Thumbnailer } from "./thumbnailer";
import type { UrlPreviewer } from "./url-preview";

export interface MediaSettings {
  readonly serverName: string;
  readonly maxUploadSize: number;
  readonly maxImagePixels: number;
  readonly maxPendingUploads: number;
  readonly unusedExpirationMs: number;
}

export interface MediaServiceDeps {
  readonly store: MediaStore;
  readonly files: MediaFiles;
  readonly thumbnailer: Thumbnailer;
  readonly remote: RemoteMediaSource;
  /** Undefined when URL previews are off. */
  readonly previewer: UrlPreviewer | undefined;
  readonly clock: Clock;
  readonly logger: Logger;
}

/** What a download or thumbnail serves: the bytes and how to describe them. */
export interface ServedContent {
  readonly body: Blob;
  readonly size: number;
  /** The type to send (the uploader's, or application/octet-stream when none was given). */
  readonly contentType: string;
  readonly filename: string | undefined;
  /** SHA-256 of the bytes: a strong ETag. */
  readonly sha256: string;
}

export interface UploadInput {
  readonly body: ReadableStream<Uint8Array> | null;
  /** The Content-Length header, when the client sent one. */
  readonly declaredLength: number | undefined;
  readonly contentType: string | undefined;
  readonly filename: string | undefined;
}

export interface FetchOptions {
  /** false: never ask another server (the deprecated endpoints' allow_remote, and federation requests). */
  readonly allowRemote: boolean;
  /** How long to wait for the content of an id created but not yet uploaded. */
  readonly timeoutMs: number;
}

export interface ThumbnailRequest extends FetchOptions {
  readonly width: number;
  readonly height: number;
  readonly method: ThumbnailMethod;
}

interface ThumbnailSize {
  readonly width: number;
  readonly height: number;
  readonly method: ThumbnailMethod;
}

/** The sizes the spec says servers should make, smallest first for each method: the only ones made. */
const STANDARD_THUMBNAILS: readonly ThumbnailSize[] = [
  { width: 32, height: 32, method: "crop" },
  { width: 96, height: 96, method: "crop" },
  { width: 320, height: 240, method: "scale" },
  { width: 640, height: 480, method: "scale" },
  { width: 800, height: 600, method: "scale" },
];

/**
 * The standard size that serves a request: the smallest of its method that covers it, else the
 * largest of its method (the closest; as Synapse does without dynamic thumbnails). Never the
 * requested size itself: a client asking for 101, 102, 103... wide would otherwise have each one
 * decoded, scaled and stored.
 */
export function standardThumbnailFor(request: ThumbnailSize): ThumbnailSize {
  const sizes = STANDARD_THUMBNAILS.filter((s) => s.method === request.method);
  return sizes.find((s) => s.width >= request.width && s.height >= request.height) ?? sizes[sizes.length - 1]!;
}

/** How much of a file is read to learn whether it is an image, and of which size (headers come first). */
export const IMAGE_HEADER_BYTES = 1024 * 1024;
/** Renders at once, each holding its whole file and the decoded image; more wait their turn. */
export const MAX_CONCURRENT_RENDERS = 2;
/** Renders that may wait for a turn; past that, 429 (the spec's answer when asked too often). */
export const MAX_WAITING_RENDERS = 64;

/** The longest a download waits for a pending upload, whatever timeout_ms asks (the spec wants a cap). */
export const MAX_WAIT_MS = 60_000;

/**
 * Content types are sent back as a header and decide inline or attachment: only a parsed
 * `type/subtype` (and a plain charset) is kept; a malformed one is dropped (application/octet-stream).
 */
const cleanContentType = normaliseContentType;

/** At most `slots` tasks at once; at most `maxWaiting` more wait (in order), the rest are refused. */
class RenderQueue {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly slots: number,
    private readonly maxWaiting: number,
  ) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.slots) this.running++;
    else {
      if (this.waiting.length >= this.maxWaiting) throw new MatrixError("M_LIMIT_EXCEEDED", "Too many thumbnails are being made: try again shortly", 429, { retry_after_ms: 1000 });
      // The slot is handed over by the task that ends (running stays the same).
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next !== undefined) next();
      else this.running--;
    }
  }
}

export class MediaService {
  /** Downloads waiting for the content of a created id, by "server/id". */
  private readonly waiting = new Map<string, Set<() => void>>();
  /** Remote fetches and thumbnail renders in progress, so that concurrent requests share one. */
  private readonly inFlight = new Map<string, Promise<unknown>>();
  private readonly renders = new RenderQueue(MAX_CONCURRENT_RENDERS, MAX_WAITING_RENDERS);

  constructor(
    private readonly deps: MediaServiceDeps,
    readonly settings: MediaSettings,
  ) {}

  /** GET /media/config. */
  config(): Record<string, number> {
    return { "m.upload.size": this.settings.maxUploadSize };
  }

  /** POST /_matrix/media/v3/upload: stores the bytes, then their row; returns the mxc:// URI. */
  async upload(userId: string, input: UploadInput): Promise<string> {
    this.checkDeclaredSize(input.declaredLength);
    const stored = await this.deps.files.writeStream(input.body, this.settings.maxUploadSize, () => this.tooLarge());
    const now = this.deps.clock.now();
    const mediaId = newMediaId();
    const inserted = await this.deps.store.insertMedia({
      serverName: this.settings.serverName,
      mediaId,
      userId,
      createdTs: now,
      unusedExpiresTs: undefined,
      content: { contentType: cleanContentType(input.contentType), uploadName: this.cleanFilename(input.filename), size: stored.size, sha256: stored.sha256, uploadedTs: now },
    });
    // 24 random letters do not collide; a collision would still never overwrite someone's media.
    if (!inserted) throw new MatrixError("M_UNKNOWN", "Could not allocate a media id", 500);
    return mxcUri(this.settings.serverName, mediaId);
  }

  /** POST /_matrix/media/v1/create: an id whose content comes later, from this user only. */
  async create(userId: string): Promise<{ content_uri: string; unused_expires_at: number }> {
    const now = this.deps.clock.now();
    // The spec: limit the pending uploads a user can have, answering 429 M_LIMIT_EXCEEDED.
    if ((await this.deps.store.countPendingUploads(userId, now)) >= this.settings.maxPendingUploads) {
      throw new MatrixError("M_LIMIT_EXCEEDED", `You have ${this.settings.maxPendingUploads} media ids waiting for their content already`, 429);
    }
    const mediaId = newMediaId();
    const expires = now + this.settings.unusedExpirationMs;
    const inserted = await this.deps.store.insertMedia({ serverName: this.settings.serverName, mediaId, userId, createdTs: now, unusedExpiresTs: expires, content: undefined });
    if (!inserted) throw new MatrixError("M_UNKNOWN", "Could not allocate a media id", 500);
    return { content_uri: mxcUri(this.settings.serverName, mediaId), unused_expires_at: expires };
  }

  /** PUT /_matrix/media/v3/upload/{serverName}/{mediaId}: the content of a created id, once. */
  async uploadTo(userId: string, serverName: string, mediaId: string, input: UploadInput): Promise<void> {
    checkMediaAddress(serverName, mediaId);
    // Everything that refuses the upload is decided before a byte of it is read.
    const record = serverName === this.settings.serverName ? await this.deps.store.getMedia(serverName, mediaId) : undefined;
    if (record === undefined || record.unusedExpiresTs === undefined) throw new MatrixError("M_NOT_FOUND", "Unknown media ID");
    if (record.userId !== userId) throw new MatrixError("M_FORBIDDEN", "This media ID was created by another user");
    if (record.content !== undefined) throw new MatrixError("M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded", 409);
    if (this.deps.clock.now() > record.unusedExpiresTs) throw new MatrixError("M_NOT_FOUND", "The media ID has expired");
    this.checkDeclaredSize(input.declaredLength);
    const stored = await this.deps.files.writeStream(input.body, this.settings.maxUploadSize, () => this.tooLarge());
    const done = await this.deps.store.completeUpload(serverName, mediaId, {
      contentType: cleanContentType(input.contentType),
      uploadName: this.cleanFilename(input.filename),
      size: stored.size,
      sha256: stored.sha256,
      uploadedTs: this.deps.clock.now(),
    });
    // Two uploads raced: the first one's content stays.
    if (!done) throw new MatrixError("M_CANNOT_OVERWRITE_MEDIA", "Media already uploaded", 409);
    this.wake(serverName, mediaId);
  }

  /** The content of mxc://serverName/mediaId: ours, or another server's (fetched and cached). */
  async download(serverName: string, mediaId: string, options: FetchOptions): Promise<ServedContent> {
    checkMediaAddress(serverName, mediaId);
    const record = serverName === this.settings.serverName ? await this.localContent(mediaId, options.timeoutMs) : await this.remoteContent(serverName, mediaId, options.allowRemote);
    return this.serve(record);
  }

  /**
   * A thumbnail of mxc://serverName/mediaId in the standard size that serves the request (see
   * standardThumbnailFor), or the image itself when it is no larger than asked for.
   */
  async thumbnail(serverName: string, mediaId: string, request: ThumbnailRequest): Promise<ServedContent> {
    checkMediaAddress(serverName, mediaId);
    const local = serverName === this.settings.serverName;
    const record = local ? await this.localContent(mediaId, request.timeoutMs) : await this.remoteContent(serverName, mediaId, request.allowRemote);
    const content = record.content!;
    // Only standard sizes are made and stored: the thumbnails of one media are at most five files.
    const target = standardThumbnailFor(request);
    // A request no standard size covers may be served the original instead (below): looked up after.
    const covered = target.width >= request.width && target.height >= request.height;
    const cached = covered ? await this.cachedThumbnail(serverName, mediaId, target) : undefined;
    if (cached !== undefined) return cached;
    // Whether it is an image, and how large, from its first bytes only: the whole file (up to
    // max_upload_size) is read only for an image that will be decoded.
    const info = await this.once(`image header ${content.sha256}`, async () => readImageInfo(await this.deps.files.readHead(content.sha256, IMAGE_HEADER_BYTES)));
    // The spec: the server cannot thumbnail this content (not an image of a format we read).
    if (info === undefined) throw new MatrixError("M_UNKNOWN", "Cannot generate thumbnails for the requested content", 400);
    if (info.width * info.height > this.settings.maxImagePixels) {
      throw new MatrixError("M_TOO_LARGE", "Content is too large to thumbnail", local ? 413 : 502);
    }
    // No larger than asked for (or than the standard size) whichever way an EXIF orientation turns
    // it: served as it is, without decoding it (the spec: the original, never upscaled).
    const within = (box: { width: number; height: number }) => Math.max(info.width, info.height) <= Math.min(box.width, box.height);
    if (within(request) || within(target)) return this.serveImage(content.sha256, content.size, info);
    if (!covered) {
      const made = await this.cachedThumbnail(serverName, mediaId, target);
      if (made !== undefined) return made;
    }
    const key = `thumbnail ${serverName}/${mediaId} ${target.width}x${target.height} ${target.method}`;
    return this.once(key, () =>
      this.renders.run(async () => {
        const bytes = await this.deps.files.read(content.sha256);
        const result = await this.deps.thumbnailer.render({ bytes, format: info.format, width: target.width, height: target.height, method: target.method, maxPixels: this.settings.maxImagePixels });
        if (result.kind === "original") return this.serveImage(content.sha256, content.size, info);
        if (result.kind === "undecodable") {
          this.deps.logger.log("debug", "could not thumbnail media", { media: `${serverName}/${mediaId}`, reason: result.reason });
          throw new MatrixError("M_UNKNOWN", "Cannot generate thumbnails for the requested content", 400);
        }
        const stored = await this.deps.files.writeBytes(result.bytes);
        await this.deps.store.putThumbnail({ serverName, mediaId, width: target.width, height: target.height, method: target.method, contentType: result.contentType, size: stored.size, sha256: stored.sha256, createdTs: this.deps.clock.now() });
        return { body: this.deps.files.file(stored.sha256), size: stored.size, contentType: result.contentType, filename: thumbnailName(result.contentType), sha256: stored.sha256 };
      }),
    );
  }

  private async cachedThumbnail(serverName: string, mediaId: string, target: ThumbnailSize): Promise<ServedContent | undefined> {
    const cached = await this.deps.store.getThumbnail(serverName, mediaId, target.width, target.height, target.method);
    if (cached === undefined || !(await this.deps.files.exists(cached.sha256))) return undefined;
    return { body: this.deps.files.file(cached.sha256), size: cached.size, contentType: cached.contentType, filename: thumbnailName(cached.contentType), sha256: cached.sha256 };
  }

  /** GET /media/preview_url; 404 M_UNRECOGNIZED when previews are off (Synapse does not serve the endpoint then). */
  async previewUrl(url: string, userId: string): Promise<Record<string, string | number>> {
    if (this.deps.previewer === undefined) throw new MatrixError("M_UNRECOGNIZED", "URL previews are disabled on this server", 404);
    return this.deps.previewer.preview(url, userId);
  }

  /** Stores bytes fetched for a URL preview as media of the user who asked for the preview. */
  async storeFetched(bytes: Uint8Array, contentType: string | undefined, userId: string): Promise<string> {
    const stored = await this.deps.files.writeBytes(bytes);
    const now = this.deps.clock.now();
    const mediaId = newMediaId();
    await this.deps.store.insertMedia({ serverName: this.settings.serverName, mediaId, userId, createdTs: now, unusedExpiresTs: undefined, content: { contentType: cleanContentType(contentType), uploadName: undefined, size: stored.size, sha256: stored.sha256, uploadedTs: now } });
    return mxcUri(this.settings.serverName, mediaId);
  }

  private async localContent(mediaId: string, timeoutMs: number): Promise<MediaRecord> {
    const serverName = this.settings.serverName;
    const deadline = this.deps.clock.now() + Math.min(Math.max(0, timeoutMs), MAX_WAIT_MS);
    for (;;) {
      const record = await this.deps.store.getMedia(serverName, mediaId);
      if (record === undefined) throw new MatrixError("M_NOT_FOUND", "Media not found");
      if (record.content !== undefined) return record;
      const now = this.deps.clock.now();
      if (record.unusedExpiresTs !== undefined && now > record.unusedExpiresTs) throw new MatrixError("M_NOT_FOUND", "Media not found");
      if (now >= deadline) throw new MatrixError("M_NOT_YET_UPLOADED", "Content has not yet been uploaded", 504);
      await this.waitForUpload(serverName, mediaId, deadline - now);
    }
  }

  private async remoteContent(serverName: string, mediaId: string, allowRemote: boolean): Promise<MediaRecord> {
    const cached = await this.deps.store.getMedia(serverName, mediaId);
    if (cached?.content !== undefined && (await this.deps.files.exists(cached.content.sha256))) return cached;
    if (!allowRemote) throw new MatrixError("M_NOT_FOUND", "Media not found");
    return this.once(`remote ${serverName}/${mediaId}`, async () => {
      const remote = await this.deps.remote.download(serverName, mediaId, this.settings.maxUploadSize);
      if (remote.bytes.byteLength > this.settings.maxUploadSize) throw new MatrixError("M_TOO_LARGE", "The remote content is too large", 502);
      const stored = await this.deps.files.writeBytes(remote.bytes);
      const now = this.deps.clock.now();
      const content = { contentType: cleanContentType(remote.contentType), uploadName: this.cleanFilename(remote.filename), size: stored.size, sha256: stored.sha256, uploadedTs: now };
      await this.deps.store.putRemoteMedia(serverName, mediaId, content);
      return { serverName, mediaId, userId: undefined, createdTs: now, unusedExpiresTs: undefined, content };
    });
  }

  private serve(record: MediaRecord): ServedContent {
    const content = record.content!;
    return {
      body: this.deps.files.file(content.sha256),
      size: content.size,
      // Normalised again on the way out: a row written before types were parsed is served safely too.
      contentType: cleanContentType(content.contentType) ?? "application/octet-stream",
      filename: content.uploadName,
      sha256: content.sha256,
    };
  }

  /** An image served as its own thumbnail, typed by what its bytes are (never the uploader's claim). */
  private serveImage(sha256: string, size: number, info: ImageInfo): ServedContent {
    const contentType = IMAGE_CONTENT_TYPES[info.format];
    return { body: this.deps.files.file(sha256), size, contentType, filename: thumbnailName(contentType), sha256 };
  }

  /** Runs `work` once for concurrent callers with the same key. */
  private once<T>(key: string, work: () => Promise<T>): Promise<T> {
    const running = this.inFlight.get(key);
    if (running !== undefined) return running as Promise<T>;
    const promise = work().finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, promise);
    return promise;
  }

  private waitForUpload(serverName: string, mediaId: string, ms: number): Promise<void> {
    const key = `${serverName}/${mediaId}`;
    return new Promise<void>((resolve) => {
      let listeners = this.waiting.get(key);
      if (listeners === undefined) this.waiting.set(key, (listeners = new Set()));
      const done = () => {
        clearTimeout(timer);
        listeners!.delete(done);
        if (listeners!.size === 0) this.waiting.delete(key);
        resolve();
      };
      const timer = setTimeout(done, ms);
      listeners.add(done);
    });
  }

  private wake(serverName: string, mediaId: string): void {
    for (const listener of [...(this.waiting.get(`${serverName}/${mediaId}`) ?? [])]) listener();
  }

  private checkDeclaredSize(declaredLength: number | undefined): void {
    if (declaredLength !== undefined && declaredLength > this.settings.maxUploadSize) throw this.tooLarge();
  }

  private tooLarge(): MatrixError {
    return new MatrixError("M_TOO_LARGE", `Cannot upload files larger than ${this.settings.maxUploadSize} bytes`, 413);
  }

  private cleanFilename(filename: string | undefined): string | undefined {
    if (filename === undefined || filename === "") return undefined;
    return filename.slice(0, 1024);
  }
}

function thumbnailName(contentType: string): string {
  return `thumbnail.${contentType === "image/jpeg" ? "jpg" : contentType.slice("image/".length)}`;
}
