// The resident server's side of the membership handshakes (server-server-api "Joining Rooms",
// "Knocking upon a room", "Leaving Rooms (Rejecting Invites)") and of invites to our users
// ("Inviting to a room"): a template on make_*, then the signed event checked and stored on send_*.
import type { Decision } from "../../extensions";
import { authorizeEvent, authStateFromEvents, joinRuleOf } from "../../protocol/auth";
import { checkEventLimits } from "../../protocol/event-limits";
import { MatrixError } from "../../protocol/errors";
import { stateKey, type RoomEvent } from "../../protocol/events";
import { isValidUserId, serverNameOf } from "../../protocol/identifiers";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { PduFormatError, roomEventFromPdu } from "../../protocol/pdu";
import { roomVersion, type RoomVersion } from "../../protocol/room-versions";
import { EventIdError } from "../../protocol/signing/event-id";
import { verifyEventSignatures } from "../../protocol/signing/event-signatures";
import type { RoomEventStore } from "../../storage/stores";
import type { PolicySet } from "../plugins/policies";
import { policyDenial, spamVerdict } from "../plugins/spam-decisions";
import { STRIPPED_STATE_TYPES } from "../rooms/client-events";
import type { RoomEngine } from "../rooms/room-engine";
import type { Logger } from "../runtime";
import type { FederationSender } from "./contracts";
import type { FederationEventIngest } from "./event-ingest";
import type { FederationRoomReader } from "./room-reader";

export type MembershipKind = "join" | "leave" | "knock";

export interface ResidentMembershipDeps {
  serverName: string;
  engine: RoomEngine;
  store: RoomEventStore;
  ingest: FederationEventIngest;
  /** State at events, the server ACL and who is in a room: shared with the read endpoints. */
  reader: FederationRoomReader;
  sender: FederationSender;
  signer: { signEvent(pdu: JsonObject, version: RoomVersion): JsonObject };
  policies?: PolicySet;
  logger: Logger;
  /** A local user of a restricted room who may authorise this user's join; undefined when none. */
  restrictedJoinAuthoriser(roomId: string, userId: string): Promise<string | undefined>;
  /** Carries out a knock policy's "accept": the knocker is invited at once (KnockModerationService.acceptKnock). */
  acceptKnock?(roomId: string, userId: string): Promise<void>;
    /** Whether a local user exists (invites for unknown users are refused). */
  userExists(userId: string): Promise<boolean>;
  /** An invite for a local user to a room this server does not hold: kept until it is answered. */
  recordRemoteInvite(input: { userId: string; roomId: string; roomVersion: string; event: JsonObject; strippedState: JsonObject[] }): Promise<void>;
  /** Called after a remote invite for a local user was kept (knocks.auto_join_on_invite joins a knocker at once). */
  onRemoteInvite?(invite: { userId: string; roomId: string; origin: string }): void;
}

export interface SendJoinResult {
  /** The event as stored (with our signature when we authorised a restricted join). */
  event: JsonObject;
  /** Whether we added our signature (the response then carries the event). */
  signedByUs: boolean;
  state: JsonObject[];
  authChain: JsonObject[];
  serversInRoom: string[];
}

const badJson = (message: string) => new MatrixError("M_BAD_JSON", message);

export class ResidentMembershipService {
  constructor(private readonly deps: ResidentMembershipDeps) {}

  /** GET make_join / make_leave / make_knock: the event template for `userId` of `origin`. */
  async makeMembership(kind: MembershipKind, origin: string, roomId: string, userId: string, offeredVersions: readonly string[] | undefined): Promise<{ room_version: string; event: JsonObject }> {
    this.checkUserOfOrigin(userId, origin);
    const version = await this.residentRoom(roomId, origin);
    // make_join defaults `ver` to ["1"] (spec); make_knock has no default: a knocking server names
    // the versions it supports, and none is a mismatch too.
    if (kind !== "leave") {
      const offered = offeredVersions && offeredVersions.length > 0 ? offeredVersions : kind === "join" ? ["1"] : [];
      if (!offered.includes(version.id)) {
        throw new MatrixError("M_INCOMPATIBLE_ROOM_VERSION", `Your homeserver does not support the features required to ${kind} this room (version ${version.id})`, 400, { room_version: version.id });
      }
    }
    const current = await this.membershipOf(roomId, userId);
    const content: JsonObject = { membership: kind };
    if (kind === "join") {
      if (current === "ban") throw new MatrixError("M_FORBIDDEN", "You are banned from this room");
      if (current !== "join" && current !== "invite") {
        const via = await this.deps.restrictedJoinAuthoriser(roomId, userId);
        if (via) content.join_authorised_via_users_server = via;
      }
    } else if (kind === "knock") {
      await this.checkKnock(roomId, userId, origin, version, current, undefined, { consumeRateLimit: false });
    } else if (current !== "join" && current !== "invite" && current !== "knock") {
      throw new MatrixError("M_FORBIDDEN", "You are not in this room, and not invited or knocking");
    }
    const { pdu, authEvents } = await this.deps.engine.prepareEvent(roomId, version, { type: "m.room.member", sender: userId, stateKey: userId, content });
    // The template must pass the rules as it stands, so that a refusal comes now and not after the
    // other server has signed. A restricted join we authorise will carry our signature.
    const event = roomEventFromPdu({ ...pdu, event_id: "$template" }, version, "$template");
    const verdict = authorizeEvent(event, authStateFromEvents(authEvents, await this.deps.ingest.createEvent(roomId, version)), version, {
      isSignedBy: (server) => server === this.deps.serverName || server === origin,
    });
    if (!verdict.allowed) throw new MatrixError("M_FORBIDDEN", `You cannot ${kind} this room: ${verdict.reason}`);
    // v1/v2 event ids are chosen by the event's origin: the joining server sets its own.
    delete pdu.event_id;
    pdu.origin = origin;
    return { room_version: version.id, event: pdu };
  }

