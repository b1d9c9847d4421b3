// The event stream and initial sync that came before /sync (client-server-api, deprecated since r0
// but still specified: old_sync.yaml, room_initial_sync.yaml), for older clients and sytest:
//   GET /events?from=&timeout=        new events of the user's rooms, flattened, each with room_id
//   GET /initialSync?limit=           every room of the user, with recent messages and state
//   GET /rooms/{roomId}/initialSync   the same for one room (also one the user has left)
// All three are answered by the /sync service: its tokens are this stream's tokens. /events carries
// room events only, as the spec types its chunk. Events carry `user_id` (their sender) as the older
// API named it; Synapse still sends it and older clients (and sytest) read it.
// A user not joined to a world_readable room peeks into it (client-server-api "Room Previews"):
// /events?room_id= and the room's initialSync are then answered by RoomPeeks, with the same tokens.
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { SyncService } from "../../services/sync/sync-service";
import type { DirectoryService } from "../../services/directory/directory-service";
import type { RoomPeeks } from "../../services/rooms/room-peek";
import type { PresenceService } from "../../services/presence/presence-service";
import type { RoomAccess } from "../../services/rooms/room-access";
import type { RoomService } from "../../services/rooms/room-service";
import { parseStreamToken, streamToken } from "../../services/rooms/stream-token";
import { formatSyncToken, parseSyncToken } from "../../services/sync/sync-token";
import { requireUser } from "../middleware/auth";
import { roomIdParam } from "../room-id-param";
import { CLIENT_PREFIXES } from "./paths";

type Json = Record<string, any>;

/** Nothing of rooms, presence or account data: only the position (the token of "now"). */
const POSITION_ONLY = { room: { rooms: [] }, presence: { types: [] }, account_data: { types: [] } };

function intParam(value: string | undefined, name: string, fallback: number, max: number): number {
  if (value === undefined || value === "") return fallback;
  if (!/^\d{1,9}$/.test(value)) throw new MatrixError("M_INVALID_PARAM", `${name} must be a non-negative integer`);
  return Math.min(Number(value), max);
}

const withRoom = (roomId: string) => (event: Json): Json => ({ ...event, room_id: roomId, ...(typeof event.sender === "string" ? { user_id: event.sender } : {}) });
/** Presence as these older APIs gave it: the user's ID inside the content too. */
const legacyPresence = (events: Json[] | undefined): Json[] => (events ?? []).map((e) => ({ ...e, content: { ...e.content, user_id: e.sender } }));

/** Current state from an initial /sync room: the state at the timeline's start, then the timeline's state events. */
function currentState(room: Json, roomId: string): Json[] {
  const byKey = new Map<string, Json>();
  for (const event of [...(room.state?.events ?? []), ...(room.timeline?.events ?? [])]) {
    if (typeof event.state_key === "string") byKey.set(`${event.type}\u0000${event.state_key}`, withRoom(roomId)(event));
  }
  return [...byKey.values()];
}

function roomEntry(roomId: string, membership: string, room: Json, end: string, visibility: string | undefined): Json {
  const timeline = room.timeline ?? { events: [] };
  return {
    room_id: roomId,
    membership,
    messages: { chunk: (timeline.events as Json[]).map(withRoom(roomId)), start: timeline.prev_batch ?? end, end },
    state: currentState(room, roomId),
    ...(visibility ? { visibility } : {}),
    account_data: room.account_data?.events ?? [],
  };
}

/** The room's read receipts in an initial /sync room, as m.receipt events with the room's ID. */
const receiptsOf = (roomId: string, room: Json): Json[] =>
  ((room.ephemeral?.events ?? []) as Json[]).filter((e) => e.type === "m.receipt").map((e) => ({ type: e.type, room_id: roomId, content: e.content }));

type TimelineRoom = [roomId: string, room: Json];

/**
 * The timeline part of an /events chunk, oldest first. /sync gives each room's newest `limit`
 * events since `from`; a stream must give the oldest instead, and stop where it cut, so that the
 * next request (from `end`) goes on from there. When a room had more than `limit`, its first
 * `limit` events set the cut (the earliest such page end), and every room is read forwards up to it.
 * Between rooms, events are ordered by their timestamps. Undefined `cut`: nothing was cut.
 */
