// Other servers' signing keys (server-server-api "Retrieving server keys"): fetched from the server
// itself (GET /_matrix/key/v2/server), else through the configured notaries (POST
// /_matrix/key/v2/query); checked, stored with the response they came in, held in memory for the
// synchronous lookups of signature checks, and passed on to servers that ask us as a notary.
import type { Config } from "../../config/schema";
import { decodeBase64, encodeBase64 } from "../../protocol/base64";
import { isValidServerName } from "../../protocol/identifiers";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { verifyJsonSignature } from "../../protocol/signing/sign-json";
import type { ServerKeyRecord, ServerKeyStore } from "../../storage/stores";
import { verifyServerKeyResponse, type VerifiedServerKeys } from "../keys/remote-keys";
import type { Clock, Logger } from "../runtime";
import { RemoteMatrixError, type FederationClient, type KeyRequest, type ServerKeyRing } from "./contracts";

/** keys.yaml: "Servers MUST use the lesser of this field and 7 days into the future". */
export const MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000;
/** How long a server whose keys could not be had is left alone before it is asked again. */
export const DEFAULT_RETRY_AFTER_MS = 60_000;
/** The most responses read from one notary answer (we ask it about one server). */
const MAX_NOTARY_RESPONSES = 32;

/** Our own keys: current ones, and old ones with when they stopped being used. */
export type OwnKeys = Pick<VerifiedServerKeys, "verifyKeys" | "oldVerifyKeys">;

/** Our own keys as we publish them: pass ServerKeyService (its serverKeys() lists old_signing_keys too). */
export function ownKeysFrom(keys: { readonly serverName: string; serverKeys(): JsonObject }): OwnKeys {
  const check = verifyServerKeyResponse(keys.serverKeys(), keys.serverName);
  if (!check.ok) throw new Error(`our own key response does not verify: ${check.reason}`);
  return check.keys;
}

export interface FederationKeyRingOptions {
  store: ServerKeyStore;
  client: FederationClient;
  clock: Clock;
  ownServerName: string;
  ownKeys: OwnKeys;
  trustedKeyServers: Config["federation"]["trusted_key_servers"];
  logger?: Logger;
  /** Overrides DEFAULT_RETRY_AFTER_MS. */
  retryAfterMs?: number;
}

/** What the notary endpoint needs of the key ring. */
export interface NotaryKeySource {
  notaryResponses(serverName: string, criteria?: Readonly<Record<string, { minimum_valid_until_ts?: number }>>, minimumValidUntilTs?: number): Promise<JsonObject[]>;
}

type DirectFetch = "ok" | "refused" | "unreachable";

interface HeldKey {
  readonly key: Uint8Array;
  /** Current key: trusted until then (already capped at fetch time + 7 days). */
  readonly validUntilTs: number | undefined;
  /** Old key: valid for what was signed before then. */
  readonly expiredTs: number | undefined;
}

interface Notary {
  readonly serverName: string;
  /** When configured, a notary's answer must carry its signature by one of these. */
  readonly verifyKeys: ReadonlyMap<string, Uint8Array> | undefined;
}

export class FederationKeyRing implements ServerKeyRing, NotaryKeySource {
  private readonly store: ServerKeyStore;
  private readonly client: FederationClient;
  private readonly clock: Clock;
  private readonly ownServerName: string;
  private readonly ownKeys: OwnKeys;
  private readonly notaries: readonly Notary[];
  private readonly logger: Logger | undefined;
  private readonly retryAfterMs: number;

  /** server -> key id -> key, for the servers loaded from the store. */
  private readonly held = new Map<string, Map<string, HeldKey>>();
  private readonly loading = new Map<string, Promise<void>>();
  /** One key fetch (direct, then notaries) per server at a time; later callers wait for it. */
  private readonly attempts = new Map<string, Promise<void>>();
  private readonly directFetches = new Map<string, Promise<DirectFetch>>();
  /** server -> time before which it is not asked again (it could not give what we needed). */
  private readonly retryAfter = new Map<string, number>();

  constructor(options: FederationKeyRingOptions) {
    this.store = options.store;
    this.client = options.client;
    this.clock = options.clock;
    this.ownServerName = options.ownServerName;
    this.ownKeys = options.ownKeys;
    this.logger = options.logger;
    this.retryAfterMs = options.retryAfterMs ?? DEFAULT_RETRY_AFTER_MS;
    this.notaries = options.trustedKeyServers.map((notary) => ({ serverName: notary.server_name, verifyKeys: notary.verify_keys && this.decodeNotaryKeys(notary.server_name, notary.verify_keys) }));
  }

