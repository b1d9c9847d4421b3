// The client-server event format (client-server-api "Room Event Format" / ClientEvent): a stored PDU
// without its federation fields, with `unsigned` computed for the viewer — age, the sender device's
// transaction_id, prev_content/replaces_state for state events, and redacted_because for events a
// redaction has pruned.
//
// Erasure (client-server-api "Account deactivation", `erase`): an event whose sender was erased is
// served pruned, by the room version's redaction algorithm and without redacted_because, to a viewer
// who was not joined to the room at the event; those who were see it whole. Synapse's rule
// ("not joined at the event") exactly. Only timeline reads prune: events served as room state (GET
// /state, /members, a sync's state section) stay whole, as Synapse serves them, so that a room the
// erased user named, created or encrypted keeps its name, version and algorithm for those who join.
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { redactEvent } from "../../protocol/signing/redaction";
import type { RoomVersion } from "../../protocol/room-versions";
import type { RoomClientStore, RoomEventStore, StoredEvent } from "../../storage/stores";
import type { Clock } from "../runtime";

export interface ClientEvent {
  content: JsonObject;
  event_id: string;
  origin_server_ts: number;
  room_id: string;
  sender: string;
  type: string;
  state_key?: string;
  unsigned?: JsonObject;
  /** m.room.redaction in v1..v10 rooms carries `redacts` at the top level. */
  redacts?: string;
}

export interface ClientEventExtras {
  /** Milliseconds since the epoch, for unsigned.age. */
  now: number;
  /** Set when the viewer's device sent the event through a transaction. */
  transactionId?: string;
  /** The replaced state event, for unsigned.prev_content / replaces_state / prev_sender. */
  replacedState?: { eventId: string; content: JsonObject; sender: string };
  /** The redaction that applies to this event, already in client format: the event is served pruned. */
  redactedBecause?: ClientEvent;
  /** For the knocker's own knock event: the stripped state it was given (unsigned.knock_room_state). */
  knockRoomState?: JsonObject[];
  /** The sender was erased and the viewer was not joined at the event: served pruned, without redacted_because. */
  erased?: boolean;
}

/** A stored PDU in the client format. Pure: every lookup result arrives in `extras`. */
export function clientEventFromPdu(pdu: JsonObject, stored: StoredEvent, version: RoomVersion, extras: ClientEventExtras): ClientEvent {
  const pruned = extras.redactedBecause !== undefined || extras.erased === true;
  const source = pruned ? redactEvent(pdu, version) : pdu;
  const content = (source.content && typeof source.content === "object" && !Array.isArray(source.content) ? source.content : {}) as JsonObject;
  const event: ClientEvent = {
    content,
    event_id: stored.eventId,
    origin_server_ts: stored.originServerTs,
    room_id: stored.roomId,
    sender: stored.sender,
    type: stored.type,
  };
  if (stored.stateKey !== undefined) event.state_key = stored.stateKey;
  if (stored.type === "m.room.redaction" && typeof pdu.redacts === "string" && !pruned) event.redacts = pdu.redacts;
  const unsigned: JsonObject = { age: Math.max(0, extras.now - stored.originServerTs) };
  if (extras.transactionId !== undefined) unsigned.transaction_id = extras.transactionId;
  if (extras.replacedState) {
    unsigned.replaces_state = extras.replacedState.eventId;
    unsigned.prev_content = extras.replacedState.content;
    unsigned.prev_sender = extras.replacedState.sender;
  }
  if (extras.redactedBecause) {
    unsigned.redacted_because = extras.redactedBecause as unknown as JsonObject;
    // Not in the spec; Synapse adds the redaction's ID beside it, and clients and sytest read it.
    unsigned.redacted_by = extras.redactedBecause.event_id;
  }
  if (extras.knockRoomState) unsigned.knock_room_state = extras.knockRoomState;
  event.unsigned = unsigned;
  return event;
}

/**
 * An event in the stripped state form (client-server-api "Stripped state": only sender, type,
 * state_key and content); undefined for what is not a state event of that shape.
 */
/** A state event in the form invites and knocks show (client-server-api "Stripped state"). */
export interface StrippedState {
  type: string;
  state_key: string;
  sender: string;
  content: JsonObject;
  /** Only on the user's own invite or knock event, which is sent whole (see ownMemberEvent). */
  event_id?: string;
  origin_server_ts?: number;
}

