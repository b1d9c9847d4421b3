// What every step of one resolution shares: the room version, the event cache, the yield budget
// and the authorization rules.

import type { AuthResult, AuthStateLookup } from "../auth";
import type { RoomEvent } from "../events";
import type { RoomVersion } from "../room-versions";
import type { EventCache } from "./event-cache";
import type { Yielder } from "./yielder";

export interface ResolutionContext {
  readonly version: RoomVersion;
  readonly events: EventCache;
  readonly yielder: Yielder;
  /** The authorization rules of the room version, with the caller's signature checks. */
  readonly authorize: (event: RoomEvent, authState: AuthStateLookup) => AuthResult;
}

/**
 * The room's `m.room.create` event where auth_events do not list it (v12: the room ID is the
 * create event's ID with "!" for "$"); undefined in earlier versions, where auth_events carry it.
 */
export async function implicitCreateEvent(
  context: Pick<ResolutionContext, "version" | "events">,
  event: RoomEvent,
): Promise<RoomEvent | undefined> {
  if (!context.version.roomIdFromCreateEvent || event.room_id === undefined) return undefined;
  if (!event.room_id.startsWith("!")) return undefined;
  return context.events.get(`$${event.room_id.slice(1)}`);
}
