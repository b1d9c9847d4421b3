// server_keys: other servers' signing keys (server-server-api "Retrieving server keys"), one row per
// (server, key id), each with the signed key response it came in, kept as received: so the keys
// survive a restart, and this server can pass the responses on as a notary (keys_query.yaml).
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const SERVER_KEYS_MIGRATION: Migration = {
  version: 50,
  name: "server_keys",
  // A key is either current (valid_until_ts) or old (expired_ts), never both.
  sqlite: `
    CREATE TABLE server_keys (
      server_name TEXT NOT NULL,
      key_id TEXT NOT NULL,
      verify_key TEXT NOT NULL,
      valid_until_ts INTEGER,
      expired_ts INTEGER,
      response_valid_until_ts INTEGER NOT NULL,
      fetched_ts INTEGER NOT NULL,
      from_server TEXT NOT NULL,
      key_json TEXT NOT NULL,
      PRIMARY KEY (server_name, key_id),
      CHECK ((valid_until_ts IS NULL) <> (expired_ts IS NULL))
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE server_keys (
      server_name TEXT NOT NULL,
      key_id TEXT NOT NULL,
      verify_key TEXT NOT NULL,
      valid_until_ts BIGINT,
      expired_ts BIGINT,
      response_valid_until_ts BIGINT NOT NULL,
      fetched_ts BIGINT NOT NULL,
      from_server TEXT NOT NULL,
      key_json TEXT NOT NULL,
      PRIMARY KEY (server_name, key_id),
      CHECK ((valid_until_ts IS NULL) <> (expired_ts IS NULL))
    );
  `,
};

/** One signing key of another server, with the response that published it. */
export interface ServerKeyRecord {
  readonly serverName: string;
  /** "ed25519:abc123" */
  readonly keyId: string;
  /** The public key, unpadded base64. */
  readonly verifyKey: string;
  /** A current key (from verify_keys): until when it is trusted. Undefined for an old key. */
  readonly validUntilTs: number | undefined;
  /** An old key (from old_verify_keys): when it stopped being used. Undefined for a current key. */
  readonly expiredTs: number | undefined;
  /** The response's own valid_until_ts: a later response replaces an earlier one, key by key. */
  readonly responseValidUntilTs: number;
  readonly fetchedTs: number;
  /** Who answered: the server itself, or the notary that passed its response on. */
  readonly fromServer: string;
  /** The signed key response, JSON text as received (the server's signatures, and a notary's). */
  readonly keyJson: string;
}

export interface ServerKeyStore {
  /**
   * Stores the keys of one or more responses. A key held from a response with a later
   * valid_until_ts is kept: an older response (a notary's stale cache, a late answer) never
   * overwrites a newer one.
   */
  storeKeys(keys: readonly ServerKeyRecord[]): Promise<void>;
  /** Every key held for a server, current and old, by key id. */
  keysOf(serverName: string): Promise<ServerKeyRecord[]>;
  /**
   * The distinct key responses held for a server (JSON text as received), the latest first; with a
   * minimum, only those whose valid_until_ts is at least that.
   */
  responsesOf(serverName: string, minimumValidUntilTs?: number): Promise<string[]>;
}

const COLUMNS = "server_name, key_id, verify_key, valid_until_ts, expired_ts, response_valid_until_ts, fetched_ts, from_server, key_json";
const UPSERT = `INSERT INTO server_keys (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (server_name, key_id) DO UPDATE SET
    verify_key = excluded.verify_key, valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts,
    response_valid_until_ts = excluded.response_valid_until_ts, fetched_ts = excluded.fetched_ts,
    from_server = excluded.from_server, key_json = excluded.key_json
  WHERE excluded.response_valid_until_ts >= server_keys.response_valid_until_ts`;
const SELECT_KEYS = `SELECT ${COLUMNS} FROM server_keys WHERE server_name = ? ORDER BY key_id`;
const SELECT_RESPONSES = `SELECT DISTINCT key_json, response_valid_until_ts FROM server_keys
  WHERE server_name = ? ORDER BY response_valid_until_ts DESC`;
const SELECT_RESPONSES_VALID_UNTIL = `SELECT DISTINCT key_json, response_valid_until_ts FROM server_keys
  WHERE server_name = ? AND response_valid_until_ts >= ? ORDER BY response_valid_until_ts DESC`;

interface ServerKeyRow {
  server_name: string;
  key_id: string;
  verify_key: string;
  valid_until_ts: number | null;
  expired_ts: number | null;
  response_valid_until_ts: number;
  fetched_ts: number;
  from_server: string;
  key_json: string;
}

export class SqlServerKeyStore implements ServerKeyStore {
  constructor(private readonly db: Database) {}

  async storeKeys(keys: readonly ServerKeyRecord[]): Promise<void> {
    if (keys.length === 0) return;
    await this.db.transaction(async () => {
      for (const k of keys) {
        if ((k.validUntilTs === undefined) === (k.expiredTs === undefined)) {
          throw new RangeError(`server key ${k.serverName} ${k.keyId}: exactly one of validUntilTs and expiredTs must be given`);
        }
        await this.db.run(UPSERT, k.serverName, k.keyId, k.verifyKey, k.validUntilTs ?? null, k.expiredTs ?? null, k.responseValidUntilTs, k.fetchedTs, k.fromServer, k.keyJson);
      }
    });
  }

  async keysOf(serverName: string): Promise<ServerKeyRecord[]> {
    return (await this.db.all<ServerKeyRow>(SELECT_KEYS, serverName)).map((r) => ({
      serverName: r.server_name,
      keyId: r.key_id,
      verifyKey: r.verify_key,
      validUntilTs: r.valid_until_ts ?? undefined,
      expiredTs: r.expired_ts ?? undefined,
      responseValidUntilTs: r.response_valid_until_ts,
      fetchedTs: r.fetched_ts,
      fromServer: r.from_server,
      keyJson: r.key_json,
    }));
  }

  async responsesOf(serverName: string, minimumValidUntilTs?: number): Promise<string[]> {
    const rows = minimumValidUntilTs === undefined
      ? await this.db.all<{ key_json: string }>(SELECT_RESPONSES, serverName)
      : await this.db.all<{ key_json: string }>(SELECT_RESPONSES_VALID_UNTIL, serverName, minimumValidUntilTs);
    return [...new Set(rows.map((r) => r.key_json))];
  }
}
