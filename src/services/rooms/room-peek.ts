// Room previews (client-server-api "Room Previews"): a user who is not joined to a room whose
// history is world_readable may read it without joining, by GET /rooms/{roomId}/initialSync and then
// GET /events?room_id= (peeking_events.yaml), and sees only the events whose state had world_readable
// history (RoomAccess.canSee). The other reads (/state, /messages, /event, /context, /members) take
// the same rule from RoomAccess directly; this is the part /sync's stream does not give, since a
// peeker is not in the room's memberships.
//
// A peeking /events long-poll waits on the sync notifier like /sync does; the notifier wakes only
// members, so the room's events wake this room's peekers from here.
import { MatrixError } from "../../protocol/errors";
import type { Clock } from "../runtime";
import type { SyncNotifier } from "../sync/notifier";
import { formatSyncToken, parseSyncToken } from "../sync/sync-token";
import type { ClientEvent, Viewer } from "./client-events";
import type { RoomAccess } from "./room-access";
import type { RoomEngine } from "./room-engine";
import type { RoomService } from "./room-service";
import { parseStreamToken, streamToken } from "./stream-token";

export interface RoomPeekDeps {
  engine: Pick<RoomEngine, "onEvent">;
  access: Pick<RoomAccess, "versionOf" | "membership" | "historyVisibility" | "currentAuthState">;
  rooms: Pick<RoomService, "messages" | "state">;
  notifier: Pick<SyncNotifier, "waitFor" | "wake">;
  clock: Clock;
}

export interface PeekInitialSync {
  room_id: string;
  membership?: string;
  messages: { chunk: ClientEvent[]; start: string; end: string };
  state: ClientEvent[];
  presence: never[];
  account_data: never[];
}

export interface PeekEventsRequest {
  /** A token of /events or of room initialSync (a /sync token, or a /messages one); absent: from now. */
  from?: string;
  /** The /sync token of "now", read after the wait is registered (the stream's other positions come from it). */
  now: () => Promise<string>;
  limit: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * A token before every event this server holds (backfilled history lies below zero, far above this):
 * paging back from it gives nothing. The start of a preview whose page holds the room's first event.
 */
const BEFORE_EVERYTHING = streamToken(-(10 ** 15 - 1));

/** Memberships the initialSync answer may name (room_initial_sync.yaml). */
const NAMED_MEMBERSHIPS = new Set(["invite", "join", "leave", "ban"]);

export class RoomPeeks {
  /** Rooms with peekers waiting: room id -> waiting user -> how many of their waits. */
  private readonly watching = new Map<string, Map<string, number>>();

  constructor(private readonly deps: RoomPeekDeps) {
    deps.engine.onEvent((roomId) => {
      for (const userId of this.watching.get(roomId)?.keys() ?? []) deps.notifier.wake(userId);
    });
  }

  /**
   * How the user reads this room: as a member (joined, or once joined: their own stream), as a
   * peeker (otherwise, when its history is world_readable now), or not at all (an outsider: never a
   * member, not world_readable). Invited and knocking users of other rooms read as members (their
   * stream carries the invite). As Synapse: a departed user is not peeking. M_NOT_FOUND for a room
   * this server does not know.
   */
  async readerKind(roomId: string, userId: string): Promise<"member" | "peeker" | "outsider"> {
    await this.deps.access.versionOf(roomId);
    const membership = await this.deps.access.membership(roomId, userId);
    if (membership === "join" || membership === "leave" || membership === "ban") return "member";
    if (await this.worldReadable(roomId)) return "peeker";
    return membership === undefined ? "outsider" : "member";
  }

  /** 403 unless the room's history is world_readable now (the user is not joined). */
  private async requirePeekable(roomId: string): Promise<void> {
    await this.deps.access.versionOf(roomId);
    if (!(await this.worldReadable(roomId))) throw new MatrixError("M_FORBIDDEN", `You are not in the room ${roomId}, and its history is not world_readable`);
  }

