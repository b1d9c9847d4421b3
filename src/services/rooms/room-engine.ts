// The room engine for local events: build (prev_events from the forward extremities, auth_events by
// the selection rules, depth, hashes, signature, event ID), authorize against the auth events, then
// persist with the state after the event — all inside the room's write queue.
import { randomBytes } from "node:crypto";
import { authEventsForEvent, authorizeEvent, authStateFromEvents } from "../../protocol/auth";
import { MatrixError } from "../../protocol/errors";
import { stateKey, type RoomEvent } from "../../protocol/events";
import type { JsonObject, JsonValue } from "../../protocol/json";
import { roomEventFromPdu } from "../../protocol/pdu";
import { parseJson, validateCanonicalJson } from "../../protocol/canonical-json";
import { checkEventLimits, MAX_PREV_EVENTS } from "../../protocol/event-limits";
import { DEFAULT_ROOM_VERSION, roomVersion, type RoomVersion } from "../../protocol/room-versions";
import { verifyThirdPartyInviteSignature } from "../../protocol/signing/third-party-invite";
import { computeEventId, eventReference, roomIdFromCreateEvent } from "../../protocol/signing/event-id";
import type { SignedWithId } from "../../protocol/signing/local-event";
import { RecentCache } from "../../protocol/recent-cache";
import type { ClientTransactionId, NewEvent, RoomEventStore, RoomRecord, StoredEvent } from "../../storage/stores";
import { consoleLogger, type Clock, type Logger } from "../runtime";
import { RoomWriteQueue } from "./room-write-queue";

/** Signs a PDU as this server (content hash + signature over the redacted form). */
export interface EventSigner {
  readonly serverName: string;
  signEvent(pdu: JsonObject, version: RoomVersion): JsonObject;
  /**
   * signEvent with the event's ID, from the one encoding both are taken over
   * (protocol/signing/local-event.ts); without it, the ID is computed from the signed event.
   */
  signEventWithId?(pdu: JsonObject, version: RoomVersion): SignedWithId;
}

export interface NewLocalEvent {
  type: string;
  sender: string;
  stateKey?: string;
  content: JsonObject;
  /** The event a redaction redacts. */
  redacts?: string;
  /**
   * Written in the event's own transaction (a client's transaction id, say), so that both are
   * stored or neither is.
   */
  recordWith?: (eventId: string) => Promise<void>;
  /** The client transaction the event is sent with, kept in its row (NewEvent.transaction). */
  transaction?: ClientTransactionId;
  /**
   * Runs once the event is built, signed and authorized, before it is stored, in the room's write
   * queue (nothing else enters the room meanwhile): a room upgrade creates the new room here, whose
   * m.room.create names this tombstone. When it throws, the event is not stored.
   */
  beforePersist?: (eventId: string) => Promise<void>;
}

export interface LocalEventResult {
  eventId: string;
  stored: StoredEvent;
  pdu: JsonObject;
}

/**
 * Called after every persisted event, once it is committed (wakes /sync, queues federation). A
 * returned promise is awaited before the write that caused it resolves.
 */
export type EventListener = (roomId: string, stored: StoredEvent, pdu: JsonObject) => void | Promise<void>;

const MAX_DEPTH = Number.MAX_SAFE_INTEGER;
const CREATE_KEY = stateKey("m.room.create", "");
/** Events from which one room's creation is stored in a database transaction of its own. */
export const BULK_EVENTS = 100;
const POLICY_KEY = stateKey("m.room.policy", "");
/** Read with a local event's auth events, in the same query (prepareEvent). */
const EXTRA_STATE_KEYS: readonly (readonly [string, string])[] = [
  ["m.room.create", ""],
  ["m.room.policy", ""],
];

/** Notifications held back until an atomic batch (createRoomWithEvents) has committed; one list per batch. */
type DeferredNotifications = { roomId: string; stored: StoredEvent; pdu: JsonObject }[];


