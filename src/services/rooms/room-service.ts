// The client-side room operations beside membership: create rooms, send messages and state (with
// transaction ids), redact, and read events, state, members and the timeline — each checked against
// what the user may see (room-access.ts) and served in the client event format.
//
// Spam policies (issue 9), asked only when one is registered: every event a client sends, sets or
// redacts passes checkEventForSpam before it is built (a denial is the plugin's error and nothing is
// stored; a shadow answers with a fake event ID and stores nothing), and createRoom passes
// userMayCreateRoom, checkEventForSpam for the name, topic and initial state it asks for, and
// userMayInvite for each invitee. Local actions only, for now.
import { MatrixError } from "../../protocol/errors";
import type { JsonObject } from "../../protocol/json";
import { eventSendLevel, namedLevel, userPowerLevel } from "../../protocol/auth";
import { splitStateKey } from "../../protocol/events";
import { isValidRoomAlias, isValidUserId, serverNameOf } from "../../protocol/identifiers";
import type { SpamEvent } from "../../extensions";
import type { ClientTransactionId, RoomClientStore, RoomEventStore, StoredEvent } from "../../storage/stores";
import type { Clock, Logger } from "../runtime";
import { fakeEventId, policyDenial, requireSpamAllowed, spamVerdict, type SpamChecks } from "../plugins/spam-decisions";
import { type ClientEvent, ClientEventFormatter, type Viewer } from "./client-events";
import type { ProfileLookup } from "./membership";
import { createRoom, type CreateRoomRequest } from "./room-creation";
import type { RoomEngine } from "./room-engine";
import type { RoomAccess } from "./room-access";
import { filterAllowsLoading, type RoomEventFilter } from "./room-event-filter";
import { parseStreamToken, streamToken } from "./stream-token";

/** The most a PDU may weigh (server-server-api "Size limits"); content gets this less room for the envelope. */
const MAX_CONTENT_BYTES = 65536 - 2048;
export const DEFAULT_MESSAGES_LIMIT = 10;
export const MAX_MESSAGES_LIMIT = 1000;
/** Events asked of another server per backfill (Synapse asks for 100). */
const BACKFILL_LIMIT = 100;

export interface MessagesRequest {
  dir: "b" | "f";
  from?: string;
  to?: string;
  limit?: number;
  filter?: RoomEventFilter;
}

export interface MessagesPage {
  start: string;
  end?: string;
  chunk: ClientEvent[];
  /** With lazy_load_members: the member events of the chunk's senders. */
  state?: ClientEvent[];
}

export interface EventContext {
  start: string;
  end: string;
  event: ClientEvent;
  events_before: ClientEvent[];
  events_after: ClientEvent[];
  state: ClientEvent[];
}

export interface RoomServiceOptions {
  serverName: string;
  /** Whether a local user exists (createRoom refuses invites to unknown local users). */
  userExists: (userId: string) => boolean | Promise<boolean>;
  profileOf?: ProfileLookup;
  /** The room directory, for createRoom's room_alias_name and visibility. */
  directory?: CreateRoomDirectory;
  /** The plugins' spam policies (the PolicySet); absent: nothing is checked. */
  policies?: SpamChecks;
  logger?: Logger;
  /**
   * Fetches history from before the earliest event held in a room from its other servers (the
   * federation's backfill); resolves to how many events it stored. Absent: history starts at what
   * this server holds.
   */
  backfill?: (roomId: string, limit: number) => Promise<number>;
  /** The users a user ignores (m.ignored_user_list): /messages leaves their events out. */
  ignoredUsers?: (userId: string) => Promise<ReadonlySet<string>>;
}

/** What createRoom needs of the room directory (services/directory implements it). */
export interface CreateRoomDirectory {
  /** Holds "#localpart:server" for the new room; 400 M_ROOM_IN_USE when taken, M_INVALID_PARAM when invalid. */
  reserveAlias(localpart: string, creator: string): Promise<{ readonly alias: string; commit(roomId: string): Promise<void> | void; release(): Promise<void> | void }>;
  /** Lists the room in the published room directory. */
  publish(roomId: string): Promise<void> | void;
  /** Whether the spam policies let `userId` publish the room (userMayPublishRoom); absent: yes. */
  mayPublish?(userId: string, roomId: string): Promise<boolean>;
  /** The room a local alias points at (undefined when the alias does not exist). */
  localAliasTarget?(alias: string): Promise<string | undefined>;
}

