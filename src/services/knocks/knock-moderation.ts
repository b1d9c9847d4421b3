// Knock moderation for operators and moderators (issue 5): pending knocks per room and per user,
// bulk accept (invite) and deny (kick), and expiry of old knocks. Everything is an ordinary
// m.room.member event through MembershipService, so the auth rules decide as for any client.
//
// Who may act: a server admin on any room this server knows, or a joined member of the room with
// the power the action needs (invite to accept, kick to deny). A server admin without that power in
// the room acts *through* a local joined member who has it, as Synapse's admin APIs do (e.g. its
// "make room admin" and room-delete APIs send events as a local room admin): an admin is a server
// operator, not a room member, and room events need a sender the auth rules accept.
import { MatrixError } from "../../protocol/errors";
import { namedLevel, userPowerLevel } from "../../protocol/auth";
import { isValidUserId, serverNameOf } from "../../protocol/identifiers";
import type { RoomEventStore } from "../../storage/stores";
import type { Clock } from "../runtime";
import type { MembershipService } from "../rooms/membership";
import type { RoomAccess } from "../rooms/room-access";

export interface RoomKnock {
  user_id: string;
  event_id: string;
  reason?: string;
  displayname?: string;
  /** origin_server_ts of the knock event. */
  knocked_at: number;
  age_ms: number;
}

export interface UserKnock {
  room_id: string;
  event_id: string;
  reason?: string;
  knocked_at: number;
  age_ms: number;
}

/** The outcome for one user of a bulk accept or deny. */
export type KnockActionResult =
  | { user_id: string; ok: true; /** The user's membership afterwards (join when auto_join_on_invite applied). */ membership: string }
  | { user_id: string; ok: false; errcode: string; error: string };

export interface ExpireResult {
  older_than_ms: number;
  reason: string;
  expired: { room_id: string; user_id: string; event_id: string; knocked_at: number }[];
  failed: { room_id: string; user_id: string; event_id: string; errcode: string; error: string }[];
}

export interface KnockModerationOptions {
  serverName: string;
  isServerAdmin: (userId: string) => Promise<boolean>;
  userExists: (userId: string) => Promise<boolean>;
  /** knocks.expire_after_ms: the default age for expire(). */
  expireAfterMs?: number;
  /** knocks.expire_reason: the default reason for expire(). */
  expireReason: string;
}

type Power = "invite" | "kick";

export class KnockModerationService {
  constructor(
    private readonly access: RoomAccess,
    private readonly store: RoomEventStore,
    private readonly membership: MembershipService,
    private readonly clock: Clock,
    private readonly options: KnockModerationOptions,
  ) {}

  /** Pending knocks on a room, oldest first. For server admins and the room's moderators. */
  async roomKnocks(requester: string, roomId: string): Promise<RoomKnock[]> {
    await this.access.versionOf(roomId);
    if (!(await this.options.isServerAdmin(requester)) && !(await this.hasPower(roomId, requester, "invite")) && !(await this.hasPower(roomId, requester, "kick"))) {
      throw new MatrixError("M_FORBIDDEN", "Only server admins and room moderators (with invite or kick power) may list a room's knocks");
    }
    const now = this.clock.now();
    const knocks: RoomKnock[] = [];
    for (const [userId, membership] of await this.store.currentMemberships(roomId)) {
      if (membership !== "knock") continue;
      const eventId = await this.store.currentStateEvent(roomId, "m.room.member", userId);
      const knock = eventId === undefined ? undefined : await this.knockEvent(eventId, now);
      if (!knock) continue;
      knocks.push({ user_id: userId, event_id: eventId!, ...knock.reasonAndName, knocked_at: knock.knockedAt, age_ms: knock.ageMs });
    }
    return knocks.sort((a, b) => a.knocked_at - b.knocked_at || (a.user_id < b.user_id ? -1 : 1));
  }

