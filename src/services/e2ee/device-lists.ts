// Device list tracking (client-server-api "Tracking the device list for a user", "Extensions to
// /sync"): every change of a user's devices or keys takes a position of the e2ee stream, and a
// client learns from /sync (or /keys/changes) which users' lists changed between two positions —
// those it shares a room with — and with which users it no longer shares any room.
//
// What counts as sharing a room: both users joined to it, in any room, encrypted or not (as
// Synapse: the client decides which rooms encrypt; a user in `changed` it does not track costs it
// nothing). Who joined or left is read from member events in the user's rooms between the two
// event positions; a user newly sharing a room is listed in `changed` even when they already
// shared another (the spec's note allows it, for simpler logic). Only a user who was joined to a
// room we were joined to at the start, and shares none now, is in `left`: an invite, a knock or a
// ban of someone we never shared a room with is nobody leaving (Synapse too lists only users whose
// membership was a join before).
import type { DeviceKeyStore, RoomEventStore } from "../../storage/stores";

/** What changed: a device's keys (or the device itself), cross-signing keys, a signature, or a remote user's list. */
export type DeviceListUpdate =
  | { readonly kind: "device"; readonly userId: string; readonly deviceId: string; readonly deleted: boolean; readonly position: number }
  | { readonly kind: "cross-signing"; readonly userId: string; readonly position: number }
  | { readonly kind: "signature"; readonly userId: string; readonly position: number; readonly observer?: string }
  | { readonly kind: "remote"; readonly userId: string; readonly position: number };

export type DeviceListListener = (update: DeviceListUpdate) => void;

/** A position pair of the event stream and the e2ee stream (the parts of a sync token that matter here). */
export interface ListPositions {
  readonly events: number;
  readonly e2ee: number;
}

/** How many "does this user share a room" checks are made one by one before reading every joined room's members at once. */
const SINGLE_CHECKS = 32;

type NewUpdate<T = DeviceListUpdate> = T extends DeviceListUpdate ? Omit<T, "position"> : never;

export class DeviceListService {
  private readonly listeners: DeviceListListener[] = [];

  constructor(
    private readonly store: DeviceKeyStore,
    private readonly rooms: Pick<RoomEventStore, "roomsWithMembership" | "currentMemberships" | "roomEventsBackwards" | "stateEntryAt" | "getEvents">,
  ) {}

  /** Called after each recorded change (the notifier wakes syncs; federation tells other servers). */
  onChange(listener: DeviceListListener): void {
    this.listeners.push(listener);
  }

  /** Records a change; listeners hear of it once it is stored. Inside a transaction, call `announce` after it commits instead. */
  async record(update: NewUpdate): Promise<DeviceListUpdate> {
    const observer = update.kind === "signature" ? update.observer : undefined;
    const position = await this.store.recordDeviceListChange([update.userId], observer);
    return { ...update, position } as DeviceListUpdate;
  }

  announce(updates: readonly DeviceListUpdate[]): void {
    for (const update of updates) for (const listener of [...this.listeners]) listener(update);
  }

  /** Records and announces at once (outside a transaction). */
  async change(update: NewUpdate): Promise<void> {
    this.announce([await this.record(update)]);
  }

  currentPosition(): Promise<number> {
    return this.store.currentPosition();
  }

  lastChange(userId: string): Promise<number> {
    return this.store.lastDeviceListChange(userId);
  }