  /** PUT send_join / send_leave / send_knock: checks the signed event, stores it and sends it on to the room's other servers. */
  async sendMembership(kind: MembershipKind, origin: string, roomId: string, eventId: string, body: unknown): Promise<{ stored: JsonObject; signedByUs: boolean; version: RoomVersion; shadowed?: boolean }> {
    const version = await this.residentRoom(roomId, origin);
    if (!isJsonObject(body)) throw new MatrixError("M_NOT_JSON", "The body must be the signed event");
    let event: RoomEvent;
    try {
      event = roomEventFromPdu(body, version);
    } catch (error) {
      if (error instanceof PduFormatError || error instanceof EventIdError) throw badJson(`Malformed event: ${error.message}`);
      throw badJson(`Malformed event: ${String((error as Error).message ?? error)}`);
    }
    if (event.event_id !== eventId) throw badJson(`The event's ID is ${event.event_id}, not ${eventId}`);
    if (event.room_id !== roomId) throw badJson(`The event is for room ${String(event.room_id)}, not ${roomId}`);
    if (event.type !== "m.room.member") throw badJson(`Expected an m.room.member event, got ${event.type}`);
    if (event.state_key === undefined) throw badJson("The member event has no state_key");
    if (event.state_key !== event.sender) throw badJson("The member event's state_key must be its sender");
    if (event.content.membership !== kind) throw badJson(`Expected membership ${kind}, got ${JSON.stringify(event.content.membership)}`);
    this.checkUserOfOrigin(event.sender, origin);
    // JSON the room version forbids (a float in v6+) or an event past the size limits is bad input
    // of the request (400), as Synapse answers, not a refusal of a valid event.
    const limits = checkEventLimits(body, version.strictCanonicalJson);
    if (limits) throw new MatrixError(limits.kind === "too-large" ? "M_TOO_LARGE" : "M_BAD_JSON", limits.reason, limits.kind === "too-large" ? 413 : 400);

    let pdu = body;
    let signedByUs = false;
    let knockDecision: Decision | undefined;
    if (kind === "knock") {
      const decision = (knockDecision = await this.checkKnock(roomId, event.sender, origin, version, await this.membershipOf(roomId, event.sender), typeof event.content.reason === "string" ? event.content.reason : undefined));
      // Shadowed: the knocker's server hears it worked; nothing is stored or sent on.
      if (decision.kind === "shadow") return { stored: pdu, signedByUs, version, shadowed: true };
    }
    if (kind === "join") {
      const via = event.content.join_authorised_via_users_server;
      if (typeof via === "string" && serverNameOf(via) === this.deps.serverName) {
        // We authorise this restricted join: our signature makes it valid for every server (v8+).
        // The allow rules are checked again here: make_join's check proves nothing about what the
        // joining server sends back.
        const current = await this.membershipOf(roomId, event.sender);
        if (current !== "join" && current !== "invite" && (await this.deps.restrictedJoinAuthoriser(roomId, event.sender)) === undefined) {
          throw new MatrixError("M_FORBIDDEN", "You are not in any room this room's join rules allow");
        }
        pdu = this.deps.signer.signEvent(body, version);
        signedByUs = true;
      }
    }
    const outcome = await this.deps.ingest.receive(pdu, version);
    if (outcome.outcome === "dropped") throw new MatrixError("M_FORBIDDEN", `The event was refused: ${outcome.reason}`);
    if (outcome.outcome === "rejected") throw new MatrixError("M_FORBIDDEN", `The event is not allowed: ${outcome.reason}`);
    if (outcome.outcome === "soft-failed") throw new MatrixError("M_FORBIDDEN", "The event is not allowed by the room's current state");
    await this.deps.sender.queuePdu((await this.serversInRoom(roomId)).filter((s) => s !== origin), pdu);
    if (kind === "knock" && this.deps.policies) {
      void this.deps.policies.knockArrived({ roomId, userId: event.sender, originServer: origin, reason: typeof event.content.reason === "string" ? event.content.reason : undefined, local: false }).catch(() => {});
    }
    if (knockDecision?.kind === "accept" && this.deps.acceptKnock) {
      // After the answer: the invite goes to the knocker's server, which is waiting for this reply.
      const accept = this.deps.acceptKnock;
      setTimeout(() => {
        accept(roomId, event.sender).catch((error) => this.deps.logger.log("warn", "could not carry out a knock policy's accept; the knock stays pending", { room_id: roomId, user_id: event.sender, error: String(error) }));
      }, 0);
    }
    return { stored: pdu, signedByUs, version };
  }

