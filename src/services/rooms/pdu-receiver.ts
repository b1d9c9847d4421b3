// Receiving a PDU from another server (or replaying one): the checks of server-server-api.md
// "Checks performed on receipt of a PDU", in the spec's order, then persistence with the state
// before and after the event. Step numbers below are the spec's.
import { authEventsForEvent, authorizeEvent, authStateFromEvents, checkAuthEventsShape, type AuthChecks, type AuthStateLookup } from "../../protocol/auth";
import { stateKey, type RoomEvent, type StateMap } from "../../protocol/events";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { PduFormatError, roomEventFromPdu } from "../../protocol/pdu";
import { CanonicalJsonError } from "../../protocol/canonical-json";
import { EventIdError } from "../../protocol/signing/event-id";
import { checkEventLimits } from "../../protocol/event-limits";
import { roomVersion, type RoomVersion } from "../../protocol/room-versions";
import { resolveState } from "../../protocol/state-res";
import { checkContentHash } from "../../protocol/signing/hashes";
import { verifyEventSignature, verifyEventSignatures, type EventSignaturesVerdict, type VerifyKeyLookup } from "../../protocol/signing/event-signatures";
import { redactEvent } from "../../protocol/signing/redaction";
import { verifyThirdPartyInviteSignature } from "../../protocol/signing/third-party-invite";
import type { RoomEventStore, StateDelta, StoredEvent } from "../../storage/stores";
import { storedEventOf, type RoomEngine } from "./room-engine";

export interface ReceiveOptions {
  /**
   * The state after prev events this server does not hold (key -> event id), learnt from the
   * sending server (/state_ids at the prev event, plus the prev event itself): with these, an event
   * after a gap in what we hold is still checked against the state before it.
   */
  readonly prevStates?: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /**
   * The spam policies' verdict on an event whose signatures and hash passed. An event found to be
   * spam is stored redacted and soft-failed: kept for the DAG, never shown and never built on (what
   * Synapse does with an event its spam checker refuses over federation).
   */
  readonly isSpam?: (event: RoomEvent) => Promise<boolean>;
  /**
   * Receipt check 7 (spec v1.18): whether the room's policy server recommends the event (true when
   * the room uses none). An event it does not recommend is soft-failed.
   */
  readonly policyRecommends?: (pdu: JsonObject) => Promise<boolean>;
  /**
   * Receipt check 2's verdict, when the caller started it earlier (verifyEventSignaturesAsync with
   * the same lookup): a batch's signatures are checked off the thread while the events before them
   * are stored.
   */
  readonly signatures?: Promise<EventSignaturesVerdict>;
  /**
   * History fetched from another server (backfill): stored at this stream ordering, below everything
   * held, and not checked against current state (soft failure is for new events); it moves neither
   * forward extremities nor current state, and no listener hears of it.
   */
  readonly historicalOrdering?: number;
  /** The event ID when the caller has computed it already (from room v3 on it is a hash of the PDU). */
  readonly eventId?: string;
}

/** One PDU of a batch (PduReceiver.receiveMany). */
export interface BatchItem {
  readonly pdu: JsonObject;
  readonly lookupKey: VerifyKeyLookup;
  readonly options?: ReceiveOptions;
}

type Deferred = { stored: StoredEvent; pdu: JsonObject }[];

/**
 * What one batch of receiveMany reads once for all its events: which of them the store holds
 * already, and the current state the soft-failure check reads (until a state event of the batch is
 * stored: then it is read again).
 */
interface BatchReads {
  readonly held: ReadonlySet<string>;
  readonly seen: Set<string>;
  currentState: Map<string, Map<string, string>>;
}

export type ReceiveOutcome =
  | { readonly outcome: "accepted" | "soft-failed" | "rejected"; readonly eventId: string; readonly reason?: string; readonly stored: StoredEvent; readonly redacted: boolean }
  | { readonly outcome: "dropped"; readonly eventId?: string; readonly reason: string };

