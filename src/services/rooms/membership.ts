// Room membership from the client side (client-server-api "Room membership"): join, leave, invite,
// kick, ban, unban and forget, each one m.room.member event built and authorized by the room engine.
// When the auth rules refuse, the 403 says why in the user's terms; nothing is stored.
// Local rooms only: joining a room this server is not in (over federation) comes later.
//
// Knocks pass the plugins' knock policies (issue 9) after the room's own checks and before anything
// is signed or stored; the policies hear when a knock arrives and when a pending knock ends.
// Joins, invites and knocks also pass the spam policies (userMayJoinRoom, userMayInvite,
// userMayKnock), asked only when a spam policy is registered. Local actions only, for now.
import type { Decision, KnockOutcome, KnockRequest } from "../../extensions";
import { MatrixError } from "../../protocol/errors";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { joinRuleOf, namedLevel, userPowerLevel } from "../../protocol/auth";
import { isValidUserId, serverNameOf } from "../../protocol/identifiers";
import type { RoomClientStore, StoredEvent } from "../../storage/stores";
import type { PolicySet } from "../plugins/policies";
import { policyDenial, requireSpamAllowed, spamVerdict } from "../plugins/spam-decisions";
import type { Clock, Logger } from "../runtime";
import type { RoomEngine } from "./room-engine";
import type { RoomAccess } from "./room-access";

/** The profile fields a member event carries. */
export interface MemberProfile {
  displayname?: string;
  avatar_url?: string;
}

/** Looks up a user's profile (the account side provides it); none by default. */
export type ProfileLookup = (userId: string) => MemberProfile | undefined | Promise<MemberProfile | undefined>;

export interface MembershipOptions {
  serverName: string;
  /** Whether a local user exists (invites to unknown local users are refused). */
  userExists: (userId: string) => boolean | Promise<boolean>;
  profileOf?: ProfileLookup;
  /** knocks.auto_join_on_invite: a local knocker who is invited (their knock accepted) joins at once. */
  autoJoinKnockersOnInvite?: boolean;
  /**
   * The plugins' policies: knocks are decided by them and they hear knock outcomes; joins, invites
   * and knocks pass the spam policies. Absent: everything is allowed.
   */
  policies?: PolicySet;
  /**
   * Carries out a knock policy's "accept": invites the knocker as the room's local member with the
   * most power who may invite (KnockModerationService.acceptKnock; a callback, since that service
   * is built on this one). Absent: an accepted knock stays pending, as if allowed.
   */
  acceptKnock?: (roomId: string, userId: string) => Promise<void>;
  /** Whether a local user is a guest account (client-server-api "Guest Access"); absent: nobody is. */
  isGuest?: (userId: string) => Promise<boolean>;
  /** Invites a user of another server (over federation); absent: such invites are refused. */
  inviteRemote?: (roomId: string, sender: string, target: string, reason?: string) => Promise<void>;
  logger?: Logger;
}

/** The memberships that can end a pending knock (a new knock renews it instead). */
const KNOCK_ENDINGS: ReadonlySet<unknown> = new Set(["invite", "join", "leave", "ban"]);

export class MembershipService {
  private readonly profileOf: ProfileLookup;
  /** A kick in progress whose knock outcome is not "rejected" (the expiry job's), by room and target. */
  private readonly knockOutcomeOverrides = new Map<string, KnockOutcome>();

  constructor(
    private readonly engine: RoomEngine,
    private readonly access: RoomAccess,
    private readonly clientStore: RoomClientStore,
    private readonly clock: Clock,
    private readonly options: MembershipOptions,
  ) {
    this.profileOf = options.profileOf ?? (() => undefined);
    // Every persisted membership change passes the room engine's listeners, whichever path sent it
    // (these methods, PUT /state/m.room.member, federation): the one place to see a knock end.
    if (options.policies) engine.onEvent((_roomId, stored, pdu) => this.reportKnockEnding(stored, pdu));
    if (options.isGuest) {
      engine.onEvent((roomId, stored) => {
        // Not awaited: the leaves are writes of their own to the room this event was just written to.
        if (stored.type === "m.room.guest_access" && stored.stateKey === "") void this.removeGuests(roomId);
      });
    }
  }

