// Request authentication between servers (server-server-api "Request Authentication"): every
// federation request carries an `Authorization: X-Matrix origin=...,destination=...,key=...,sig=...`
// header signing the method, the URI as sent, the origin, the destination and the JSON body. The
// origin's key is fetched (or read from the cache) and the signature checked before a handler runs.
import { MatrixError } from "../../protocol/errors";
import { isValidServerName } from "../../protocol/identifiers";
import type { JsonValue } from "../../protocol/json";
import { parseXMatrix, verifyRequest } from "../../protocol/x-matrix";
import type { ServerKeyRing } from "../../services/federation/contracts";
import type { Clock } from "../../services/runtime";

/** Returns the verified origin server of a federation request, or throws M_UNAUTHORIZED (401; 400 for a malformed header). */
export type FederationAuthenticator = (request: Request, body: unknown) => Promise<string>;

export interface FederationAuthDeps {
  serverName: string;
  keyRing: ServerKeyRing;
  clock: Clock;
  /** federation.enabled: when false every federation request is refused (403). */
  enabled: boolean;
  /** Called for each verified request: the origin is up (its retry backoff can end). */
  onVerified?: (origin: string) => void;
}

const unauthorized = (message: string) => new MatrixError("M_UNAUTHORIZED", message, 401);

export function federationAuthenticator(deps: FederationAuthDeps): FederationAuthenticator {
  // One verification per request, however many steps ask (the ACL check, then the handler).
  const verified = new WeakMap<Request, Promise<string>>();
  return (request, body) => {
    let origin = verified.get(request);
    if (origin === undefined) verified.set(request, (origin = verify(deps, request, body)));
    return origin;
  };
}

async function verify(deps: FederationAuthDeps, request: Request, body: unknown): Promise<string> {
  if (!deps.enabled) throw new MatrixError("M_FORBIDDEN", "Federation is disabled on this server");
  const headers = request.headers.get("authorization");
  if (headers === null) throw unauthorized("Missing Authorization header (X-Matrix)");
  // Several X-Matrix headers may be sent (one per key); any one that verifies is enough. Fetch joins
  // repeated headers with ", ", so split where a new scheme starts.
  const candidates = headers.split(/,\s*(?=X-Matrix\s)/i);
  let reason = "no X-Matrix credentials";
  // Whether any candidate was well-formed credentials (a parsed header naming a valid origin).
  let wellFormed = false;
  for (const candidate of candidates) {
    const auth = parseXMatrix(candidate);
    if (!auth) {
      reason = "malformed X-Matrix header";
      continue;
    }
    if (!isValidServerName(auth.origin)) {
      reason = `invalid origin ${auth.origin}`;
      continue;
    }
    wellFormed = true;
    // "destination": optional for old servers; when present it must be us.
    if (auth.destination !== undefined && auth.destination !== deps.serverName) throw unauthorized(`This request is for ${auth.destination}, not ${deps.serverName}`);
    const url = new URL(request.url);
    const now = deps.clock.now();
    let key = deps.keyRing.cached(auth.origin, auth.key, now);
    if (key === undefined) {
      await deps.keyRing.fetch([{ serverName: auth.origin, keyId: auth.key, validAt: now }]);
      key = deps.keyRing.cached(auth.origin, auth.key, now);
    }
    if (key === undefined) {
      reason = `no valid key ${auth.key} of ${auth.origin}`;
      continue;
    }
    const verdict = verifyRequest({
      header: auth,
      method: request.method,
      uri: url.pathname + url.search,
      serverName: deps.serverName,
      ...(body === undefined ? {} : { content: body as JsonValue }),
      publicKey: key,
    });
    if (verdict.valid) {
      deps.onVerified?.(auth.origin);
      return auth.origin;
    }
    reason = verdict.reason;
  }
  // The spec names 401 for a missing or bad signature; a header that is no credentials at all is a
  // bad request, 400 M_UNAUTHORIZED, as Synapse answers it.
  if (!wellFormed) throw new MatrixError("M_UNAUTHORIZED", `Malformed Authorization header: ${reason}`, 400);
  throw unauthorized(`Invalid X-Matrix signature: ${reason}`);
}
