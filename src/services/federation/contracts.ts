// The contracts between the federation services: the outbound client, the key ring and the sender
// queue. Each is implemented in its own module; services depend on these shapes only, so tests can
// stand in a small fake for any one of them.
import { MatrixError } from "../../protocol/errors";
import type { JsonObject, JsonValue } from "../../protocol/json";

export interface FederationRequestOptions {
  /** Query parameters; an array repeats the key (`ver=1&ver=2`). */
  query?: Record<string, string | readonly string[]>;
  body?: JsonValue;
  /** Overrides federation.request_timeout_ms. */
  timeoutMs?: number;
  /** Requests to /_matrix/key/v2/* are not signed; everything else is (X-Matrix). Default true. */
  signed?: boolean;
}

/**
 * Outbound requests to another homeserver: its name resolved (server-server-api "Resolving server
 * names"), TLS as configured, signed with X-Matrix. Resolves with the parsed JSON body of a 2xx.
 * A non-2xx answer with a Matrix error body throws RemoteMatrixError carrying the remote errcode
 * and status; no answer (DNS, connect, TLS, timeout, non-JSON) throws FederationUnreachableError.
 */
export interface FederationClient {
  request(method: "GET" | "PUT" | "POST", destination: string, path: string, options?: FederationRequestOptions): Promise<unknown>;
}

/** The remote server answered with a Matrix error: passed on to our client with the same errcode. */
export class RemoteMatrixError extends MatrixError {
  constructor(readonly destination: string, errcode: MatrixError["errcode"], message: string, status: number, extra: Record<string, unknown> = {}) {
    super(errcode, message, status, extra);
  }
}

/** The remote server could not be reached or did not answer in Matrix terms. */
export class FederationUnreachableError extends MatrixError {
  constructor(readonly destination: string, reason: string) {
    super("M_UNKNOWN", `Could not reach ${destination}: ${reason}`, 502);
  }
}

/** federation.enabled is false: nothing is sent to other servers. */
export class FederationDisabledError extends MatrixError {
  constructor() {
    super("M_FORBIDDEN", "Federation is disabled on this server");
  }
}

export interface KeyRequest {
  serverName: string;
  keyId: string;
  /**
   * The key must be valid at this time (room v5+: the event's origin_server_ts; a request: now).
   * A cached key whose valid_until_ts is earlier is fetched again.
   */
  validAt: number;
}

/**
 * Other servers' signing keys (server-server-api "Retrieving server keys"): fetched directly from
 * the server, else through the configured notaries; cached (in the database) until valid_until_ts.
 */
export interface ServerKeyRing {
  /** Fetches what is missing or expired among the requests; never throws for an unreachable server (the key stays unknown). */
  fetch(requests: readonly KeyRequest[]): Promise<void>;
  /**
   * A key already held: a current key valid at `validAt` (valid_until_ts >= validAt), or an old
   * key whose expired_ts is after `validAt`; undefined otherwise. Our own keys are always known.
   */
  cached(serverName: string, keyId: string, validAt: number): Uint8Array | undefined;
  /** The key responses we hold for a server, as it signed them (for answering /_matrix/key/v2/query as a notary). */
  responsesFor(serverName: string, minimumValidUntilTs?: number): Promise<JsonObject[]>;
}

/**
 * The outbound queue (server-server-api "Transactions"): PDUs and EDUs per destination, persisted
 * before these return, delivered in order by PUT /send/{txnId}, one transaction in flight per
 * destination, at most 50 PDUs and 100 EDUs each, retried with exponential backoff, resumed after
 * a restart.
 */
export interface FederationSender {
  queuePdu(destinations: readonly string[], pdu: JsonObject): Promise<void>;
  queueEdu(destinations: readonly string[], eduType: string, content: JsonObject): Promise<void>;
}
