// Events that arrive from other servers, before the receipt checks: the signing keys they need,
// the auth events and prev events we do not hold yet (fetched from the sending server), and the
// room state handed over by a join (outliers, checked against their own auth events). The checks
// themselves are the PduReceiver's, in the spec's order.
import { authorizeEvent, authStateFromEvents } from "../../protocol/auth";
import { stateKey, type RoomEvent } from "../../protocol/events";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { roomEventFromPdu } from "../../protocol/pdu";
import { roomVersion, type RoomVersion } from "../../protocol/room-versions";
import { verifyEventSignaturesAsync, type VerifyKeyLookup } from "../../protocol/signing/event-signatures";
import { offThreadEd25519 } from "../../protocol/signing/ed25519";
import { checkEventLimits } from "../../protocol/event-limits";
import type { RoomEventStore } from "../../storage/stores";
import { checkSignaturesAndHash, signatureAuthChecks, type BatchItem, type PduReceiver, type ReceiveOutcome } from "../rooms/pdu-receiver";
import { storedEventOf, type RoomEngine } from "../rooms/room-engine";
import type { Logger } from "../runtime";
import type { FederationClient, KeyRequest, ServerKeyRing } from "./contracts";
import type { SpamChecks } from "../plugins/spam-decisions";
import { serverNameOf } from "../../protocol/identifiers";
import { Yielder, topologicalOrder, compareEventIds } from "../../protocol/state-res";

export interface EventIngestDeps {
  serverName: string;
  receiver: PduReceiver;
  engine: RoomEngine;
  store: RoomEventStore;
  keyRing: ServerKeyRing;
  client: FederationClient;
  logger: Logger;
  /** The spam policies, asked about every event of another server's user that we receive. */
  policies?: SpamChecks;
  /** Servers with a joined member in a room (where to ask for its history). */
  joinedServers?: (roomId: string) => Promise<string[]>;
  /** Receipt check 7: whether the room's policy server recommends a received event. */
  policyServer?: { recommends(roomId: string, pdu: JsonObject, version: RoomVersion): Promise<boolean>; activeConfig(roomId: string): Promise<unknown> };
}

/** How many events one gap may pull in with /get_missing_events. */
const MISSING_EVENTS_LIMIT = 20;
/** At most this many edges of a backfilled batch get the state there fetched (/state each). */
const MAX_BACKFILL_GAPS = 5;
/** Missing events of a state fetched with /event each; more than this, and /state gives them all at once. */
const MAX_EVENTS_FETCHED_ONE_BY_ONE = 50;
/** At most this many servers' keys are fetched for one event (a PDU names its signers itself). */
const MAX_SIGNING_SERVERS = 8;

export interface ImportedOutlier {
  eventId: string;
  event: RoomEvent;
  pdu: JsonObject;
  rejected: boolean;
}

const enc = encodeURIComponent;

export class FederationEventIngest {
  constructor(private readonly deps: EventIngestDeps) {}

  /** The keys of every server that signed these PDUs, fetched when missing (valid at each event's time from room v5). */
  async fetchKeysFor(pdus: readonly JsonObject[], version: RoomVersion): Promise<void> {
    const requests: KeyRequest[] = [];
    const seen = new Set<string>();
    for (const pdu of pdus) {
      if (!isJsonObject(pdu.signatures)) continue;
      const validAt = this.validAt(pdu, version);
      for (const [server, keys] of Object.entries(pdu.signatures).slice(0, MAX_SIGNING_SERVERS)) {
        if (!isJsonObject(keys)) continue;
        for (const keyId of Object.keys(keys)) {
          const k = `${server}\u0000${keyId}\u0000${validAt}`;
          if (seen.has(k) || this.deps.keyRing.cached(server, keyId, validAt) !== undefined) continue;
          seen.add(k);
          requests.push({ serverName: server, keyId, validAt });
        }
      }
    }
    if (requests.length > 0) await this.deps.keyRing.fetch(requests);
  }

  /** Key lookups for one event: from room v5 a key must be valid when the event was sent. */
  keyLookup(pdu: JsonObject, version: RoomVersion): VerifyKeyLookup {
    const validAt = this.validAt(pdu, version);
    return (server, keyId) => this.deps.keyRing.cached(server, keyId, validAt);
  }

  private validAt(pdu: JsonObject, version: RoomVersion): number {
    return version.enforceKeyValidity && typeof pdu.origin_server_ts === "number" ? pdu.origin_server_ts : 0;
  }