/** Adds the room's policy server's signature to one of our events, or throws its refusal. */
export type PolicySigner = (roomId: string, pdu: JsonObject, version: RoomVersion) => Promise<JsonObject>;

/** Hears the events of one room committed together at once (one call for a batch). */
export type BatchEventListener = (roomId: string, events: readonly { stored: StoredEvent; pdu: JsonObject }[]) => void | Promise<void>;

/**
 * Writes that go into the transaction of a local event that changes no state (its notifications),
 * so that the event and they commit once: prepared before the transaction from the room as it is
 * (the same before and after such an event), written after the event's own rows, and settled once
 * the transaction has committed or failed.
 */
export interface EventCompanion {
  /** Undefined when there is nothing to write with this event. */
  prepare(roomId: string, event: { eventId: string; sender: string; type: string; pdu: JsonObject }): Promise<CompanionWrite | undefined>;
}

export interface CompanionWrite {
  /** Inside the event's transaction, after its rows. */
  write(stored: StoredEvent): Promise<void>;
  /** After the transaction: before the event listeners hear of the event. */
  settled(committed: boolean): void;
}

/** Parsed events kept (RoomEngine.parsed). */
const PARSED_EVENTS = 10_000;

export class RoomEngine {
  /** In the order they were added; a batch listener hears a batch in one call, the others event by event. */
  private readonly listeners: ({ batch: false; fn: EventListener } | { batch: true; fn: BatchEventListener })[] = [];
  private policySigner: PolicySigner | undefined;
  private companion: EventCompanion | undefined;
  /**
   * Parsed events by id, the most recently used: events never change once stored, so this cache
   * never goes stale. Each new event goes in; a parsed event holds its PDU twice over (as the rules
   * see it and as JSON), so this is sized by memory: 50,000 held most of a long load's resident growth.
   */
  private readonly parsed = new RecentCache<string, { event: RoomEvent; pdu: JsonObject }>(PARSED_EVENTS);

  constructor(
    private readonly store: RoomEventStore,
    private readonly signer: EventSigner,
    private readonly clock: Clock,
    readonly queue: RoomWriteQueue = new RoomWriteQueue(),
    private readonly logger: Logger = consoleLogger("warn"),
  ) {}

  onEvent(listener: EventListener): void {
    this.listeners.push({ batch: false, fn: listener });
  }

  /** Like onEvent, but the events of a batch (a federation transaction's, for one room) come in one call. */
  onEvents(listener: BatchEventListener): void {
    this.listeners.push({ batch: true, fn: listener });
  }

  /** Sets what is written in the transaction of each local event that changes no state (EventCompanion). */
  setCompanion(companion: EventCompanion): void {
    this.companion = companion;
  }

  /**
   * Sets the step that has the room's policy server sign each of our events after our signature
   * and the auth check, before it is stored (it throws to refuse the event; set by the federation).
   * It is asked only in rooms with an m.room.policy event in current state: no other names one.
   */
  setPolicySigner(signer: PolicySigner): void {
    this.policySigner = signer;
  }

  /**
   * Tells the listeners about a persisted event that entered the timeline; call it only after the
   * commit. Each listener is isolated: one that throws is logged, and the others still hear of the
   * event, because a committed write must never be reported to its sender as a failure.
   */
  notify(roomId: string, stored: StoredEvent, pdu: JsonObject): Promise<void> {
    return this.notifyMany(roomId, [{ stored, pdu }]);
  }