  private async worldReadable(roomId: string): Promise<boolean> {
    return this.deps.access.historyVisibility(await this.deps.access.currentAuthState(roomId)) === "world_readable";
  }

  /** GET /rooms/{roomId}/initialSync for a peeker: the latest visible events and the current state, up to `now` (a /sync token). */
  async initialSync(roomId: string, viewer: Viewer, limit: number, now: string): Promise<PeekInitialSync> {
    await this.requirePeekable(roomId);
    const position = parseSyncToken(now).events;
    const page = await this.deps.rooms.messages(roomId, viewer, { dir: "b", from: streamToken(position), limit });
    const membership = await this.deps.access.membership(roomId, viewer.userId);
    return {
      room_id: roomId,
      ...(membership !== undefined && NAMED_MEMBERSHIPS.has(membership) ? { membership } : {}),
      // Without an end of the page there is nothing earlier: the spec lets start be left out then,
      // but older clients (and sytest) expect it, so it is a token that pages back to nothing.
      messages: { chunk: page.chunk.reverse(), start: page.end ?? BEFORE_EVERYTHING, end: now },
      state: await this.deps.rooms.state(roomId, viewer),
      presence: [],
      account_data: [],
    };
  }

  /**
   * GET /events?room_id= for a peeker: the visible events of the room after `from`, oldest first;
   * with a timeout, waits until there is one (or the time is up). `end` is a /sync token.
   */
  async events(roomId: string, viewer: Viewer, request: PeekEventsRequest): Promise<{ start: string; end: string; chunk: ClientEvent[] }> {
    await this.requirePeekable(roomId);
    const since = request.from !== undefined ? parseStreamToken(request.from) : undefined;
    const deadline = this.deps.clock.now() + request.timeoutMs;
    let start = request.from;
    for (;;) {
      // The wait is registered before reading, so that an event landing in between wakes it.
      const remaining = deadline - this.deps.clock.now();
      const wait = remaining > 0 ? this.watch(roomId, viewer.userId, remaining, request.signal) : undefined;
      try {
        const now = await request.now();
        const position = parseSyncToken(now).events;
        const from = since ?? position;
        start ??= now;
        if (from >= position) {
          if (!wait) return { start, end: from > position ? request.from! : now, chunk: [] };
        } else {
          const page = await this.deps.rooms.messages(roomId, viewer, { dir: "f", from: streamToken(from), to: streamToken(position), limit: request.limit });
          // A page cut by the limit ends at its last event: the next request goes on from there.
          const end = page.end === undefined ? now : formatSyncToken({ ...parseSyncToken(now), events: parseStreamToken(page.end) });
          if (page.chunk.length > 0 || !wait) return { start, end, chunk: page.chunk };
        }
        const outcome = await wait.promise;
        if (outcome !== "woken") return { start, end: since !== undefined && since > position ? request.from! : now, chunk: [] };
        // Woken: go round and read from the same `from` (an event may also have been invisible to the peeker).
      } finally {
        wait?.cancel();
      }
    }
  }

  /** A notifier wait of this user that this room's events wake. */
  private watch(roomId: string, userId: string, timeoutMs: number, signal: AbortSignal | undefined) {
    const users = this.watching.get(roomId) ?? new Map<string, number>();
    users.set(userId, (users.get(userId) ?? 0) + 1);
    this.watching.set(roomId, users);
    const waiter = this.deps.notifier.waitFor(userId, timeoutMs, signal);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const count = (users.get(userId) ?? 1) - 1;
      if (count > 0) users.set(userId, count);
      else users.delete(userId);
      if (users.size === 0 && this.watching.get(roomId) === users) this.watching.delete(roomId);
    };
    void waiter.promise.then(release);
    return {
      promise: waiter.promise,
      cancel: () => {
        waiter.cancel();
        release();
      },
    };
  }
}
