// The stripped state a client is given for a room it is invited to or has knocked on
// (client-server-api "Stripped state"), for the sync endpoints: from the room's current state when
// this server holds the room, or from what came with an out-of-band invite or knock.
import type { RoomEngine } from "../rooms/room-engine";
import { ownMemberEvent, STRIPPED_STATE_TYPES, strippedStateEvent, type StrippedState } from "../rooms/client-events";
import type { OutOfBandMembership } from "../rooms/out-of-band";

/** The stripped state of a held room, then the user's own member event in the same form, then an inviter's membership. */
export async function heldStrippedState(engine: Pick<RoomEngine, "currentStateEvent" | "loadEvent">, roomId: string, memberEventId: string): Promise<StrippedState[]> {
  const events: StrippedState[] = [];
  for (const type of STRIPPED_STATE_TYPES) {
    const event = strippedStateEvent(await engine.currentStateEvent(roomId, type, ""));
    if (event) events.push(event);
  }
  const loaded = (await engine.loadEvent(memberEventId))?.event;
  const own = ownMemberEvent(loaded, memberEventId);
  if (own) events.push(own);
  // The inviter's own membership too, as Synapse sends it ("The server might include events not
  // described here as well"): clients show who invited them (sytest checks it for 3PID invites).
  const sender = loaded?.sender;
  if (loaded?.content.membership === "invite" && typeof sender === "string" && sender !== loaded.state_key) {
    const inviter = strippedStateEvent(await engine.currentStateEvent(roomId, "m.room.member", sender));
    if (inviter) events.push(inviter);
  }
  return events;
}

/**
 * The stripped state of an out-of-band invite or knock: what came with it, pruned to the stripped
 * form (what was received over federation is not passed on as it is), then the user's own member
 * event in the same form.
 */
export function outOfBandStrippedState(record: OutOfBandMembership): StrippedState[] {
  const own = ownMemberEvent(record.event, record.eventId);
  const events: StrippedState[] = [];
  for (const entry of record.strippedState) {
    const event = strippedStateEvent(entry);
    if (event && !(own && event.type === own.type && event.state_key === own.state_key)) events.push(event);
  }
  if (own) events.push(own);
  return events;
}