  /** notify for several events of one room committed together, oldest first. */
  async notifyMany(roomId: string, events: readonly { stored: StoredEvent; pdu: JsonObject }[]): Promise<void> {
    if (events.length === 0) return;
    // A listener that has nothing to wait for returns nothing: it is not awaited (most of them, for
    // most events), which saves the send a turn of the event loop per listener.
    for (const listener of this.listeners) {
      if (listener.batch) {
        try {
          const pending = listener.fn(roomId, events);
          if (pending) await pending;
        } catch (error) {
          this.logger.log("error", "an event listener failed after the commit", { room_id: roomId, event_id: events[0]!.stored.eventId, error: String((error as Error)?.stack ?? error) });
        }
        continue;
      }
      for (const { stored, pdu } of events) {
        try {
          const pending = listener.fn(roomId, stored, pdu);
          if (pending) await pending;
        } catch (error) {
          this.logger.log("error", "an event listener failed after the commit", { room_id: roomId, event_id: stored.eventId, error: String((error as Error)?.stack ?? error) });
        }
      }
    }
  }

  /** The version of a room this server knows; M_NOT_FOUND otherwise. */
  async versionOf(roomId: string): Promise<RoomVersion> {
    const room = await this.store.getRoom(roomId);
    if (!room) throw new MatrixError("M_NOT_FOUND", `Unknown room ${roomId}`);
    const version = roomVersion(room.roomVersion);
    if (!version) throw new MatrixError("M_UNSUPPORTED_ROOM_VERSION", `Room ${roomId} has unsupported version ${room.roomVersion}`);
    return version;
  }

  /** A stored event as the rules see it, with its PDU. */
  async loadEvent(eventId: string): Promise<{ event: RoomEvent; pdu: JsonObject; stored: StoredEvent } | undefined> {
    const stored = await this.store.getEvent(eventId);
    if (!stored) return undefined;
    let hit = this.parsed.get(eventId);
    if (!hit) {
      const version = await this.versionOf(stored.roomId);
      // v1..v5 events may hold floats that only a lossless parse can hash again byte for byte.
      const pdu = parseJson(stored.json, { lossless: !version.strictCanonicalJson }) as JsonObject;
      hit = { event: roomEventFromPdu(pdu, version, eventId), pdu };
      this.parsed.set(eventId, hit);
    }
    return { ...hit, stored };
  }

  /** An event as the rules see it, with its PDU: from the parsed cache when it is there, without a query. */
  async parsedEvent(eventId: string): Promise<{ event: RoomEvent; pdu: JsonObject } | undefined> {
    return this.parsed.get(eventId) ?? this.loadEvent(eventId);
  }

  /** The current state event of (type, state_key), parsed. */
  async currentStateEvent(roomId: string, type: string, stateKey: string): Promise<RoomEvent | undefined> {
    const id = await this.store.currentStateEvent(roomId, type, stateKey);
    return id === undefined ? undefined : (await this.parsedEvent(id))?.event;
  }

  /** Builds, authorizes and persists a local event; M_FORBIDDEN (nothing stored) when the rules refuse it. */
  sendEvent(roomId: string, input: NewLocalEvent): Promise<LocalEventResult> {
    return this.queue.run(roomId, async () => this.buildAndPersist(roomId, await this.versionOf(roomId), input));
  }

