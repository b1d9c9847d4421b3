// to_device_messages: messages sent to one device (client-server-api "Send-to-Device messaging")
// waiting for it to sync. Each takes a position of the e2ee stream (device-keys.ts); a device's
// messages up to the position of a `since` token it syncs with are acknowledged and deleted.
//
// to_device_transactions: the (user, device, txnId) of each PUT /sendToDevice already handled, so
// a retried request sends nothing twice ("Transaction identifiers").
//
// to_device_remote_ids: the (sender, message_id) of each m.direct_to_device EDU from another server
// whose messages were queued, written in the same transaction as them: a server that did not get
// our answer sends the EDU again, in a new transaction too after a restart, and it must not be
// delivered twice. Synapse keys its inbox by (origin, message_id) and keeps the IDs a week; here by
// the sender (a user of the origin), and as long.
import type { Database } from "../database";
import type { Migration } from "../migrations";
import { insertBatches, valueRows } from "../sql-lists";

export const TO_DEVICE_MIGRATION: Migration = {
  version: 56,
  name: "to_device",
  sqlite: `
    CREATE TABLE to_device_messages (
      position INTEGER PRIMARY KEY,
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      message_json TEXT NOT NULL
    ) STRICT;
    CREATE INDEX to_device_messages_device ON to_device_messages (user_id, device_id, position);
    CREATE TABLE to_device_transactions (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      txn_id TEXT NOT NULL,
      created_ts INTEGER NOT NULL,
      PRIMARY KEY (user_id, device_id, txn_id)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE to_device_remote_ids (
      sender TEXT NOT NULL,
      message_id TEXT NOT NULL,
      received_ts INTEGER NOT NULL,
      PRIMARY KEY (sender, message_id)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX to_device_remote_ids_received ON to_device_remote_ids (received_ts);
  `,
  postgres: `
    CREATE TABLE to_device_messages (
      position BIGINT PRIMARY KEY,
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      message_json TEXT NOT NULL
    );
    CREATE INDEX to_device_messages_device ON to_device_messages (user_id, device_id, position);
    CREATE TABLE to_device_transactions (
      user_id TEXT NOT NULL,
      device_id TEXT NOT NULL,
      txn_id TEXT NOT NULL,
      created_ts BIGINT NOT NULL,
      PRIMARY KEY (user_id, device_id, txn_id)
    );
    CREATE TABLE to_device_remote_ids (
      sender TEXT NOT NULL,
      message_id TEXT NOT NULL,
      received_ts BIGINT NOT NULL,
      PRIMARY KEY (sender, message_id)
    );
    CREATE INDEX to_device_remote_ids_received ON to_device_remote_ids (received_ts);
  `,
};

export interface NewToDeviceMessage {
  readonly userId: string;
  readonly deviceId: string;
  /** The event as /sync gives it: {type, sender, content}, as JSON text. */
  readonly messageJson: string;
}

export interface ToDeviceMessage {
  readonly position: number;
  readonly messageJson: string;
}

export interface ToDeviceStore {
  /** Stores messages at the given positions (taken from the e2ee stream by the caller), one each, in order. */
  addMessages(firstPosition: number, messages: readonly NewToDeviceMessage[]): Promise<void>;
  /** A device's messages with position in (afterExclusive, upToInclusive], oldest first, at most `limit`. */
  messagesFor(userId: string, deviceId: string, afterExclusive: number, upToInclusive: number, limit: number): Promise<ToDeviceMessage[]>;
  /** Deletes a device's messages up to a position (acknowledged); returns how many. */
  deleteUpTo(userId: string, deviceId: string, upToInclusive: number): Promise<number>;
  /** Records a transaction ID; false when it was recorded before. */
  recordTransaction(userId: string, deviceId: string, txnId: string, ts: number): Promise<boolean>;
  /** Deletes a device's pending messages and its transaction IDs. */
  deleteDevice(userId: string, deviceId: string): Promise<void>;
  /** Records the message ID of an m.direct_to_device EDU from another server; false when it was recorded before. */
  recordRemoteMessageId(sender: string, messageId: string, ts: number): Promise<boolean>;
  /** Forgets the remote message IDs recorded before `beforeTs`; returns how many. */
  pruneRemoteMessageIds(beforeTs: number): Promise<number>;
}

const SELECT = "SELECT position, message_json FROM to_device_messages WHERE user_id = ? AND device_id = ? AND position > ? AND position <= ? ORDER BY position LIMIT ?";
const ANY_UP_TO = "SELECT 1 AS x FROM to_device_messages WHERE user_id = ? AND device_id = ? AND position <= ? LIMIT 1";
const DELETE_UP_TO = "DELETE FROM to_device_messages WHERE user_id = ? AND device_id = ? AND position <= ?";
const RECORD_TXN = "INSERT INTO to_device_transactions (user_id, device_id, txn_id, created_ts) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING";
const RECORD_REMOTE_ID = "INSERT INTO to_device_remote_ids (sender, message_id, received_ts) VALUES (?, ?, ?) ON CONFLICT DO NOTHING";

export class SqlToDeviceStore implements ToDeviceStore {
  constructor(private readonly db: Database) {}

  async addMessages(firstPosition: number, messages: readonly NewToDeviceMessage[]): Promise<void> {
    const rows = messages.map((m, i) => [firstPosition + i, m.userId, m.deviceId, m.messageJson] as const);
    await this.db.transaction(async () => {
      for (const batch of insertBatches(rows)) {
        await this.db.run(`INSERT INTO to_device_messages (position, user_id, device_id, message_json) VALUES ${valueRows(batch.length, 4)}`, ...batch.flat());
      }
    });
  }

  async messagesFor(userId: string, deviceId: string, afterExclusive: number, upToInclusive: number, limit: number): Promise<ToDeviceMessage[]> {
    if (upToInclusive <= afterExclusive || limit <= 0) return [];
    const rows = await this.db.all<{ position: number; message_json: string }>(SELECT, userId, deviceId, afterExclusive, upToInclusive, limit);
    return rows.map((r) => ({ position: Number(r.position), messageJson: r.message_json }));
  }

  async deleteUpTo(userId: string, deviceId: string, upToInclusive: number): Promise<number> {
    // Every incremental /sync acknowledges; most have nothing to delete, and a read costs no commit.
    if (!(await this.db.get(ANY_UP_TO, userId, deviceId, upToInclusive))) return 0;
    return (await this.db.run(DELETE_UP_TO, userId, deviceId, upToInclusive)).changes;
  }

  async recordTransaction(userId: string, deviceId: string, txnId: string, ts: number): Promise<boolean> {
    return (await this.db.run(RECORD_TXN, userId, deviceId, txnId, ts)).changes > 0;
  }

  async deleteDevice(userId: string, deviceId: string): Promise<void> {
    await this.db.transaction(async () => {
      await this.db.run("DELETE FROM to_device_messages WHERE user_id = ? AND device_id = ?", userId, deviceId);
      await this.db.run("DELETE FROM to_device_transactions WHERE user_id = ? AND device_id = ?", userId, deviceId);
    });
  }

  async recordRemoteMessageId(sender: string, messageId: string, ts: number): Promise<boolean> {
    return (await this.db.run(RECORD_REMOTE_ID, sender, messageId, ts)).changes > 0;
  }

  async pruneRemoteMessageIds(beforeTs: number): Promise<number> {
    return (await this.db.run("DELETE FROM to_device_remote_ids WHERE received_ts < ?", beforeTs)).changes;
  }
}