  /**
   * send_join's answer: the state before the join and its auth chain (the join's own auth events
   * are in that state), and the servers with joined members before it.
   */
  async joinAnswer(origin: string, roomId: string, eventId: string): Promise<{ state: JsonObject[]; authChain: JsonObject[]; serversInRoom: string[] }> {
    const { pdus, authChain } = await this.deps.reader.state(origin, roomId, eventId);
    const servers = new Set<string>();
    for (const pdu of pdus) {
      const joined = pdu.type === "m.room.member" && typeof pdu.state_key === "string" && isJsonObject(pdu.content) && pdu.content.membership === "join";
      const server = joined ? serverNameOf(pdu.state_key as string) : undefined;
      if (server) servers.add(server);
    }
    return { state: pdus, authChain, serversInRoom: [...servers].sort() };
  }

  /** knock_room_state: the room's create, join rules, name, avatar, alias, topic and encryption events, as PDUs. */
  async knockRoomState(roomId: string): Promise<JsonObject[]> {
    const ids = await this.deps.store.currentStateEvents(roomId, STRIPPED_STATE_TYPES.map((type) => [type, ""] as const));
    return this.pdus([...ids.values()]);
  }

  /**
   * PUT /invite (v1 and v2): an invite for one of our users to a room on another server. Checked
   * (the inviter's server signed it, it names a user of ours), passed by the spam policies, signed
   * by us and kept: as an event of the room when we hold it, else as an out-of-band invite.
   */
  async receiveInvite(origin: string, roomId: string, eventId: string, input: { roomVersion: string; event: unknown; inviteRoomState: unknown }): Promise<JsonObject> {
    const version = roomVersion(input.roomVersion);
    if (!version) throw new MatrixError("M_INCOMPATIBLE_ROOM_VERSION", `This server does not support room version ${input.roomVersion}`, 400, { room_version: input.roomVersion });
    if (!isJsonObject(input.event)) throw badJson("event must be an object");
    await this.deps.reader.requireAclAllows(roomId, origin);
    let event: RoomEvent;
    try {
      event = roomEventFromPdu(input.event, version);
    } catch (error) {
      throw badJson(`Malformed event: ${(error as Error).message}`);
    }
    if (event.event_id !== eventId) throw badJson(`The event's ID is ${event.event_id}, not ${eventId}`);
    if (event.room_id !== roomId) throw badJson(`The event is for room ${String(event.room_id)}, not ${roomId}`);
    if (event.type !== "m.room.member" || event.content.membership !== "invite" || event.state_key === undefined) throw badJson("Expected an m.room.member invite event");
    if (!isValidUserId(event.state_key) || serverNameOf(event.state_key) !== this.deps.serverName) throw badJson(`${event.state_key} is not a user of this server`);
    if (serverNameOf(event.sender) !== origin) throw new MatrixError("M_FORBIDDEN", `The inviter ${event.sender} is not a user of ${origin}`);
    if (!(await this.deps.userExists(event.state_key))) throw new MatrixError("M_NOT_FOUND", `Unknown user ${event.state_key}`);
    await this.deps.ingest.fetchKeysFor([input.event], version);
    const signatures = verifyEventSignatures(input.event, version, this.deps.ingest.keyLookup(input.event, version));
    if (!signatures.valid) throw new MatrixError("M_FORBIDDEN", `The invite is not properly signed: ${signatures.reason}`);
    const policies = this.deps.policies;
    if (policies?.hasSpamPolicies && (await spamVerdict(policies, (p) => p.userMayInvite?.(event.sender, event.state_key!, roomId))) !== "allow") {
      throw new MatrixError("M_FORBIDDEN", "This invite was refused by the server's policy");
    }
    const signed = this.deps.signer.signEvent(input.event, version);
    // Kept as given; /sync shows it in the stripped form.
    const strippedState = Array.isArray(input.inviteRoomState) ? input.inviteRoomState.filter(isJsonObject) : [];
    if (await this.residentHere(roomId)) {
      const outcome = await this.deps.ingest.receiveFrom(origin, signed);
      if (outcome.outcome === "rejected" || outcome.outcome === "dropped") throw new MatrixError("M_FORBIDDEN", `The invite is not allowed: ${outcome.reason}`);
    } else {
      await this.deps.recordRemoteInvite({ userId: event.state_key, roomId, roomVersion: version.id, event: signed, strippedState });
      this.deps.onRemoteInvite?.({ userId: event.state_key, roomId, origin });
    }
    return signed;
  }