  /**
   * checkEventForSpam for a received event: a shadow or a denial both mean spam (the sender is not
   * ours to answer). Events of our own users were checked when they were sent.
   */
  private readonly isSpam = async (event: RoomEvent): Promise<boolean> => {
    const policies = this.deps.policies;
    if (!policies?.hasSpamPolicies || serverNameOf(event.sender) === this.deps.serverName) return false;
    const spamEvent = { roomId: event.room_id ?? "", sender: event.sender, type: event.type, stateKey: event.state_key, content: event.content, local: false };
    const decision = await policies.spamCheck((p) => p.checkEventForSpam?.(spamEvent));
    if (decision.kind === "allow") return false;
    this.deps.logger.log("info", "a received event is spam: stored redacted and soft-failed", { event_id: event.event_id, room_id: event.room_id, sender: event.sender });
    return true;
  };

  /** Receipt check 7 through the room's policy server, when one is wired. */
  private policyCheck(version: RoomVersion): ((pdu: JsonObject) => Promise<boolean>) | undefined {
    const policyServer = this.deps.policyServer;
    if (!policyServer) return undefined;
    return (pdu) => (typeof pdu.room_id === "string" ? policyServer.recommends(pdu.room_id, pdu, version) : Promise.resolve(true));
  }

  /** The signature facts the auth rules ask of `pdu` (its keys fetched already: fetchKeysFor). */
  authChecks(pdu: JsonObject, version: RoomVersion) {
    return signatureAuthChecks(pdu, version, this.keyLookup(pdu, version));
  }

  /** A state map (key -> event id) as the auth rules read it for `event` (the receiver's own lookup). */
  authState(event: RoomEvent, version: RoomVersion, state: ReadonlyMap<string, string>) {
    return this.deps.receiver.authState(event, version, state);
  }

  /** The receipt checks with the keys fetched first; for events of rooms (and gaps) we already hold. */
  async receive(pdu: JsonObject, version: RoomVersion, prevStates?: ReadonlyMap<string, ReadonlyMap<string, string>>): Promise<ReceiveOutcome> {
    await this.fetchKeysFor([pdu], version);
    return this.deps.receiver.receive(pdu, this.keyLookup(pdu, version), { prevStates, isSpam: this.isSpam, policyRecommends: this.policyCheck(version) });
  }

  /**
   * A PDU from a transaction (/send) or a membership handshake: dropped for rooms we do not hold;
   * missing auth events fetched from `origin` (/event_auth), missing prev events with
   * /get_missing_events, and where a gap remains, the state at each missing prev event (/state)
   * so the event can still be checked against the state before it.
   */
  async receiveFrom(origin: string, pdu: JsonObject, depth = 0): Promise<ReceiveOutcome> {
    const roomId = typeof pdu.room_id === "string" ? pdu.room_id : undefined;
    const room = roomId === undefined ? undefined : await this.deps.store.getRoom(roomId);
    if (!room || !roomId) return { outcome: "dropped", reason: `not in room ${String(pdu.room_id)}` };
    const version = roomVersion(room.roomVersion);
    if (!version) return { outcome: "dropped", reason: `unsupported room version ${room.roomVersion}` };
    let event: RoomEvent;
    try {
      event = roomEventFromPdu(pdu, version);
    } catch (error) {
      return { outcome: "dropped", reason: `malformed PDU: ${(error as Error).message}` };
    }
    if (await this.deps.store.getEvent(event.event_id)) return this.receive(pdu, version);

    // Auth events we do not hold: the origin must be able to tell us (it sent an event that cites them).
    const missingAuth = await this.missing(event.auth_events);
    if (missingAuth.length > 0) await this.fetchAuthChain(origin, roomId, event.event_id, version);

    let missingPrevs = await this.missing(event.prev_events, { timelineOnly: true });
    if (missingPrevs.length > 0 && depth === 0) {
      await this.fetchMissingEvents(origin, roomId, event, version);
      missingPrevs = await this.missing(event.prev_events, { timelineOnly: true });
      // A live event whose prev events its own server will not give is refused, as Synapse does
      // ("isn't divulging details about prev_events"): the state at a gap is asked only for the
      // events that /get_missing_events brought (the spec leaves the choice to the server).
      if (missingPrevs.length > 0) return { outcome: "dropped", eventId: event.event_id, reason: `prev events ${missingPrevs.join(", ")} are not known and ${origin} did not give them` };
    }
    let prevStates: Map<string, Map<string, string>> | undefined;
    if (missingPrevs.length > 0) {
      prevStates = new Map();
      for (const prevId of missingPrevs) {
        const state = await this.stateAfterRemoteEvent(origin, roomId, prevId, version);
        if (!state) return { outcome: "dropped", eventId: event.event_id, reason: `prev event ${prevId} is not known and ${origin} could not give the state at it` };
        prevStates.set(prevId, state);
      }
    }
    return this.receive(pdu, version, prevStates);
  }