function delta(from: ReadonlyMap<string, string>, to: ReadonlyMap<string, string>): StateDelta {
  const changes = new Map<string, string | null>();
  for (const [k, v] of to) if (from.get(k) !== v) changes.set(k, v);
  for (const k of from.keys()) if (!to.has(k)) changes.set(k, null);
  return changes;
}

/**
 * Receipt checks 2 and 3 (server-server-api "Checks performed on receipt of a PDU"): the event
 * passes the signature checks, else it is dropped; it passes the hash check, else it is redacted
 * before anything else reads it (its `unsigned` kept). For every event taken from another server,
 * whether it joins the timeline or is kept as an outlier.
 */
export function checkSignaturesAndHash(
  received: JsonObject,
  event: RoomEvent,
  version: RoomVersion,
  lookupKey: VerifyKeyLookup,
  signatures: EventSignaturesVerdict = verifyEventSignatures(received, version, lookupKey),
): { ok: true; pdu: JsonObject; event: RoomEvent; redacted: boolean } | { ok: false; reason: string } {
  if (!signatures.valid) return { ok: false, reason: `signature check failed: ${signatures.reason}` };
  const hash = checkContentHash(received, version);
  if (hash.valid) return { ok: true, pdu: received, event, redacted: false };
  if (hash.problem === "not-canonical-json") return { ok: false, reason: `not canonical JSON: ${hash.reason}` };
  const pdu = { ...redactEvent(received, version), ...(isJsonObject(received.unsigned) ? { unsigned: received.unsigned } : {}) };
  return { ok: true, pdu, event: roomEventFromPdu(pdu, version, event.event_id), redacted: true };
}

export class PduReceiver {
  constructor(
    private readonly store: RoomEventStore,
    private readonly engine: RoomEngine,
  ) {}

  /** Runs the checks and stores the PDU, inside the room's write queue. */
  receive(pdu: JsonObject, lookupKey: VerifyKeyLookup, options: ReceiveOptions = {}): Promise<ReceiveOutcome> {
    const roomKey = typeof pdu.room_id === "string" ? pdu.room_id : "(create)";
    return this.engine.queue.run(roomKey, () => this.check(pdu, lookupKey, options));
  }

  /**
   * History of one room from another server (backfill), oldest first, stored in one transaction
   * below every stream ordering held: the oldest lowest, so /messages pages back through it in order.
   */
  receiveHistorical(roomId: string, items: readonly BatchItem[]): Promise<(ReceiveOutcome | { readonly error: unknown })[]> {
    return this.engine.queue.run(roomId, () =>
      this.store.atomically(async () => {
        const base = await this.store.minStreamOrdering();
        const out: (ReceiveOutcome | { error: unknown })[] = [];
        for (const [index, item] of items.entries()) {
          const options: ReceiveOptions = { ...item.options, historicalOrdering: base - items.length + index };
          try {
            out.push(await this.store.atomically(() => this.check(item.pdu, item.lookupKey, options)));
          } catch (error) {
            out.push({ error });
          }
        }
        return out;
      }),
    );
  }

  /**
   * PDUs of one room, in order, checked and stored in one database transaction: a federation
   * transaction's events of a room cost one commit, not one each. Each PDU has its own savepoint,
   * so one that throws (its outcome is the error) leaves the others; listeners hear of the accepted
   * ones after the commit, in order. The callers' options must not reach out of the process (the
   * spam verdicts, say, are asked before): the transaction holds the one writer.
   */
  receiveMany(roomId: string, items: readonly BatchItem[]): Promise<(ReceiveOutcome | { readonly error: unknown })[]> {
    return this.engine.queue.run(roomId, async () => {
      const deferred: Deferred = [];
      const outcomes = await this.store.atomically(async () => {
        const out: (ReceiveOutcome | { error: unknown })[] = [];
        const ids = items.flatMap((item) => (item.options?.eventId !== undefined ? [item.options.eventId] : []));
        const batch: BatchReads = { held: new Set((await this.store.getEvents(ids)).keys()), seen: new Set(), currentState: new Map() };
        for (const item of items) {
          const mark = deferred.length;
          try {
            out.push(await this.store.atomically(() => this.check(item.pdu, item.lookupKey, item.options ?? {}, deferred, batch)));
          } catch (error) {
            deferred.length = mark;
            // Its savepoint is rolled back: what the batch read since may not hold.
            batch.currentState.clear();
            out.push({ error });
          }
        }
        return out;
      });
      await this.engine.notifyMany(roomId, deferred);
      return outcomes;
    });
  }