  /** A user's pending knocks, oldest first. For server admins and the user themself. */
  async userKnocks(requester: string, userId: string): Promise<UserKnock[]> {
    if (!isValidUserId(userId)) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID: ${userId}`);
    if (requester !== userId && !(await this.options.isServerAdmin(requester))) {
      throw new MatrixError("M_FORBIDDEN", "Only server admins may list the knocks of other users");
    }
    if (serverNameOf(userId) === this.options.serverName && !(await this.options.userExists(userId))) throw new MatrixError("M_NOT_FOUND", `Unknown user ${userId}`);
    const now = this.clock.now();
    const knocks: UserKnock[] = [];
    for (const roomId of await this.store.roomsWithMembership(userId, "knock")) {
      const eventId = await this.store.currentStateEvent(roomId, "m.room.member", userId);
      const knock = eventId === undefined ? undefined : await this.knockEvent(eventId, now);
      if (!knock) continue;
      const { reason } = knock.reasonAndName;
      knocks.push({ room_id: roomId, event_id: eventId!, ...(reason !== undefined ? { reason } : {}), knocked_at: knock.knockedAt, age_ms: knock.ageMs });
    }
    return knocks.sort((a, b) => a.knocked_at - b.knocked_at || (a.room_id < b.room_id ? -1 : 1));
  }

  /** Accepts knocks: invites each knocker (who joins at once with knocks.auto_join_on_invite). */
  accept(requester: string, roomId: string, userIds: readonly string[], reason?: string): Promise<KnockActionResult[]> {
    return this.bulk(requester, roomId, userIds, "invite", (actor, target) => this.membership.invite(roomId, actor, target, reason));
  }

  /** Denies knocks: kicks each knocker with the reason. */
  deny(requester: string, roomId: string, userIds: readonly string[], reason?: string): Promise<KnockActionResult[]> {
    return this.bulk(requester, roomId, userIds, "kick", (actor, target) => this.membership.kick(roomId, actor, target, reason));
  }

  /**
   * A knock policy's "accept" (issue 9): invites the knocker at once, as the room's local member with
   * the most power who may invite. M_FORBIDDEN when there is none.
   */
  async acceptKnock(roomId: string, userId: string): Promise<void> {
    const actor = await this.localMemberWithPower(roomId, "invite");
    if (actor === undefined) throw new MatrixError("M_FORBIDDEN", `No local member of ${roomId} has the power to invite, so a knock policy's accept cannot be carried out from this server`);
    await this.membership.invite(roomId, actor, userId, "Knock accepted by this server's knock policy");
  }

  /** Server admins only: denies every knock at least `olderThanMs` old (defaults from knocks.* config). */
  async expire(requester: string, input: { olderThanMs?: number; reason?: string }): Promise<ExpireResult> {
    if (!(await this.options.isServerAdmin(requester))) throw new MatrixError("M_FORBIDDEN", "Only server admins may expire knocks");
    const olderThanMs = input.olderThanMs ?? this.options.expireAfterMs;
    if (olderThanMs === undefined) throw new MatrixError("M_MISSING_PARAM", "older_than_ms is required: knocks.expire_after_ms is not configured");
    return this.expireOlderThan(olderThanMs, input.reason ?? this.options.expireReason);
  }

  /**
   * Kicks every knocker whose knock event is at least `olderThanMs` old, in every room, as a local
   * member with kick power. A knock renewed or answered meanwhile is left alone. `signal` stops
   * the pass between two kicks (the server is shutting down).
   */
  async expireOlderThan(olderThanMs: number, reason: string, signal?: AbortSignal): Promise<ExpireResult> {
    const now = this.clock.now();
    const result: ExpireResult = { older_than_ms: olderThanMs, reason, expired: [], failed: [] };
    const actors = new Map<string, string | undefined>();
    for (const { roomId, userId, eventId } of await this.store.membersWithMembership("knock")) {
      if (signal?.aborted) break;
      const knock = await this.knockEvent(eventId, now);
      if (!knock || knock.ageMs < olderThanMs) continue;
      // The knock may have been renewed (a younger event) or answered since the listing.
      if ((await this.store.currentStateEvent(roomId, "m.room.member", userId)) !== eventId) continue;
      try {
        if (!actors.has(roomId)) actors.set(roomId, await this.localMemberWithPower(roomId, "kick"));
        const actor = actors.get(roomId);
        if (actor === undefined) throw new MatrixError("M_FORBIDDEN", `No local member of ${roomId} has the power to kick, so its knocks cannot be denied from this server`);
        await this.membership.kick(roomId, actor, userId, reason, { knockOutcome: "expired" });
        result.expired.push({ room_id: roomId, user_id: userId, event_id: eventId, knocked_at: knock.knockedAt });
      } catch (error) {
        if (!(error instanceof MatrixError)) throw error;
        result.failed.push({ room_id: roomId, user_id: userId, event_id: eventId, errcode: error.errcode, error: error.message });
      }
    }
    return result;
  }