  /**
   * A key already held, valid at `validAt`: a current key whose valid_until_ts (capped at 7 days
   * after we fetched it) is at least `validAt`, or an old key whose expired_ts is after it. Our own
   * current keys are always known; our old keys follow their expired_ts like anyone's.
   *
   * keys.yaml: valid_until_ts "MUST be ignored in room versions 1, 2, 3, and 4". That is the
   * caller's rule: for events of those versions it passes validAt = 0, which any held current key
   * meets.
   */
  cached(serverName: string, keyId: string, validAt: number): Uint8Array | undefined {
    if (serverName === this.ownServerName) {
      const current = this.ownKeys.verifyKeys.get(keyId);
      if (current) return current;
      const old = this.ownKeys.oldVerifyKeys.get(keyId);
      return old && validAt < old.expiredTs ? old.key : undefined;
    }
    const held = this.held.get(serverName)?.get(keyId);
    if (!held) return undefined;
    if (held.expiredTs !== undefined) return validAt < held.expiredTs ? held.key : undefined;
    return held.validUntilTs !== undefined && held.validUntilTs >= validAt ? held.key : undefined;
  }

  /**
   * Loads what the store holds for these servers, then fetches what is still missing or not valid
   * at the asked time: from the server directly, then from each trusted key server in order. Remote
   * failures are logged and leave the key unknown; a server that could not give what was needed is
   * not asked again for retryAfterMs. Store errors are not remote failures and are thrown.
   */
  async fetch(requests: readonly KeyRequest[]): Promise<void> {
    const byServer = new Map<string, KeyRequest[]>();
    for (const request of requests) {
      if (request.serverName === this.ownServerName) continue;
      if (!isValidServerName(request.serverName)) {
        this.logger?.log("warn", "not fetching keys of an invalid server name", { serverName: request.serverName });
        continue;
      }
      const list = byServer.get(request.serverName);
      if (list) list.push(request);
      else byServer.set(request.serverName, [request]);
    }
    await Promise.all([...byServer].map(([serverName, wanted]) => this.fetchServer(serverName, wanted)));
  }

