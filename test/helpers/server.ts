// Builds Portier instances for tests: a fresh temporary data folder each, loopback only, quiet logs.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildServer, type BuildOptions, type PortierServer } from "../../src/app";
import { resolveConfig } from "../../src/config/loader";
import type { Logger } from "../../src/services/runtime";

export const silentLogger: Logger = { log: () => {} };

export function tempDir(prefix = "portier-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function testServer(overrides: Record<string, unknown> = {}, options: BuildOptions = {}): Promise<PortierServer> {
  // No plugins unless a test names them: rate limits would otherwise meet tests that register and
  // send in bursts from one address. Plugin tests pass `plugins: [...]`.
  // No federation either unless asked for (test/helpers/federation.ts): the made-up server names of
  // tests (member.example, ...) must never be looked up or contacted.
  const federation = { enabled: false, ...((overrides.federation as Record<string, unknown> | undefined) ?? {}) };
  // Nor a /sync response cache: tests sync again at once and expect what changed meanwhile (the
  // cache's own tests turn it on).
  const sync = { response_cache_ms: 0, ...((overrides.sync as Record<string, unknown> | undefined) ?? {}) };
  // Nor memory trimming: a forced collection's pause in the middle of a test only slows the suite.
  const memory = { trim_interval_ms: 0, ...((overrides.memory as Record<string, unknown> | undefined) ?? {}) };
  // Nor a write-ahead log filled ahead (48 MiB written at each server's first commit); its own tests turn it on.
  const database = { wal_preallocate_mb: 0, ...((overrides.database as Record<string, unknown> | undefined) ?? {}) };
  const config = resolveConfig({ bind: "127.0.0.1:0", data_dir: tempDir(), plugins: [], ...overrides, federation, sync, memory, database });
  return buildServer(config, { logger: silentLogger, ...options });
}

/** Sends one request through the app in-process. */
export async function request(
  server: PortierServer,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] ??= "application/json";
  }
  const response = await server.app.handle(new Request(`http://localhost${path}`, init));
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text.length ? JSON.parse(text) : undefined;
  } catch {
    /* leave as text */
  }
  return { status: response.status, body: parsed, headers: response.headers };
}
