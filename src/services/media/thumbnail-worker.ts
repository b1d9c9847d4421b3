// The thumbnail worker: decodes and scales images off the main thread, so that a 0.2 s decode of a
// large photo does not stall every other request. Started by Thumbnailer; it says "ready" once the
// WebAssembly module is loaded, then answers each request with its id.
import { initializeRenderer, renderThumbnail, type RenderRequest, type RenderResult } from "./thumbnail-render";

declare const self: Worker;

export interface WorkerRequest {
  readonly id: number;
  readonly request: RenderRequest;
}

export type WorkerMessage = { readonly ready: true } | { readonly id: number; readonly result: RenderResult };

self.onmessage = async (event: MessageEvent<WorkerRequest>) => {
  const { id, request } = event.data;
  const result = await renderThumbnail(request);
  const message: WorkerMessage = { id, result };
  self.postMessage(message, result.kind === "thumbnail" ? [result.bytes.buffer as ArrayBuffer] : []);
};

await initializeRenderer();
self.postMessage({ ready: true } satisfies WorkerMessage);