async function streamChunk(rooms: Pick<RoomService, "messages">, viewer: { userId: string; deviceId: string }, timelines: TimelineRoom[], from: number, to: number, limit: number): Promise<{ chunk: Json[]; cut?: number }> {
  const sorted = (perRoom: Json[][]) => perRoom.flat().sort((a, b) => (a.origin_server_ts ?? 0) - (b.origin_server_ts ?? 0));
  if (limit === 0 || !timelines.some(([, room]) => room.timeline?.limited)) {
    return { chunk: sorted(timelines.map(([roomId, room]) => (room.timeline.events as Json[]).map(withRoom(roomId)))) };
  }
  const read = async (roomId: string, upTo: number) => rooms.messages(roomId, viewer, { dir: "f", from: streamToken(from), to: streamToken(upTo), limit });
  let cut = to;
  for (const [roomId, room] of timelines) {
    if (!room.timeline?.limited) continue;
    const page = await read(roomId, to).catch(() => undefined);
    if (page?.end !== undefined) cut = Math.min(cut, parseStreamToken(page.end));
  }
  const perRoom: Json[][] = [];
  for (const [roomId, room] of timelines) {
    const page = await read(roomId, cut).catch(() => undefined);
    // A room that cannot be paged (no longer readable) keeps what /sync gave.
    perRoom.push((page?.chunk ?? (room.timeline.events as Json[])).map(withRoom(roomId)));
  }
  return { chunk: sorted(perRoom), ...(cut < to ? { cut } : {}) };
}

export interface LegacySyncRouteDeps {
  accounts: AccountService;
  sync: SyncService;
  directory: Pick<DirectoryService, "visibility">;
  peeks: RoomPeeks;
  /** For the stream's pages forwards (/events with a limit). */
  rooms: Pick<RoomService, "messages">;
  /** For the presence of a room's members in its initialSync. */
  access: Pick<RoomAccess, "joinedMembers">;
  presence: Pick<PresenceService, "enabled" | "status">;
}