  /**
   * The users whose device lists changed between `from` and `to` as `userId` may see them, and those
   * with whom `userId` shared a room at `from` but shares none now. `rooms` are the user's joined
   * and left rooms (as /sync lists them), and, when known, those of them where anything moved since `from`.
   */
  async changesBetween(userId: string, from: ListPositions, to: ListPositions, rooms: { join: readonly string[]; left: readonly string[]; moved?: ReadonlySet<string> }): Promise<{ changed: string[]; left: string[] }> {
    const joined = new Set(rooms.join);
    const changed = new Set<string>();
    // Users whose membership changed in one of our rooms (or who were in a room we left), with those
    // rooms: listed in `changed` if we share a room now, else in `left` if we shared one of those at `from`.
    const membershipMoved = new Map<string, Set<string>>();
    const toCheck = new Set<string>();
    const moved = (member: string, roomId: string) => {
      let inRooms = membershipMoved.get(member);
      if (!inRooms) membershipMoved.set(member, (inRooms = new Set()));
      inRooms.add(roomId);
      toCheck.add(member);
    };

    // Member events only in rooms where anything moved since `from`, when the caller knows which
    // (an incremental /sync does: most of a user's rooms are quiet, and this read was per sync).
    const active = rooms.moved;
    const searched = [...rooms.join, ...rooms.left].filter((roomId) => active === undefined || active.has(roomId));
    const byRoom = await this.store.memberChangesBetween(searched, from.events, to.events);
    for (const [roomId, users] of byRoom) {
      if (users.has(userId)) {
        // We joined (or left) this room: its members are new to us (or maybe gone).
        const members = await this.rooms.currentMemberships(roomId);
        for (const [member, membership] of members) {
          if (member === userId || membership !== "join") continue;
          if (joined.has(roomId)) changed.add(member);
          else moved(member, roomId);
        }
      }
      // In a room we have left, others coming and going after our leave no longer concern us.
      if (!joined.has(roomId) && !users.has(userId)) continue;
      for (const member of users) if (member !== userId) moved(member, roomId);
    }
    for (const change of await this.store.deviceListChanges(from.e2ee, to.e2ee, userId)) {
      if (change.observer !== undefined || change.userId === userId) changed.add(change.userId);
      else toCheck.add(change.userId);
    }

    const shares = await this.sharingCheck(joined, [...toCheck].filter((u) => !changed.has(u)));
    const gone: string[] = [];
    for (const user of toCheck) {
      if (changed.has(user)) continue;
      if (await shares(user)) changed.add(user);
      else if (membershipMoved.has(user)) gone.push(user);
    }
    const left = await this.sharedAt(userId, from.events, gone, membershipMoved);
    return { changed: [...changed].sort(), left: [...left].sort() };
  }

  /** Those of `users` joined, at event position `position`, to one of their rooms (`roomsOf`) that `userId` was joined to then. */
  private async sharedAt(userId: string, position: number, users: readonly string[], roomsOf: ReadonlyMap<string, ReadonlySet<string>>): Promise<Set<string>> {
    const out = new Set<string>();
    if (users.length === 0 || position <= 0) return out;
    const byRoom = new Map<string, string[]>();
    for (const user of users) {
      for (const roomId of roomsOf.get(user) ?? []) {
        let list = byRoom.get(roomId);
        if (!list) byRoom.set(roomId, (list = []));
        list.push(user);
      }
    }
    for (const [roomId, candidates] of byRoom) {
      // The room's state after its last event at or before the position (as /sync reads it).
      const snapshot = (await this.rooms.roomEventsBackwards(roomId, position, 0, 1))[0]?.stateSnapshot;
      if (snapshot === undefined) continue;
      const pending = candidates.filter((u) => !out.has(u));
      if (pending.length === 0) continue;
      const memberships = await this.membershipsIn(snapshot, [userId, ...pending]);
      if (memberships.get(userId) !== "join") continue;
      for (const user of pending) if (memberships.get(user) === "join") out.add(user);
    }
    return out;
  }

  /** The users' memberships in a state snapshot (those with a member event in it). */
  private async membershipsIn(snapshot: number, users: readonly string[]): Promise<Map<string, string>> {
    const eventIds = new Map<string, string>();
    for (const user of users) {
      const id = await this.rooms.stateEntryAt(snapshot, "m.room.member", user);
      if (id !== undefined) eventIds.set(user, id);
    }
    const events = await this.rooms.getEvents([...eventIds.values()]);
    const out = new Map<string, string>();
    for (const [user, id] of eventIds) {
      const json = events.get(id)?.json;
      const content = json === undefined ? undefined : (JSON.parse(json) as { content?: { membership?: unknown } }).content;
      if (typeof content?.membership === "string") out.set(user, content.membership);
    }
    return out;
  }

  /** A check whether a user is joined to one of `joined`: one query per user for a few, every member of those rooms read once for many. */
  private async sharingCheck(joined: ReadonlySet<string>, users: readonly string[]): Promise<(user: string) => Promise<boolean>> {
    if (users.length <= SINGLE_CHECKS) {
      return async (user) => (await this.rooms.roomsWithMembership(user, "join")).some((roomId) => joined.has(roomId));
    }
    const sharing = new Set<string>();
    for (const roomId of joined) {
      for (const [member, membership] of await this.rooms.currentMemberships(roomId)) if (membership === "join") sharing.add(member);
    }
    return async (user) => sharing.has(user);
  }
}