  /**
   * The PDUs of one room from one transaction, in order. Those whose auth and prev events we hold
   * (or that come earlier in the list) are checked and stored together, one commit for the lot;
   * one that needs anything fetched from the origin first ends the run and goes through
   * receiveFrom on its own. `eventIds` are the PDUs' IDs where the caller computed them already.
   */
  async receiveAllFrom(origin: string, roomId: string, pdus: readonly JsonObject[], eventIds: readonly (string | undefined)[] = []): Promise<ReceiveOutcome[]> {
    const room = await this.deps.store.getRoom(roomId);
    const version = room ? roomVersion(room.roomVersion) : undefined;
    const results: ReceiveOutcome[] = [];
    if (!version) {
      for (const pdu of pdus) results.push(await this.receiveFrom(origin, pdu));
      return results;
    }
    await this.fetchKeysFor(pdus, version);
    // Most rooms name no policy server: asked once for the batch, not per event. (An m.room.policy
    // event in the batch is received on its own, so the answer holds for the events batched here.)
    const policyCheck = this.deps.policyServer && (await this.deps.policyServer.activeConfig(roomId)) !== undefined ? this.policyCheck(version) : undefined;
    let run: { index: number; item: BatchItem }[] = [];
    const inRun = new Set<string>();
    const events = pdus.map((pdu, index): RoomEvent | undefined => {
      try {
        return pdu.room_id === roomId ? roomEventFromPdu(pdu, version, eventIds[index]) : undefined;
      } catch {
        return undefined;
      }
    });
    // Which of them we hold already: one query for the batch. (One stored by a run of this batch is
    // found by the receiver's own check.)
    const held = await this.deps.store.getEvents(events.flatMap((event) => (event ? [event.event_id] : [])));
    const outsideRun = (ids: readonly string[]) => ids.filter((id) => !inRun.has(id));
    const flush = async (): Promise<void> => {
      if (run.length === 0) return;
      const outcomes = await this.deps.receiver.receiveMany(roomId, run.map((r) => r.item));
      outcomes.forEach((outcome, i) => {
        const { index, item } = run[i]!;
        if (!("error" in outcome)) {
          results[index] = outcome;
          return;
        }
        this.deps.logger.log("error", "receiving a PDU failed", { origin, room_id: roomId, error: String((outcome.error as Error)?.stack ?? outcome.error) });
        results[index] = { outcome: "dropped", eventId: item.options?.eventId, reason: "internal error" };
      });
      run = [];
      inRun.clear();
    };
    for (let index = 0; index < pdus.length; index++) {
      const pdu = pdus[index]!;
      const event = events[index];
      // A change of the room's policy server goes on its own: the events after it are judged by the new one.
      const ready = event !== undefined && !(event.type === "m.room.policy" && event.state_key === "") && !inRun.has(event.event_id) && !held.has(event.event_id)
        && (await this.missing(outsideRun(event.auth_events))).length === 0
        && (await this.missing(outsideRun(event.prev_events), { timelineOnly: true })).length === 0;
      if (ready) {
        // Asked before the transaction opens (the spam policies, the room's policy server): they may
        // take their time, the writer may not.
        const spam = await this.isSpam(event!);
        const recommended = policyCheck ? await policyCheck(pdu) : true;
        const lookupKey = this.keyLookup(pdu, version);
        // Checked off the thread from now on, while the events before it are stored.
        const signatures = verifyEventSignaturesAsync(pdu, version, lookupKey, offThreadEd25519);
        // A PDU the receiver turns away before its check never awaits this.
        signatures.catch(() => undefined);
        run.push({ index, item: { pdu, lookupKey, options: { eventId: event!.event_id, isSpam: async () => spam, policyRecommends: async () => recommended, signatures } } });
        inRun.add(event!.event_id);
        continue;
      }
      await flush();
      results[index] = await this.receiveFrom(origin, pdu);
    }
    await flush();
    return results;
  }

