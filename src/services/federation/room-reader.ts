// The read-only federation endpoints of a resident server (server-server-api "Retrieving events",
// "Backfilling and retrieving missing events", "Retrieving event authorisation information"): the
// state before an event (/state, /state_ids), one event (/event), an event's auth chain
// (/event_auth), history before some events (/backfill) and the events between two points of the
// DAG (/get_missing_events). PDUs are served as stored (the exact JSON kept at receipt or creation).
//
// Who may read (the spec asks for ACLs and leaves the rest to the server; Portier's rules):
// - the room must be known here (404 M_NOT_FOUND) and the origin allowed by the m.room.server_acl
//   of the current state (403 M_FORBIDDEN, server-server-api "Server Access Control Lists");
// - the origin must be "in the room": some user of that server joined in the current state. For
//   /state, /state_ids, /event_auth and /event it is also enough that one was joined in the state at
//   the event asked about (a server that has left may still fill in the history it took part in).
//   Otherwise 403 M_FORBIDDEN; an event this server does not know is 404 for a resident origin and
//   403 for any other (a stranger learns nothing about which events exist);
// - history visibility, for the events themselves (/event, /backfill, /get_missing_events), read
//   at each event, as client-server-api "History visibility" reads it for users but with a server
//   standing for its users: world_readable and shared (also a missing or unknown value) show
//   everything to a resident server; "invited" shows an event when one of the origin's users was
//   invited or joined at it, "joined" when one was joined; an origin's own users' member events are
//   always shown. An event the origin may not see is served redacted (the redaction algorithm of the
//   room version), so that the DAG it receives has no holes while the content stays hidden. State
//   and auth chains are served whole: every server in the room needs them to authorise events.
//   Outliers (events held without state, e.g. auth events of a partial view) have no state to read
//   visibility from and are served as they are.
// - Events of a user erased on deactivation are served redacted from /event, /backfill and
//   /get_missing_events, to every server (client-server-api "Account deactivation": servers that
//   join later are served redacted copies; a server cannot say which of its users saw what, so
//   Synapse redacts them for all, and sytest checks /event for it). State and auth chains stay whole.
// - Rejected events are never served as events (/event answers 404; backfill and
//   get_missing_events leave them out but walk on through their prev_events).
import { MatrixError } from "../../protocol/errors";
import { parseJson } from "../../protocol/canonical-json";
import { stateKey as stateMapKey, type StateMap } from "../../protocol/events";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { serverNameOf } from "../../protocol/identifiers";
import type { RoomVersion } from "../../protocol/room-versions";
import { resolveState } from "../../protocol/state-res";
import { redactEvent } from "../../protocol/signing/redaction";
import { serverAllowedByAcl } from "../../protocol/server-acl";
import type { RoomEventStore, StoredEvent } from "../../storage/stores";
import type { RoomEngine } from "../rooms/room-engine";

/** At most this many PDUs per /backfill, whatever `limit` asks. */
export const MAX_BACKFILL_LIMIT = 100;
/** /get_missing_events: `limit` when the request gives none, and the most it may ask for. */
export const DEFAULT_MISSING_EVENTS_LIMIT = 10;
export const MAX_MISSING_EVENTS_LIMIT = 100;

export interface StateAtEvent {
  /** The state before the event: its PDUs. */
  pdus: JsonObject[];
  /** The auth chain of those state events, oldest (lowest depth) first. */
  authChain: JsonObject[];
}

export interface StateIdsAtEvent {
  pduIds: string[];
  authChainIds: string[];
}

export interface MissingEventsRequest {
  earliestEvents: readonly string[];
  latestEvents: readonly string[];
  /** Default DEFAULT_MISSING_EVENTS_LIMIT; capped at MAX_MISSING_EVENTS_LIMIT. */
  limit?: number;
  /** Events below this depth are neither returned nor walked through. Default 0. */
  minDepth?: number;
}

