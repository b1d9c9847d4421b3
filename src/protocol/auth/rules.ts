// The authorization rules of room versions 1..12 (content/rooms/fragments/v1-auth-rules.md,
// v3-auth-rules.md, v8-auth-rules.md; content/rooms/v6.md, v7.md, v10.md, v11.md, v12.md).
//
// Rule numbers in comments are room version 12's. The other versions number them so:
//   v12:     1 create, 2 room_id is the create event, 3 auth_events, 4 m.federate, 5 member,
//            6 sender joined, 7 third_party_invite, 8 required level, 9 "@" state key,
//            10 power levels, 11 allow
//   v1..v5:  2 auth_events, 3 m.federate, 4 m.room.aliases, then as v12 from 5 to 11
//            (v1, v2 insert 11 m.room.redaction, so allow is their 12)
//   v6..v11: one lower than v12 from 4 on (3 m.federate, 4 member ... 9 power levels, 10 allow)
// Within rules: 5.2 exists from v8 and 5.7 (knock) from v7, so earlier versions number the later
// member sub-rules lower; 10.1, 10.2 exist from v10 and 10.4 only in v12, likewise.
//
// The caller picks the state: an event is checked against its auth events, the state before it,
// and the current state (content/server-server-api.md "Checks performed on receipt of a PDU").
// Rule 2's checks on the auth_events list itself are in checkAuthEventsShape (auth-events.ts).

import type { RoomEvent } from "../events";
import { isValidUserId, parseUserId, serverNameOf } from "../identifiers";
import { isJsonObject, type JsonObject, type JsonValue } from "../json";
import { roomVersion, type RoomVersion } from "../room-versions";
import {
  type AuthStateLookup,
  eventSendLevel,
  M_ROOM_ALIASES,
  M_ROOM_CREATE,
  M_ROOM_JOIN_RULES,
  M_ROOM_MEMBER,
  M_ROOM_POWER_LEVELS,
  M_ROOM_REDACTION,
  M_ROOM_THIRD_PARTY_INVITE,
  namedLevel,
  ownValue,
  parsePowerLevel,
  roomCreator,
  roomCreators,
  userPowerLevel,
} from "./power-levels";
import { allow, type AuthResult, reject } from "./result";

/** The checks the rules need that take cryptography or a PDU's signatures: the caller supplies them. */
export interface AuthChecks {
  /**
   * 5.4.1.7: whether `signature` (one entry of `signed.signatures`, unpadded base64 ed25519) is a
   * valid signature of `signed` (canonical JSON without `signatures` and `unsigned`) under
   * `publicKey` (a third-party invite's base64 public key). Absent: no signature matches.
   */
  verifySignature?(signed: JsonObject, signature: string, publicKey: string): boolean;
  /**
   * 5.2.1 (v8+): whether the event being authorised carries a valid signature from `serverName`,
   * as the signature checks on receipt established. Absent: it carries none.
   */
  isSignedBy?(serverName: string): boolean;
}