  /**
   * An unsigned event on the room's current tip: prev_events from the forward extremities,
   * auth_events by the selection rules from current state, depth, origin_server_ts and the
   * version's own fields. What make_join/make_leave/make_knock hand another server as a template,
   * and what a local event is signed from.
   */
  async prepareEvent(
    roomId: string,
    version: RoomVersion,
    input: Omit<NewLocalEvent, "recordWith" | "transaction">,
  ): Promise<{ pdu: JsonObject; authEvents: RoomEvent[]; createEvent: RoomEvent | undefined; usesPolicyServer: boolean }> {
    checkContent(input.content);
    const prevIds = await this.choosePrevEvents(roomId);
    const prevs: { id: string; event: RoomEvent; pdu: JsonObject }[] = [];
    for (const id of prevIds) prevs.push({ id, ...(await this.parsedEvent(id))! });
    const depth = Math.min(MAX_DEPTH, Math.max(0, ...prevs.map((p) => p.event.depth)) + 1);

    const authKeys = authEventsForEvent({ type: input.type, sender: input.sender, state_key: input.stateKey, content: input.content }, version);
    // The auth events (create, power levels, the sender's membership, ...) in one query, in the
    // selection's order. The same query brings the create event (v12 leaves it out of auth_events,
    // but the rules still read it) and the room's m.room.policy (whether a policy server signs).
    const current = await this.store.currentStateEvents(roomId, [...authKeys, ...EXTRA_STATE_KEYS.filter(([t, k]) => !authKeys.some(([at, ak]) => at === t && ak === k))]);
    const auths: { id: string; event: RoomEvent; pdu: JsonObject }[] = [];
    for (const [type, key] of authKeys) {
      const id = current.get(stateKey(type, key));
      if (id !== undefined) auths.push({ id, ...(await this.parsedEvent(id))! });
    }
    const createId = current.get(CREATE_KEY);
    const createEvent = createId === undefined ? undefined : (await this.parsedEvent(createId))?.event;

    const pdu: JsonObject = {
      room_id: roomId,
      type: input.type,
      sender: input.sender,
      content: input.content,
      origin_server_ts: this.clock.now(),
      depth,
      prev_events: prevs.map((p) => this.reference(p.id, p.pdu, version)),
      auth_events: auths.map((a) => this.reference(a.id, a.pdu, version)),
    };
    this.addVersionFields(pdu, version, input);
    return { pdu, authEvents: auths.map((a) => a.event), createEvent, usesPolicyServer: current.has(POLICY_KEY) };
  }

  /** `deferred`: set inside an atomic batch, whose notifications wait for its commit. */
  private async buildAndPersist(roomId: string, version: RoomVersion, input: NewLocalEvent, deferred?: DeferredNotifications): Promise<LocalEventResult> {
    checkTombstone(roomId, input);
    const { pdu, authEvents, createEvent, usesPolicyServer } = await this.prepareEvent(roomId, version, input);
    const { signed, eventId, limitBytes } = this.signer.signEventWithId ? this.signer.signEventWithId(pdu, version) : this.signedWithId(pdu, version);
    checkLimits(signed, version, limitBytes);
    const event = roomEventFromPdu(signed, version, eventId);

    // Authorize against the event's own auth events, as every receiving server will. We sign every
    // local event, so a restricted join authorised by one of our users carries our signature.
    const checks = { isSignedBy: (server: string) => server === this.signer.serverName, verifySignature: verifyThirdPartyInviteSignature };
    const verdict = authorizeEvent(event, authStateFromEvents(authEvents, createEvent), version, checks);
    if (!verdict.allowed) throw new MatrixError("M_FORBIDDEN", verdict.reason);
    // Signatures are not part of the event ID (nor of a v1/v2 reference), so this one is added last.
    // A room without m.room.policy in its current state names no policy server: nothing to ask.
    const final = this.policySigner && usesPolicyServer ? await this.policySigner(roomId, signed, version) : signed;
    // The size limit counts signatures: the policy server's may take the event past it.
    if (final !== signed) checkLimits(final, version);
    await input.beforePersist?.(event.event_id);

    return this.persistLocal(roomId, final, event, { recordWith: input.recordWith, transaction: input.transaction, deferred });
  }