const MEMBER = "m.room.member";

/** Per-request memory of the origin's memberships and the history visibility, per state snapshot. */
interface VisibilityCache {
  memberships: Map<number, Promise<string[]>>;
  historyVisibility: Map<number, Promise<string>>;
}

export class FederationRoomReader {
  constructor(
    private readonly engine: RoomEngine,
    private readonly store: RoomEventStore,
    /** Users erased on deactivation (answered from memory). */
    private readonly isErased: (userId: string) => boolean = () => false,
  ) {}

  // ---------------------------------------------------------------------------------------------
  // Access, shared with other federation endpoints

  /** Whether the room's current m.room.server_acl lets `origin` in (no ACL: everyone). */
  async aclAllows(roomId: string, origin: string): Promise<boolean> {
    const acl = await this.engine.currentStateEvent(roomId, "m.room.server_acl", "");
    return serverAllowedByAcl(acl?.content, origin);
  }

  /**
   * 403 M_FORBIDDEN when the room's current m.room.server_acl denies `origin`. For every endpoint
   * server-server-api "Server Access Control Lists" names (make_join, send_join, invite, ...).
   */
  async requireAclAllows(roomId: string, origin: string): Promise<void> {
    if (!(await this.aclAllows(roomId, origin))) {
      throw new MatrixError("M_FORBIDDEN", `Server ${origin} is denied access to ${roomId} by the room's server ACL`);
    }
  }

  /** The servers with a member joined to the room in its current state (where its events go). */
  async joinedServers(roomId: string): Promise<string[]> {
    const servers = new Set<string>();
    for (const [userId, membership] of await this.store.currentMemberships(roomId)) {
      const server = membership === "join" ? serverNameOf(userId) : undefined;
      if (server) servers.add(server);
    }
    return [...servers].sort();
  }

  /** Whether some user of `origin` is joined to the room in its current state. */
  async isServerJoined(roomId: string, origin: string): Promise<boolean> {
    return (await this.joinedServers(roomId)).includes(origin);
  }

  // ---------------------------------------------------------------------------------------------
  // The endpoints

  /** GET /state_ids/{roomId}?event_id=: the state before the event and its auth chain, as event IDs. */
  async stateIds(origin: string, roomId: string, eventId: string): Promise<StateIdsAtEvent> {
    const { version, stored } = await this.eventAccess(origin, roomId, eventId);
    const state = await this.stateBefore(stored, version);
    const pduIds = [...state.values()];
    const chain = await this.store.getEvents([...(await this.store.authChain(pduIds))]);
    return { pduIds, authChainIds: oldestFirst([...chain.values()], roomId).map((e) => e.eventId) };
  }

  /** GET /state/{roomId}?event_id=: as stateIds, with the PDUs. */
  async state(origin: string, roomId: string, eventId: string): Promise<StateAtEvent> {
    const { version, stored } = await this.eventAccess(origin, roomId, eventId);
    const state = await this.stateBefore(stored, version);
    const pdus = await this.pdusOf([...state.values()], roomId, version);
    const chain = await this.store.getEvents([...(await this.store.authChain([...state.values()]))]);
    return { pdus, authChain: oldestFirst([...chain.values()], roomId).map((e) => this.parse(e, version)) };
  }

  /** GET /event/{eventId}: one event, redacted when its history visibility hides it from the origin. */
  async event(origin: string, eventId: string): Promise<JsonObject> {
    const stored = await this.store.getEvent(eventId);
    if (!stored || stored.rejectedReason !== undefined) throw new MatrixError("M_NOT_FOUND", `Event ${eventId} not found`);
    const { version } = await this.eventAccess(origin, stored.roomId, eventId, stored);
    return this.served(origin, stored, version, newVisibilityCache());
  }

