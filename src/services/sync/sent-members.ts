// Which member events a device was already sent, for lazy-loaded members without
// include_redundant_members (client-server-api "Lazy-loading room members": the server MAY assume
// clients remember membership events they were sent, and skip the redundant ones).
//
// Kept in memory, per (user, device) and room, as Synapse does: after a restart, or once a device
// is evicted, members are sent again, which the spec allows. Each member event is remembered with
// the event position of the answer that carried it. An answer the client never got (a dropped
// connection, a retried sync) must not count, so a member is taken as known only when it was sent
// at or before the position of the `since` token the client builds on: that token came from an
// answer the client did receive, and every answer up to its position was part of the chain that led
// to it (an answer computed from a token adds no timeline events without moving the position).
// This also assumes the client never syncs from an older token again; one that does may miss
// members it dropped, which is the risk the spec's MAY accepts.

/** The most (user, device) pairs remembered; the least recently used go first. */
const MAX_DEVICES = 10_000;
/** The most member events remembered for one device in one room; past it the room starts again. */
const MAX_MEMBERS_PER_ROOM = 50_000;

export class SentMembers {
  /** user\0device -> room -> member event id -> event position of the answer that sent it. */
  private readonly devices = new Map<string, Map<string, Map<string, number>>>();

  /** Forgets a device (an initial sync: the client starts from nothing). */
  reset(userId: string, deviceId: string | undefined): void {
    this.devices.delete(key(userId, deviceId));
  }

  /** Whether the device was sent this member event in an answer at or before `since`. */
  known(userId: string, deviceId: string | undefined, roomId: string, eventId: string, since: number): boolean {
    const sentAt = this.devices.get(key(userId, deviceId))?.get(roomId)?.get(eventId);
    return sentAt !== undefined && sentAt <= since;
  }

  /** Remembers member events sent in an answer at `position` (an earlier sending is kept). */
  remember(userId: string, deviceId: string | undefined, roomId: string, eventIds: readonly string[], position: number): void {
    if (eventIds.length === 0) return;
    const k = key(userId, deviceId);
    let rooms = this.devices.get(k);
    if (rooms) this.devices.delete(k); // re-inserted below: most recently used last
    else rooms = new Map();
    this.devices.set(k, rooms);
    if (this.devices.size > MAX_DEVICES) this.devices.delete(this.devices.keys().next().value!);
    let members = rooms.get(roomId);
    if (!members || members.size + eventIds.length > MAX_MEMBERS_PER_ROOM) rooms.set(roomId, (members = new Map()));
    for (const id of eventIds) if (!members.has(id)) members.set(id, position);
  }

  /** Forgets a room of a device (the client is sent the room afresh). */
  forgetRoom(userId: string, deviceId: string | undefined, roomId: string): void {
    this.devices.get(key(userId, deviceId))?.delete(roomId);
  }
}

function key(userId: string, deviceId: string | undefined): string {
  return `${userId}\u0000${deviceId ?? ""}`;
}