  private async versionFor(pdu: JsonObject): Promise<RoomVersion | string> {
    const known = typeof pdu.room_id === "string" ? await this.store.getRoom(pdu.room_id) : undefined;
    if (pdu.type === "m.room.create" && isJsonObject(pdu.content) && !known) {
      // A room's first event names its version (v1 rooms may leave it out).
      const id = typeof pdu.content.room_version === "string" ? pdu.content.room_version : "1";
      return roomVersion(id) ?? `unsupported room version ${id}`;
    }
    if (typeof pdu.room_id !== "string") return "no room_id";
    if (!known) return `unknown room ${pdu.room_id}`;
    return roomVersion(known.roomVersion) ?? `unsupported room version ${known.roomVersion}`;
  }

  private async check(received: JsonObject, lookupKey: VerifyKeyLookup, options: ReceiveOptions, deferred?: Deferred, batch?: BatchReads): Promise<ReceiveOutcome> {
    const version = await this.versionFor(received);
    if (typeof version === "string") return { outcome: "dropped", reason: version };

    // 1. Is a valid event: otherwise dropped.
    let event: RoomEvent;
    try {
      event = roomEventFromPdu(received, version, options.eventId);
    } catch (error) {
      if (error instanceof PduFormatError || error instanceof EventIdError || error instanceof CanonicalJsonError) {
        return { outcome: "dropped", reason: `malformed PDU: ${error.message}` };
      }
      throw error;
    }
    // Absent from the store when the batch began, and not met since in it: no need to ask again.
    const knownAbsent = batch !== undefined && options.eventId === event.event_id && !batch.held.has(event.event_id) && !batch.seen.has(event.event_id);
    batch?.seen.add(event.event_id);
    const existing = knownAbsent ? undefined : await this.store.getEvent(event.event_id);
    // An accepted outlier (a join's state, an auth event) that backfill reaches in the room's
    // history goes through the checks again, with its place in the timeline (as Synapse does).
    const promote = existing !== undefined && options.historicalOrdering !== undefined && existing.outlier && existing.rejectedReason === undefined && existing.roomId === event.room_id;
    if (existing && !promote) return existing.roomId === event.room_id ? this.outcomeOf(existing) : { outcome: "dropped", eventId: event.event_id, reason: "event ID already used in another room" };
    const limits = checkEventLimits(received, version.strictCanonicalJson);
    if (limits) return { outcome: "dropped", eventId: event.event_id, reason: limits.reason };
    if (!promote && event.type === "m.room.create" && event.room_id !== undefined && (await this.store.getRoom(event.room_id))) {
      return { outcome: "dropped", eventId: event.event_id, reason: "the room already has its m.room.create event" };
    }
    if (!isJsonObject(received.hashes) || typeof received.hashes.sha256 !== "string") return { outcome: "dropped", eventId: event.event_id, reason: "PDU has no hashes.sha256" };

    // 2. and 3.
    const verified = checkSignaturesAndHash(received, event, version, lookupKey, options.signatures ? await options.signatures : undefined);
    if (!verified.ok) return { outcome: "dropped", eventId: event.event_id, reason: verified.reason };
    let { pdu, redacted } = verified;
    event = verified.event;
    let spam = false;
    if (options.isSpam && !redacted && event.type !== "m.room.create" && (await options.isSpam(event))) {
      spam = redacted = true;
      pdu = { ...redactEvent(pdu, version), ...(isJsonObject(pdu.unsigned) ? { unsigned: pdu.unsigned } : {}) };
      event = roomEventFromPdu(pdu, version, event.event_id);
    }
    const checks = signatureAuthChecks(pdu, version, lookupKey);

    // 4. Passes authorization rules based on the event's auth events: otherwise rejected.
    const authEvents: RoomEvent[] = [];
    const rejectedAuthEvents = new Set<string>();
    let rejection: string | undefined;
    for (const id of event.auth_events) {
      const stored = await this.store.getEvent(id);
      if (!stored) return { outcome: "dropped", eventId: event.event_id, reason: `auth event ${id} is not known` };
      // An auth event of another room can never authorize this one: rejected (as Synapse does; it
      // is kept, so a later event citing it is rejected too, not fetched again).
      if (stored.roomId !== event.room_id) {
        rejection ??= `auth event ${id} belongs to another room`;
        continue;
      }
      if (stored.rejectedReason !== undefined) rejectedAuthEvents.add(id);
      authEvents.push((await this.engine.parsedEvent(id))!.event);
    }
    // A redaction of an event of another room redacts nothing and is refused (as Synapse does).
    const redacts = event.type === "m.room.redaction" ? event.redacts : undefined;
    if (rejection === undefined && redacts !== undefined) {
      const target = await this.store.getEvent(redacts);
      if (target && target.roomId !== event.room_id) rejection = `redacts ${redacts}, an event of another room`;
    }
    const createEvent = version.createEventNotInAuthEvents && event.room_id ? (await this.engine.parsedEvent(`$${event.room_id.slice(1)}`))?.event : undefined;
    const shape = rejection === undefined ? checkAuthEventsShape(event, authEvents, version, (id) => rejectedAuthEvents.has(id)) : { allowed: true as const };
    if (!shape.allowed) rejection = shape.reason;
    else if (rejection === undefined) {
      const byAuthEvents = authorizeEvent(event, authStateFromEvents(authEvents, createEvent), version, checks);
      if (!byAuthEvents.allowed) rejection = byAuthEvents.reason;
    }

    // 5. Passes authorization rules based on the state before the event: otherwise rejected.
    const prevs: StoredEvent[] = [];
    const gapStates: ReadonlyMap<string, string>[] = [];
    for (const id of event.prev_events) {
      const prev = await this.store.getEvent(id);
      if (prev && !prev.outlier && prev.stateSnapshot !== undefined) {
        if (prev.roomId !== event.room_id) return { outcome: "dropped", eventId: event.event_id, reason: "prev_events belong to another room" };
        prevs.push(prev);
        continue;
      }
      const known = options.prevStates?.get(id);
      if (!known) return { outcome: "dropped", eventId: event.event_id, reason: `prev event ${id} is not known` };
      gapStates.push(known);
    }
    // With one prev event held (the usual case), the state before is that event's snapshot: the rules
    // read a few of its entries, and no map of the whole state is built (a 5,000-member room would
    // cost 5,000 entries per event). Several prev events, or a gap, need the full states resolved.
    const single = prevs.length === 1 && gapStates.length === 0 ? prevs[0] : undefined;
    const stateBefore = single ? undefined : await this.stateBefore(version, prevs, gapStates);
    const authKeys = authStateKeys(event, version);
    if (rejection === undefined) {
      const before = single ? await this.snapshotEntries(single.stateSnapshot!, authKeys) : stateBefore!;
      const byState = authorizeEvent(event, await this.authState(event, version, before), version, checks);
      if (!byState.allowed) rejection = byState.reason;
    }

    // 6. Passes authorization rules based on the current state of the room: otherwise soft failed.
    const historical = options.historicalOrdering !== undefined;
    let softFailed = spam && rejection === undefined;
    if (rejection === undefined && !softFailed && !historical && event.type !== "m.room.create") {
      const current = await this.currentStateFor(event.room_id!, authKeys, batch);
      softFailed = !authorizeEvent(event, await this.authState(event, version, current), version, checks).allowed;
    }
    // 7. Validated by the room's policy server, if it uses one: otherwise soft failed.
    if (rejection === undefined && !softFailed && !historical && options.policyRecommends && !(await options.policyRecommends(pdu))) softFailed = true;

    if (event.type === "m.room.create" && rejection !== undefined) return { outcome: "dropped", eventId: event.event_id, reason: `invalid m.room.create: ${rejection}` };
    const ownEntry = rejection === undefined && event.state_key !== undefined ? stateKey(event.type, event.state_key) : undefined;
    const parent = prevs.length > 0 ? prevs[0].stateSnapshot : undefined;
    let stateDelta: StateDelta;
    let stateAfter: () => Promise<Map<string, string>>;
    if (single) {
      stateDelta = new Map(ownEntry === undefined ? [] : [[ownEntry, event.event_id]]);
      stateAfter = async () => {
        const state = await this.store.stateAt(parent!);
        if (ownEntry !== undefined) state.set(ownEntry, event.event_id);
        return state;
      };
    } else {
      const after = new Map(stateBefore!);
      if (ownEntry !== undefined) after.set(ownEntry, event.event_id);
      stateDelta = delta(parent === undefined ? new Map<string, string>() : await this.store.stateAt(parent), after);
      stateAfter = async () => after;
    }
    const roomId = event.room_id ?? `!${event.event_id.slice(1)}`;
    const accepted = rejection === undefined && !softFailed;
    // An outlier the timeline's state does not allow stays the outlier it was.
    if (promote && !accepted) return this.outcomeOf(existing!);
    const currentState = accepted && !historical ? await this.currentStateAfter(version, roomId, event, stateAfter) : false;

    const createRoom = !promote && event.type === "m.room.create" && rejection === undefined && !(await this.store.getRoom(roomId))
      ? { roomId, roomVersion: version.id, creator: event.sender, createdTs: event.origin_server_ts }
      : undefined;
    const stored = await this.store.persistEvent({
      event: storedEventOf(event, roomId, pdu, { rejectedReason: rejection, softFailed, ...(promote ? { promoteOutlier: true } : {}) }),
      stateAfter: { parent, delta: stateDelta },
      updateForwardExtremities: accepted && !historical,
      updateCurrentState: currentState,
      createRoom,
      historicalOrdering: options.historicalOrdering,
    });
    // The current state moves with an accepted state event, or a resolution of forks.
    if (batch && currentState !== false && (event.state_key !== undefined || typeof currentState === "object")) batch.currentState.clear();
    // After the commit: listeners only ever hear of stored events.
    if (accepted && !historical) {
      if (deferred) deferred.push({ stored, pdu });
      else await this.engine.notify(roomId, stored, pdu);
    }
    if (rejection !== undefined) return { outcome: "rejected", eventId: event.event_id, reason: rejection, stored, redacted };
    return { outcome: softFailed ? "soft-failed" : "accepted", eventId: event.event_id, stored, redacted };
  }

