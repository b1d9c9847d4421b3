// local_threepids: third-party identifiers this homeserver validated itself (it sent the email and
// the user followed its link) and added to an account (client-server-api "Adding Account
// Administrative Contact Information": POST /account/3pid/add, registration's
// m.login.email.identity stage). Unlike identity-server bindings (threepid_bindings), an address
// belongs to at most one account of this server, as the spec's M_THREEPID_IN_USE requires.
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const LOCAL_THREEPIDS_MIGRATION: Migration = {
  version: 90,
  name: "local_threepids",
  sqlite: `
    CREATE TABLE local_threepids (
      medium TEXT NOT NULL,
      address TEXT NOT NULL,
      user_id TEXT NOT NULL,
      validated_at INTEGER NOT NULL,
      added_at INTEGER NOT NULL,
      PRIMARY KEY (medium, address)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX local_threepids_user ON local_threepids (user_id);
  `,
  postgres: `
    CREATE TABLE local_threepids (
      medium TEXT NOT NULL,
      address TEXT NOT NULL,
      user_id TEXT NOT NULL,
      validated_at BIGINT NOT NULL,
      added_at BIGINT NOT NULL,
      PRIMARY KEY (medium, address)
    );
    CREATE INDEX local_threepids_user ON local_threepids (user_id);
  `,
};

export interface LocalThreepid {
  readonly userId: string;
  /** "email" (appendices "3PID Types"). */
  readonly medium: string;
  /** Canonical form: email addresses in lower case. */
  readonly address: string;
  readonly validatedAt: number;
  readonly addedAt: number;
}

/** The 3PIDs this server validated and added to its users' accounts. */
export interface LocalThreepidStore {
  /** Adds the address to the user; false (nothing changed) when another user holds it. Adding it again to its owner updates the times. */
  add(threepid: LocalThreepid): Promise<boolean>;
  /** The user's addresses, oldest first. */
  listOf(userId: string): Promise<LocalThreepid[]>;
  /** Who holds the address, if anyone. */
  ownerOf(medium: string, address: string): Promise<string | undefined>;
  /** False when the user did not hold it. */
  remove(userId: string, medium: string, address: string): Promise<boolean>;
  /** Every address of the user (account deactivation); how many there were. */
  removeAll(userId: string): Promise<number>;
}

const COLUMNS = "medium, address, user_id, validated_at, added_at";
// The update applies only to the address's own owner: another user's row is left as it is and
// RETURNING gives nothing.
const ADD = `INSERT INTO local_threepids (${COLUMNS}) VALUES (?, ?, ?, ?, ?)
  ON CONFLICT (medium, address) DO UPDATE SET validated_at = excluded.validated_at, added_at = excluded.added_at
  WHERE local_threepids.user_id = excluded.user_id RETURNING user_id`;
const SELECT_USER = `SELECT ${COLUMNS} FROM local_threepids WHERE user_id = ? ORDER BY added_at, medium, address`;
const SELECT_OWNER = "SELECT user_id FROM local_threepids WHERE medium = ? AND address = ?";
const DELETE_ONE = "DELETE FROM local_threepids WHERE user_id = ? AND medium = ? AND address = ? RETURNING user_id";
const DELETE_USER = "DELETE FROM local_threepids WHERE user_id = ? RETURNING user_id";

interface Row {
  medium: string;
  address: string;
  user_id: string;
  validated_at: number;
  added_at: number;
}

export class SqlLocalThreepidStore implements LocalThreepidStore {
  constructor(private readonly db: Database) {}

  async add(t: LocalThreepid): Promise<boolean> {
    return (await this.db.all(ADD, t.medium, t.address, t.userId, t.validatedAt, t.addedAt)).length > 0;
  }

  async listOf(userId: string): Promise<LocalThreepid[]> {
    const rows = await this.db.all<Row>(SELECT_USER, userId);
    return rows.map((r) => ({ userId: r.user_id, medium: r.medium, address: r.address, validatedAt: Number(r.validated_at), addedAt: Number(r.added_at) }));
  }

  async ownerOf(medium: string, address: string): Promise<string | undefined> {
    return (await this.db.get<{ user_id: string }>(SELECT_OWNER, medium, address))?.user_id;
  }

  async remove(userId: string, medium: string, address: string): Promise<boolean> {
    return (await this.db.all(DELETE_ONE, userId, medium, address)).length > 0;
  }

  async removeAll(userId: string): Promise<number> {
    return (await this.db.all(DELETE_USER, userId)).length;
  }
}