  /** GET /event_auth/{roomId}/{eventId}: the event's auth chain, oldest first. */
  async eventAuth(origin: string, roomId: string, eventId: string): Promise<JsonObject[]> {
    const { version } = await this.eventAccess(origin, roomId, eventId);
    const chain = await this.store.getEvents([...(await this.store.authChain([eventId]))]);
    return oldestFirst([...chain.values()], roomId).map((e) => this.parse(e, version));
  }

  /**
   * GET /backfill/{roomId}?v=&limit=: the events `from` and those before them, walking prev_events
   * backwards, most recent (highest depth) first, at most `limit` (capped at MAX_BACKFILL_LIMIT).
   * Unknown events among `from` are skipped.
   */
  async backfill(origin: string, roomId: string, from: readonly string[], limit: number): Promise<JsonObject[]> {
    const version = await this.roomAccess(origin, roomId);
    if (!(await this.isServerJoined(roomId, origin))) throw notInRoom(origin, roomId);
    const max = Math.min(Math.max(0, Math.floor(limit)), MAX_BACKFILL_LIMIT);
    const cache = newVisibilityCache();
    const out: JsonObject[] = [];
    const seen = new Set<string>();
    const frontier: StoredEvent[] = [];
    const enqueue = async (ids: readonly string[]) => {
      const fresh = ids.filter((id) => !seen.has(id));
      for (const id of fresh) seen.add(id);
      for (const e of (await this.store.getEvents(fresh)).values()) if (inTimelineOf(e, roomId)) frontier.push(e);
    };
    await enqueue(from);
    while (out.length < max && frontier.length > 0) {
      const next = takeMostRecent(frontier);
      if (next.rejectedReason === undefined) out.push(await this.served(origin, next, version, cache));
      await enqueue(next.prevEvents);
    }
    return out;
  }

  /**
   * POST /get_missing_events/{roomId}: a breadth-first walk of prev_events from `latestEvents` (not
   * themselves returned), never returning or passing `earliestEvents` nor events below `minDepth`,
   * at most `limit` events. Returned oldest (lowest depth) first, the order a receiver applies them in.
   */
  async missingEvents(origin: string, roomId: string, request: MissingEventsRequest): Promise<JsonObject[]> {
    const version = await this.roomAccess(origin, roomId);
    if (!(await this.isServerJoined(roomId, origin))) throw notInRoom(origin, roomId);
    const max = Math.min(Math.max(0, Math.floor(request.limit ?? DEFAULT_MISSING_EVENTS_LIMIT)), MAX_MISSING_EVENTS_LIMIT);
    const minDepth = request.minDepth ?? 0;
    const seen = new Set<string>([...request.earliestEvents, ...request.latestEvents]);
    const found: StoredEvent[] = [];

    let level: string[] = [];
    for (const e of (await this.store.getEvents(request.latestEvents)).values()) if (inTimelineOf(e, roomId)) level.push(...e.prevEvents);
    while (level.length > 0 && found.length < max) {
      const ids = [...new Set(level.filter((id) => !seen.has(id)))];
      for (const id of ids) seen.add(id);
      const events = await this.store.getEvents(ids);
      const nextLevel: string[] = [];
      // In the order the prev_events named them, for a walk that is the same on every run.
      for (const id of ids) {
        const e = events.get(id);
        if (!e || !inTimelineOf(e, roomId) || e.depth < minDepth) continue;
        if (e.rejectedReason === undefined) {
          if (found.length >= max) break;
          found.push(e);
        }
        nextLevel.push(...e.prevEvents);
      }
      level = nextLevel;
    }
    const cache = newVisibilityCache();
    const out: JsonObject[] = [];
    for (const e of oldestFirst(found, roomId)) out.push(await this.served(origin, e, version, cache));
    return out;
  }

  // ---------------------------------------------------------------------------------------------

  /** The room's version once the room is known and the origin passes its ACL. */
  private async roomAccess(origin: string, roomId: string): Promise<RoomVersion> {
    const version = await this.engine.versionOf(roomId);
    await this.requireAclAllows(roomId, origin);
    return version;
  }