  /** Current state under these keys; within a batch, read once until one of its state events is stored. */
  private async currentStateFor(roomId: string, keys: readonly (readonly [string, string])[], batch: BatchReads | undefined): Promise<Map<string, string>> {
    if (!batch) return this.store.currentStateEvents(roomId, keys);
    const cacheKey = keys.map(([type, key]) => stateKey(type, key)).join("\u0001");
    let current = batch.currentState.get(cacheKey);
    if (!current) batch.currentState.set(cacheKey, (current = await this.store.currentStateEvents(roomId, keys)));
    return new Map(current);
  }

  private outcomeOf(stored: StoredEvent): ReceiveOutcome {
    if (stored.rejectedReason !== undefined) return { outcome: "rejected", eventId: stored.eventId, reason: stored.rejectedReason, stored, redacted: false };
    return { outcome: stored.softFailed ? "soft-failed" : "accepted", eventId: stored.eventId, stored, redacted: false };
  }

  /** The state before an event: the state after its one prev event, or the resolution of several. */
  private async stateBefore(version: RoomVersion, prevs: StoredEvent[], gapStates: readonly ReadonlyMap<string, string>[] = []): Promise<Map<string, string>> {
    const states: Map<string, string>[] = gapStates.map((state) => new Map(state));
    for (const p of prevs) states.push(await this.store.stateAt(p.stateSnapshot!));
    if (states.length <= 1) return states[0] ?? new Map();
    return this.resolve(version, states);
  }

