// out_of_band_memberships: a user's latest membership in a room this server does not hold (an
// invite received over federation, a knock made through a resident server, and their end: a
// rejection, a rescinded knock, a remote rejection notice). One row per (user, room): the signed
// member event and the stripped state that came with it, as the text they arrived in.
//
// Positions: every write takes the next position of one server-wide stream (max + 1: transactions
// run one at a time, database.ts), which /sync keeps in its token beside the event stream. The row
// also records the room event stream's position at the write (`event_stream_position`, read in the
// same statement): a member event of the user in a held room with a higher stream ordering was
// written after it, so the two can be ordered when the room later becomes one we hold.
import type { Database } from "../database";
import type { Migration } from "../migrations";

export const OUT_OF_BAND_MEMBERSHIPS_MIGRATION: Migration = {
  version: 52,
  name: "out_of_band_memberships",
  sqlite: `
    CREATE TABLE out_of_band_memberships (
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      membership TEXT NOT NULL,
      event_id TEXT NOT NULL,
      room_version TEXT NOT NULL,
      event_json TEXT NOT NULL,
      stripped_state_json TEXT NOT NULL,
      stream_position INTEGER NOT NULL UNIQUE,
      event_stream_position INTEGER NOT NULL,
      PRIMARY KEY (user_id, room_id)
    ) STRICT, WITHOUT ROWID;
  `,
  postgres: `
    CREATE TABLE out_of_band_memberships (
      user_id TEXT NOT NULL,
      room_id TEXT NOT NULL,
      membership TEXT NOT NULL,
      event_id TEXT NOT NULL,
      room_version TEXT NOT NULL,
      event_json TEXT NOT NULL,
      stripped_state_json TEXT NOT NULL,
      stream_position BIGINT NOT NULL UNIQUE,
      event_stream_position BIGINT NOT NULL,
      PRIMARY KEY (user_id, room_id)
    );
  `,
};

/** invite, knock, leave (a rejected invite, a rescinded or refused knock) or ban. */
export type OutOfBandMembershipKind = "invite" | "knock" | "leave" | "ban";

export interface OutOfBandMembershipRecord {
  readonly userId: string;
  readonly roomId: string;
  readonly membership: OutOfBandMembershipKind;
  readonly eventId: string;
  readonly roomVersion: string;
  /** The signed member event (PDU) as JSON text. */
  readonly eventJson: string;
  /** The stripped state events that came with it, as JSON text of an array. */
  readonly strippedStateJson: string;
  /** Position in the out-of-band membership stream: every write takes a higher one than all before it. */
  readonly streamPosition: number;
  /** The room event stream's highest stream ordering when it was written. */
  readonly eventStreamPosition: number;
}

export type NewOutOfBandMembership = Omit<OutOfBandMembershipRecord, "streamPosition" | "eventStreamPosition">;

export interface OutOfBandMembershipStore {
  /** Stores (or replaces) a user's membership in a room; returns it with the positions it took. */
  put(record: NewOutOfBandMembership): Promise<OutOfBandMembershipRecord>;
  get(userId: string, roomId: string): Promise<OutOfBandMembershipRecord | undefined>;
  /** A user's memberships written after `streamPositionExclusive` (0: all), oldest first. */
  forUser(userId: string, streamPositionExclusive?: number): Promise<OutOfBandMembershipRecord[]>;
  /** The stream's current end (0 when nothing was written). */
  maxStreamPosition(): Promise<number>;
}

const COLUMNS = "user_id, room_id, membership, event_id, room_version, event_json, stripped_state_json, stream_position, event_stream_position";
// Both positions are taken in the statement itself, so no write can land between reading and using them.
const UPSERT = `INSERT INTO out_of_band_memberships (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?,
    (SELECT COALESCE(max(stream_position), 0) + 1 FROM out_of_band_memberships),
    (SELECT COALESCE(max(stream_ordering), 0) FROM events))
  ON CONFLICT (user_id, room_id) DO UPDATE SET membership = excluded.membership, event_id = excluded.event_id,
    room_version = excluded.room_version, event_json = excluded.event_json, stripped_state_json = excluded.stripped_state_json,
    stream_position = excluded.stream_position, event_stream_position = excluded.event_stream_position
  RETURNING stream_position, event_stream_position`;
const SELECT_ONE = `SELECT ${COLUMNS} FROM out_of_band_memberships WHERE user_id = ? AND room_id = ?`;
const SELECT_FOR_USER = `SELECT ${COLUMNS} FROM out_of_band_memberships WHERE user_id = ? AND stream_position > ? ORDER BY stream_position`;
const SELECT_MAX = "SELECT COALESCE(max(stream_position), 0) AS m FROM out_of_band_memberships";

interface Row {
  user_id: string;
  room_id: string;
  membership: string;
  event_id: string;
  room_version: string;
  event_json: string;
  stripped_state_json: string;
  stream_position: number;
  event_stream_position: number;
}

const toRecord = (r: Row): OutOfBandMembershipRecord => ({
  userId: r.user_id,
  roomId: r.room_id,
  membership: r.membership as OutOfBandMembershipKind,
  eventId: r.event_id,
  roomVersion: r.room_version,
  eventJson: r.event_json,
  strippedStateJson: r.stripped_state_json,
  streamPosition: r.stream_position,
  eventStreamPosition: r.event_stream_position,
});

export class SqlOutOfBandMembershipStore implements OutOfBandMembershipStore {
  constructor(private readonly db: Database) {}

  async put(record: NewOutOfBandMembership): Promise<OutOfBandMembershipRecord> {
    const positions = (await this.db.get<{ stream_position: number; event_stream_position: number }>(
      UPSERT,
      record.userId,
      record.roomId,
      record.membership,
      record.eventId,
      record.roomVersion,
      record.eventJson,
      record.strippedStateJson,
    ))!;
    return { ...record, streamPosition: Number(positions.stream_position), eventStreamPosition: Number(positions.event_stream_position) };
  }

  async get(userId: string, roomId: string): Promise<OutOfBandMembershipRecord | undefined> {
    const row = await this.db.get<Row>(SELECT_ONE, userId, roomId);
    return row && toRecord(row);
  }

  async forUser(userId: string, streamPositionExclusive = 0): Promise<OutOfBandMembershipRecord[]> {
    return (await this.db.all<Row>(SELECT_FOR_USER, userId, streamPositionExclusive)).map(toRecord);
  }

  async maxStreamPosition(): Promise<number> {
    return (await this.db.get<{ m: number }>(SELECT_MAX))!.m;
  }
}