export function authorizeEvent(
  event: RoomEvent,
  authState: AuthStateLookup,
  version: RoomVersion,
  checks: AuthChecks = {},
): AuthResult {
  // 1
  if (event.type === M_ROOM_CREATE) return authorizeCreate(event, version);

  const create = authState(M_ROOM_CREATE, "");
  if (version.roomIdFromCreateEvent) {
    // 2 (v12): the room ID is the create event's ID with "!" for "$".
    if (!create) return reject("the room's m.room.create event is not known");
    if (event.room_id === undefined || !event.room_id.startsWith("!") || create.event_id !== `$${event.room_id.slice(1)}`) {
      return reject(`room_id ${event.room_id} is not the ID of the room's m.room.create event ${create.event_id}`);
    }
  } else if (!create) {
    // v1..v11 2.4 (no create event among the auth events), for whatever state the caller chose
    return reject("no m.room.create event in the auth state");
  }

  // 4: a room created with m.federate false stays on its creator's server.
  if (create.content["m.federate"] === false && serverNameOf(event.sender) !== serverNameOf(create.sender)) {
    return reject("the room does not federate and the sender is on another server");
  }

  // v1..v5 rule 4: m.room.aliases is judged by its state key alone.
  if (version.specialCaseAliasesAuth && event.type === M_ROOM_ALIASES) {
    if (event.state_key === undefined) return reject("m.room.aliases has no state_key"); // 4.1
    if (event.state_key !== serverNameOf(event.sender)) {
      return reject("m.room.aliases state_key is not the sender's server name"); // 4.2
    }
    return allow(); // 4.3
  }

  // 5
  if (event.type === M_ROOM_MEMBER) return authorizeMembership(event, create, authState, version, checks);

  // 6
  if (membershipOf(authState, event.sender) !== "join") return reject(`sender ${event.sender} is not joined to the room`);

  const senderLevel = userPowerLevel(event.sender, authState, version);

  // 7
  if (event.type === M_ROOM_THIRD_PARTY_INVITE) {
    const inviteLevel = namedLevel("invite", authState, version);
    if (senderLevel >= inviteLevel) return allow();
    return reject(`sender's power level ${senderLevel} is below the invite level ${inviteLevel}`);
  }

  // 8
  const requiredLevel = eventSendLevel(event.type, event.state_key !== undefined, authState, version);
  if (requiredLevel > senderLevel) {
    return reject(`sender's power level ${senderLevel} is below the ${requiredLevel} required for ${event.type}`);
  }

  // 9: state keyed by a user ID belongs to that user.
  if (event.state_key !== undefined && event.state_key.startsWith("@") && event.state_key !== event.sender) {
    return reject(`state_key ${event.state_key} is another user's ID`);
  }

  // 10
  if (event.type === M_ROOM_POWER_LEVELS) return authorizePowerLevels(event, create, senderLevel, authState, version);

  // v1, v2 rule 11: redactions are authorised here (from v3 on they are checked when applied,
  // content/rooms/fragments/v3-handling-redactions.md). The table has no flag for this rule; it
  // goes with server-chosen event IDs, whose domains it compares.
  if (version.eventIdFormat === "server-chosen" && event.type === M_ROOM_REDACTION) {
    const redactLevel = namedLevel("redact", authState, version);
    if (senderLevel >= redactLevel) return allow(); // 11.1
    const redactedDomain = event.redacts === undefined ? undefined : serverNameOf(event.redacts);
    if (redactedDomain !== undefined && redactedDomain === serverNameOf(event.event_id)) return allow(); // 11.2
    return reject("sender is below the redact level and the redacted event is from another server"); // 11.3
  }

  // 11 (v1, v2: 12)
  return allow();
}

/** Rule 1: the create event. */
function authorizeCreate(event: RoomEvent, version: RoomVersion): AuthResult {
  // 1.1
  if (event.prev_events.length > 0) return reject("m.room.create has prev_events");
  if (version.roomIdFromCreateEvent) {
    // 1.2 (v12): the room ID is derived from this event, so it cannot carry one.
    if (event.room_id !== undefined) return reject("m.room.create has a room_id");
  } else {
    // 1.2
    const roomDomain = event.room_id === undefined ? undefined : serverNameOf(event.room_id);
    if (roomDomain === undefined || roomDomain !== serverNameOf(event.sender)) {
      return reject("the room_id's domain is not the sender's domain");
    }
  }
  // 1.3; a room without room_version is version "1", which is always known.
  const requestedVersion = ownValue(event.content, "room_version");
  if (requestedVersion !== undefined && (typeof requestedVersion !== "string" || !roomVersion(requestedVersion))) {
    return reject(`room_version ${JSON.stringify(requestedVersion)} is not a recognised room version`);
  }
  // 1.4 (v1..v10)
  if (!version.createUsesSender && ownValue(event.content, "creator") === undefined) {
    return reject("m.room.create content has no creator");
  }
  // 1.4 (v12)
  if (version.privilegedCreators) {
    const additional = ownValue(event.content, "additional_creators");
    if (
      additional !== undefined &&
      !(Array.isArray(additional) && additional.every((u) => typeof u === "string" && isValidUserId(u)))
    ) {
      return reject("additional_creators is not an array of valid user IDs");
    }
  }
  return allow(); // 1.5
}