  /**
   * The room's current state once this event is a forward extremity: the state after it when it
   * replaces every extremity, else the resolution of the states at all of them.
   */
  private async currentStateAfter(version: RoomVersion, roomId: string, event: RoomEvent, stateAfter: () => Promise<Map<string, string>>) {
    const remaining = (await this.store.forwardExtremities(roomId)).filter((id) => !event.prev_events.includes(id));
    if (remaining.length === 0) return true;
    const states = [await stateAfter()];
    for (const id of remaining) states.push(await this.store.stateAt((await this.store.getEvent(id))!.stateSnapshot!));
    const resolved = await this.resolve(version, states);
    const parent = await this.store.currentStateSnapshot(roomId);
    const parentState = parent === undefined ? new Map<string, string>() : await this.store.stateAt(parent);
    return { parent, delta: delta(parentState, resolved) };
  }

  /** The entries of a snapshot under these keys (key -> event id), read one by one. */
  private async snapshotEntries(snapshot: number, keys: readonly (readonly [string, string])[]): Promise<Map<string, string>> {
    const entries = new Map<string, string>();
    for (const [type, key] of keys) {
      const id = await this.store.stateEntryAt(snapshot, type, key);
      if (id !== undefined) entries.set(stateKey(type, key), id);
    }
    return entries;
  }