export function legacySyncRoutes({ accounts, sync, directory, peeks, rooms, access, presence }: LegacySyncRouteDeps) {
  const app = new Elysia({ name: "client-legacy-sync" });
  /** The stream's position now, as a /sync token. */
  const positionNow = async (me: { userId: string; deviceId: string }) => (await sync.sync({ userId: me.userId, deviceId: me.deviceId, filter: POSITION_ONLY as any })).next_batch;
  /** The presence of the room's joined members, in the older form (user_id inside the content), as Synapse gives it. */
  const membersPresence = async (roomId: string): Promise<Json[]> => {
    if (!presence.enabled) return [];
    return (await access.joinedMembers(roomId)).map((userId) => ({ type: "m.presence", sender: userId, content: { ...presence.status(userId), user_id: userId } }));
  };
  const visibilityOf = async (roomId: string) => {
    try {
      return await directory.visibility(roomId);
    } catch {
      return undefined;
    }
  };

  for (const prefix of CLIENT_PREFIXES) {
    app.get(`${prefix}/events`, async ({ request, query }) => {
      const me = await requireUser(accounts, request);
      const timeoutMs = intParam(query.timeout, "timeout", 0, 60_000);
      const limit = intParam(query.limit, "limit", 100, 1000);
      // A guest's /events is the room preview one (Synapse answers a guest without room_id 400 too).
      if (me.isGuest && !query.room_id) throw new MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guests may only call /events for one room (room_id)", 403);
      if (query.room_id) {
        const roomId = roomIdParam(query.room_id);
        const reader = await peeks.readerKind(roomId, me.userId);
        if (reader === "peeker") return peeks.events(roomId, me, { from: query.from || undefined, now: () => positionNow(me), limit, timeoutMs, signal: request.signal });
        // Not a member now, nor ever, and no preview: 403, as for the room's other reads.
        if (reader === "outsider") throw new MatrixError("M_FORBIDDEN", `You are not in the room ${roomId}`);
      }
      const roomFilter = query.room_id ? { rooms: [query.room_id] } : {};
      // Without `from` the stream starts now: the events from here on.
      const from = query.from || (await positionNow(me));
      const answer = await sync.sync({
        userId: me.userId,
        deviceId: me.deviceId,
        since: from,
        filter: { room: { ...roomFilter, timeline: { limit } } } as any,
        timeoutMs,
        signal: request.signal,
      });
      // The spec types every item of the chunk as a client event of a room (event_id, sender,
      // origin_server_ts, room_id): room events only. (Older servers also put typing, receipts,
      // presence and account data here; sytest expects them, the spec does not allow them.)
      const timelines = [...Object.entries(answer.rooms.join), ...Object.entries(answer.rooms.leave)] as TimelineRoom[];
      const end = parseSyncToken(answer.next_batch);
      const { chunk, cut } = await streamChunk(rooms, me, timelines, parseStreamToken(from), end.events, limit);
      // An invite is given with the page it came in, or (when the page was cut before it) again with
      // a later one: twice rather than never.
      for (const [roomId, room] of Object.entries(answer.rooms.invite) as [string, Json][]) {
        const own = (room.invite_state.events as Json[]).find((e) => e.type === "m.room.member" && e.state_key === me.userId && typeof e.event_id === "string");
        if (own) chunk.push(withRoom(roomId)(own));
      }
      return { start: from, end: cut === undefined ? answer.next_batch : formatSyncToken({ ...end, events: cut }), chunk };
    });

    app.get(`${prefix}/initialSync`, async ({ request, query }) => {
      const me = await requireUser(accounts, request);
      const limit = intParam(query.limit, "limit", 10, 100);
      const answer = await sync.sync({ userId: me.userId, deviceId: me.deviceId, filter: { room: { timeline: { limit }, include_leave: query.archived === "true" } } as any });
      const list: Json[] = [];
      for (const [roomId, room] of Object.entries(answer.rooms.join) as [string, Json][]) list.push(roomEntry(roomId, "join", room, answer.next_batch, await visibilityOf(roomId)));
      for (const [roomId, room] of Object.entries(answer.rooms.invite) as [string, Json][]) {
        const events = (room.invite_state.events as Json[]).map(withRoom(roomId));
        const invite = events.find((e) => e.type === "m.room.member" && e.state_key === me.userId);
        list.push({ room_id: roomId, membership: "invite", ...(invite ? { invite } : {}), state: events });
      }
      for (const [roomId, room] of Object.entries(answer.rooms.leave) as [string, Json][]) list.push(roomEntry(roomId, "leave", room, answer.next_batch, undefined));
      // Push rules have their own API; the older initial sync did not carry them as account data.
      const accountData = answer.account_data.events.filter((e) => e.type !== "m.push_rules");
      const receipts = (Object.entries(answer.rooms.join) as [string, Json][]).flatMap(([roomId, room]) => receiptsOf(roomId, room));
      return { end: answer.next_batch, rooms: list, presence: legacyPresence(answer.presence?.events), account_data: accountData, receipts };
    });

    app.get(`${prefix}/rooms/:roomId/initialSync`, async ({ request, params, query }) => {
      const me = await requireUser(accounts, request);
      const roomId = roomIdParam(params.roomId);
      const limit = intParam(query.limit, "limit", 10, 100);
      if ((await peeks.readerKind(roomId, me.userId)) === "peeker") {
        const visibility = await visibilityOf(roomId);
        return { ...(await peeks.initialSync(roomId, me, limit, await positionNow(me))), ...(visibility ? { visibility } : {}), receipts: [] };
      }
      const answer = await sync.sync({ userId: me.userId, deviceId: me.deviceId, filter: { room: { rooms: [roomId], timeline: { limit }, include_leave: true } } as any });
      const joined = (answer.rooms.join as Record<string, Json>)[roomId];
      const left = (answer.rooms.leave as Record<string, Json>)[roomId];
      if (!joined && !left) throw new MatrixError("M_FORBIDDEN", "You are not in this room (and have not been)");
      const entry = roomEntry(roomId, joined ? "join" : "leave", joined ?? left!, answer.next_batch, await visibilityOf(roomId));
      // Presence and receipts are of now: a departed user sees none (as Synapse).
      if (!joined) return { ...entry, presence: [], receipts: [] };
      return { ...entry, presence: await membersPresence(roomId), receipts: receiptsOf(roomId, joined) };
    });
  }
  return app;
}