  /** roomAccess, then: the event is in the room, and the origin is in the room now or was at the event. */
  private async eventAccess(origin: string, roomId: string, eventId: string, known?: StoredEvent): Promise<{ version: RoomVersion; stored: StoredEvent }> {
    const version = await this.roomAccess(origin, roomId);
    const residentNow = await this.isServerJoined(roomId, origin);
    const stored = known ?? (await this.store.getEvent(eventId));
    if (!stored || stored.roomId !== roomId) {
      if (!residentNow) throw notInRoom(origin, roomId);
      throw new MatrixError("M_NOT_FOUND", `Event ${eventId} not found in ${roomId}`);
    }
    if (!residentNow && !(await this.originMembershipsAt(origin, stored.stateSnapshot, newVisibilityCache())).includes("join")) {
      throw notInRoom(origin, roomId);
    }
    return { version, stored };
  }

  /**
   * The state before an event. The stored snapshot is the state after it; for a state event the one
   * entry it set is put back to what the state before held there: from its one prev event, or agreed
   * by all of them, or else by resolving their states. An outlier has no state here, and a rejected
   * event is as good as unknown: both are M_NOT_FOUND (as Synapse answers; the spec names no case).
   */
  private async stateBefore(stored: StoredEvent, version: RoomVersion): Promise<Map<string, string>> {
    if (stored.stateSnapshot === undefined || stored.outlier) throw new MatrixError("M_NOT_FOUND", `The state at ${stored.eventId} is not known to this server`);
    if (stored.rejectedReason !== undefined) throw new MatrixError("M_NOT_FOUND", `Event ${stored.eventId} not found`);
    const state = await this.store.stateAt(stored.stateSnapshot);
    if (stored.stateKey === undefined) return state;
    const key = stateMapKey(stored.type, stored.stateKey);
    const prevs = [...(await this.store.getEvents(stored.prevEvents)).values()];
    if (prevs.length < stored.prevEvents.length || prevs.some((p) => p.stateSnapshot === undefined)) {
      throw new MatrixError("M_NOT_FOUND", `The state before ${stored.eventId} is not known to this server`);
    }
    let before: string | undefined;
    const entries = new Set<string | undefined>();
    for (const p of prevs) entries.add(await this.store.stateEntryAt(p.stateSnapshot!, stored.type, stored.stateKey));
    if (entries.size <= 1) {
      before = [...entries][0];
    } else {
      const states: StateMap[] = [];
      for (const p of prevs) states.push(await this.store.stateAt(p.stateSnapshot!));
      const resolved = await resolveState(version, states, {
        fetchEvent: async (id) => (await this.engine.parsedEvent(id))?.event,
        authChain: (ids) => this.store.authChain(ids),
        isRejected: async (id) => (await this.store.getEvent(id))?.rejectedReason !== undefined,
      });
      before = resolved.get(key);
    }
    if (before === undefined) state.delete(key);
    else state.set(key, before);
    return state;
  }

  /** The event as served to `origin`: the stored PDU, or its redacted form when hidden by history visibility or its sender was erased. */
  private async served(origin: string, stored: StoredEvent, version: RoomVersion, cache: VisibilityCache): Promise<JsonObject> {
    const pdu = this.parse(stored, version);
    return !this.isErased(stored.sender) && (await this.visibleTo(origin, stored, cache)) ? pdu : redactEvent(pdu, version);
  }

  private async visibleTo(origin: string, stored: StoredEvent, cache: VisibilityCache): Promise<boolean> {
    const snapshot = stored.stateSnapshot;
    if (snapshot === undefined) return true;
    const visibility = await this.historyVisibilityAt(snapshot, cache);
    if (visibility !== "invited" && visibility !== "joined") return true;
    if (stored.type === MEMBER && stored.stateKey !== undefined && serverNameOf(stored.stateKey) === origin) return true;
    const memberships = await this.originMembershipsAt(origin, snapshot, cache);
    return memberships.includes("join") || (visibility === "invited" && memberships.includes("invite"));
  }

