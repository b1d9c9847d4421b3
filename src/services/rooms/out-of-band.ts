// Out-of-band memberships: a local user's membership in a room this server does not hold. Over
// federation a user is invited to a remote room (we receive the signed invite and the stripped
// state, not the room), knocks on one (we keep our signed knock and the stripped state the resident
// server returned), and those end: the user rejects the invite or rescinds the knock (a leave made
// through a resident server), or a remote rejection notice arrives. /sync lists them under
// rooms.invite / rooms.knock / rooms.leave (sync-service.ts) until the room becomes one we hold and
// the user's membership there takes over.
//
// Each record takes a position in the out-of-band stream (the store's), which /sync tokens carry;
// a record is durable when record() resolves, and then wakes that user's waiting syncs.
import { MatrixError } from "../../protocol/errors";
import { parseJson } from "../../protocol/canonical-json";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { PduFormatError, roomEventFromPdu } from "../../protocol/pdu";
import { roomVersion as roomVersionOf, type RoomVersion } from "../../protocol/room-versions";
import type { OutOfBandMembershipKind, OutOfBandMembershipRecord, OutOfBandMembershipStore } from "../../storage/stores";
import type { Logger } from "../runtime";

export type { OutOfBandMembershipKind };

export interface RecordOutOfBandMembership {
  userId: string;
  roomId: string;
  roomVersion: string;
  membership: OutOfBandMembershipKind;
  /** The signed member event (PDU) whose state_key is the user. */
  event: JsonObject;
  /** The stripped state that came with it (for a leave: usually none). */
  strippedState: JsonObject[];
}

/** A user's latest out-of-band membership in one room. */
export interface OutOfBandMembership {
  readonly userId: string;
  readonly roomId: string;
  readonly roomVersion: string;
  readonly membership: OutOfBandMembershipKind;
  readonly eventId: string;
  /** The signed member event (PDU). */
  readonly event: JsonObject;
  /** As given: the stripped state events (not yet pruned to the client's stripped state form). */
  readonly strippedState: JsonObject[];
  /** Position in the out-of-band stream (/sync tokens). */
  readonly streamPosition: number;
  /** The room event stream's position when it was written: a held member event with a higher stream ordering is newer. */
  readonly eventStreamPosition: number;
}

/** Called after a record is durable. */
export type OutOfBandListener = (userId: string, roomId: string) => void;

export class OutOfBandMemberships {
  private readonly listeners: OutOfBandListener[] = [];

  constructor(
    private readonly store: OutOfBandMembershipStore,
    private readonly logger?: Logger,
  ) {}

  onChange(listener: OutOfBandListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /**
   * Stores the user's latest membership in a room we do not hold, replacing the one before; resolves
   * once it is durable, then wakes the user's waiting /syncs. 400 M_UNSUPPORTED_ROOM_VERSION for an
   * unknown room version, M_BAD_JSON when the event is not that user's member event with that
   * membership in that room.
   */
  async record(input: RecordOutOfBandMembership): Promise<void> {
    const version = roomVersionOf(input.roomVersion);
    if (!version) throw new MatrixError("M_UNSUPPORTED_ROOM_VERSION", `Unsupported room version ${input.roomVersion}`);
    const eventId = checkedMemberEvent(input, version);
    if (!Array.isArray(input.strippedState) || !input.strippedState.every(isJsonObject)) throw new MatrixError("M_BAD_JSON", "Stripped state must be a list of objects");
    await this.store.put({
      userId: input.userId,
      roomId: input.roomId,
      membership: input.membership,
      eventId,
      roomVersion: input.roomVersion,
      eventJson: JSON.stringify(input.event),
      strippedStateJson: JSON.stringify(input.strippedState),
    });
    // Listeners run isolated: the record is already durable.
    for (const listener of [...this.listeners]) {
      try {
        listener(input.userId, input.roomId);
      } catch (error) {
        this.logger?.log("error", "out-of-band membership listener failed", { error: String(error) });
      }
    }
  }

  /** The user's latest out-of-band membership in a room, if any. */
  async current(userId: string, roomId: string): Promise<OutOfBandMembership | undefined> {
    const record = await this.store.get(userId, roomId);
    return record && parsed(record);
  }

  /** The user's out-of-band memberships written after `streamPositionExclusive` (0: all), oldest first. */
  async forUser(userId: string, streamPositionExclusive = 0): Promise<OutOfBandMembership[]> {
    return (await this.store.forUser(userId, streamPositionExclusive)).map(parsed);
  }
}

/** The event's ID, once it is the user's member event with the given membership in the given room. */
function checkedMemberEvent(input: RecordOutOfBandMembership, version: RoomVersion): string {
  let event;
  try {
    event = roomEventFromPdu(input.event, version);
  } catch (error) {
    if (error instanceof PduFormatError) throw new MatrixError("M_BAD_JSON", `Invalid member event: ${error.message}`);
    throw error;
  }
  if (event.type !== "m.room.member" || event.state_key !== input.userId) throw new MatrixError("M_BAD_JSON", `Not a member event of ${input.userId}`);
  if (event.room_id !== undefined && event.room_id !== input.roomId) throw new MatrixError("M_BAD_JSON", `The member event is not in ${input.roomId}`);
  if (event.content.membership !== input.membership) throw new MatrixError("M_BAD_JSON", `The member event's membership is not ${input.membership}`);
  return event.event_id;
}

function parsed(record: OutOfBandMembershipRecord): OutOfBandMembership {
  // v1..v5 events may hold floats that only a lossless parse keeps byte for byte.
  const lossless = !(roomVersionOf(record.roomVersion)?.strictCanonicalJson ?? false);
  const strippedState = parseJson(record.strippedStateJson, { lossless });
  return {
    userId: record.userId,
    roomId: record.roomId,
    roomVersion: record.roomVersion,
    membership: record.membership,
    eventId: record.eventId,
    event: parseJson(record.eventJson, { lossless }) as JsonObject,
    strippedState: Array.isArray(strippedState) ? strippedState.filter(isJsonObject) : [],
    streamPosition: record.streamPosition,
    eventStreamPosition: record.eventStreamPosition,
  };
}