  private async persistLocal(
    roomId: string,
    signed: JsonObject,
    event: RoomEvent,
    options: { createRoom?: RoomRecord; recordWith?: (eventId: string) => Promise<void>; transaction?: ClientTransactionId; deferred?: DeferredNotifications } = {},
  ): Promise<LocalEventResult> {
    const { createRoom, recordWith, transaction, deferred } = options;
    const delta = new Map<string, string | null>();
    if (event.state_key !== undefined) delta.set(stateKey(event.type, event.state_key), event.event_id);
    // An event that changes no state, outside a batch (a new room's events, whose notifications wait
    // for its commit): its notifications go into its transaction, which may share its batch's round
    // trips with other rooms' (concurrent): it writes rows of its own room, its sender's transaction
    // id and its notifications.
    const independent = !createRoom && !deferred && event.state_key === undefined;
    const companion = independent ? await this.prepareCompanion(roomId, event, signed) : undefined;
    const persist = async () => {
      const row = await this.store.persistEvent({
        event: { ...storedEventOf(event, roomId, signed), transaction },
        stateAfter: { parent: await this.store.currentStateSnapshot(roomId), delta },
        updateForwardExtremities: true,
        createdHere: true,
        updateCurrentState: true,
        createRoom,
      });
      await companion?.write(row);
      return row;
    };
    // The transaction id's record does not wait for the event's writes (on PostgreSQL both go in one
    // round trip); both are awaited before the transaction ends, whichever fails.
    let stored: StoredEvent;
    try {
      stored = recordWith || companion
        ? await this.store.atomically(async () => {
            const [row, recorded] = await Promise.allSettled([persist(), recordWith?.(event.event_id)]);
            if (row.status === "rejected") throw row.reason;
            if (recorded.status === "rejected") throw recorded.reason;
            return row.value;
          }, { concurrent: independent })
        : await persist();
    } catch (error) {
      companion?.settled(false);
      throw error;
    }
    try {
      companion?.settled(true);
    } catch (error) {
      // Committed: nothing after the commit may report the send as failed, nor keep the listeners from hearing of it.
      this.logger.log("error", "what was written with an event failed to settle after the commit", { room_id: roomId, event_id: event.event_id, error: String((error as Error)?.stack ?? error) });
    }
    this.parsed.set(event.event_id, { event, pdu: signed });
    if (deferred) deferred.push({ roomId, stored, pdu: signed });
    else await this.notify(roomId, stored, signed);
    return { eventId: event.event_id, stored, pdu: signed };
  }

  /**
   * The companion's writes for this event. One that fails to prepare is logged and left out: the
   * event listeners then hear of the event after its commit, as of any other (the send never fails
   * for what only its notifications need).
   */
  private async prepareCompanion(roomId: string, event: RoomEvent, pdu: JsonObject): Promise<CompanionWrite | undefined> {
    try {
      return await this.companion?.prepare(roomId, { eventId: event.event_id, sender: event.sender, type: event.type, pdu });
    } catch (error) {
      this.logger.log("error", "could not prepare what is written with an event; it is left to the listeners", { room_id: roomId, event_id: event.event_id, error: String((error as Error)?.stack ?? error) });
      return undefined;
    }
  }

  private signedWithId(pdu: JsonObject, version: RoomVersion): SignedWithId {
    const signed = this.signer.signEvent(pdu, version);
    return { signed, eventId: computeEventId(signed, version) };
  }

  /** The deepest forward extremities, at most MAX_PREV_EVENTS of them. */
  private async choosePrevEvents(roomId: string): Promise<string[]> {
    const ids = await this.store.forwardExtremities(roomId);
    if (ids.length <= MAX_PREV_EVENTS) return ids;
    const withDepth: { id: string; depth: number }[] = [];
    for (const id of ids) withDepth.push({ id, depth: (await this.parsedEvent(id))?.event.depth ?? 0 });
    return withDepth
      .sort((a, b) => b.depth - a.depth || (a.id < b.id ? -1 : 1))
      .slice(0, MAX_PREV_EVENTS)
      .map((x) => x.id);
  }

  /** From v3 on a reference is the event ID itself; only v1/v2 pairs need the reference hash. */
  private reference(eventId: string, pdu: JsonObject, version: RoomVersion): JsonValue {
    return version.eventIdFormat === "server-chosen" ? eventReference(pdu, version) : eventId;
  }

