// A push gateway for tests: a small HTTP server on 127.0.0.1 that records every POST to
// /_matrix/push/v1/notify and answers as the test says, and a check of a notify request body against
// the push gateway API (push_notifier.yaml, copied unchanged into test/fixtures/matrix-spec-api).
import { expect } from "bun:test";
import Ajv2020 from "ajv/dist/2020";
import type { ValidateFunction } from "ajv/dist/2020";
import addFormats from "ajv-formats";
import { loadSpecFile } from "./openapi";

export const NOTIFY_PATH = "/_matrix/push/v1/notify";

let validator: ValidateFunction | undefined;

/** Throws unless `body` is a valid POST /_matrix/push/v1/notify request body. */
export function expectValidNotifyRequest(body: unknown): void {
  if (!validator) {
    const doc = loadSpecFile("api/push-gateway/push_notifier.yaml") as any;
    const schema = doc.paths["/notify"].post.requestBody.content["application/json"].schema;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    validator = ajv.compile(schema);
  }
  if (!validator(body)) throw new Error(`not a valid push gateway request: ${JSON.stringify(validator.errors)}\nbody: ${JSON.stringify(body)}`);
}

/** What the gateway answers a request with: a status and a JSON body. */
export type GatewayAnswer = { status: number; body?: unknown };

export interface TestGateway {
  /** The pusher data.url: http://127.0.0.1:PORT/_matrix/push/v1/notify */
  readonly url: string;
  /** Every notify request body, in arrival order. */
  readonly requests: any[];
  /** Answers for the next requests, in order; afterwards 200 {"rejected": []}. */
  answerNext(...answers: GatewayAnswer[]): void;
  /** Resolves once at least `count` requests have arrived (fails after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<any[]>;
  stop(): Promise<void>;
}

export function testGateway(): TestGateway {
  const requests: any[] = [];
  const queued: GatewayAnswer[] = [];
  const waiters: (() => void)[] = [];
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (request.method !== "POST" || path !== NOTIFY_PATH) return new Response("not found", { status: 404 });
      const body = await request.json();
      requests.push(body);
      for (const wake of waiters.splice(0)) wake();
      const answer = queued.shift() ?? { status: 200, body: { rejected: [] } };
      return Response.json(answer.body ?? {}, { status: answer.status });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}${NOTIFY_PATH}`,
    requests,
    answerNext: (...answers) => queued.push(...answers),
    async waitFor(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (requests.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`the push gateway got ${requests.length} requests, expected ${count}: ${JSON.stringify(requests)}`);
        await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), Bun.sleep(Math.min(left, 100))]);
      }
      expect(requests.length).toBeGreaterThanOrEqual(count);
      return requests;
    },
    stop: () => server.stop(true),
  };
}