  private resolve(version: RoomVersion, states: StateMap[]): Promise<StateMap> {
    return resolveState(version, states, {
      fetchEvent: async (id) => (await this.engine.parsedEvent(id))?.event,
      authChain: (ids) => this.store.authChain(ids),
      isRejected: async (id) => (await this.store.getEvent(id))?.rejectedReason !== undefined,
    });
  }

  /**
   * A state map as the auth rules read it for this event. The rules are synchronous, so the events
   * they may look at — the create event and the pieces the auth events selection names — are loaded
   * first; the rules read nothing else.
   */
  async authState(event: RoomEvent, version: RoomVersion, state: ReadonlyMap<string, string>): Promise<AuthStateLookup> {
    const loaded = new Map<string, RoomEvent>();
    for (const [type, key] of authStateKeys(event, version)) {
      const id = state.get(stateKey(type, key));
      const found = id === undefined ? undefined : (await this.engine.parsedEvent(id))?.event;
      if (found) loaded.set(stateKey(type, key), found);
    }
    return (type, key) => loaded.get(stateKey(type, key));
  }
}

/** The state entries the auth rules may read for an event: the create event and the auth events selection's. */
function authStateKeys(event: RoomEvent, version: RoomVersion): (readonly [string, string])[] {
  return [["m.room.create", ""], ...authEventsForEvent(event, version)];
}

/**
 * The signature facts the auth rules need: a restricted join's authorising server must have
 * signed it (v8+), checked against that server's key, not just by the signature's presence.
 */
export function signatureAuthChecks(pdu: JsonObject, version: RoomVersion, lookupKey: VerifyKeyLookup): AuthChecks {
  return {
    // 5.4.1.7: a third-party invite's token signature, under the keys of its m.room.third_party_invite.
    verifySignature: verifyThirdPartyInviteSignature,
    isSignedBy: (serverName) => {
      const fromServer = isJsonObject(pdu.signatures) ? pdu.signatures[serverName] : undefined;
      if (!isJsonObject(fromServer)) return false;
      return Object.keys(fromServer).some((keyId) => {
        const key = lookupKey(serverName, keyId);
        return key !== undefined && verifyEventSignature(pdu, version, serverName, keyId, key).valid;
      });
    },
  };
}