export interface CreateRoomInput extends Omit<CreateRoomRequest, "creatorProfile" | "canonicalAlias"> {
  /** The local part of an alias to create for the room (with its m.room.canonical_alias event). */
  roomAliasName?: string;
}

export class RoomService {
  readonly formatter: ClientEventFormatter;
  /** Sends in flight per (user, device, txnId), so a retry that overlaps the first attempt gets its result. */
  private readonly inFlight = new Map<string, Promise<string>>();
  /** Per room, the earliest held event at which other servers had no older history to give. */
  private readonly historyEnds = new Map<string, string>();

  constructor(
    private readonly engine: RoomEngine,
    private readonly store: RoomEventStore,
    private readonly clientStore: RoomClientStore,
    private readonly access: RoomAccess,
    private readonly clock: Clock,
    private readonly options: RoomServiceOptions,
  ) {
    this.formatter = new ClientEventFormatter(store, clientStore, access, clock);
    // Every persisted redaction (local or, later, received) is recorded; whether it applies is decided on read.
    // The engine awaits this before the send resolves, so a read right after a redaction sees it.
    // Not async: other events return nothing to wait for.
    engine.onEvent((roomId, stored, pdu) => {
      if (stored.type !== "m.room.redaction") return;
      const redacts = typeof pdu.redacts === "string" ? pdu.redacts : (pdu.content as JsonObject | undefined)?.redacts;
      if (typeof redacts === "string") return clientStore.recordRedaction(redacts, stored.eventId, roomId);
    });
  }

