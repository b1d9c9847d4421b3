// threepid_bindings: the third-party identifiers (email addresses, phone numbers) a user bound to
// their Matrix ID on an identity server through this homeserver (client-server-api POST
// /account/3pid/bind). The spec asks homeservers to track successful binds "so they can be unbound
// later": /account/3pid/unbind and /delete without an id_server, and account deactivation, unbind
// from the servers recorded here. One row per (user, medium, address, identity server).
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const THREEPID_BINDINGS_MIGRATION: Migration = {
  version: 70,
  name: "threepid_bindings",
  sqlite: `
    CREATE TABLE threepid_bindings (
      user_id TEXT NOT NULL,
      medium TEXT NOT NULL,
      address TEXT NOT NULL,
      id_server TEXT NOT NULL,
      validated_at INTEGER NOT NULL,
      added_at INTEGER NOT NULL,
      PRIMARY KEY (user_id, medium, address, id_server)
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE threepid_bindings (
      user_id TEXT NOT NULL,
      medium TEXT NOT NULL,
      address TEXT NOT NULL,
      id_server TEXT NOT NULL,
      validated_at BIGINT NOT NULL,
      added_at BIGINT NOT NULL,
      PRIMARY KEY (user_id, medium, address, id_server)
    );
  `,
};

export interface ThreepidBinding {
  readonly userId: string;
  /** "email" or "msisdn" (appendices "3PID Types"). */
  readonly medium: string;
  readonly address: string;
  /** The identity server's name as the client gave it (host[:port]). */
  readonly idServer: string;
  /** When the identity server validated the address, in milliseconds (its answer's `ts`). */
  readonly validatedAt: number;
  /** When the binding was made through this server, in milliseconds. */
  readonly addedAt: number;
}

/** The identity-server bindings made through this homeserver. */
export interface ThreepidBindingStore {
  /** Records a binding; binding the same address on the same server again updates its times. */
  addBinding(binding: ThreepidBinding): Promise<void>;
  /** The user's bindings, oldest first. */
  bindingsOf(userId: string): Promise<ThreepidBinding[]>;
  /** False when there was no such binding. */
  removeBinding(userId: string, medium: string, address: string, idServer: string): Promise<boolean>;
  /** The users an address is bound to (login with a 3PID), by user ID. */
  ownersOf(medium: string, address: string): Promise<string[]>;
}

const COLUMNS = "user_id, medium, address, id_server, validated_at, added_at";
const UPSERT = `INSERT INTO threepid_bindings (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
  ON CONFLICT (user_id, medium, address, id_server) DO UPDATE SET validated_at = excluded.validated_at, added_at = excluded.added_at`;
const SELECT_USER = `SELECT ${COLUMNS} FROM threepid_bindings WHERE user_id = ? ORDER BY added_at, medium, address, id_server`;
const SELECT_OWNERS = "SELECT DISTINCT user_id FROM threepid_bindings WHERE medium = ? AND address = ? ORDER BY user_id";
const DELETE_ONE = "DELETE FROM threepid_bindings WHERE user_id = ? AND medium = ? AND address = ? AND id_server = ? RETURNING user_id";

interface Row {
  user_id: string;
  medium: string;
  address: string;
  id_server: string;
  validated_at: number;
  added_at: number;
}

export class SqlThreepidBindingStore implements ThreepidBindingStore {
  constructor(private readonly db: Database) {}

  async addBinding(b: ThreepidBinding): Promise<void> {
    await this.db.run(UPSERT, b.userId, b.medium, b.address, b.idServer, b.validatedAt, b.addedAt);
  }

  async bindingsOf(userId: string): Promise<ThreepidBinding[]> {
    const rows = await this.db.all<Row>(SELECT_USER, userId);
    return rows.map((r) => ({ userId: r.user_id, medium: r.medium, address: r.address, idServer: r.id_server, validatedAt: Number(r.validated_at), addedAt: Number(r.added_at) }));
  }

  async removeBinding(userId: string, medium: string, address: string, idServer: string): Promise<boolean> {
    return (await this.db.all(DELETE_ONE, userId, medium, address, idServer)).length > 0;
  }

  async ownersOf(medium: string, address: string): Promise<string[]> {
    return (await this.db.all<{ user_id: string }>(SELECT_OWNERS, medium, address)).map((r) => r.user_id);
  }
}