  private async bulk(
    requester: string,
    roomId: string,
    userIds: readonly string[],
    power: Power,
    act: (actor: string, target: string) => Promise<void>,
  ): Promise<KnockActionResult[]> {
    // Check everything that refuses the whole request before the first event is sent.
    await this.access.versionOf(roomId);
    for (const userId of userIds) if (!isValidUserId(userId)) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID: ${userId}`);
    const actor = await this.actorFor(requester, roomId, power);
    const results: KnockActionResult[] = [];
    for (const userId of new Set(userIds)) {
      try {
        const current = await this.access.membership(roomId, userId);
        if (current !== "knock") {
          throw new MatrixError("M_BAD_STATE", `${userId} is not knocking on this room${current ? ` (their membership is ${current})` : ""}`);
        }
        await act(actor, userId);
        results.push({ user_id: userId, ok: true, membership: (await this.access.membership(roomId, userId)) ?? "leave" });
      } catch (error) {
        if (!(error instanceof MatrixError)) throw error;
        results.push({ user_id: userId, ok: false, errcode: error.errcode, error: error.message });
      }
    }
    return results;
  }

  /**
   * Who sends the events: the requester when they are a joined member with the power; for a server
   * admin without it, a local joined member who has it (see the header). 403 otherwise.
   */
  private async actorFor(requester: string, roomId: string, power: Power): Promise<string> {
    if (await this.hasPower(roomId, requester, power)) return requester;
    const verb = power === "invite" ? "accept knocks (invite users)" : "deny knocks (kick users)";
    if (!(await this.options.isServerAdmin(requester))) {
      const why = (await this.access.membership(roomId, requester)) === "join" ? "You do not have permission to" : "You are not in this room, so you cannot";
      throw new MatrixError("M_FORBIDDEN", `${why} ${verb} in ${roomId}`);
    }
    const standIn = await this.localMemberWithPower(roomId, power);
    if (standIn === undefined) {
      throw new MatrixError("M_FORBIDDEN", `No local member of ${roomId} has the power to ${power}: a server admin's action is sent as such a member, and there is none`);
    }
    return standIn;
  }

  private async hasPower(roomId: string, userId: string, power: Power): Promise<boolean> {
    if ((await this.access.membership(roomId, userId)) !== "join") return false;
    const lookup = await this.access.currentAuthState(roomId);
    const version = await this.access.versionOf(roomId);
    return userPowerLevel(userId, lookup, version) >= namedLevel(power, lookup, version);
  }

  /** The local joined member with the most power, when it is enough for `power` (ties: lowest user id). */
  private async localMemberWithPower(roomId: string, power: Power): Promise<string | undefined> {
    const lookup = await this.access.currentAuthState(roomId);
    const version = await this.access.versionOf(roomId);
    const needed = namedLevel(power, lookup, version);
    const candidates = (await this.access.joinedMembers(roomId))
      .filter((member) => serverNameOf(member) === this.options.serverName)
      .map((member) => ({ member, level: userPowerLevel(member, lookup, version) }))
      .filter((c) => c.level >= needed)
      .sort((a, b) => (b.level === a.level ? (a.member < b.member ? -1 : 1) : b.level > a.level ? 1 : -1));
    return candidates[0]?.member;
  }

  private async knockEvent(eventId: string, now: number) {
    const event = (await this.access.load(eventId))?.event;
    if (!event || event.content.membership !== "knock") return undefined;
    const reasonAndName: { reason?: string; displayname?: string } = {};
    if (typeof event.content.reason === "string") reasonAndName.reason = event.content.reason;
    if (typeof event.content.displayname === "string") reasonAndName.displayname = event.content.displayname;
    return { reasonAndName, knockedAt: event.origin_server_ts, ageMs: Math.max(0, now - event.origin_server_ts) };
  }
}