  async createRoom(input: CreateRoomInput): Promise<string> {
    const { roomAliasName, ...request } = input;
    for (const invitee of request.invite ?? []) {
      if (!isValidUserId(invitee)) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID in invite: ${invitee}`);
      if (serverNameOf(invitee) !== this.options.serverName) {
        throw new MatrixError("M_FORBIDDEN", `Cannot invite ${invitee}: inviting users of other servers needs federation, which this server does not do yet`);
      }
      if (!(await this.options.userExists(invitee))) throw new MatrixError("M_INVALID_PARAM", `Unknown user ${invitee} in invite`);
    }
    const policies = this.options.policies?.hasSpamPolicies ? this.options.policies : undefined;
    if (policies) await this.checkNewRoom(policies, request);
    const profile = (await this.options.profileOf?.(request.creator)) ?? undefined;
    const creatorProfile: CreateRoomRequest["creatorProfile"] = {};
    if (typeof profile?.displayname === "string") creatorProfile.displayname = profile.displayname;
    if (typeof profile?.avatar_url === "string") creatorProfile.avatar_url = profile.avatar_url;
    // The alias is checked and held before anything is stored: a taken alias leaves no room behind.
    const directory = this.options.directory;
    if (roomAliasName !== undefined && !directory) throw new MatrixError("M_INVALID_PARAM", "This server keeps no room directory: room_alias_name cannot be used");
    const reservation = roomAliasName === undefined ? undefined : await directory!.reserveAlias(roomAliasName, request.creator);
    // With spam policies, the invites wait until the room exists: userMayInvite is asked with its ID.
    const invitees = policies ? [...new Set(request.invite ?? [])].filter((u) => u !== request.creator) : [];
    let roomId: string;
    try {
      roomId = await createRoom(this.engine, { ...request, canonicalAlias: reservation?.alias, creatorProfile, deferInvites: invitees.length > 0 });
      await reservation?.commit(roomId);
      if (request.visibility === "public" && directory) {
        // As Synapse does when publishing is not allowed: the room is made, but stays unlisted.
        if (!directory.mayPublish || (await directory.mayPublish(request.creator, roomId))) await directory.publish(roomId);
        else this.options.logger?.log("info", "a spam policy kept a new room out of the room directory", { room_id: roomId, user_id: request.creator });
      }
    } finally {
      await reservation?.release();
    }
    if (policies && invitees.length > 0) await this.sendCheckedInvites(policies, roomId, request.creator, invitees, request.isDirect === true);
    return roomId;
  }

  /**
   * createRoom's spam checks, before anything is stored: the creator may create rooms, and the name,
   * topic and initial state pass checkEventForSpam (the room has no ID yet: roomId is empty). A
   * shadow is refused here (a pretended room would be noticed at once).
   */
  private async checkNewRoom(policies: SpamChecks, request: Omit<CreateRoomInput, "roomAliasName">): Promise<void> {
    const creator = request.creator;
    await requireSpamAllowed(policies, (p) => p.userMayCreateRoom?.(creator), "You may not create rooms");
    const events: { type: string; stateKey: string; content: JsonObject }[] = [];
    if (request.name !== undefined) events.push({ type: "m.room.name", stateKey: "", content: { name: request.name } });
    if (request.topic !== undefined) events.push({ type: "m.room.topic", stateKey: "", content: { topic: request.topic } });
    for (const e of request.initialState ?? []) events.push({ type: e.type, stateKey: e.state_key ?? "", content: e.content });
    for (const e of events) {
      const event: SpamEvent = { roomId: "", sender: creator, type: e.type, stateKey: e.stateKey, content: e.content, local: true };
      await requireSpamAllowed(policies, (p) => p.checkEventForSpam?.(event), "This room cannot be created as it is");
    }
  }

  /**
   * The invites of a new room, each asked of userMayInvite with the room's ID: allowed ones are sent,
   * shadowed ones are skipped without a word. A denial is answered as Synapse answers it: the room
   * stays (with the invites allowed so far) and the creator gets the plugin's error.
   */
  private async sendCheckedInvites(policies: SpamChecks, roomId: string, creator: string, invitees: readonly string[], isDirect: boolean): Promise<void> {
    let denial: MatrixError | undefined;
    for (const invitee of invitees) {
      const decision = await policies.spamCheck((p) => p.userMayInvite?.(creator, invitee, roomId));
      if (decision.kind === "deny") {
        denial ??= policyDenial(decision.errcode, decision.message);
        continue;
      }
      if (decision.kind === "shadow") continue;
      const content: JsonObject = { membership: "invite", ...(isDirect ? { is_direct: true } : {}) };
      await this.engine.sendEvent(roomId, { type: "m.room.member", sender: creator, stateKey: invitee, content });
    }
    if (denial) throw denial;
  }

  /**
   * The spam checks of an event a local user is about to send, when a spam policy is registered
   * (callers test `hasSpamPolicies` first, so that a server without one builds and awaits nothing):
   * checkEventForSpam, and for a member event set through PUT /state the membership callback its
   * own endpoint would ask. "shadow" when the event is to be pretended.
   */
  private async eventVerdict(policies: SpamChecks, event: SpamEvent): Promise<"allow" | "shadow"> {
    if (event.type === "m.room.member" && event.stateKey !== undefined) {
      const membership = event.content.membership;
      const { roomId, sender, stateKey: target } = event;
      if (membership === "join" && target === sender) {
        const invited = (await this.access.membership(roomId, sender)) === "invite";
        await requireSpamAllowed(policies, (p) => p.userMayJoinRoom?.(sender, roomId, invited), "You may not join this room");
      } else if (membership === "invite" && (await spamVerdict(policies, (p) => p.userMayInvite?.(sender, target, roomId))) === "shadow") {
        return "shadow";
      } else if (membership === "knock" && target === sender && (await spamVerdict(policies, (p) => p.userMayKnock?.(sender, roomId))) === "shadow") {
        return "shadow";
      }
    }
    return spamVerdict(policies, (p) => p.checkEventForSpam?.(event));
  }

  /** The answer to a shadowed event: a fake ID, recorded for the client's txnId so that a retry gets the same one (no event is stored). */
  private async shadowed(roomId: string, recordWith?: (eventId: string) => Promise<void>): Promise<string> {
    const eventId = fakeEventId((await this.access.versionOf(roomId)).eventIdFormat, this.options.serverName);
    await recordWith?.(eventId);
    return eventId;
  }

  /** PUT /send: one event per (user, device, txnId); a repeated txnId answers with the first event_id. */
  send(roomId: string, requester: Required<Viewer>, type: string, txnId: string, content: JsonObject): Promise<string> {
    if (type === "m.room.redaction") throw new MatrixError("M_BAD_JSON", "Redact events with PUT /rooms/{roomId}/redact/{eventId}/{txnId}");
    return this.once(requester, txnId, roomId, async (recordWith, transaction) => {
      await this.access.versionOf(roomId);
      this.checkContentSize(content);
      const policies = this.options.policies;
      if (policies?.hasSpamPolicies && (await this.eventVerdict(policies, { roomId, sender: requester.userId, type, content, local: true })) === "shadow") {
        return this.shadowed(roomId, recordWith);
      }
      return this.sendChecked(roomId, { type, sender: requester.userId, content, recordWith, transaction }, () => this.explainSend(roomId, requester.userId, type, false));
    });
  }

  /** PUT /redact: redacts an event of the room; only its sender or a user with the redact level may. */
  redact(roomId: string, requester: Required<Viewer>, eventId: string, txnId: string, reason?: string): Promise<string> {
    return this.once(requester, txnId, roomId, async (recordWith, transaction) => {
      const version = await this.access.versionOf(roomId);
      const target = await this.store.getEvent(eventId);
      // An event of another room is the client's mistake: 400, as Synapse answers (the spec is
      // silent), whether or not the requester may see that event.
      if (target && target.roomId !== roomId) throw new MatrixError("M_INVALID_PARAM", "The event belongs to another room");
      if (!target || target.roomId !== roomId || !(await this.access.canSee(requester.userId, target))) throw new MatrixError("M_NOT_FOUND", "Event not found");
      if ((await this.access.membership(roomId, requester.userId)) !== "join") throw new MatrixError("M_FORBIDDEN", "You are not in this room");
      if (target.sender !== requester.userId) {
        const lookup = await this.access.currentAuthState(roomId);
        if (userPowerLevel(requester.userId, lookup, version) < namedLevel("redact", lookup, version)) {
          throw new MatrixError("M_FORBIDDEN", "You do not have permission to redact other users' events in this room");
        }
      }
      const content: JsonObject = reason === undefined ? {} : { reason };
      // The policies see where the redaction points, in the content (as v11+ rooms carry it).
      const policies = this.options.policies;
      if (policies?.hasSpamPolicies && (await this.eventVerdict(policies, { roomId, sender: requester.userId, type: "m.room.redaction", content: { ...content, redacts: eventId }, local: true })) === "shadow") {
        return this.shadowed(roomId, recordWith);
      }
      return this.sendChecked(roomId, { type: "m.room.redaction", sender: requester.userId, content, redacts: eventId, recordWith, transaction }, () =>
        this.explainSend(roomId, requester.userId, "m.room.redaction", false),
      );
    });
  }

  /**
   * m.room.canonical_alias (client-server-api "m.room.canonical_alias"): the alias and alt_aliases
   * must be aliases, and this server's ones must exist and point at the room (400 M_BAD_ALIAS).
   * Other servers' aliases are taken as given (Synapse asks their servers).
   */
  private async checkCanonicalAlias(roomId: string, content: JsonObject): Promise<void> {
    const aliases: unknown[] = [];
    if (content.alias !== undefined && content.alias !== null) aliases.push(content.alias);
    if (content.alt_aliases !== undefined) {
      if (!Array.isArray(content.alt_aliases)) throw new MatrixError("M_INVALID_PARAM", "alt_aliases must be a list of room aliases");
      aliases.push(...content.alt_aliases);
    }
    for (const alias of aliases) {
      if (typeof alias !== "string" || !isValidRoomAlias(alias)) throw new MatrixError("M_INVALID_PARAM", `Not a room alias: ${JSON.stringify(alias)}`);
      if (serverNameOf(alias) !== this.options.serverName || !this.options.directory?.localAliasTarget) continue;
      if ((await this.options.directory.localAliasTarget(alias)) !== roomId) throw new MatrixError("M_BAD_ALIAS", `${alias} does not point at this room`);
    }
  }

  /** PUT /state: a state event; the same content as the current event from the same sender sends nothing new. */
  async setState(roomId: string, userId: string, type: string, stateKey: string, content: JsonObject): Promise<string> {
    await this.access.versionOf(roomId);
    this.checkContentSize(content);
    const currentId = await this.store.currentStateEvent(roomId, type, stateKey);
    const current = currentId === undefined ? undefined : (await this.engine.loadEvent(currentId))?.event;
    if (current && current.sender === userId && JSON.stringify(current.content) === JSON.stringify(content) && !(await this.formatter.applicableRedaction((await this.store.getEvent(currentId!))!))) {
      return current.event_id;
    }
    // join_authorised_via_users_server is a resident server's word that a restricted join met the
    // allow rules: only a join through POST /join (or make_join) sets it. Named by a client, it would
    // let anyone in by naming a local admin; copied from an earlier join authorised by another
    // server, it fails auth rule 4.2.1 (the m.room.member schema: drop it when copying content).
    if (type === "m.room.member" && Object.hasOwn(content, "join_authorised_via_users_server")) {
      const { join_authorised_via_users_server: _dropped, ...rest } = content;
      content = rest;
    }
    if (type === "m.room.canonical_alias" && stateKey === "") await this.checkCanonicalAlias(roomId, content);
    const policies = this.options.policies;
    if (policies?.hasSpamPolicies && (await this.eventVerdict(policies, { roomId, sender: userId, type, stateKey, content, local: true })) === "shadow") return this.shadowed(roomId);
    // Member events are not held to state_default: the membership rules' own reason says more.
    const explain = type === "m.room.member" ? () => Promise.resolve(undefined) : () => this.explainSend(roomId, userId, type, true);
    return this.sendChecked(roomId, { type, sender: userId, stateKey, content }, explain);
  }

  /** GET /state: the state the user may read, as client events. */
  async state(roomId: string, viewer: Viewer): Promise<ClientEvent[]> {
    const state = await this.access.readableState(roomId, viewer.userId);
    return this.formatIds([...state.values()], viewer);
  }

  /** GET /state/{type}/{key}: one state event the user may read; M_NOT_FOUND when there is none. */
  async stateEvent(roomId: string, viewer: Viewer, type: string, stateKey: string): Promise<ClientEvent> {
    const id = await this.access.readableStateEntry(roomId, viewer.userId, type, stateKey);
    const stored = id === undefined ? undefined : await this.store.getEvent(id);
    const event = stored && (await this.formatter.formatState(stored, viewer));
    if (!event) throw new MatrixError("M_NOT_FOUND", `Event not found (${type}, ${JSON.stringify(stateKey)})`);
    return event;
  }

  /** GET /event/{eventId}: 404 unless the event is in the room and visible to the user. */
  async event(roomId: string, viewer: Viewer, eventId: string): Promise<ClientEvent> {
    await this.access.versionOf(roomId);
    const stored = await this.store.getEvent(eventId);
    if (!stored || stored.roomId !== roomId || !(await this.access.canSee(viewer.userId, stored))) throw new MatrixError("M_NOT_FOUND", "Event not found");
    const event = await this.formatter.format(stored, viewer);
    if (!event) throw new MatrixError("M_NOT_FOUND", "Event not found");
    return event;
  }

  /** GET /members: the member events of the state the user may read, filtered by membership. */
  async members(roomId: string, viewer: Viewer, filter: { membership?: string; notMembership?: string } = {}): Promise<ClientEvent[]> {
    const state = await this.access.readableState(roomId, viewer.userId);
    const ids: string[] = [];
    for (const [key, id] of state) {
      if (splitStateKey(key)[0] !== "m.room.member") continue;
      const membership = (await this.engine.loadEvent(id))?.event.content.membership;
      if (filter.membership !== undefined && membership !== filter.membership) continue;
      if (filter.notMembership !== undefined && membership === filter.notMembership) continue;
      ids.push(id);
    }
    return this.formatIds(ids, viewer);
  }

  /** GET /joined_members: joined users with their display name and avatar; only for members. */
  async joinedMembers(roomId: string, userId: string): Promise<Record<string, { display_name?: string; avatar_url?: string }>> {
    await this.access.versionOf(roomId);
    if ((await this.access.membership(roomId, userId)) !== "join") throw new MatrixError("M_FORBIDDEN", `You are not in the room ${roomId}`);
    const joined: Record<string, { display_name?: string; avatar_url?: string }> = {};
    for (const [member, membership] of await this.store.currentMemberships(roomId)) {
      if (membership !== "join") continue;
      const content = (await this.engine.currentStateEvent(roomId, "m.room.member", member))?.content ?? {};
      const entry: { display_name?: string; avatar_url?: string } = {};
      if (typeof content.displayname === "string") entry.display_name = content.displayname;
      if (typeof content.avatar_url === "string") entry.avatar_url = content.avatar_url;
      joined[member] = entry;
    }
    return joined;
  }

  joinedRooms(userId: string): Promise<string[]> {
    return this.store.roomsWithMembership(userId, "join");
  }

  /** GET /messages: a page of the timeline the user may see, in either direction. */
  async messages(roomId: string, viewer: Viewer, request: MessagesRequest): Promise<MessagesPage> {
    await this.access.requireTimelineAccess(roomId, viewer.userId);
    const limit = clampLimit(request.limit ?? request.filter?.limit);
    const filter = request.filter ?? {};
    const backwards = request.dir === "b";
    const from = request.from !== undefined ? parseStreamToken(request.from, "from") : backwards ? await this.store.maxStreamOrdering() : 0;
    const to = request.to !== undefined ? parseStreamToken(request.to, "to") : undefined;

    const chunk: ClientEvent[] = [];
    let firstStored: StoredEvent | undefined;
    const ignored = (await this.options.ignoredUsers?.(viewer.userId)) ?? new Set<string>();
    let position = from;
    let exhausted = false;
    let backfilled = false;
    const batchSize = Math.min(MAX_MESSAGES_LIMIT, limit * 2);
    scan: while (chunk.length < limit) {
      // History fetched from other servers lies below zero (stream-token.ts).
      const batch = backwards
        ? await this.store.roomEventsBackwards(roomId, position, to ?? Number.MIN_SAFE_INTEGER, batchSize)
        : await this.store.roomEventsBetween(roomId, position, to ?? Number.MAX_SAFE_INTEGER, batchSize);
      for (const stored of batch) {
        position = backwards ? stored.streamOrdering! - 1 : stored.streamOrdering!;
        if (!ignored.has(stored.sender) && (await this.visibleAndWanted(viewer, stored, filter))) {
          const event = await this.formatter.format(stored, viewer);
          if (event) chunk.push(event);
          firstStored ??= event && stored;
          if (chunk.length >= limit) break scan;
        }
      }
      if (batch.length < batchSize) {
        // The start of what we hold: once per request, ask the room's other servers for more
        // (Synapse backfills as a client pages back, too).
        if (backwards && to === undefined && !backfilled && this.options.backfill) {
          backfilled = true;
          if ((await this.backfillOnce(roomId, limit)) > 0) continue;
        }
        exhausted = true;
        break;
      }
    }
    const page: MessagesPage = { start: request.from ?? streamToken(from), chunk };
    // Forwards, the room goes on: a page with events gets an end to page on from (as Synapse), even
    // at the newest event, where the next page is empty until more arrive.
    if (!exhausted || (!backwards && chunk.length > 0)) page.end = streamToken(position);
    if (filter.lazy_load_members) page.state = await this.senderMembers(firstStored, chunk, viewer);
    return page;
  }

  /**
   * Lazy-loaded members (client-server-api "Lazy-loading room members"): the member events of the
   * events' senders, in the state after `at` (the page's first event, as Synapse takes it).
   */
  private async senderMembers(at: StoredEvent | undefined, events: readonly ClientEvent[], viewer: Viewer): Promise<ClientEvent[]> {
    if (at?.stateSnapshot === undefined) return [];
    const ids: string[] = [];
    for (const sender of new Set(events.map((e) => e.sender))) {
      const id = await this.store.stateEntryAt(at.stateSnapshot, "m.room.member", sender);
      if (id !== undefined) ids.push(id);
    }
    return this.formatIds(ids, viewer);
  }

  /** Backfill, remembering where a room's history gave no more so that later pages do not ask again. */
  private async backfillOnce(roomId: string, limit: number): Promise<number> {
    const [earliest] = await this.store.roomEventsBetween(roomId, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 1);
    if (!earliest || this.historyEnds.get(roomId) === earliest.eventId) return 0;
    let stored = 0;
    try {
      stored = await this.options.backfill!(roomId, Math.max(limit, BACKFILL_LIMIT));
    } catch (error) {
      this.options.logger?.log("warn", "backfill failed", { room_id: roomId, error: String(error) });
    }
    if (stored === 0) {
      if (this.historyEnds.size >= 10_000) this.historyEnds.clear();
      this.historyEnds.set(roomId, earliest.eventId);
    }
    return stored;
  }

  /** GET /context/{eventId}: the event with visible events before and after it, and the state at the last one. */
  async context(roomId: string, viewer: Viewer, eventId: string, limit = DEFAULT_MESSAGES_LIMIT, filter: RoomEventFilter = {}): Promise<EventContext> {
    // A room whose timeline the user may not read at all is 403, as for /messages.
    await this.access.requireTimelineAccess(roomId, viewer.userId);
    const stored = await this.store.getEvent(eventId);
    if (!stored || stored.roomId !== roomId || stored.streamOrdering === undefined || !(await this.access.canSee(viewer.userId, stored))) {
      throw new MatrixError("M_NOT_FOUND", "Event not found");
    }
    const event = (await this.formatter.format(stored, viewer))!;
    const total = Math.min(limit, MAX_MESSAGES_LIMIT);
    const beforeLimit = Math.floor(total / 2);
    const afterLimit = total - beforeLimit;
    // The pages' own lazy-loaded members are not wanted: the context's state covers every sender.
    const { lazy_load_members: lazyMembers, include_redundant_members: _redundant, ...pageFilter } = filter;
    const before = beforeLimit > 0 ? await this.messages(roomId, viewer, { dir: "b", from: streamToken(stored.streamOrdering - 1), limit: beforeLimit, filter: pageFilter }) : undefined;
    const after = afterLimit > 0 ? await this.messages(roomId, viewer, { dir: "f", from: streamToken(stored.streamOrdering), limit: afterLimit, filter: pageFilter }) : undefined;
    const eventsAfter = after?.chunk ?? [];
    const last = eventsAfter.length ? (await this.store.getEvent(eventsAfter[eventsAfter.length - 1]!.event_id))! : stored;
    const state = last.stateSnapshot === undefined ? new Map<string, string>() : await this.store.stateAt(last.stateSnapshot);
    // With lazy-loaded members, of the members only the senders of the events given.
    const senders = new Set([event, ...(before?.chunk ?? []), ...eventsAfter].map((e) => e.sender));
    const stateIds = [...state]
      .filter(([key]) => {
        const [type, member] = splitStateKey(key);
        return !lazyMembers || type !== "m.room.member" || senders.has(member);
      })
      .map(([, id]) => id);
    return {
      start: before?.end ?? streamToken(before?.chunk.length ? (await this.orderingOf(before.chunk[before.chunk.length - 1]!)) - 1 : stored.streamOrdering - 1),
      end: after?.end ?? streamToken(eventsAfter.length ? await this.orderingOf(eventsAfter[eventsAfter.length - 1]!) : stored.streamOrdering),
      event,
      events_before: before?.chunk ?? [],
      events_after: eventsAfter,
      state: await this.formatIds(stateIds, viewer),
    };
  }

  /** Client events of the given ids, in order, skipping any that cannot be loaded; served as room state (whole when their sender was erased). */
  async formatIds(ids: readonly string[], viewer?: Viewer): Promise<ClientEvent[]> {
    const out: ClientEvent[] = [];
    for (const id of ids) {
      const stored = await this.store.getEvent(id);
      const event = stored && (await this.formatter.formatState(stored, viewer));
      if (event) out.push(event);
    }
    return out;
  }

  private async orderingOf(event: ClientEvent): Promise<number> {
    return (await this.store.getEvent(event.event_id))?.streamOrdering ?? 0;
  }

  private async visibleAndWanted(viewer: Viewer, stored: StoredEvent, filter: RoomEventFilter): Promise<boolean> {
    if (!(await filterAllowsLoading(filter, stored, async () => ((await this.engine.loadEvent(stored.eventId))?.event.content ?? {}) as Record<string, unknown>))) return false;
    return this.access.canSee(viewer.userId, stored);
  }

  /**
   * Runs `run` once per (user, device, txnId). The transaction id is recorded inside the event's own
   * database transaction (through `recordWith`), so a crash can never keep the event and lose the
   * id, which would let a retry store the event twice. The id is not looked up first: a retry (rare)
   * finds it taken when recording it, which rolls its event back; then, as after any failure, the
   * event the id made is the answer, whether or not the retry could still be sent.
   */
  private async once(
    requester: Required<Viewer>,
    txnId: string,
    roomId: string,
    run: (recordWith: (eventId: string) => Promise<void>, transaction: ClientTransactionId) => Promise<string>,
  ): Promise<string> {
    const key = `${requester.userId}\u0000${requester.deviceId}\u0000${txnId}`;
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    // Registered before the first await, so that a retry arriving while the stored txnId is being
    // looked up joins this attempt instead of sending a second event.
    const promise = (async () => {
      try {
        return await run(
          async (eventId) => {
            if (!(await this.clientStore.recordTransaction(requester.userId, requester.deviceId, txnId, roomId, eventId, this.clock.now()))) throw new TransactionIdTaken();
          },
          { deviceId: requester.deviceId, txnId },
        );
      } catch (error) {
        const done = await this.clientStore.transactionEvent(requester.userId, requester.deviceId, txnId);
        if (done !== undefined) return done;
        throw error;
      }
    })();
    this.inFlight.set(key, promise);
    try {
      return await promise;
    } finally {
      this.inFlight.delete(key);
    }
  }

  private checkContentSize(content: JsonObject): void {
    if (Buffer.byteLength(JSON.stringify(content)) > MAX_CONTENT_BYTES) throw new MatrixError("M_TOO_LARGE", "Event content is too large");
  }

  private async sendChecked(roomId: string, input: Parameters<RoomEngine["sendEvent"]>[1], explain: () => Promise<string | undefined>): Promise<string> {
    try {
      return (await this.engine.sendEvent(roomId, input)).eventId;
    } catch (error) {
      if (error instanceof MatrixError && error.errcode === "M_FORBIDDEN") {
        const message = await explain();
        if (message) throw new MatrixError("M_FORBIDDEN", message);
      }
      throw error;
    }
  }

  /** Why sending an event of `type` was refused, in the user's terms. */
  private async explainSend(roomId: string, userId: string, type: string, isState: boolean): Promise<string | undefined> {
    if ((await this.access.membership(roomId, userId)) !== "join") return "You are not in this room";
    const lookup = await this.access.currentAuthState(roomId);
    const version = await this.access.versionOf(roomId);
    if (userPowerLevel(userId, lookup, version) < eventSendLevel(type, isState, lookup, version)) {
      return `You do not have permission to send ${type} events in this room`;
    }
    return undefined;
  }
}

function clampLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_MESSAGES_LIMIT;
  return Math.max(1, Math.min(MAX_MESSAGES_LIMIT, Math.floor(limit)));
}

/** A client transaction id that made an event already: the new event is rolled back. */
class TransactionIdTaken extends Error {
  constructor() {
    super("transaction id already used");
  }
}