  /**
   * History of a room from before the earliest event we hold in its timeline (server-server-api
   * "Backfilling"): asked of the room's other servers in turn with /backfill, checked like any
   * received event (the state before the oldest of them from /state, their auth chains from
   * /event_auth) and stored below everything held. Returns how many events joined the timeline; 0
   * when the room's history starts here or no server gave any.
   */
  async backfill(roomId: string, limit: number): Promise<number> {
    const room = await this.deps.store.getRoom(roomId);
    const version = room ? roomVersion(room.roomVersion) : undefined;
    if (!version) return 0;
    const [earliest] = await this.deps.store.roomEventsBetween(roomId, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, 1);
    if (!earliest || earliest.type === "m.room.create" || earliest.prevEvents.length === 0) return 0;
    // Asked from the events we lack (the backward extremities), as Synapse asks: a server knows
    // those, while our own earliest event (a join made through another server) it may never have seen.
    const edge = await this.missing(earliest.prevEvents, { timelineOnly: true });
    if (edge.length === 0) return 0;
    const servers = (await this.deps.joinedServers?.(roomId) ?? []).filter((server) => server !== this.deps.serverName);
    for (const origin of servers) {
      let pdus: JsonObject[];
      try {
        const response = await this.deps.client.request("GET", origin, `/_matrix/federation/v1/backfill/${enc(roomId)}`, { query: { v: edge, limit: String(limit) } });
        pdus = isJsonObject(response) && Array.isArray(response.pdus) ? response.pdus.filter((p): p is JsonObject => isJsonObject(p) && p.room_id === roomId) : [];
      } catch (error) {
        this.deps.logger.log("info", "a server did not answer /backfill", { origin, room_id: roomId, error: String(error) });
        continue;
      }
      const stored = await this.storeHistory(origin, roomId, version, pdus.slice(0, limit));
      if (stored > 0) return stored;
    }
    return 0;
  }

  /** Backfilled PDUs, oldest first: what they need fetched first, then stored in one go. */
  private async storeHistory(origin: string, roomId: string, version: RoomVersion, pdus: readonly JsonObject[]): Promise<number> {
    const events: { pdu: JsonObject; event: RoomEvent }[] = [];
    const seen = new Set<string>();
    for (const pdu of pdus) {
      const event = this.parse(pdu, version);
      if (!event || seen.has(event.event_id)) continue;
      // Held in the timeline: nothing to do. Held as an accepted outlier (the room's state from our
      // join, an auth event): the receiver places it in the timeline, so history shows it.
      const held = await this.deps.store.getEvent(event.event_id);
      if (held && (!held.outlier || held.rejectedReason !== undefined)) continue;
      seen.add(event.event_id);
      events.push({ pdu, event });
    }
    if (events.length === 0) return 0;
    await this.orderForReceipt(events);
    await this.fetchKeysFor(events.map((e) => e.pdu), version);
    const prevStates = new Map<string, Map<string, string>>();
    for (const { event } of events) {
      if ((await this.missing(event.auth_events)).some((id) => !seen.has(id))) await this.fetchAuthChain(origin, roomId, event.event_id, version);
      for (const prevId of await this.missing(event.prev_events, { timelineOnly: true })) {
        if (seen.has(prevId) || prevStates.has(prevId)) continue;
        // The edge of what the server gave: the state there, as for a gap (a few at most per batch).
        if (prevStates.size >= MAX_BACKFILL_GAPS) break;
        const state = await this.stateAfterRemoteEvent(origin, roomId, prevId, version);
        if (state) prevStates.set(prevId, state);
      }
    }
    const items: BatchItem[] = [];
    for (const { pdu, event } of events) {
      const spam = await this.isSpam(event);
      items.push({ pdu, lookupKey: this.keyLookup(pdu, version), options: { eventId: event.event_id, prevStates, isSpam: async () => spam } });
    }
    const outcomes = await this.deps.receiver.receiveHistorical(roomId, items);
    let stored = 0;
    for (const outcome of outcomes) {
      if ("error" in outcome) this.deps.logger.log("error", "storing a backfilled event failed", { origin, room_id: roomId, error: String((outcome.error as Error)?.stack ?? outcome.error) });
      else if (outcome.outcome === "accepted") stored++;
    }
    return stored;
  }