  /** The key responses held for a server, as received (its signatures, and a notary's if one passed it on); the latest first. Our own server: none. */
  async responsesFor(serverName: string, minimumValidUntilTs?: number): Promise<JsonObject[]> {
    const responses: JsonObject[] = [];
    for (const text of await this.store.responsesOf(serverName, minimumValidUntilTs)) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (isJsonObject(parsed)) responses.push(parsed);
      } catch {
        this.logger?.log("warn", "a stored key response is not JSON", { serverName });
      }
    }
    return responses;
  }

  /**
   * What this server answers as a notary for another server (keys_query.yaml): the responses held
   * that are valid until the asked minimum (per key criterion, now when it gives none; for no
   * criteria, `minimumValidUntilTs`, else now). When none is, a key id asked for is in none of
   * them, or the latest was fetched more than half its lifetime ago ("notary servers should cache
   * a response for half of its lifetime", keys_server.yaml), the server is asked directly (as the
   * spec has notaries do; not onward to our own notaries). If it cannot be had, the last responses
   * held are returned even if stale, "so that the signatures of old events can still be checked".
   * Unsigned by us: the caller adds our signature.
   */
  async notaryResponses(serverName: string, criteria: Readonly<Record<string, { minimum_valid_until_ts?: number }>> = {}, minimumValidUntilTs?: number): Promise<JsonObject[]> {
    if (serverName === this.ownServerName || !isValidServerName(serverName)) return [];
    const now = this.clock.now();
    // The strictest criterion (a reduce: spreading a million key ids into Math.max overflows the stack).
    const minimums = Object.values(criteria).map((c) => c.minimum_valid_until_ts ?? now);
    const required = minimums.length > 0 ? minimums.reduce((a, b) => Math.max(a, b)) : minimumValidUntilTs ?? now;
    const keyIds = Object.keys(criteria);
    const covers = (responses: JsonObject[]) => responses.length > 0 && keyIds.every((keyId) => responses.some((r) => publishes(r, keyId)));

    let responses = await this.responsesFor(serverName, required);
    if ((!covers(responses) || !(await this.fresh(serverName, now))) && !this.backingOff(serverName)) {
      // Only a server that could not be reached is left alone for a while (a burst of queries
      // about a dead server costs one request). One that answered, even with an error or with
      // nothing newer, is asked again on the next query that needs more, as Synapse's notary does.
      if ((await this.fetchDirect(serverName)) === "unreachable") this.backOff(serverName);
      responses = await this.responsesFor(serverName, required);
    }
    if (responses.length === 0) responses = await this.responsesFor(serverName);
    // The responses that publish a key id asked for (the latest first), as Synapse answers; all
    // of them when none does ("the notary server may return multiple keys regardless of the Key
    // IDs given"). A server that dropped a key must not hide its old response behind a newer one.
    const asked = responses.filter((r) => keyIds.some((keyId) => publishes(r, keyId)));
    return asked.length > 0 ? asked : responses;
  }

  private async fetchServer(serverName: string, wanted: readonly KeyRequest[]): Promise<void> {
    await this.load(serverName);
    if (this.allHeld(wanted)) return;
    const running = this.attempts.get(serverName);
    if (running) {
      await running;
      if (this.allHeld(wanted)) return;
    }
    if (this.backingOff(serverName)) return;
    await this.attempt(serverName, wanted);
  }

  /** One attempt per server at a time: concurrent callers share it. */
  private attempt(serverName: string, wanted: readonly KeyRequest[]): Promise<void> {
    const running = this.attempts.get(serverName);
    if (running) return running;
    const attempt = this.runAttempt(serverName, wanted).finally(() => this.attempts.delete(serverName));
    this.attempts.set(serverName, attempt);
    return attempt;
  }

  private async runAttempt(serverName: string, wanted: readonly KeyRequest[]): Promise<void> {
    await this.fetchDirect(serverName);
    for (const notary of this.notaries) {
      const missing = wanted.filter((r) => !this.cached(r.serverName, r.keyId, r.validAt));
      if (missing.length === 0) break;
      await this.askNotary(notary, serverName, missing);
    }
    if (this.allHeld(wanted)) this.retryAfter.delete(serverName);
    else {
      this.backOff(serverName);
      this.logger?.log("warn", "server keys not found", { serverName, keyIds: wanted.filter((r) => !this.cached(r.serverName, r.keyId, r.validAt)).map((r) => r.keyId) });
    }
  }

  /**
   * Whether the server's latest response was fetched less than half its lifetime ago. A response
   * that had already expired when it came is the best the server had: it has no lifetime to halve,
   * and is asked again only when a query needs a later validity (the `covers` check).
   */
  private async fresh(serverName: string, now: number): Promise<boolean> {
    const keys = await this.store.keysOf(serverName);
    if (keys.length === 0) return false;
    const latest = keys.reduce((a, b) => (b.fetchedTs > a.fetchedTs ? b : a));
    return latest.responseValidUntilTs <= latest.fetchedTs || latest.fetchedTs + (latest.responseValidUntilTs - latest.fetchedTs) / 2 > now;
  }

  /**
   * GET /_matrix/key/v2/server from the server itself; stores the response when it verifies.
   * "ok" when it did, "refused" when the server answered with an error or a response that does
   * not verify, "unreachable" when it did not answer in Matrix terms.
   */
  private fetchDirect(serverName: string): Promise<DirectFetch> {
    const running = this.directFetches.get(serverName);
    if (running) return running;
    const fetch = this.runDirectFetch(serverName).finally(() => this.directFetches.delete(serverName));
    this.directFetches.set(serverName, fetch);
    return fetch;
  }

  private async runDirectFetch(serverName: string): Promise<DirectFetch> {
    let body: unknown;
    try {
      body = await this.client.request("GET", serverName, "/_matrix/key/v2/server", { signed: false });
    } catch (error) {
      this.logger?.log("warn", "could not fetch server keys", { serverName, error: (error as Error)?.message ?? String(error) });
      return error instanceof RemoteMatrixError ? "refused" : "unreachable";
    }
    const check = verifyServerKeyResponse(body, serverName);
    if (!check.ok) {
      this.logger?.log("warn", "server key response refused", { serverName, reason: check.reason });
      return "refused";
    }
    await this.save(body as JsonObject, check.keys, serverName);
    return "ok";
  }

  /** POST /_matrix/key/v2/query to a notary about one server; stores each response that verifies. */
  private async askNotary(notary: Notary, serverName: string, missing: readonly KeyRequest[]): Promise<void> {
    if (notary.serverName === this.ownServerName) return;
    const criteria: Record<string, { minimum_valid_until_ts: number }> = {};
    for (const request of missing) {
      criteria[request.keyId] = { minimum_valid_until_ts: Math.max(criteria[request.keyId]?.minimum_valid_until_ts ?? request.validAt, request.validAt) };
    }
    let body: unknown;
    try {
      body = await this.client.request("POST", notary.serverName, "/_matrix/key/v2/query", { body: { server_keys: { [serverName]: criteria } }, signed: false });
    } catch (error) {
      this.logger?.log("warn", "could not query notary", { notary: notary.serverName, serverName, error: (error as Error)?.message ?? String(error) });
      return;
    }
    const list = isJsonObject(body) && Array.isArray(body.server_keys) ? body.server_keys : undefined;
    if (!list) {
      this.logger?.log("warn", "notary answer has no server_keys list", { notary: notary.serverName, serverName });
      return;
    }
    for (const response of list.slice(0, MAX_NOTARY_RESPONSES)) {
      // A notary speaks here only for the server we asked about.
      if (!isJsonObject(response) || response.server_name !== serverName) continue;
      const check = verifyServerKeyResponse(response, serverName);
      if (!check.ok) {
        this.logger?.log("warn", "key response from notary refused", { notary: notary.serverName, serverName, reason: check.reason });
        continue;
      }
      if (notary.verifyKeys && !signedByNotary(response, notary.serverName, notary.verifyKeys)) {
        this.logger?.log("warn", "key response from notary not signed by its configured key", { notary: notary.serverName, serverName });
        continue;
      }
      await this.save(response, check.keys, notary.serverName);
    }
  }

  private async save(response: JsonObject, keys: VerifiedServerKeys, fromServer: string): Promise<void> {
    const fetchedTs = this.clock.now();
    const keyJson = JSON.stringify(response);
    const common = { serverName: keys.serverName, responseValidUntilTs: keys.validUntilTs, fetchedTs, fromServer, keyJson };
    const records: ServerKeyRecord[] = [];
    for (const [keyId, key] of keys.verifyKeys) {
      records.push({ ...common, keyId, verifyKey: encodeBase64(key), validUntilTs: Math.min(keys.validUntilTs, fetchedTs + MAX_KEY_VALIDITY_MS), expiredTs: undefined });
    }
    for (const [keyId, old] of keys.oldVerifyKeys) {
      // A key listed as both current and old: the response says it is current.
      if (keys.verifyKeys.has(keyId)) continue;
      records.push({ ...common, keyId, verifyKey: encodeBase64(old.key), validUntilTs: undefined, expiredTs: old.expiredTs });
    }
    await this.store.storeKeys(records);
    await this.reload(keys.serverName);
  }

  /** Loads a server's stored keys into memory, once (later changes go through save and reload). */
  private async load(serverName: string): Promise<void> {
    if (this.held.has(serverName)) return;
    let loading = this.loading.get(serverName);
    if (!loading) {
      loading = this.reload(serverName).finally(() => this.loading.delete(serverName));
      this.loading.set(serverName, loading);
    }
    await loading;
  }

  private async reload(serverName: string): Promise<void> {
    const keys = new Map<string, HeldKey>();
    for (const record of await this.store.keysOf(serverName)) {
      let key: Uint8Array;
      try {
        key = decodeBase64(record.verifyKey);
      } catch {
        continue;
      }
      keys.set(record.keyId, { key, validUntilTs: record.validUntilTs, expiredTs: record.expiredTs });
    }
    this.held.set(serverName, keys);
  }

  private allHeld(wanted: readonly KeyRequest[]): boolean {
    return wanted.every((r) => this.cached(r.serverName, r.keyId, r.validAt) !== undefined);
  }

  private backingOff(serverName: string): boolean {
    const until = this.retryAfter.get(serverName);
    if (until === undefined) return false;
    if (this.clock.now() < until) return true;
    this.retryAfter.delete(serverName);
    return false;
  }

  private backOff(serverName: string): void {
    this.retryAfter.set(serverName, this.clock.now() + this.retryAfterMs);
  }

  private decodeNotaryKeys(notary: string, configured: Readonly<Record<string, string>>): Map<string, Uint8Array> {
    const keys = new Map<string, Uint8Array>();
    for (const [keyId, base64] of Object.entries(configured)) {
      try {
        const key = decodeBase64(base64);
        if (key.length === 32) {
          keys.set(keyId, key);
          continue;
        }
      } catch {
        // reported below
      }
      // The notary stays configured with its other keys (or none): its answers are then refused, never trusted unsigned.
      this.logger?.log("warn", "trusted key server verify key is not a 32-byte base64 key", { notary, keyId });
    }
    return keys;
  }
}

/** Whether the notary signed the response with one of the given keys. */
function signedByNotary(response: JsonObject, notary: string, verifyKeys: ReadonlyMap<string, Uint8Array>): boolean {
  for (const [keyId, key] of verifyKeys) {
    if (verifyJsonSignature(response, notary, keyId, key).valid) return true;
  }
  return false;
}

/** Whether a key response lists the key id, current or old. */
function publishes(response: JsonObject, keyId: string): boolean {
  return (isJsonObject(response.verify_keys) && Object.hasOwn(response.verify_keys, keyId)) || (isJsonObject(response.old_verify_keys) && Object.hasOwn(response.old_verify_keys, keyId));
}