/** Rule 5: m.room.member. */
function authorizeMembership(
  event: RoomEvent,
  create: RoomEvent,
  authState: AuthStateLookup,
  version: RoomVersion,
  checks: AuthChecks,
): AuthResult {
  const content = event.content;
  const membership = ownValue(content, "membership");
  // 5.1
  if (event.state_key === undefined || membership === undefined) {
    return reject("m.room.member has no state_key or no membership");
  }
  const target = event.state_key;

  // 5.2 (v8+): whoever authorised a restricted join must have signed it. This comes before every
  // membership rule, so it binds a join -> join (profile change) or a leave carrying the key too:
  // such an event is valid only with the signature of the named user's server (the m.room.member
  // schema tells clients and servers to drop the key when copying a member event's content).
  if (version.restrictedJoinRule) {
    const authoriser = ownValue(content, "join_authorised_via_users_server");
    if (authoriser !== undefined) {
      // A value that is not a user ID denotes no homeserver, so nothing can have signed for it
      // (historical user IDs count: the "received" grammar).
      const parsed = typeof authoriser === "string" ? parseUserId(authoriser, "received") : undefined;
      const server = parsed?.ok ? parsed.value.serverName : undefined;
      if (server === undefined || !(checks.isSignedBy?.(server) ?? false)) {
        return reject(`the event is not signed by the server of join_authorised_via_users_server`); // 5.2.1
      }
    }
  }

  const senderMembership = membershipOf(authState, event.sender);
  const targetMembership = membershipOf(authState, target);
  const joinRule = joinRuleOf(authState);

  switch (membership) {
    case "join": {
      // 5.3.1: the creator's own first join, straight after the create event.
      if (event.prev_events.length === 1 && event.prev_events[0] === create.event_id && target === roomCreator(create, version)) {
        return allow();
      }
      if (event.sender !== target) return reject("a join's sender must be its state_key"); // 5.3.2
      if (senderMembership === "ban") return reject("the sender is banned"); // 5.3.3
      // 5.3.4 (knock from v7)
      if (joinRule === "invite" || (version.knocking && joinRule === "knock")) {
        if (senderMembership === "invite" || senderMembership === "join") return allow();
        return reject(`join rule is ${joinRule} and the sender is not invited`);
      }
      // 5.3.5 (restricted from v8, knock_restricted from v10)
      if (
        (version.restrictedJoinRule && joinRule === "restricted") ||
        (version.knockRestrictedJoinRule && joinRule === "knock_restricted")
      ) {
        if (senderMembership === "join" || senderMembership === "invite") return allow(); // 5.3.5.1
        // 5.3.5.2: the authorising user must be joined and able to invite.
        const authoriser = ownValue(content, "join_authorised_via_users_server");
        if (typeof authoriser !== "string") return reject(`join rule is ${joinRule} and no user authorised the join`);
        if (membershipOf(authState, authoriser) !== "join") {
          return reject(`join_authorised_via_users_server ${authoriser} is not joined to the room`);
        }
        if (userPowerLevel(authoriser, authState, version) < namedLevel("invite", authState, version)) {
          return reject(`join_authorised_via_users_server ${authoriser} may not invite`);
        }
        return allow(); // 5.3.5.3
      }
      if (joinRule === "public") return allow(); // 5.3.6
      return reject(`join rule ${joinRule ?? "(not a string)"} does not let the sender join`); // 5.3.7
    }

    case "invite": {
      // 5.4.1
      if (ownValue(content, "third_party_invite") !== undefined) {
        return authorizeThirdPartyInvite(event, target, targetMembership, authState, checks);
      }
      if (senderMembership !== "join") return reject("the inviter is not joined to the room"); // 5.4.2
      if (targetMembership === "join" || targetMembership === "ban") {
        return reject(`the invitee's membership is ${targetMembership}`); // 5.4.3
      }
      const senderLevel = userPowerLevel(event.sender, authState, version);
      const inviteLevel = namedLevel("invite", authState, version);
      if (senderLevel >= inviteLevel) return allow(); // 5.4.4
      return reject(`the inviter's power level ${senderLevel} is below the invite level ${inviteLevel}`); // 5.4.5
    }

    case "leave": {
      // 5.5.1: leaving, declining an invite, or (v7+) rescinding a knock.
      if (event.sender === target) {
        if (senderMembership === "invite" || senderMembership === "join") return allow();
        if (version.knocking && senderMembership === "knock") return allow();
        return reject(`a user with membership ${senderMembership ?? "none"} cannot leave`);
      }
      if (senderMembership !== "join") return reject("the sender is not joined to the room"); // 5.5.2
      const senderLevel = userPowerLevel(event.sender, authState, version);
      // 5.5.3: unbanning takes the ban level as well as the kick level.
      if (targetMembership === "ban" && senderLevel < namedLevel("ban", authState, version)) {
        return reject("the sender's power level is below the ban level needed to unban");
      }
      // 5.5.4
      const kickLevel = namedLevel("kick", authState, version);
      const targetLevel = userPowerLevel(target, authState, version);
      if (senderLevel >= kickLevel && targetLevel < senderLevel) return allow();
      return reject("the sender may not kick the target"); // 5.5.5
    }

    case "ban": {
      if (senderMembership !== "join") return reject("the sender is not joined to the room"); // 5.6.1
      const senderLevel = userPowerLevel(event.sender, authState, version);
      const banLevel = namedLevel("ban", authState, version);
      const targetLevel = userPowerLevel(target, authState, version);
      if (senderLevel >= banLevel && targetLevel < senderLevel) return allow(); // 5.6.2
      return reject("the sender may not ban the target"); // 5.6.3
    }

    case "knock": {
      if (!version.knocking) break; // before v7, knock is an unknown membership (5.8)
      // 5.7.1 (knock_restricted from v10)
      if (!(joinRule === "knock" || (version.knockRestrictedJoinRule && joinRule === "knock_restricted"))) {
        return reject(`join rule ${joinRule ?? "(not a string)"} does not allow knocking`);
      }
      if (event.sender !== target) return reject("a knock's sender must be its state_key"); // 5.7.2
      // 5.7.3
      if (senderMembership !== "ban" && senderMembership !== "invite" && senderMembership !== "join") return allow();
      return reject(`a user with membership ${senderMembership} cannot knock`); // 5.7.4
    }
  }
  return reject(`unknown membership ${JSON.stringify(membership)}`); // 5.8
}