  /**
   * Servers MUST only let guests join where m.room.guest_access is can_join, and MUST make their
   * joined guests leave when that stops being so (guest_access.md, "Server behaviour"). Guests leave
   * by their own leave event, as in Synapse.
   */
  private async removeGuests(roomId: string): Promise<void> {
    try {
      if (await this.guestsMayJoin(roomId)) return;
      for (const member of await this.access.joinedMembers(roomId)) {
        if (serverNameOf(member) !== this.options.serverName || !(await this.options.isGuest!(member))) continue;
        if (await this.guestsMayJoin(roomId)) return;
        await this.sendMember(roomId, member, member, { membership: "leave" }, () => Promise.resolve(undefined));
      }
    } catch (error) {
      this.options.logger?.log("warn", "could not remove guests after guest access ended", { room_id: roomId, error: String(error) });
    }
  }

  private async guestsMayJoin(roomId: string): Promise<boolean> {
    return (await this.engine.currentStateEvent(roomId, "m.room.guest_access", ""))?.content.guest_access === "can_join";
  }

  async join(roomId: string, userId: string, reason?: string, custom: JsonObject = {}): Promise<{ roomId: string }> {
    await this.access.versionOf(roomId);
    const current = await this.access.membership(roomId, userId);
    if (current !== "join") {
      // A guest joins only where guests may, whatever else would let it in (an invite included).
      if ((await this.options.isGuest?.(userId)) && !(await this.guestsMayJoin(roomId))) throw new MatrixError("M_FORBIDDEN", "Guest access is not allowed in this room", 403);
      const policies = this.options.policies;
      if (policies?.hasSpamPolicies) {
        // A shadowed join is refused: the client would see at once that it is not in the room (and
        // Synapse's user_may_join_room has no shadow either).
        await requireSpamAllowed(policies, (p) => p.userMayJoinRoom?.(userId, roomId, current === "invite"), "You may not join this room");
      }
      const profile = await this.profile(userId);
      const authorisedVia = current === "invite" ? undefined : await this.restrictedJoinAuthoriser(roomId, userId);
      const content = { ...custom, ...profile, membership: "join", reason, ...(authorisedVia ? { join_authorised_via_users_server: authorisedVia } : {}) };
      await this.sendMember(roomId, userId, userId, content, () => this.explainJoin(roomId, userId));
    }
    await this.clientStore.setForgotten(userId, roomId, false, this.clock.now());
    return { roomId };
  }

  /**
   * For a restricted (v8+) or knock_restricted (v10+) room: when the user is joined to a room its
   * allow list names, a local member who may invite vouches for the join
   * (join_authorised_via_users_server, rooms/v8.md). Undefined when the rules do not apply or no
   * allow condition holds, and the join is left to the usual rules.
   */
  async restrictedJoinAuthoriser(roomId: string, userId: string): Promise<string | undefined> {
    const version = await this.access.versionOf(roomId);
    const lookup = await this.access.currentAuthState(roomId);
    const joinRules = lookup("m.room.join_rules", "");
    const rule = joinRules?.content.join_rule;
    const restricted = (rule === "restricted" && version.restrictedJoinRule) || (rule === "knock_restricted" && version.knockRestrictedJoinRule);
    if (!restricted || !Array.isArray(joinRules?.content.allow)) return undefined;
    let satisfied = false;
    for (const entry of joinRules.content.allow) {
      if (!isJsonObject(entry)) continue;
      if (entry.type !== "m.room_membership" || typeof entry.room_id !== "string") continue;
      try {
        if ((await this.access.membership(entry.room_id, userId)) === "join") {
          satisfied = true;
          break;
        }
      } catch {
        // a room this server does not know
      }
    }
    if (!satisfied) return undefined;
    const inviteLevel = namedLevel("invite", lookup, version);
    return (await this.access.joinedMembers(roomId))
      .filter((member) => serverNameOf(member) === this.options.serverName)
      .find((member) => userPowerLevel(member, lookup, version) >= inviteLevel);
  }