export function strippedStateEvent(event: { type?: unknown; state_key?: unknown; sender?: unknown; content?: unknown } | undefined): StrippedState | undefined {
  if (!event || typeof event.type !== "string" || typeof event.state_key !== "string" || typeof event.sender !== "string" || !isJsonObject(event.content)) return undefined;
  return { type: event.type, state_key: event.state_key, sender: event.sender, content: event.content };
}

/**
 * The user's own member event in invite_state/knock_state: whole, with its ID and timestamp, as
 * Synapse sends it (clients show when the invite came from origin_server_ts; stripped of it, Cinny
 * showed invites as sent on 1 January 1970).
 */
export function ownMemberEvent(event: { type?: unknown; state_key?: unknown; sender?: unknown; content?: unknown; origin_server_ts?: unknown } | undefined, eventId: string): StrippedState | undefined {
  const stripped = strippedStateEvent(event);
  if (!stripped) return undefined;
  return { ...stripped, event_id: eventId, ...(typeof event!.origin_server_ts === "number" ? { origin_server_ts: event!.origin_server_ts } : {}) };
}

/** The state types of stripped state for invites and knocks (client-server-api "Stripped state"). */
export const STRIPPED_STATE_TYPES = ["m.room.create", "m.room.join_rules", "m.room.name", "m.room.avatar", "m.room.canonical_alias", "m.room.topic", "m.room.encryption"];

export interface Viewer {
  readonly userId: string;
  readonly deviceId?: string;
}

export interface EventLoader {
  /** The stored event, its PDU and its room's version. */
  load(eventId: string): Promise<{ stored: StoredEvent; pdu: JsonObject; version: RoomVersion } | undefined>;
  /** Whether a redaction event may redact its target (same server, or enough power): checked on read. */
  redactionApplies(redaction: StoredEvent, target: StoredEvent): Promise<boolean>;
  /** Whether the user was erased on deactivation: answered from memory, asked for every event. */
  isErased(userId: string): boolean;
  /** Whether the user was joined to the room at the event. */
  joinedAt(userId: string, stored: StoredEvent): Promise<boolean>;
}

export interface FormatOptions {
  /** The events are served as room state: whole even when their sender was erased. */
  asState?: boolean;
}

/** Gathers the lookups clientEventFromPdu needs: transactions, replaced state, redactions. */
export class ClientEventFormatter {
  constructor(
    private readonly events: RoomEventStore,
    private readonly clientStore: RoomClientStore,
    private readonly loader: EventLoader,
    private readonly clock: Clock,
  ) {}

  /**
   * format for many events, in order (undefined where format gives none): their redactions are
   * looked up in one query, not one per event.
   */
  async formatMany(events: readonly StoredEvent[], viewer?: Viewer, options: FormatOptions = {}): Promise<(ClientEvent | undefined)[]> {
    const redactions = await this.clientStore.redactionsOfMany(events.map((e) => e.eventId));
    const reader = options.asState ? undefined : viewer?.userId;
    const out: (ClientEvent | undefined)[] = [];
    for (const stored of events) out.push(await this.formatFor(stored, viewer, redactions.get(stored.eventId) ?? [], reader));
    return out;
  }

  /**
   * An event of the timeline as `viewer` sees it (pruned when its sender was erased and the viewer
   * was not joined at it). `redactions`: the event's redaction IDs when the caller has looked them up already.
   */
  format(stored: StoredEvent, viewer?: Viewer, redactions?: readonly string[]): Promise<ClientEvent | undefined> {
    return this.formatFor(stored, viewer, redactions, viewer?.userId);
  }

  /** An event served as room state: whole even when its sender was erased (see the head of this file). */
  formatState(stored: StoredEvent, viewer?: Viewer): Promise<ClientEvent | undefined> {
    return this.formatFor(stored, viewer, undefined, undefined);
  }