/** Rule 5.4.1: an invite made good by a third-party invite's signed token. */
function authorizeThirdPartyInvite(
  event: RoomEvent,
  target: string,
  targetMembership: string | undefined,
  authState: AuthStateLookup,
  checks: AuthChecks,
): AuthResult {
  if (targetMembership === "ban") return reject("the invitee is banned"); // 5.4.1.1
  const thirdPartyInvite = ownValue(event.content, "third_party_invite");
  const signed = isJsonObject(thirdPartyInvite) ? ownValue(thirdPartyInvite, "signed") : undefined;
  if (!isJsonObject(signed)) return reject("third_party_invite has no signed object"); // 5.4.1.2
  const mxid = ownValue(signed, "mxid");
  const token = ownValue(signed, "token");
  if (typeof mxid !== "string" || typeof token !== "string") {
    return reject("third_party_invite.signed lacks mxid or token"); // 5.4.1.3
  }
  if (mxid !== target) return reject("third_party_invite.signed.mxid is not the state_key"); // 5.4.1.4
  const invite = authState(M_ROOM_THIRD_PARTY_INVITE, token);
  if (!invite) return reject(`no m.room.third_party_invite with token ${token}`); // 5.4.1.5
  if (invite.sender !== event.sender) return reject("the sender did not send the m.room.third_party_invite"); // 5.4.1.6
  // 5.4.1.7: any signature in `signed` against any of the invite's public keys.
  const publicKeys: string[] = [];
  const single = ownValue(invite.content, "public_key");
  if (typeof single === "string") publicKeys.push(single);
  const list = ownValue(invite.content, "public_keys");
  if (Array.isArray(list)) {
    for (const entry of list) {
      const key = isJsonObject(entry) ? ownValue(entry, "public_key") : undefined;
      if (typeof key === "string") publicKeys.push(key);
    }
  }
  const signatures = ownValue(signed, "signatures");
  if (checks.verifySignature && isJsonObject(signatures)) {
    for (const byKeyId of Object.values(signatures)) {
      if (!isJsonObject(byKeyId)) continue;
      for (const signature of Object.values(byKeyId)) {
        if (typeof signature !== "string") continue;
        if (publicKeys.some((key) => checks.verifySignature!(signed, signature, key))) return allow();
      }
    }
  }
  return reject("no signature in third_party_invite.signed matches the invite's public keys"); // 5.4.1.8
}

