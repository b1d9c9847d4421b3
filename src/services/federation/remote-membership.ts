// Our users in rooms that live on other servers (server-server-api "Joining Rooms", "Knocking upon
// a room", "Leaving Rooms", "Inviting to a room"), as the requesting server: make_* for a template
// through the first server that answers, sign it, send_* it; a join imports the room's state and
// auth chain (every event checked), a knock or leave of a room we do not hold is kept out of band.
import { randomBytes } from "node:crypto";
import { authorizeEvent, authStateFromEvents } from "../../protocol/auth";
import { MatrixError } from "../../protocol/errors";
import { stateKey, type RoomEvent } from "../../protocol/events";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { roomEventFromPdu } from "../../protocol/pdu";
import { ROOM_VERSIONS, roomVersion, type RoomVersion } from "../../protocol/room-versions";
import { computeEventId, eventReference } from "../../protocol/signing/event-id";
import { checkEventLimits } from "../../protocol/event-limits";
import { verifyEventSignatures } from "../../protocol/signing/event-signatures";
import type { RoomEventStore } from "../../storage/stores";
import { BULK_EVENTS, storedEventOf, type RoomEngine } from "../rooms/room-engine";
import type { Clock, Logger } from "../runtime";
import { RemoteMatrixError, type FederationClient } from "./contracts";
import type { FederationEventIngest } from "./event-ingest";
import type { MembershipKind } from "./membership-handshake";

export interface OutOfBandRecorder {
  record(input: { userId: string; roomId: string; roomVersion: string; membership: "invite" | "knock" | "leave"; event: JsonObject; strippedState: JsonObject[] }): Promise<void>;
}

export interface RemoteMembershipDeps {
  serverName: string;
  client: FederationClient;
  ingest: FederationEventIngest;
  engine: RoomEngine;
  store: RoomEventStore;
  signer: { signEvent(pdu: JsonObject, version: RoomVersion): JsonObject };
  outOfBand: OutOfBandRecorder;
  clock: Clock;
  logger: Logger;
}

const enc = encodeURIComponent;

interface Handshake {
  server: string;
  version: RoomVersion;
  signed: JsonObject;
  eventId: string;
  response: unknown;
}

export class RemoteMembershipService {
  /** Our joins stored from a send_join: the resident server sends them on to the room, not us. */
  private readonly deliveredByResident = new Set<string>();

  constructor(private readonly deps: RemoteMembershipDeps) {}

  /** Whether an event of ours reached the room through a resident server (asked once, by the outbound fan-out). */
  takeDeliveredByResident(eventId: string): boolean {
    return this.deliveredByResident.delete(eventId);
  }

  /** Joins `userId` to a room on another server through the first of `servers` that lets them. */
  async join(roomId: string, userId: string, servers: readonly string[], content: JsonObject): Promise<void> {
    const done = await this.handshake("join", roomId, userId, servers, content, async (server, version, signed, eventId) => {
      let response: unknown;
      try {
        response = await this.deps.client.request("PUT", server, `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(eventId)}`, { body: signed });
      } catch (error) {
        if (!(error instanceof RemoteMatrixError) || (error.status !== 404 && error.errcode !== "M_UNRECOGNIZED")) throw error;
        response = v1Body(await this.deps.client.request("PUT", server, `/_matrix/federation/v1/send_join/${enc(roomId)}/${enc(eventId)}`, { body: signed }));
      }
      return response;
    });
    await this.importJoin(roomId, done);
  }

  /** Knocks on a room on another server; the knock and the room's stripped state are kept for /sync. */
  async knock(roomId: string, userId: string, servers: readonly string[], content: JsonObject): Promise<void> {
    const done = await this.handshake("knock", roomId, userId, servers, content, (server, _version, signed, eventId) =>
      this.deps.client.request("PUT", server, `/_matrix/federation/v1/send_knock/${enc(roomId)}/${enc(eventId)}`, { body: signed }),
    );
    const body = isJsonObject(done.response) ? done.response : {};
    // Servers of spec v1.16+ send full PDUs in knock_room_state; older ones stripped events in
    // knock_state_events. Either is kept as given; /sync shows it in the stripped form.
    const state = Array.isArray(body.knock_room_state) ? body.knock_room_state : Array.isArray(body.knock_state_events) ? body.knock_state_events : [];
    await this.deps.outOfBand.record({
      userId,
      roomId,
      roomVersion: done.version.id,
      membership: "knock",
      event: done.signed,
      strippedState: state.filter(isJsonObject),
    });
  }