  /**
   * Knocks on a room (client-server-api "Knocking on rooms"): only where the join rule is knock
   * (room version 7+) or knock_restricted (10+). Knocking again while knocking makes a new event,
   * as the auth rules allow; banned, invited and joined users are told why they cannot.
   */
  async knock(roomId: string, userId: string, reason?: string): Promise<{ roomId: string }> {
    const version = await this.access.versionOf(roomId);
    const membership = await this.access.membership(roomId, userId);
    if (membership === "ban") throw new MatrixError("M_FORBIDDEN", "You are banned from this room");
    if (membership === "join") throw new MatrixError("M_FORBIDDEN", "You are already in this room");
    if (membership === "invite") throw new MatrixError("M_FORBIDDEN", "You are already invited to this room: accept the invite by joining");
    if (!version.knocking) throw new MatrixError("M_FORBIDDEN", `Room version ${version.id} does not support knocking`);
    const joinRule = joinRuleOf(await this.access.currentAuthState(roomId));
    const knockable = joinRule === "knock" || (joinRule === "knock_restricted" && version.knockRestrictedJoinRule);
    if (!knockable) throw new MatrixError("M_FORBIDDEN", `You cannot knock on this room: its join rule is ${joinRule}`);

    // The plugins decide before anything is signed or stored.
    const policies = this.options.policies;
    const request: KnockRequest = { roomId, userId, originServer: this.options.serverName, reason, local: true };
    const decision: Decision = policies ? await policies.decideKnock(request) : { kind: "allow" };
    if (decision.kind === "deny") throw policyDenial(decision.errcode, decision.message);
    // Shadowed: the knocker is told it worked; nothing is stored or sent.
    if (decision.kind === "shadow") return { roomId };
    // The spam policies too (after the knock policies: their denial or shadow needs no second opinion).
    if (policies?.hasSpamPolicies && (await spamVerdict(policies, (p) => p.userMayKnock?.(userId, roomId))) === "shadow") return { roomId };

    const profile = await this.profile(userId);
    await this.sendMember(roomId, userId, userId, { ...profile, membership: "knock", reason });
    await this.clientStore.setForgotten(userId, roomId, false, this.clock.now());
    // Not awaited: a slow listener must not hold the knocker's answer (each call has its timeout).
    if (policies) void policies.knockArrived(request).catch(() => {});
    if (decision.kind === "accept") await this.acceptKnock(roomId, userId);
    return { roomId };
  }

  /**
   * A policy accepted the knock: the knocker is invited at once. The knock is stored already, so a
   * failure here (no local member may invite, the state moved on) leaves it pending for the room's
   * moderators, as an allowed knock would be, and the knocker still gets their 200.
   */
  private async acceptKnock(roomId: string, userId: string): Promise<void> {
    const accept = this.options.acceptKnock;
    if (!accept) {
      this.options.logger?.log("warn", "a knock policy accepted a knock, but nothing here can invite; the knock stays pending", { room_id: roomId, user_id: userId });
      return;
    }
    try {
      await accept(roomId, userId);
    } catch (error) {
      this.options.logger?.log("warn", "could not carry out a knock policy's accept; the knock stays pending", {
        room_id: roomId,
        user_id: userId,
        error: error instanceof MatrixError ? `${error.errcode}: ${error.message}` : String(error),
      });
    }
  }

  /**
   * Tells the policies when a member event ends a pending knock: invite (accepted), join (accepted:
   * a knock_restricted room let them in directly), leave by themself (rescinded) or by someone else
   * (rejected, or expired when the expiry job kicked), ban (banned). The membership before the event
   * is the target's member event among its auth events (the auth-event selection rules put it
   * there). Nothing here may fail the write that caused it: errors are logged, and the policies are
   * not waited for.
   */
  private reportKnockEnding(stored: StoredEvent, pdu: JsonObject): void {
    if (stored.type !== "m.room.member" || stored.stateKey === undefined || stored.rejectedReason !== undefined || stored.softFailed) return;
    const policies = this.options.policies;
    const content = isJsonObject(pdu.content) ? pdu.content : {};
    const membership = content.membership;
    if (!policies || !KNOCK_ENDINGS.has(membership)) return;
    const target = stored.stateKey;
    // Read now, while the kick that set it is still in progress.
    const override = this.knockOutcomeOverrides.get(overrideKey(stored.roomId, target));
    const report = async () => {
      let before: unknown;
      for (const id of stored.authEvents) {
        const auth = (await this.engine.parsedEvent(id))?.event;
        if (auth?.type === "m.room.member" && auth.state_key === target) before = auth.content.membership;
      }
      if (before !== "knock") return;
      const by = stored.sender;
      let outcome: KnockOutcome;
      if (membership === "invite" || membership === "join") outcome = "accepted";
      else if (membership === "ban") outcome = "banned";
      else if (by === target) outcome = "rescinded";
      else outcome = override ?? "rejected";
      const authorisedVia = content.join_authorised_via_users_server;
      const actor = membership === "join" && typeof authorisedVia === "string" ? authorisedVia : by;
      await policies.knockResolved({ roomId: stored.roomId, userId: target, outcome, by: actor });
    };
    void report().catch((error) => this.options.logger?.log("error", "could not report a knock's outcome to the plugins", { room_id: stored.roomId, user_id: target, error: String(error) }));
  }