  /** Which of these events we do not hold (timelineOnly: or hold only as outliers, without state). */
  private async missing(ids: readonly string[], options: { timelineOnly?: boolean } = {}): Promise<string[]> {
    const held = await this.deps.store.getEvents(ids);
    return ids.filter((id) => {
      const stored = held.get(id);
      return !stored || (options.timelineOnly === true && (stored.outlier || stored.stateSnapshot === undefined));
    });
  }

  private async fetchAuthChain(origin: string, roomId: string, eventId: string, version: RoomVersion): Promise<void> {
    try {
      const response = await this.deps.client.request("GET", origin, `/_matrix/federation/v1/event_auth/${enc(roomId)}/${enc(eventId)}`);
      const chain = isJsonObject(response) && Array.isArray(response.auth_chain) ? response.auth_chain.filter(isJsonObject) : [];
      await this.importOutliers(roomId, version, chain);
    } catch (error) {
      this.deps.logger.log("warn", "could not fetch the auth chain of an event", { origin, room_id: roomId, event_id: eventId, error: String(error) });
    }
  }

  /** /get_missing_events between our forward extremities and the event; each found event is received oldest first. */
  private async fetchMissingEvents(origin: string, roomId: string, event: RoomEvent, version: RoomVersion): Promise<void> {
    let events: JsonObject[] = [];
    try {
      const response = await this.deps.client.request("POST", origin, `/_matrix/federation/v1/get_missing_events/${enc(roomId)}`, {
        body: {
          earliest_events: await this.deps.store.forwardExtremities(roomId),
          latest_events: [event.event_id],
          limit: MISSING_EVENTS_LIMIT,
          min_depth: 0,
        },
      });
      events = isJsonObject(response) && Array.isArray(response.events) ? response.events.filter(isJsonObject) : [];
    } catch (error) {
      this.deps.logger.log("info", "get_missing_events failed; the gap is filled from the state at the missing events", { origin, room_id: roomId, error: String(error) });
      return;
    }
    const depthOf = (pdu: JsonObject) => (typeof pdu.depth === "number" ? pdu.depth : 0);
    for (const missing of events.sort((a, b) => depthOf(a) - depthOf(b))) {
      if (missing.room_id !== roomId) continue;
      const outcome = await this.receiveFrom(origin, missing, 1);
      if (outcome.outcome === "dropped") this.deps.logger.log("info", "a missing event was dropped", { origin, room_id: roomId, reason: outcome.reason });
    }
  }

  /**
   * The state after an event we do not hold, as the origin tells it: /state_ids at the event (the
   * state before it, and its auth chain, as IDs; what the spec says to ask for a gap), the events of
   * it we do not hold fetched (one by one with /event when they are few, else with /state), plus
   * the event itself when it is a state event. Every fetched event is checked and stored as an
   * outlier; only the accepted ones are state.
   */
  private async stateAfterRemoteEvent(origin: string, roomId: string, eventId: string, version: RoomVersion): Promise<Map<string, string> | undefined> {
    try {
      const ids = await this.deps.client.request("GET", origin, `/_matrix/federation/v1/state_ids/${enc(roomId)}`, { query: { event_id: eventId } });
      if (!isJsonObject(ids) || !Array.isArray(ids.pdu_ids)) return undefined;
      const stateIds = ids.pdu_ids.filter((id): id is string => typeof id === "string");
      const chainIds = Array.isArray(ids.auth_chain_ids) ? ids.auth_chain_ids.filter((id): id is string => typeof id === "string") : [];
      const wanted = [...new Set([...chainIds, ...stateIds, eventId])];
      const absent = await this.missing(wanted);
      const fetched: JsonObject[] = [];
      if (absent.length > MAX_EVENTS_FETCHED_ONE_BY_ONE) {
        const state = await this.deps.client.request("GET", origin, `/_matrix/federation/v1/state/${enc(roomId)}`, { query: { event_id: eventId } });
        if (isJsonObject(state)) for (const key of ["auth_chain", "pdus"]) if (Array.isArray(state[key])) fetched.push(...(state[key] as unknown[]).filter(isJsonObject));
        if (absent.includes(eventId)) fetched.push(...(await this.fetchEvents(origin, [eventId])));
      } else {
        fetched.push(...(await this.fetchEvents(origin, absent)));
      }
      await this.importOutliers(roomId, version, fetched);
      if (!(await this.deps.store.getEvent(eventId))) return undefined;
      const held = await this.deps.store.getEvents([...stateIds, eventId]);
      const state = new Map<string, string>();
      for (const id of [...stateIds, eventId]) {
        const stored = held.get(id);
        if (stored?.stateKey === undefined || stored.roomId !== roomId || stored.rejectedReason !== undefined) continue;
        state.set(stateKey(stored.type, stored.stateKey), id);
      }
      return state;
    } catch (error) {
      this.deps.logger.log("warn", "could not fetch the state at a missing event", { origin, room_id: roomId, event_id: eventId, error: String(error) });
      return undefined;
    }
  }

