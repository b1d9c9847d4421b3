// Helpers for driving a real Portier with matrix-js-sdk: a fetch that records every exchange, a quiet
// SDK logger, waiting for conditions with a bounded timeout, and a registered user's syncing client.
import { logger as sdkRootLogger, type Logger } from "matrix-js-sdk/lib/logger";
import { ClientEvent, createClient, SyncState, type MatrixClient } from "matrix-js-sdk";
import type { PortierServer } from "../../../src/app";
import { afterAll, beforeAll } from "bun:test";
import { request, testServer } from "../../helpers/server";

/** One HTTP exchange the SDK made, as seen on the wire. */
export interface Exchange {
  /** Which client made it (for messages). */
  who: string;
  method: string;
  /** Path and query, e.g. `/_matrix/client/v3/sync?timeout=30000`. */
  url: string;
  /** Path only. */
  path: string;
  /** 0 when no response came (the body then holds the error, e.g. an AbortError from stopClient). */
  status: number;
  /** The parsed JSON body, or the raw text when it is not JSON, or undefined when empty. */
  body: unknown;
  contentType: string | null;
}

/** A fetch that forwards to the real one and appends each exchange (with its parsed body) to `log`. */
export function recordingFetch(who: string, log: Exchange[]): typeof globalThis.fetch {
  const wrapped = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
    let response: Response;
    try {
      response = await fetch(input, init);
    } catch (err) {
      const error = err as Error;
      log.push({ who, method, url: url.pathname + url.search, path: url.pathname, status: 0, body: `${error?.name}: ${error?.message}`, contentType: null });
      throw err;
    }
    const text = await response.clone().text();
    let body: unknown = text.length ? text : undefined;
    try {
      if (text.length) body = JSON.parse(text);
    } catch {
      /* not JSON: keep the text */
    }
    log.push({ who, method, url: url.pathname + url.search, path: url.pathname, status: response.status, body, contentType: response.headers.get("content-type") });
    return response;
  };
  return wrapped as typeof globalThis.fetch;
}

/**
 * A logger for the SDK that drops debug/info chatter but keeps warnings and errors (for the report
 * when something goes wrong) in `sink`.
 */
export function quietLogger(sink: string[], prefix = ""): Logger {
  const keep =
    (level: string) =>
    (...msg: unknown[]) => {
      sink.push(`${level} ${prefix}${msg.map((m) => (m instanceof Error ? m.message : typeof m === "string" ? m : safeJson(m))).join(" ")}`);
    };
  const drop = () => {};
  const logger: Logger = {
    trace: drop,
    debug: drop,
    info: drop,
    warn: keep("warn"),
    error: keep("error"),
    getChild: (namespace: string) => quietLogger(sink, `${prefix}${namespace} `),
  };
  return logger;
}

/**
 * Some SDK code logs through its global `loglevel` logger rather than the client's (the MatrixRTC
 * session, local-echo bookkeeping). Until the returned function is called, that logger (and the child
 * loggers made from it from now on, which copy its methodFactory) keeps only warnings and errors, in `sink`.
 */
export function muteSdkGlobalLogger(sink: string[]): () => void {
  type MethodFactory = (methodName: string, level: unknown, loggerName: unknown) => (...msg: unknown[]) => void;
  const root = sdkRootLogger as unknown as { methodFactory: MethodFactory; rebuild(): void };
  const original = root.methodFactory;
  root.methodFactory = (methodName) =>
    methodName === "warn" || methodName === "error" ? (...msg: unknown[]) => void sink.push(`${methodName} ${msg.map((m) => (typeof m === "string" ? m : safeJson(m))).join(" ")}`) : () => {};
  root.rebuild();
  return () => {
    root.methodFactory = original;
    root.rebuild();
  };
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value)?.slice(0, 300) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Resolves with the predicate's first truthy result. The predicate is checked at once and again every
 * `interval` ms; a throw fails the wait at once; rejects naming `what` after `timeout` ms.
 */
export async function waitFor<T>(what: string, predicate: () => T | undefined | null | false, timeout = 10_000, interval = 20): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await Bun.sleep(interval);
  }
}

/**
 * Registers `name` on the server and starts a matrix-js-sdk client for it, recording its requests
 * in `exchanges` and its log in `sdkLog`; resolves once its first sync is prepared. The client is
 * added to `clients` so the caller can stop it.
 */
export async function syncingClient(
  ctx: { server: PortierServer; baseUrl: string; exchanges: Exchange[]; sdkLog: string[]; clients: MatrixClient[] },
  name: string,
): Promise<{ client: MatrixClient; userId: string }> {
  const r = await request(ctx.server, "POST", "/_matrix/client/v3/register", { username: name, password: "pw", auth: { type: "m.login.dummy" } });
  if (r.status !== 200) throw new Error(`registering ${name}: ${r.status} ${JSON.stringify(r.body)}`);
  const client = createClient({ baseUrl: ctx.baseUrl, userId: r.body.user_id, accessToken: r.body.access_token, deviceId: r.body.device_id, fetchFn: recordingFetch(name, ctx.exchanges), logger: quietLogger(ctx.sdkLog, `${name} `) });
  const states: SyncState[] = [];
  client.on(ClientEvent.Sync, (state) => states.push(state));
  ctx.clients.push(client);
  await client.startClient({ initialSyncLimit: 10 });
  await waitFor(`${name}'s first sync`, () => {
    if (states.includes(SyncState.Error)) throw new Error(`${name}'s sync failed`);
    return states.includes(SyncState.Prepared);
  }, 15_000);
  return { client, userId: r.body.user_id };
}

/**
 * A Portier for a matrix-js-sdk test file, started before its tests and stopped after them (with
 * every client started through it): the requests the clients made, their log, and syncingClient.
 */
export function sdkServer(serverName: string) {
  const ctx = { server: undefined as unknown as PortierServer, baseUrl: "", exchanges: [] as Exchange[], sdkLog: [] as string[], clients: [] as MatrixClient[] };
  let unmute: (() => void) | undefined;
  beforeAll(async () => {
    unmute = muteSdkGlobalLogger(ctx.sdkLog);
    ctx.server = await testServer({ server_name: serverName, registration: { enabled: true } });
    ({ url: ctx.baseUrl } = await ctx.server.start());
  });
  afterAll(async () => {
    for (const c of ctx.clients.splice(0)) c.stopClient();
    await ctx.server?.stop();
    unmute?.();
  });
  return { exchanges: ctx.exchanges, sdkLog: ctx.sdkLog, syncingClient: (name: string) => syncingClient(ctx, name) };
}