  async leave(roomId: string, userId: string, reason?: string): Promise<void> {
    await this.access.versionOf(roomId);
    const membership = await this.access.membership(roomId, userId);
    if (membership !== "join" && membership !== "invite" && membership !== "knock") {
      throw new MatrixError("M_FORBIDDEN", membership === "ban" ? "You are banned from this room" : "You are not a member of this room");
    }
    await this.sendMember(roomId, userId, userId, { membership: "leave", reason });
  }

  async invite(roomId: string, sender: string, target: string, reason?: string): Promise<void> {
    await this.access.versionOf(roomId);
    this.checkTarget(target);
    if (serverNameOf(target) !== this.options.serverName) {
      if (this.options.inviteRemote) return this.options.inviteRemote(roomId, sender, target, reason);
      throw new MatrixError("M_FORBIDDEN", `Cannot invite ${target}: this server does not invite users of other servers`);
    }
    if (!(await this.options.userExists(target))) throw new MatrixError("M_NOT_FOUND", `Unknown user ${target}`);
    const current = await this.access.membership(roomId, target);
    if (current === "join") throw new MatrixError("M_FORBIDDEN", `${target} is already in the room`);
    if (current === "ban") throw new MatrixError("M_FORBIDDEN", `${target} is banned from the room`);
    const policies = this.options.policies;
    // Shadowed: the inviter is told it worked; no invite is stored or sent.
    if (policies?.hasSpamPolicies && (await spamVerdict(policies, (p) => p.userMayInvite?.(sender, target, roomId))) === "shadow") return;
    const profile = await this.profile(target);
    await this.sendMember(roomId, sender, target, { ...profile, membership: "invite", reason }, () => this.explainModeration(roomId, sender, "invite"));
    if (current === "knock" && this.options.autoJoinKnockersOnInvite) {
      // The knocker asked to join and the invite is the answer: join on their behalf. The invite is
      // already stored; if the join is refused (the state moved on meanwhile) the invite stands and
      // the user can still accept it themself.
      try {
        await this.join(roomId, target);
      } catch (error) {
        if (!(error instanceof MatrixError)) throw error;
      }
    }
  }

  /** `knockOutcome`: what the kick of a knocker means to the knock policies, when not "rejected" (the expiry job's "expired"). */
  async kick(roomId: string, sender: string, target: string, reason?: string, options: { knockOutcome?: KnockOutcome } = {}): Promise<void> {
    await this.access.versionOf(roomId);
    this.checkTarget(target);
    const current = await this.access.membership(roomId, target);
    if (current !== "join" && current !== "invite" && current !== "knock") throw new MatrixError("M_FORBIDDEN", `${target} is not in the room`);
    const key = overrideKey(roomId, target);
    if (options.knockOutcome) this.knockOutcomeOverrides.set(key, options.knockOutcome);
    try {
      await this.sendMember(roomId, sender, target, { membership: "leave", reason }, () => this.explainModeration(roomId, sender, "kick", target));
    } finally {
      if (options.knockOutcome) this.knockOutcomeOverrides.delete(key);
    }
  }

  async ban(roomId: string, sender: string, target: string, reason?: string): Promise<void> {
    await this.access.versionOf(roomId);
    this.checkTarget(target);
    if ((await this.access.membership(roomId, target)) === "ban") return; // already banned: nothing to change
    await this.sendMember(roomId, sender, target, { membership: "ban", reason }, () => this.explainModeration(roomId, sender, "ban", target));
  }

  async unban(roomId: string, sender: string, target: string, reason?: string): Promise<void> {
    await this.access.versionOf(roomId);
    this.checkTarget(target);
    if ((await this.access.membership(roomId, target)) !== "ban") throw new MatrixError("M_FORBIDDEN", `${target} is not banned from the room`);
    await this.sendMember(roomId, sender, target, { membership: "leave", reason }, () => this.explainModeration(roomId, sender, "ban"));
  }