  /** The fields whose presence depends on the room version. */
  private addVersionFields(pdu: JsonObject, version: RoomVersion, input: NewLocalEvent): void {
    if (input.stateKey !== undefined) pdu.state_key = input.stateKey;
    if (input.redacts !== undefined) {
      if (version.redactsInContent) pdu.content = { ...input.content, redacts: input.redacts };
      else pdu.redacts = input.redacts;
    }
    // `origin` is a top-level key the v1..v10 redaction algorithm keeps; v11 dropped it.
    if (version.redaction.keepOriginMembershipPrevState) pdu.origin = this.signer.serverName;
    // v1/v2 event IDs are chosen by the origin server and carried inside the event.
    if (version.eventIdFormat === "server-chosen") pdu.event_id = `$${randomBytes(12).toString("base64url")}:${this.signer.serverName}`;
  }

  /**
   * Creates a room: stores the room record and its m.room.create event. v12 rooms take their ID from
   * the create event's reference hash; older versions get a random "!opaque:server" ID.
   */
  async createRoomWithCreateEvent(creator: string, versionId: string = DEFAULT_ROOM_VERSION, extraContent: JsonObject = {}): Promise<LocalEventResult> {
    const { roomId, persist } = this.prepareCreateEvent(creator, versionId, extraContent);
    return this.queue.run(roomId, () => persist());
  }

  /**
   * Creates a room and sends its first events (all from the creator) in one transaction: when the
   * rules refuse any of them, nothing of the room is stored and M_INVALID_ROOM_STATE names the refused event.
   */
  async createRoomWithEvents(
    creator: string,
    versionId: string,
    extraContent: JsonObject,
    events: readonly NewLocalEvent[],
    chosenRoomId?: string,
  ): Promise<{ roomId: string; results: LocalEventResult[] }> {
    const { roomId, version, persist } = this.prepareCreateEvent(creator, versionId, extraContent, chosenRoomId);
    return this.queue.run(roomId, async () => {
      // Per call, not per engine: batches of other rooms run at the same time.
      const deferred: DeferredNotifications = [];
      let results: LocalEventResult[];
      try {
        // Every persist below joins this one transaction: a refused event rolls back the whole room.
        // A room created with much initial state (or an upgrade copying thousands of bans) is bulk
        // work: a database transaction of its own (TransactionOptions).
        results = await this.store.atomically(async () => {
          const out = [await persist(deferred)];
          for (const input of events) {
            try {
              out.push(await this.buildAndPersist(roomId, version, input, deferred));
            } catch (error) {
              if (error instanceof MatrixError && error.errcode === "M_FORBIDDEN") {
                const what = input.stateKey === undefined ? input.type : `${input.type} (state_key ${JSON.stringify(input.stateKey)})`;
                throw new MatrixError("M_INVALID_ROOM_STATE", `The initial state is not allowed: ${what}: ${error.message}`);
              }
              throw error;
            }
          }
          return out;
        }, { alone: events.length >= BULK_EVENTS });
      } catch (error) {
        for (const d of deferred) this.parsed.delete(d.stored.eventId);
        throw error;
      }
      for (const d of deferred) await this.notify(d.roomId, d.stored, d.pdu);
      return { roomId, results };
    });
  }

  /** A new random room ID of this server, for the versions whose room ID is not the create event's hash. */
  newRoomId(): string {
    return `!${randomBytes(12).toString("base64url").replace(/[-_]/g, "x")}:${this.signer.serverName}`;
  }