  /**
   * Leaves (rejects an invite to, or rescinds a knock on) a room we do not hold, through its servers.
   * `previous`: the out-of-band invite or knock it ends. When no server takes the leave (each
   * refused it or could not be reached), the user still leaves: a leave event is made here, after
   * the invite or knock and never sent, as Synapse does (the spec is silent), so an invite from a
   * server that is gone or refuses can always be rejected.
   */
  async leave(roomId: string, userId: string, servers: readonly string[], content: JsonObject, previous?: { event: JsonObject; roomVersion: string }): Promise<void> {
    let done: Handshake;
    try {
      done = await this.handshake("leave", roomId, userId, servers, content, async (server, _version, signed, eventId) => {
        try {
          return await this.deps.client.request("PUT", server, `/_matrix/federation/v2/send_leave/${enc(roomId)}/${enc(eventId)}`, { body: signed });
        } catch (error) {
          if (!(error instanceof RemoteMatrixError) || (error.status !== 404 && error.errcode !== "M_UNRECOGNIZED")) throw error;
          return v1Body(await this.deps.client.request("PUT", server, `/_matrix/federation/v1/send_leave/${enc(roomId)}/${enc(eventId)}`, { body: signed }));
        }
      });
    } catch (error) {
      const version = previous === undefined ? undefined : roomVersion(previous.roomVersion);
      if (!(error instanceof MatrixError) || !previous || !version || (await this.deps.store.getRoom(roomId))) throw error;
      this.deps.logger.log("info", "no server took the leave; it is made locally", { room_id: roomId, user_id: userId, error: `${error.errcode}: ${error.message}` });
      const signed = this.localLeave(roomId, userId, content, previous.event, version);
      await this.deps.outOfBand.record({ userId, roomId, roomVersion: version.id, membership: "leave", event: signed, strippedState: [] });
      return;
    }
    if (!(await this.deps.store.getRoom(roomId))) {
      await this.deps.outOfBand.record({ userId, roomId, roomVersion: done.version.id, membership: "leave", event: done.signed, strippedState: [] });
    }
  }

  /** A leave of ours following an invite or knock we hold out of band: its one prev event, and the auth events it had plus itself. */
  private localLeave(roomId: string, userId: string, content: JsonObject, previous: JsonObject, version: RoomVersion): JsonObject {
    const previousRef = eventReference(previous, version);
    const previousAuth = Array.isArray(previous.auth_events) ? previous.auth_events : [];
    const pdu: JsonObject = {
      room_id: roomId,
      type: "m.room.member",
      sender: userId,
      state_key: userId,
      content: { ...content, membership: "leave" },
      origin_server_ts: this.deps.clock.now(),
      depth: (typeof previous.depth === "number" ? previous.depth : 0) + 1,
      prev_events: [previousRef],
      auth_events: [previousRef, ...previousAuth],
    };
    if (version.redaction.keepOriginMembershipPrevState) pdu.origin = this.deps.serverName;
    if (version.eventIdFormat === "server-chosen") pdu.event_id = `$${randomBytes(12).toString("base64url")}:${this.deps.serverName}`;
    return this.deps.signer.signEvent(pdu, version);
  }