/** The properties whose alterations rule 10.6 checks. */
const LEVEL_KEYS = ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"] as const;

/** Rule 10: m.room.power_levels. */
function authorizePowerLevels(
  event: RoomEvent,
  create: RoomEvent,
  senderLevel: number,
  authState: AuthStateLookup,
  version: RoomVersion,
): AuthResult {
  const content = event.content;
  if (version.integerPowerLevels) {
    // 10.1 (v10+)
    for (const key of LEVEL_KEYS) {
      const value = ownValue(content, key);
      if (value !== undefined && parsePowerLevel(value, version) === undefined) return reject(`${key} is not an integer`);
    }
    // 10.2 (v10+)
    for (const key of ["events", "notifications"]) {
      const value = ownValue(content, key);
      if (value === undefined) continue;
      if (!isJsonObject(value) || Object.values(value).some((v) => parsePowerLevel(v, version) === undefined)) {
        return reject(`${key} is not an object of integers`);
      }
    }
  }
  // 10.3; an absent `users` is an empty one.
  const users = ownValue(content, "users");
  if (users !== undefined) {
    if (!isJsonObject(users)) return reject("users is not an object");
    for (const [userId, level] of Object.entries(users)) {
      if (!isValidUserId(userId)) return reject(`users key ${userId} is not a valid user ID`);
      if (parsePowerLevel(level, version) === undefined) return reject(`users value for ${userId} is not a power level`);
    }
    // 10.4 (v12): creators' infinite level cannot be written down.
    if (version.privilegedCreators) {
      for (const creator of roomCreators(create, version)) {
        if (ownValue(users, creator) !== undefined) return reject(`users lists room creator ${creator}`);
      }
    }
  }

  // 10.5
  const previous = authState(M_ROOM_POWER_LEVELS, "");
  if (!previous) return allow();

  // 10.6
  for (const change of alterations(previous.content, content, LEVEL_KEYS, version)) {
    if (change.invalid) return reject(`${change.key} is not a valid power level`);
    if (change.current !== undefined && change.current > senderLevel) {
      return reject(`cannot change ${change.key} from ${change.current}, above the sender's level ${senderLevel}`); // 10.6.1
    }
    if (change.next !== undefined && change.next > senderLevel) {
      return reject(`cannot set ${change.key} to ${change.next}, above the sender's level ${senderLevel}`); // 10.6.2
    }
  }

  // 10.7, 10.8: `events`, and from v6 `notifications`.
  const maps = version.limitNotificationsPowerLevels ? ["events", "notifications"] : ["events"];
  for (const name of maps) {
    const before = objectAt(previous.content, name);
    const after = objectAt(content, name);
    for (const change of alterations(before, after, keysOf(before, after), version)) {
      if (change.invalid) return reject(`${name}.${change.key} is not a valid power level`);
      if (change.current !== undefined && change.current > senderLevel) {
        return reject(`cannot change ${name}.${change.key} from ${change.current}, above the sender's level`); // 10.7.1
      }
      if (change.next !== undefined && change.next > senderLevel) {
        return reject(`cannot set ${name}.${change.key} to ${change.next}, above the sender's level`); // 10.8.1
      }
    }
  }

  // 10.9, 10.10: `users`.
  const usersBefore = objectAt(previous.content, "users");
  const usersAfter = objectAt(content, "users");
  for (const change of alterations(usersBefore, usersAfter, keysOf(usersBefore, usersAfter), version)) {
    if (change.invalid) return reject(`users.${change.key} is not a valid power level`);
    // 10.9.1: nobody may demote or remove a peer or a superior, but anyone may lower themselves.
    if (change.key !== event.sender && change.current !== undefined && change.current >= senderLevel) {
      return reject(`cannot change the level of ${change.key}, at or above the sender's level ${senderLevel}`);
    }
    if (change.next !== undefined && change.next > senderLevel) {
      return reject(`cannot raise ${change.key} to ${change.next}, above the sender's level ${senderLevel}`); // 10.10.1
    }
  }
  return allow(); // 10.11
}