  /**
   * Sorts a batch so that each event comes after those of its prev events the batch holds (depth,
   * then event ID, between events that do not depend on each other). Depth alone does not do it:
   * another server's room can give a state event the depth of the one it follows (Synapse's
   * initial power levels and creator's join share depth 2), and a backfilled batch that places
   * such outliers in the timeline must store them in the order they build on each other.
   */
  private async orderForReceipt(events: { pdu: JsonObject; event: RoomEvent }[]): Promise<void> {
    const byId = new Map(events.map((e) => [e.event.event_id, e]));
    const graph = new Map(events.map((e) => [e.event.event_id, e.event.prev_events]));
    const keyOf = (eventId: string) => ({ eventId, depth: byId.get(eventId)!.event.depth });
    const order = await topologicalOrder(graph, keyOf, (x, y) => x.depth - y.depth || compareEventIds(x.eventId, y.eventId), new Yielder());
    events.splice(0, events.length, ...order.map((id) => byId.get(id)!));
  }

  /** Events asked of `origin` one by one (/event), a few at a time; those it does not give are left out. */
  private async fetchEvents(origin: string, eventIds: readonly string[]): Promise<JsonObject[]> {
    const out: JsonObject[] = [];
    for (let i = 0; i < eventIds.length; i += 5) {
      const answers = await Promise.all(eventIds.slice(i, i + 5).map(async (id) => {
        try {
          const response = await this.deps.client.request("GET", origin, `/_matrix/federation/v1/event/${enc(id)}`);
          return isJsonObject(response) && Array.isArray(response.pdus) && isJsonObject(response.pdus[0]) ? response.pdus[0] : undefined;
        } catch {
          return undefined;
        }
      }));
      for (const pdu of answers) if (pdu) out.push(pdu);
    }
    return out;
  }

  private parse(pdu: JsonObject, version: RoomVersion): RoomEvent | undefined {
    try {
      return roomEventFromPdu(pdu, version);
    } catch {
      return undefined;
    }
  }

  /**
   * Stores events as outliers (no place in the timeline, no state of their own): each must be a
   * valid event of the room, signed by its servers (else it is left out), its content hash checked
   * (redacted when wrong), and is marked rejected when its own auth events do not allow it. Events
   * are taken in auth order, so an event's auth events are stored before it. The room's create
   * event creates the room record. Returns what was stored or already held, by event id.
   */
  async importOutliers(roomId: string, version: RoomVersion, pdus: readonly JsonObject[]): Promise<Map<string, ImportedOutlier>> {
    const result = new Map<string, ImportedOutlier>();
    const pending = new Map<string, { event: RoomEvent; pdu: JsonObject }>();
    for (const pdu of pdus) {
      const event = this.parse(pdu, version);
      if (!event || (event.room_id ?? roomId) !== roomId || pending.has(event.event_id)) continue;
      if (checkEventLimits(pdu, version.strictCanonicalJson)) continue;
      pending.set(event.event_id, { event, pdu });
    }
    await this.fetchKeysFor([...pending.values()].map((p) => p.pdu), version);
    const held = await this.deps.store.getEvents([...pending.keys()]);
    for (const [id, stored] of held) {
      const parsed = await this.deps.engine.parsedEvent(id);
      if (parsed) result.set(id, { eventId: id, event: parsed.event, pdu: parsed.pdu, rejected: stored.rejectedReason !== undefined });
      pending.delete(id);
    }
    // Auth order: repeatedly store the events whose auth events are all stored. One transaction for
    // them all: a join's 10,000 state events are one commit (one fsync), not 10,000. Bulk work: in a
    // database transaction of its own (TransactionOptions; what sharing a batch would cost: sqlite/driver.ts).
    await this.deps.store.atomically(async () => {
      let progress = true;
      while (pending.size > 0 && progress) {
        progress = false;
        for (const [id, { event, pdu }] of pending) {
          const authKnown = await this.authEventsOf(event, result);
          if (authKnown === "waiting" && event.auth_events.some((a) => pending.has(a))) continue;
          pending.delete(id);
          progress = true;
          const stored = await this.storeOutlier(roomId, version, event, pdu, authKnown === "waiting" ? undefined : authKnown, result);
          if (stored) result.set(id, stored);
        }
      }
    }, { alone: true });
    if (pending.size > 0) this.deps.logger.log("warn", "some events were left out: their auth events form a cycle or are missing", { room_id: roomId, count: pending.size });
    return result;
  }