  /**
   * Invites a user of another server to a room we hold (server-server-api "Inviting to a room"):
   * the invite event is built and signed here, signed by the invitee's server through /invite, and
   * only then stored and sent to the room.
   */
  async invite(roomId: string, sender: string, target: string, content: JsonObject, inviteRoomState: JsonObject[]): Promise<void> {
    const version = await this.deps.engine.versionOf(roomId);
    const { pdu, authEvents } = await this.deps.engine.prepareEvent(roomId, version, { type: "m.room.member", sender, stateKey: target, content: { ...content, membership: "invite" } });
    const signed = this.deps.signer.signEvent(pdu, version);
    const eventId = computeEventId(signed, version);
    const event = roomEventFromPdu(signed, version, eventId);
    const verdict = authorizeEvent(event, authStateFromEvents(authEvents, await this.deps.ingest.createEvent(roomId, version)), version, this.deps.ingest.authChecks(signed, version));
    if (!verdict.allowed) throw new MatrixError("M_FORBIDDEN", verdict.reason);
    const server = target.slice(target.indexOf(":") + 1);
    let returned: unknown;
    try {
      const response = await this.deps.client.request("PUT", server, `/_matrix/federation/v2/invite/${enc(roomId)}/${enc(eventId)}`, {
        body: { room_version: version.id, event: signed, invite_room_state: inviteRoomState },
      });
      returned = isJsonObject(response) ? response.event : undefined;
    } catch (error) {
      if (!(error instanceof RemoteMatrixError) || (error.status !== 404 && error.errcode !== "M_UNRECOGNIZED")) throw error;
      const v1 = { ...signed, unsigned: { invite_room_state: inviteRoomState } };
      const response = v1Body(await this.deps.client.request("PUT", server, `/_matrix/federation/v1/invite/${enc(roomId)}/${enc(eventId)}`, { body: v1 }));
      returned = isJsonObject(response) ? response.event : undefined;
    }
    if (!isJsonObject(returned)) throw new MatrixError("M_UNKNOWN", `${server} did not return the signed invite`, 502);
    // Only its signatures are taken, but an answer the room version forbids (a float in a v6+ room,
    // say) is refused as a whole, as Synapse refuses it: 400 M_BAD_JSON.
    const problem = checkEventLimits(returned, version.strictCanonicalJson);
    if (problem) throw new MatrixError("M_BAD_JSON", `${server} returned an invite event that is not valid: ${problem.reason}`);
    // The event we built, with the invitee's server's signature added: nothing else may change.
    const countersigned: JsonObject = { ...signed, signatures: returned.signatures ?? null };
    if (computeEventId(countersigned, version) !== eventId) throw new MatrixError("M_UNKNOWN", `${server} returned a different invite event`, 502);
    await this.deps.ingest.fetchKeysFor([countersigned], version);
    const checked = verifyEventSignatures(countersigned, version, this.deps.ingest.keyLookup(countersigned, version));
    const theirs = isJsonObject(countersigned.signatures) && isJsonObject(countersigned.signatures[server]);
    if (!checked.valid || !theirs) throw new MatrixError("M_UNKNOWN", `${server} did not sign the invite properly`, 502);
    const outcome = await this.deps.ingest.receive(countersigned, version);
    if (outcome.outcome !== "accepted") throw new MatrixError("M_FORBIDDEN", `The invite could not be stored: ${"reason" in outcome ? outcome.reason : outcome.outcome}`);
  }

  /**
   * make_* through each server in turn until one answers, then the signed event sent with `send`.
   * A refusal (403, 404, 400) from the last server tried reaches the client with its errcode.
   */
  private async handshake(
    kind: MembershipKind,
    roomId: string,
    userId: string,
    servers: readonly string[],
    content: JsonObject,
    send: (server: string, version: RoomVersion, signed: JsonObject, eventId: string) => Promise<unknown>,
  ): Promise<Handshake> {
    const candidates = [...new Set(servers)].filter((s) => s !== this.deps.serverName);
    if (candidates.length === 0) throw new MatrixError("M_NOT_FOUND", `No server to ${kind} ${roomId} through: give one with via`);
    let lastError: unknown;
    for (const server of candidates) {
      try {
        const query = kind === "leave" ? undefined : { ver: [...ROOM_VERSIONS.values()].filter((v) => kind !== "knock" || v.knocking).map((v) => v.id) };
        const made = await this.deps.client.request("GET", server, `/_matrix/federation/v1/make_${kind}/${enc(roomId)}/${enc(userId)}`, { query });
        const { version, signed, eventId } = this.fillTemplate(kind, roomId, userId, made, content);
        const response = await send(server, version, signed, eventId);
        return { server, version, signed, eventId, response };
      } catch (error) {
        lastError = error;
        this.deps.logger.log("info", `make_${kind}/send_${kind} through a server failed`, { server, room_id: roomId, error: error instanceof MatrixError ? `${error.errcode}: ${error.message}` : String(error) });
        if (!(error instanceof MatrixError)) throw error;
      }
    }
    // Every failure above was a MatrixError (others are thrown at once): the last server's answer.
    throw lastError;
  }

  /** The template of make_*, checked to be what we asked for, completed and signed by us. */
  private fillTemplate(kind: MembershipKind, roomId: string, userId: string, made: unknown, content: JsonObject): { version: RoomVersion; signed: JsonObject; eventId: string } {
    if (!isJsonObject(made) || !isJsonObject(made.event)) throw new MatrixError("M_UNKNOWN", `The make_${kind} answer has no event template`, 502);
    const versionId = typeof made.room_version === "string" ? made.room_version : "1";
    const version = roomVersion(versionId);
    if (!version) throw new MatrixError("M_UNSUPPORTED_ROOM_VERSION", `Room ${roomId} has version ${versionId}, which this server does not support`);
    const template = made.event;
    if (template.room_id !== roomId || template.sender !== userId || template.state_key !== userId || template.type !== "m.room.member") {
      throw new MatrixError("M_UNKNOWN", `The make_${kind} template is not a ${kind} of ${userId} in ${roomId}`, 502);
    }
    const templateContent = isJsonObject(template.content) ? template.content : {};
    const pdu: JsonObject = { ...template, content: { ...templateContent, ...content, membership: kind }, origin_server_ts: this.deps.clock.now() };
    delete pdu.signatures;
    delete pdu.hashes;
    delete pdu.unsigned;
    if (version.redaction.keepOriginMembershipPrevState) pdu.origin = this.deps.serverName;
    else delete pdu.origin;
    if (version.eventIdFormat === "server-chosen") pdu.event_id = `$${randomBytes(12).toString("base64url")}:${this.deps.serverName}`;
    else delete pdu.event_id;
    const signed = this.deps.signer.signEvent(pdu, version);
    return { version, signed, eventId: computeEventId(signed, version) };
  }

