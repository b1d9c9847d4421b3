// Runs thumbnail renders in one worker thread when the worker can be started (from source, and in a
// binary built with the worker as an entry point), else on the main thread. One worker is enough on
// a small server and keeps the memory of at most one decoded image; renders queue behind it.
import type { Logger } from "../runtime";
import { renderThumbnail, type RenderRequest, type RenderResult } from "./thumbnail-render";
import type { WorkerMessage, WorkerRequest } from "./thumbnail-worker";

export interface Thumbnailer {
  render(request: RenderRequest): Promise<RenderResult>;
  stop(): void;
}

/** Renders on the calling thread (the fallback, and for tests that want no thread). */
export const inThreadThumbnailer: Thumbnailer = { render: renderThumbnail, stop: () => {} };

/** Where the worker is: beside this file from source; in a compiled binary, under its entry points' root. */
function workerUrl(): string {
  return import.meta.url.includes("$bunfs") ? "/$bunfs/root/services/media/thumbnail-worker.js" : new URL("./thumbnail-worker.ts", import.meta.url).href;
}

const STARTUP_TIMEOUT_MS = 20_000;

export class WorkerThumbnailer implements Thumbnailer {
  private worker: Worker | undefined;
  private starting: Promise<Worker | undefined> | undefined;
  /** Set once the worker could not be started: renders stay on the main thread from then on. */
  private unavailable = false;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (result: RenderResult) => void; timer: ReturnType<typeof setTimeout> }>();

  constructor(
    private readonly logger: Logger,
    private readonly renderTimeoutMs = 30_000,
  ) {}

  async render(request: RenderRequest): Promise<RenderResult> {
    const worker = this.unavailable ? undefined : await this.start();
    if (worker === undefined) return renderThumbnail(request);
    const id = this.nextId++;
    return new Promise<RenderResult>((resolve) => {
      // A render that hangs (a decoder bomb) ends the worker; the next render starts a new one.
      const timer = setTimeout(() => this.fail(`render took longer than ${this.renderTimeoutMs} ms`), this.renderTimeoutMs);
      this.pending.set(id, { resolve, timer });
      // The bytes are copied: the caller keeps its buffer.
      worker.postMessage({ id, request } satisfies WorkerRequest);
    });
  }

  stop(): void {
    this.fail("stopped");
  }

  private start(): Promise<Worker | undefined> {
    if (this.worker !== undefined) return Promise.resolve(this.worker);
    this.starting ??= new Promise<Worker | undefined>((resolve) => {
      let worker: Worker;
      try {
        worker = new Worker(workerUrl());
      } catch (error) {
        this.giveUp(String(error));
        resolve(undefined);
        return;
      }
      const timer = setTimeout(() => {
        worker.terminate();
        this.giveUp("it did not start in time");
        resolve(undefined);
      }, STARTUP_TIMEOUT_MS);
      worker.onerror = (event) => {
        clearTimeout(timer);
        worker.terminate();
        if (this.worker === worker) {
          this.fail(event.message);
        } else {
          this.giveUp(event.message);
          resolve(undefined);
        }
      };
      worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
        const message = event.data;
        if ("ready" in message) {
          clearTimeout(timer);
          this.worker = worker;
          this.starting = undefined;
          // The worker does not keep the server running on its own.
          worker.unref();
          resolve(worker);
          return;
        }
        const waiting = this.pending.get(message.id);
        if (waiting === undefined) return;
        this.pending.delete(message.id);
        clearTimeout(waiting.timer);
        waiting.resolve(message.result);
      };
    });
    return this.starting;
  }

  private giveUp(reason: string): void {
    this.unavailable = true;
    this.starting = undefined;
    this.logger.log("warn", "thumbnails are made on the main thread: the worker could not be started", { reason });
  }

  /** Ends the worker; its waiting renders are answered as undecodable (the client gets a 400, never a 500). */
  private fail(reason: string): void {
    const worker = this.worker;
    this.worker = undefined;
    this.starting = undefined;
    worker?.terminate();
    for (const [id, waiting] of this.pending) {
      clearTimeout(waiting.timer);
      waiting.resolve({ kind: "undecodable", reason });
      this.pending.delete(id);
    }
  }
}