  private async authEventsOf(event: RoomEvent, imported: Map<string, ImportedOutlier>): Promise<{ events: RoomEvent[]; anyRejected: boolean; otherRoom: boolean } | "waiting"> {
    const events: RoomEvent[] = [];
    let anyRejected = false;
    // An auth event of another room can never authorize this one (the PDU receiver rejects the same).
    let otherRoom = false;
    for (const id of event.auth_events) {
      const fromImport = imported.get(id);
      if (fromImport) {
        events.push(fromImport.event);
        anyRejected ||= fromImport.rejected;
        otherRoom ||= fromImport.event.room_id !== undefined && fromImport.event.room_id !== event.room_id;
        continue;
      }
      const stored = await this.deps.store.getEvent(id);
      if (!stored) return "waiting";
      events.push((await this.deps.engine.parsedEvent(id))!.event);
      anyRejected ||= stored.rejectedReason !== undefined;
      otherRoom ||= event.room_id !== undefined && stored.roomId !== event.room_id;
    }
    return { events, anyRejected, otherRoom };
  }

  private async storeOutlier(
    roomId: string,
    version: RoomVersion,
    parsed: RoomEvent,
    received: JsonObject,
    auth: { events: RoomEvent[]; anyRejected: boolean; otherRoom: boolean } | undefined,
    imported: ReadonlyMap<string, ImportedOutlier>,
  ): Promise<ImportedOutlier | undefined> {
    const verified = checkSignaturesAndHash(received, parsed, version, this.keyLookup(received, version));
    if (!verified.ok) {
      this.deps.logger.log("info", "an event handed over by another server was left out", { event_id: parsed.event_id, reason: verified.reason });
      return undefined;
    }
    const { pdu, event } = verified;
    let rejectedReason: string | undefined;
    if (!auth) rejectedReason = "auth events are not known";
    else if (auth.otherRoom) rejectedReason = "an auth event belongs to another room";
    else if (auth.anyRejected) rejectedReason = "an auth event was rejected";
    else {
      const create = event.type === "m.room.create" ? undefined : auth.events.find((e) => e.type === "m.room.create") ?? (await this.createEvent(roomId, version, imported));
      const verdict = authorizeEvent(event, authStateFromEvents(auth.events, create), version, signatureAuthChecks(pdu, version, this.keyLookup(pdu, version)));
      if (!verdict.allowed) rejectedReason = verdict.reason;
    }
    const createRoom = event.type === "m.room.create" && rejectedReason === undefined && !(await this.deps.store.getRoom(roomId))
      ? { roomId, roomVersion: version.id, creator: event.sender, createdTs: event.origin_server_ts }
      : undefined;
    if (event.type === "m.room.create" && !createRoom && !(await this.deps.store.getRoom(roomId))) return undefined;
    await this.deps.store.persistEvent({
      event: { ...storedEventOf(event, roomId, pdu, { rejectedReason }), outlier: true },
      updateForwardExtremities: false,
      updateCurrentState: false,
      createRoom,
    });
    return { eventId: event.event_id, event, pdu, rejected: rejectedReason !== undefined };
  }

  /** The room's create event: v12 rooms leave it out of auth_events, and their room id names it. */
  async createEvent(roomId: string, version: RoomVersion, imported?: ReadonlyMap<string, ImportedOutlier>): Promise<RoomEvent | undefined> {
    if (version.createEventNotInAuthEvents) {
      const id = `$${roomId.slice(1)}`;
      return imported?.get(id)?.event ?? (await this.deps.engine.parsedEvent(id))?.event;
    }
    return this.deps.engine.currentStateEvent(roomId, "m.room.create", "");
  }
}