interface Alteration {
  readonly key: string;
  /** The current value as a power level (undefined when absent or unreadable). */
  readonly current?: number;
  /** The new value as a power level (undefined when removed). */
  readonly next?: number;
  /** The new value is present but not a power level (only possible before v10). */
  readonly invalid: boolean;
}

/**
 * The keys "added, changed or removed" between two objects. Values are compared as power levels,
 * so a v1..v9 "50" replaced by 50 is no change.
 */
function alterations(before: JsonObject, after: JsonObject, keys: readonly string[], version: RoomVersion): Alteration[] {
  const found: Alteration[] = [];
  for (const key of keys) {
    const oldRaw = ownValue(before, key);
    const newRaw = ownValue(after, key);
    if (oldRaw === undefined && newRaw === undefined) continue;
    const current = oldRaw === undefined ? undefined : parsePowerLevel(oldRaw, version);
    const next = newRaw === undefined ? undefined : parsePowerLevel(newRaw, version);
    if (oldRaw !== undefined && newRaw !== undefined && (oldRaw === newRaw || (current !== undefined && current === next))) {
      continue;
    }
    found.push({ key, current, next, invalid: newRaw !== undefined && next === undefined });
  }
  return found;
}

function objectAt(content: JsonObject, key: string): JsonObject {
  const value = ownValue(content, key);
  return isJsonObject(value) ? value : {};
}

function keysOf(a: JsonObject, b: JsonObject): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])];
}

/** A user's current membership, undefined when they have no m.room.member event. */
export function membershipOf(authState: AuthStateLookup, userId: string): string | undefined {
  const member = authState(M_ROOM_MEMBER, userId);
  const membership = member ? ownValue(member.content, "membership") : undefined;
  return typeof membership === "string" ? membership : undefined;
}

/**
 * The room's join rule. The spec gives none for a room without m.room.join_rules (or without
 * `join_rule` in it); this reads that as "invite", the most restrictive rule, as Synapse does.
 * A `join_rule` that is present but not a string is no rule at all: undefined, which no rule
 * matches (5.3.7 and 5.7.1 reject), rather than "invite", which would still let invited and
 * joined users join.
 */
export function joinRuleOf(authState: AuthStateLookup): string | undefined {
  const joinRules = authState(M_ROOM_JOIN_RULES, "");
  const rule: JsonValue | undefined = joinRules ? ownValue(joinRules.content, "join_rule") : undefined;
  if (rule === undefined) return "invite";
  return typeof rule === "string" ? rule : undefined;
}
