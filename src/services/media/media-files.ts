// The bytes of media and thumbnails: files under data_dir/media named by their SHA-256, so the same
// content is stored once, whoever uploads it. A file is written under a temporary name, flushed to
// disk and then renamed into place, so a name in content/ always holds the whole file; the caller
// records it in the database only after that, so a row never points at a missing or partial file.
// What a crashed write left in tmp/ is removed when the server starts.
import { mkdirSync, rmSync } from "node:fs";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { MatrixError } from "../../protocol/errors";

/** Writes are collected into blocks of this size: a 50 MB upload is 50 writes, not thousands. */
const WRITE_BLOCK_BYTES = 1024 * 1024;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface StoredFile {
  readonly sha256: string;
  readonly size: number;
}

export class MediaFiles {
  private readonly contentDir: string;
  private readonly tempDir: string;

  constructor(root: string) {
    this.contentDir = join(root, "content");
    this.tempDir = join(root, "tmp");
    mkdirSync(this.contentDir, { recursive: true });
    // Built once, at start, before any write: whatever is in tmp/ was left by a process that died
    // mid-upload and is no one's.
    rmSync(this.tempDir, { recursive: true, force: true });
    mkdirSync(this.tempDir, { recursive: true });
  }

  /** content/ab/cd/abcd...: two levels of folders keep each one small. */
  pathOf(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a SHA-256: ${sha256}`);
    return join(this.contentDir, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  async exists(sha256: string): Promise<boolean> {
    return stat(this.pathOf(sha256)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  file(sha256: string): ReturnType<typeof Bun.file> {
    return Bun.file(this.pathOf(sha256));
  }

  async read(sha256: string): Promise<Uint8Array> {
    return this.file(sha256).bytes();
  }

  /** The first `maxBytes` of a file (all of a shorter one). */
  async readHead(sha256: string, maxBytes: number): Promise<Uint8Array> {
    return this.file(sha256).slice(0, maxBytes).bytes();
  }

  /**
   * Stores a stream, at most `maxBytes` of it: a longer one is abandoned at the first byte past the
   * limit (nothing kept) with 413 M_TOO_LARGE, or `tooLarge()` when given.
   */
  async writeStream(stream: ReadableStream<Uint8Array> | null, maxBytes: number, tooLarge?: () => Error): Promise<StoredFile> {
    const temp = join(this.tempDir, `${Date.now()}-${randomBytes(8).toString("hex")}`);
    const handle = await open(temp, "wx", 0o600);
    const hasher = new Bun.CryptoHasher("sha256");
    let size = 0;
    let kept = false;
    try {
      let block: Uint8Array[] = [];
      let blockBytes = 0;
      const flush = async () => {
        if (blockBytes === 0) return;
        await handle.writev(block);
        block = [];
        blockBytes = 0;
      };
      if (stream !== null) {
        const reader = stream.getReader();
        try {
          while (true) {
            const { done, value } = await reader.read();
            if (done) break;
            size += value.byteLength;
            if (size > maxBytes) throw tooLarge?.() ?? new MatrixError("M_TOO_LARGE", `Content is larger than ${maxBytes} bytes`);
            hasher.update(value);
            block.push(value);
            blockBytes += value.byteLength;
            if (blockBytes >= WRITE_BLOCK_BYTES) await flush();
          }
        } catch (error) {
          await reader.cancel().catch(() => {});
          throw error;
        }
      }
      await flush();
      await handle.datasync();
      await handle.close();
      const sha256 = hasher.digest("hex");
      await this.keep(temp, sha256);
      kept = true;
      return { sha256, size };
    } finally {
      if (!kept) {
        await handle.close().catch(() => {});
        await rm(temp, { force: true });
      }
    }
  }

  async writeBytes(bytes: Uint8Array): Promise<StoredFile> {
    return this.writeStream(new Blob([bytes]).stream(), bytes.byteLength);
  }

  /** Moves a flushed temporary file to its content name (dropping it when that content is there already). */
  private async keep(temp: string, sha256: string): Promise<void> {
    const target = this.pathOf(sha256);
    if (await this.exists(sha256)) {
      await rm(temp, { force: true });
      return;
    }
    await mkdir(dirname(target), { recursive: true });
    await rename(temp, target);
    // The rename itself is durable only once its folder is flushed.
    const folder = await open(dirname(target), "r");
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
  }
}
