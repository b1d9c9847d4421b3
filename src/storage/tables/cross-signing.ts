// cross_signing_keys: each user's master, self-signing and user-signing keys (client-server-api
// "Cross-signing"), as the JSON text uploaded through /keys/device_signing/upload.
//
// cross_signing_signatures: signatures uploaded through /keys/signatures/upload, kept apart from the
// keys they sign and merged into them when keys are queried: a device key signed by its user's
// self-signing key, a master key signed by one of its user's devices, another user's master key
// signed by a user-signing key (seen only by the signer). `target_key_id` is a device ID or a
// cross-signing public key (the spec keeps the two from colliding); `signer_key_id` is the key ID
// under which the signature is filed (e.g. "ed25519:<public key>").
import type { Database } from "../database";
import type { Migration } from "../migrations";
import { inLists, placeholders } from "../sql-lists";

export const CROSS_SIGNING_MIGRATION: Migration = {
  version: 55,
  name: "cross_signing",
  sqlite: `
    CREATE TABLE cross_signing_keys (
      user_id TEXT NOT NULL,
      key_type TEXT NOT NULL,
      public_key TEXT NOT NULL,
      key_json TEXT NOT NULL,
      PRIMARY KEY (user_id, key_type)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE cross_signing_signatures (
      target_user_id TEXT NOT NULL,
      target_key_id TEXT NOT NULL,
      signer_user_id TEXT NOT NULL,
      signer_key_id TEXT NOT NULL,
      signature TEXT NOT NULL,
      PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE cross_signing_keys (
      user_id TEXT NOT NULL,
      key_type TEXT NOT NULL,
      public_key TEXT NOT NULL,
      key_json TEXT NOT NULL,
      PRIMARY KEY (user_id, key_type)
    );
    CREATE TABLE cross_signing_signatures (
      target_user_id TEXT NOT NULL,
      target_key_id TEXT NOT NULL,
      signer_user_id TEXT NOT NULL,
      signer_key_id TEXT NOT NULL,
      signature TEXT NOT NULL,
      PRIMARY KEY (target_user_id, target_key_id, signer_user_id, signer_key_id)
    );
  `,
};

export type CrossSigningKeyType = "master" | "self_signing" | "user_signing";

export interface StoredCrossSigningKey {
  readonly type: CrossSigningKeyType;
  /** The key's ed25519 public key (unpadded base64). */
  readonly publicKey: string;
  readonly keyJson: string;
}

export interface KeySignature {
  readonly targetUserId: string;
  readonly targetKeyId: string;
  readonly signerUserId: string;
  readonly signerKeyId: string;
  readonly signature: string;
}

export interface CrossSigningStore {
  /** The user's cross-signing keys by type. */
  keys(userId: string): Promise<Map<CrossSigningKeyType, StoredCrossSigningKey>>;
  /** Stores (or replaces) one of the user's keys. */
  putKey(userId: string, key: StoredCrossSigningKey): Promise<void>;
  /** Stores signatures; one already stored for the same (target, signer key) is replaced. */
  putSignatures(signatures: readonly KeySignature[]): Promise<void>;
  /** Signatures on the given keys of a user (every key when none are given). */
  signaturesOn(targetUserId: string, targetKeyIds?: readonly string[]): Promise<KeySignature[]>;
  /** Deletes the signatures on one key (a deleted device's, or keys replaced). */
  deleteSignaturesOn(targetUserId: string, targetKeyId: string): Promise<void>;
  /** Deletes the signatures a user made with one key on their own keys (a device's, on the master key, once the device's key changed). */
  deleteOwnSignaturesBy(userId: string, signerKeyId: string): Promise<void>;
}

const SELECT_KEYS = "SELECT key_type, public_key, key_json FROM cross_signing_keys WHERE user_id = ?";
const UPSERT_KEY = `INSERT INTO cross_signing_keys (user_id, key_type, public_key, key_json) VALUES (?, ?, ?, ?)
  ON CONFLICT (user_id, key_type) DO UPDATE SET public_key = excluded.public_key, key_json = excluded.key_json`;
const UPSERT_SIGNATURE = `INSERT INTO cross_signing_signatures (target_user_id, target_key_id, signer_user_id, signer_key_id, signature) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (target_user_id, target_key_id, signer_user_id, signer_key_id) DO UPDATE SET signature = excluded.signature`;
const SIGNATURE_COLUMNS = "target_user_id, target_key_id, signer_user_id, signer_key_id, signature";

interface SignatureRow {
  target_user_id: string;
  target_key_id: string;
  signer_user_id: string;
  signer_key_id: string;
  signature: string;
}

const toSignature = (r: SignatureRow): KeySignature => ({
  targetUserId: r.target_user_id,
  targetKeyId: r.target_key_id,
  signerUserId: r.signer_user_id,
  signerKeyId: r.signer_key_id,
  signature: r.signature,
});

export class SqlCrossSigningStore implements CrossSigningStore {
  constructor(private readonly db: Database) {}

  async keys(userId: string): Promise<Map<CrossSigningKeyType, StoredCrossSigningKey>> {
    const out = new Map<CrossSigningKeyType, StoredCrossSigningKey>();
    for (const r of await this.db.all<{ key_type: CrossSigningKeyType; public_key: string; key_json: string }>(SELECT_KEYS, userId)) {
      out.set(r.key_type, { type: r.key_type, publicKey: r.public_key, keyJson: r.key_json });
    }
    return out;
  }

  async putKey(userId: string, key: StoredCrossSigningKey): Promise<void> {
    await this.db.run(UPSERT_KEY, userId, key.type, key.publicKey, key.keyJson);
  }

  async putSignatures(signatures: readonly KeySignature[]): Promise<void> {
    if (signatures.length === 0) return;
    await this.db.transaction(async () => {
      for (const s of signatures) await this.db.run(UPSERT_SIGNATURE, s.targetUserId, s.targetKeyId, s.signerUserId, s.signerKeyId, s.signature);
    });
  }

  async signaturesOn(targetUserId: string, targetKeyIds?: readonly string[]): Promise<KeySignature[]> {
    if (targetKeyIds === undefined) {
      return (await this.db.all<SignatureRow>(`SELECT ${SIGNATURE_COLUMNS} FROM cross_signing_signatures WHERE target_user_id = ?`, targetUserId)).map(toSignature);
    }
    const out: KeySignature[] = [];
    for (const list of inLists([...new Set(targetKeyIds)])) {
      const rows = await this.db.all<SignatureRow>(
        `SELECT ${SIGNATURE_COLUMNS} FROM cross_signing_signatures WHERE target_user_id = ? AND target_key_id IN (${placeholders(list.length)})`,
        targetUserId,
        ...list,
      );
      out.push(...rows.map(toSignature));
    }
    return out;
  }

  async deleteSignaturesOn(targetUserId: string, targetKeyId: string): Promise<void> {
    await this.db.run("DELETE FROM cross_signing_signatures WHERE target_user_id = ? AND target_key_id = ?", targetUserId, targetKeyId);
  }

  async deleteOwnSignaturesBy(userId: string, signerKeyId: string): Promise<void> {
    await this.db.run("DELETE FROM cross_signing_signatures WHERE target_user_id = ? AND signer_user_id = ? AND signer_key_id = ?", userId, userId, signerKeyId);
  }
}