  /**
   * Builds and signs a room's m.room.create event; `persist` must run in the room's queue.
   * `chosenRoomId` (from newRoomId, before v12 only): the ID, decided before the room exists.
   */
  private prepareCreateEvent(
    creator: string,
    versionId: string,
    extraContent: JsonObject,
    chosenRoomId?: string,
  ): { roomId: string; version: RoomVersion; persist: (deferred?: DeferredNotifications) => Promise<LocalEventResult> } {
    const version = roomVersion(versionId);
    if (!version) throw new MatrixError("M_UNSUPPORTED_ROOM_VERSION", `Room version ${versionId} is not supported`);
    const content: JsonObject = { ...extraContent, room_version: version.id };
    if (!version.createUsesSender) content.creator = creator;
    else delete content.creator;
    const pdu: JsonObject = {
      type: "m.room.create",
      state_key: "",
      sender: creator,
      content,
      origin_server_ts: this.clock.now(),
      depth: 1,
      prev_events: [],
      auth_events: [],
    };
    if (chosenRoomId !== undefined && version.roomIdFromCreateEvent) throw new Error(`room version ${version.id} takes its room ID from the create event`);
    const provisionalRoomId = version.roomIdFromCreateEvent ? undefined : (chosenRoomId ?? this.newRoomId());
    if (provisionalRoomId) pdu.room_id = provisionalRoomId;
    checkContent(content);
    this.addVersionFields(pdu, version, { type: "m.room.create", sender: creator, stateKey: "", content });
    const signed = this.signer.signEvent(pdu, version);
    checkLimits(signed, version);
    const roomId = provisionalRoomId ?? roomIdFromCreateEvent(signed, version);
    const persist = async (deferred?: DeferredNotifications) => {
      const eventId = computeEventId(signed, version);
      const event = roomEventFromPdu(signed, version, eventId);
      const verdict = authorizeEvent(event, () => undefined, version);
      if (!verdict.allowed) throw new MatrixError("M_BAD_JSON", `Invalid m.room.create event: ${verdict.reason}`);
      if (await this.store.getRoom(roomId)) throw new MatrixError("M_ROOM_IN_USE", `Room ${roomId} already exists`);
      return this.persistLocal(roomId, signed, event, { createRoom: { roomId, roomVersion: version.id, creator, createdTs: this.clock.now() }, deferred });
    };
    return { roomId, version, persist };
  }
}

/** The row a RoomEvent is stored as: the PDU kept whole, the fields queries need beside it. */
export function storedEventOf(event: RoomEvent, roomId: string, pdu: JsonObject, verdict: { rejectedReason?: string; softFailed?: boolean; promoteOutlier?: boolean } = {}): NewEvent {
  return {
    eventId: event.event_id,
    roomId,
    json: JSON.stringify(pdu),
    type: event.type,
    stateKey: event.state_key,
    sender: event.sender,
    depth: event.depth,
    originServerTs: event.origin_server_ts,
    prevEvents: event.prev_events,
    authEvents: event.auth_events,
    membership: event.type === "m.room.member" && typeof event.content.membership === "string" ? event.content.membership : undefined,
    ...verdict,
  };
}

/**
 * Content a client sends must be canonical JSON under the strict rules in every room version: a
 * float or an integer past ±(2^53-1) could not be hashed and stored byte-identically (Synapse
 * refuses them with the same error from room version 6 on).
 */
function checkContent(content: JsonObject): void {
  const problem = validateCanonicalJson(content, { strict: true });
  if (problem) throw new MatrixError("M_BAD_JSON", `Bad JSON value: ${problem.message}`);
}

/**
 * An m.room.tombstone of ours is a state event naming another room (the spec's schema requires
 * replacement_room); the spec says no more, and Synapse refuses the others with 400, as here.
 */
function checkTombstone(roomId: string, input: NewLocalEvent): void {
  if (input.type !== "m.room.tombstone") return;
  if (input.stateKey === undefined) throw new MatrixError("M_BAD_JSON", "m.room.tombstone must be a state event");
  const replacement = input.content.replacement_room;
  if (typeof replacement !== "string") throw new MatrixError("M_BAD_JSON", "m.room.tombstone needs a replacement_room");
  if (replacement === roomId) throw new MatrixError("M_BAD_JSON", "A tombstone cannot name the room it is sent in as its replacement");
}

function checkLimits(pdu: JsonObject, version: RoomVersion, knownBytes?: number): void {
  const problem = checkEventLimits(pdu, version.strictCanonicalJson, knownBytes);
  if (problem) throw new MatrixError(problem.kind === "too-large" ? "M_TOO_LARGE" : "M_BAD_JSON", problem.reason);
}