  /** `reader`: the user erasure is judged for; undefined serves erased senders' events whole. */
  private async formatFor(stored: StoredEvent, viewer: Viewer | undefined, redactions: readonly string[] | undefined, reader: string | undefined): Promise<ClientEvent | undefined> {
    const loaded = await this.loader.load(stored.eventId);
    if (!loaded) return undefined;
    const extras: ClientEventExtras = { now: this.clock.now() };
    // Only the viewer's own events can carry their device's transaction id.
    if (viewer?.deviceId !== undefined && stored.sender === viewer.userId) {
      const txn = await this.clientStore.transactionOf(stored.eventId);
      if (txn && txn.userId === viewer.userId && txn.deviceId === viewer.deviceId) extras.transactionId = txn.txnId;
    }
    const redaction = await this.applicableRedaction(stored, redactions);
    // The redaction is served as it stands, without redactions of its own: in v1/v2 rooms the
    // sending server picks event IDs, so two redactions can name each other, and following them
    // would never end.
    if (redaction) extras.redactedBecause = await this.formatFor(redaction, undefined, [], reader);
    else if (reader !== undefined && (await this.erasedFor(reader, stored))) extras.erased = true;
    else if (stored.stateKey !== undefined) extras.replacedState = await this.replacedState(stored, reader);
    if (stored.type === "m.room.member" && stored.stateKey === viewer?.userId && loaded.pdu.content && (loaded.pdu.content as JsonObject).membership === "knock") {
      extras.knockRoomState = await this.strippedStateAt(stored);
    }
    return clientEventFromPdu(loaded.pdu, stored, loaded.version, extras);
  }

  /**
   * The stripped state a knocker is given with their knock (client-server-api "Stripped state"):
   * the room's create, join rules, name, avatar, canonical alias, topic and encryption events as
   * they stood with the knock.
   */
  async strippedStateAt(stored: StoredEvent): Promise<JsonObject[]> {
    if (stored.stateSnapshot === undefined) return [];
    const out: JsonObject[] = [];
    for (const type of STRIPPED_STATE_TYPES) {
      const id = await this.events.stateEntryAt(stored.stateSnapshot, type, "");
      const loaded = id === undefined ? undefined : await this.loader.load(id);
      if (loaded) out.push({ type, state_key: "", sender: loaded.stored.sender, content: (loaded.pdu.content ?? {}) as JsonObject });
    }
    return out;
  }

  /** The first valid redaction of an event, if any. A redaction naming itself redacts nothing (as in Synapse). */
  async applicableRedaction(stored: StoredEvent, known?: readonly string[]): Promise<StoredEvent | undefined> {
    for (const id of known ?? (await this.clientStore.redactionsOf(stored.eventId))) {
      if (id === stored.eventId) continue;
      const redaction = await this.events.getEvent(id);
      if (redaction && !redaction.rejectedReason && (await this.loader.redactionApplies(redaction, stored))) return redaction;
    }
    return undefined;
  }

  /** Whether the event's sender was erased and `reader` was not joined at it. No query unless the sender was erased. */
  private async erasedFor(reader: string, stored: StoredEvent): Promise<boolean> {
    return this.loader.isErased(stored.sender) && !(await this.loader.joinedAt(reader, stored));
  }

  /** The state event this one replaced: the entry for its key in the state before it (its first prev event's state). */
  private async replacedState(stored: StoredEvent, reader: string | undefined): Promise<ClientEventExtras["replacedState"]> {
    const prev = stored.prevEvents[0] !== undefined ? await this.events.getEvent(stored.prevEvents[0]) : undefined;
    if (prev?.stateSnapshot === undefined) return undefined;
    const replacedId = await this.events.stateEntryAt(prev.stateSnapshot, stored.type, stored.stateKey!);
    if (replacedId === undefined || replacedId === stored.eventId) return undefined;
    const replaced = await this.events.getEvent(replacedId);
    const loaded = replaced && (await this.loader.load(replacedId));
    if (!replaced || !loaded) return undefined;
    // A redacted predecessor shows its pruned content; so does an erased one, to whom erasure applies.
    const prune = (await this.applicableRedaction(replaced)) || (reader !== undefined && (await this.erasedFor(reader, replaced)));
    const pdu = prune ? redactEvent(loaded.pdu, loaded.version) : loaded.pdu;
    return { eventId: replacedId, content: (pdu.content ?? {}) as JsonObject, sender: replaced.sender };
  }
}