  /** history_visibility in a snapshot; "shared" when missing or not a string (client-server-api "Server behaviour"). */
  private historyVisibilityAt(snapshot: number, cache: VisibilityCache): Promise<string> {
    let hit = cache.historyVisibility.get(snapshot);
    if (!hit) {
      hit = (async () => {
        const id = await this.store.stateEntryAt(snapshot, "m.room.history_visibility", "");
        const value = id === undefined ? undefined : (await this.engine.parsedEvent(id))?.event.content.history_visibility;
        return typeof value === "string" ? value : "shared";
      })();
      cache.historyVisibility.set(snapshot, hit);
    }
    return hit;
  }

  /** The memberships ("join", "invite", ...) of the origin's users in a snapshot. */
  private originMembershipsAt(origin: string, snapshot: number | undefined, cache: VisibilityCache): Promise<string[]> {
    if (snapshot === undefined) return Promise.resolve([]);
    let hit = cache.memberships.get(snapshot);
    if (!hit) {
      hit = (async () => {
        const out: string[] = [];
        const prefix = stateMapKey(MEMBER, "");
        for (const [key, id] of await this.store.stateAt(snapshot)) {
          if (!key.startsWith(prefix) || serverNameOf(key.slice(prefix.length)) !== origin) continue;
          const membership = (await this.engine.parsedEvent(id))?.event.content.membership;
          if (typeof membership === "string") out.push(membership);
        }
        return out;
      })();
      cache.memberships.set(snapshot, hit);
    }
    return hit;
  }

  /** The PDUs of events of the room, in the order given; unknown ones are left out. */
  private async pdusOf(ids: readonly string[], roomId: string, version: RoomVersion): Promise<JsonObject[]> {
    const events = await this.store.getEvents(ids);
    const out: JsonObject[] = [];
    for (const id of ids) {
      const e = events.get(id);
      if (e && e.roomId === roomId) out.push(this.parse(e, version));
    }
    return out;
  }

  /** The stored PDU; v1..v5 rooms parse losslessly, so floats and big integers are served byte for byte. */
  private parse(stored: StoredEvent, version: RoomVersion): JsonObject {
    const pdu = parseJson(stored.json, { lossless: !version.strictCanonicalJson });
    if (!isJsonObject(pdu)) throw new Error(`stored event ${stored.eventId} is not a JSON object`);
    return pdu;
  }
}

function newVisibilityCache(): VisibilityCache {
  return { memberships: new Map(), historyVisibility: new Map() };
}

function notInRoom(origin: string, roomId: string): MatrixError {
  return new MatrixError("M_FORBIDDEN", `Server ${origin} is not in the room ${roomId}`);
}

/** An event of the room's timeline (outliers have no place in backfill or the DAG walks). */
function inTimelineOf(e: StoredEvent, roomId: string): boolean {
  return e.roomId === roomId && !e.outlier;
}

/** Events of the room by depth, then event ID: a stable order, in which ancestors (lower depth) come first. */
function oldestFirst(events: readonly StoredEvent[], roomId: string): StoredEvent[] {
  return events.filter((e) => e.roomId === roomId).sort((a, b) => a.depth - b.depth || (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0));
}

/** Removes and returns the frontier's most recent event (highest depth, then highest ID for a fixed order). */
function takeMostRecent(frontier: StoredEvent[]): StoredEvent {
  let best = 0;
  for (let i = 1; i < frontier.length; i++) {
    const a = frontier[i]!;
    const b = frontier[best]!;
    if (a.depth > b.depth || (a.depth === b.depth && a.eventId > b.eventId)) best = i;
  }
  return frontier.splice(best, 1)[0]!;
}