  /**
   * send_join's answer: the room's state before the join and its auth chain, every event checked
   * (signatures, hashes, auth rules) and stored as an outlier; then the join itself, checked against
   * that state, becomes the room's first timeline event here and its current state.
   */
  private async importJoin(roomId: string, done: Handshake): Promise<void> {
    const body = isJsonObject(done.response) ? done.response : {};
    const { version } = done;
    let joinPdu = done.signed;
    // A restricted join comes back signed by the authorising server too.
    if (isJsonObject(body.event)) {
      const countersigned: JsonObject = { ...done.signed, signatures: body.event.signatures ?? null };
      if (computeEventId(countersigned, version) === done.eventId) {
        // Signatures count toward the size limit: one that takes the join past it would have every
        // other server drop the join, so it is not stored here either.
        const problem = checkEventLimits(countersigned, version.strictCanonicalJson);
        if (problem) throw new MatrixError("M_UNKNOWN", `${done.server} returned a join event that is not valid: ${problem.reason}`, 502);
        joinPdu = countersigned;
      }
    }
    const statePdus = Array.isArray(body.state) ? body.state.filter(isJsonObject) : [];
    const chain = Array.isArray(body.auth_chain) ? body.auth_chain.filter(isJsonObject) : [];
    await this.deps.engine.queue.run(roomId, async () => {
      const imported = await this.deps.ingest.importOutliers(roomId, version, [...chain, ...statePdus]);
      const room = await this.deps.store.getRoom(roomId);
      if (!room) throw new MatrixError("M_UNKNOWN", `${done.server} did not give a valid m.room.create event for ${roomId}`, 502);
      const state = new Map<string, string>();
      for (const pdu of statePdus) {
        let event: RoomEvent;
        try {
          event = roomEventFromPdu(pdu, version);
        } catch {
          continue;
        }
        const entry = imported.get(event.event_id);
        if (entry && !entry.rejected && event.state_key !== undefined) state.set(stateKey(event.type, event.state_key), event.event_id);
      }
      const join = roomEventFromPdu(joinPdu, version, done.eventId);
      const authEvents: RoomEvent[] = [];
      for (const id of join.auth_events) {
        const auth = imported.get(id)?.event ?? (await this.deps.engine.parsedEvent(id))?.event;
        if (!auth) throw new MatrixError("M_UNKNOWN", `${done.server} did not give the join's auth event ${id}`, 502);
        authEvents.push(auth);
      }
      const create = await this.deps.ingest.createEvent(roomId, version, imported);
      // A restricted join counts only with a valid signature of the authorising server.
      await this.deps.ingest.fetchKeysFor([joinPdu], version);
      const checks = this.deps.ingest.authChecks(joinPdu, version);
      const byAuth = authorizeEvent(join, authStateFromEvents(authEvents, create), version, checks);
      if (!byAuth.allowed) throw new MatrixError("M_FORBIDDEN", `The join is not allowed: ${byAuth.reason}`);
      const byState = authorizeEvent(join, await this.deps.ingest.authState(join, version, state), version, checks);
      if (!byState.allowed) throw new MatrixError("M_FORBIDDEN", `The join is not allowed by the room's state: ${byState.reason}`);
      const delta = new Map<string, string | null>(state);
      delta.set(stateKey("m.room.member", join.sender), join.event_id);
      // The room's whole state arrives with the join: past BULK_EVENTS entries it is bulk work, in a
      // database transaction of its own (TransactionOptions).
      const persist = () =>
        this.deps.store.persistEvent({
          event: storedEventOf(join, roomId, joinPdu),
          stateAfter: { parent: undefined, delta },
          updateForwardExtremities: true,
          updateCurrentState: true,
        });
      const stored = await this.deps.store.atomically(persist, { alone: delta.size >= BULK_EVENTS });
      // "The resident server must also send the event to other servers in the room": not us again.
      this.deliveredByResident.add(join.event_id);
      await this.deps.engine.notify(roomId, stored, joinPdu);
    });
  }
}

/** v1 of send_join/send_leave/invite answers [200, body]. */
function v1Body(response: unknown): unknown {
  return Array.isArray(response) && response.length === 2 ? response[1] : response;
}