  async forget(roomId: string, userId: string): Promise<void> {
    await this.access.versionOf(roomId);
    const membership = await this.access.membership(roomId, userId);
    if (membership === "join" || membership === "invite" || membership === "knock") {
      throw new MatrixError("M_UNKNOWN", `User ${userId} is in room ${roomId}`, 400);
    }
    await this.clientStore.setForgotten(userId, roomId, true, this.clock.now());
  }

  /**
   * A profile change reaches every room the user has joined as a new join event carrying the new
   * displayname/avatar_url (what Synapse does). A room that refuses it is skipped, not fatal.
   */
  async propagateProfile(userId: string, joinedRooms: readonly string[]): Promise<void> {
    const profile = await this.profile(userId);
    for (const roomId of joinedRooms) {
      const current = await this.engine.currentStateEvent(roomId, "m.room.member", userId);
      if (current?.content.membership !== "join") continue;
      // Not the authorisation of the original join: it was that server's word for that join only.
      const { join_authorised_via_users_server: _authorisedVia, ...kept } = current.content;
      const content = { ...kept, displayname: profile.displayname, avatar_url: profile.avatar_url };
      if (content.displayname === current.content.displayname && content.avatar_url === current.content.avatar_url) continue;
      try {
        await this.sendMember(roomId, userId, userId, content);
      } catch (error) {
        if (!(error instanceof MatrixError)) throw error;
      }
    }
  }

  isForgotten(userId: string, roomId: string): Promise<boolean> {
    return this.clientStore.isForgotten(userId, roomId);
  }

  private checkTarget(target: string): void {
    if (!isValidUserId(target)) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID: ${target}`);
  }

  /** The displayname and avatar_url a member event of this user carries. */
  async profile(userId: string): Promise<MemberProfile> {
    const p = (await this.profileOf(userId)) ?? {};
    const out: MemberProfile = {};
    if (typeof p.displayname === "string") out.displayname = p.displayname;
    if (typeof p.avatar_url === "string") out.avatar_url = p.avatar_url;
    return out;
  }

  private async sendMember(roomId: string, sender: string, target: string, content: Record<string, unknown>, explain?: () => Promise<string | undefined>): Promise<string> {
    const clean = Object.fromEntries(Object.entries(content).filter(([, v]) => v !== undefined)) as JsonObject;
    try {
      return (await this.engine.sendEvent(roomId, { type: "m.room.member", sender, stateKey: target, content: clean })).eventId;
    } catch (error) {
      if (error instanceof MatrixError && error.errcode === "M_FORBIDDEN") {
        const message = await explain?.();
        if (message) throw new MatrixError("M_FORBIDDEN", message);
      }
      throw error;
    }
  }

  /** Why a join was refused, in the user's terms. */
  private async explainJoin(roomId: string, userId: string): Promise<string | undefined> {
    const membership = await this.access.membership(roomId, userId);
    if (membership === "ban") return "You are banned from this room";
    const joinRule = joinRuleOf(await this.access.currentAuthState(roomId));
    if (joinRule === "invite" || joinRule === "knock") return "You are not invited to this room";
    if (joinRule === "restricted" || joinRule === "knock_restricted") return "You are not invited to this room, and not in any room its join rules allow";
    return `This room's join rule (${joinRule}) does not let you join`;
  }

  /** Why an invite, kick or ban by `sender` was refused. */
  private async explainModeration(roomId: string, sender: string, action: "invite" | "kick" | "ban", target?: string): Promise<string | undefined> {
    if ((await this.access.membership(roomId, sender)) !== "join") return "You are not in this room";
    const lookup = await this.access.currentAuthState(roomId);
    const version = await this.access.versionOf(roomId);
    const own = userPowerLevel(sender, lookup, version);
    const verb = action === "invite" ? "invite users to" : action === "kick" ? "kick users from" : "ban or unban users in";
    if (own < namedLevel(action, lookup, version)) return `You do not have permission to ${verb} this room`;
    if (target !== undefined && own <= userPowerLevel(target, lookup, version)) return `You cannot ${action} ${target}: their power level is not below yours`;
    return undefined;
  }
}

const overrideKey = (roomId: string, userId: string) => `${roomId}\u0000${userId}`;