  /**
   * The knock checks of make_knock and send_knock: the room's rules, then the knock policies and the
   * per-origin rate limit. make_knock only looks at the limit (a token taken and given back), so one
   * knock costs its origin one token, taken at send_knock before anything is stored.
   */
  private async checkKnock(roomId: string, userId: string, origin: string, version: RoomVersion, current: string | undefined, reason: string | undefined, options: { consumeRateLimit: boolean } = { consumeRateLimit: true }): Promise<Decision> {
    if (!version.knocking) throw new MatrixError("M_FORBIDDEN", `Room version ${version.id} does not support knocking`);
    if (current === "ban") throw new MatrixError("M_FORBIDDEN", "You are banned from this room");
    if (current === "join") throw new MatrixError("M_FORBIDDEN", "You are already in this room");
    if (current === "invite") throw new MatrixError("M_FORBIDDEN", "You are already invited to this room");
    const joinRules = await this.deps.engine.currentStateEvent(roomId, "m.room.join_rules", "");
    const rule = joinRuleOf((type, key) => (type === "m.room.join_rules" && key === "" ? joinRules : undefined));
    const knockable = rule === "knock" || (rule === "knock_restricted" && version.knockRestrictedJoinRule);
    if (!knockable) throw new MatrixError("M_FORBIDDEN", `You cannot knock on this room: its join rule is ${rule}`);
    const policies = this.deps.policies;
    if (!policies) return { kind: "allow" };
    const bucket = { bucket: "knock.origin", key: origin };
    const limit = policies.takeRateLimit(bucket);
    if (!limit.allowed) throw new MatrixError("M_LIMIT_EXCEEDED", "Too many knocks from your server", 429, { retry_after_ms: limit.retryAfterMs });
    if (!options.consumeRateLimit) policies.refundRateLimit(bucket);
    const decision = await policies.decideKnock({ roomId, userId, originServer: origin, reason, local: false });
    if (decision.kind === "deny") throw policyDenial(decision.errcode, decision.message);
    if (decision.kind !== "shadow" && policies.hasSpamPolicies && (await spamVerdict(policies, (p) => p.userMayKnock?.(userId, roomId))) === "shadow") return { kind: "shadow" };
    return decision;
  }

  /** The room, when this server is in it (a local member joined) and the origin is not banned by its server ACL. */
  private async residentRoom(roomId: string, origin: string): Promise<RoomVersion> {
    if (!(await this.residentHere(roomId))) throw new MatrixError("M_NOT_FOUND", `This server is not in room ${roomId}`);
    const version = await this.deps.engine.versionOf(roomId);
    await this.deps.reader.requireAclAllows(roomId, origin);
    return version;
  }

  private async residentHere(roomId: string): Promise<boolean> {
    if (!(await this.deps.store.getRoom(roomId))) return false;
    return (await this.serversInRoom(roomId)).includes(this.deps.serverName);
  }

  private async membershipOf(roomId: string, userId: string): Promise<string | undefined> {
    const member = await this.deps.engine.currentStateEvent(roomId, "m.room.member", userId);
    return typeof member?.content.membership === "string" ? member.content.membership : undefined;
  }

  /** The servers with a joined member, this one included. */
  serversInRoom(roomId: string): Promise<string[]> {
    return this.deps.reader.joinedServers(roomId);
  }

  private checkUserOfOrigin(userId: string, origin: string): void {
    if (!isValidUserId(userId)) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID: ${userId}`);
    if (serverNameOf(userId) !== origin) throw new MatrixError("M_FORBIDDEN", `${userId} is not a user of ${origin}`);
  }

  private async pdus(ids: readonly string[]): Promise<JsonObject[]> {
    const out: JsonObject[] = [];
    for (const id of ids) {
      const loaded = await this.deps.engine.parsedEvent(id);
      if (loaded) out.push(loaded.pdu);
    }
    return out;
  }
}
