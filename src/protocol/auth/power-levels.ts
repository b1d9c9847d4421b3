// Power levels as the authorization rules read them (content/server-server-api.md "Definitions";
// data/event-schemas/schema/m.room.power_levels.yaml; content/rooms/fragments/v1-stringy-power-levels.md,
// v1-floaty-power-levels.md; content/rooms/v12.md "room creators").

import type { RoomEvent } from "../events";
import { isJsonObject, type JsonObject, type JsonValue, LosslessNumber } from "../json";
import type { RoomVersion } from "../room-versions";

/** Gives the auth events of an event, or the room state: the caller decides. */
export type AuthStateLookup = (type: string, stateKey: string) => RoomEvent | undefined;

export const M_ROOM_CREATE = "m.room.create";
export const M_ROOM_MEMBER = "m.room.member";
export const M_ROOM_JOIN_RULES = "m.room.join_rules";
export const M_ROOM_POWER_LEVELS = "m.room.power_levels";
export const M_ROOM_THIRD_PARTY_INVITE = "m.room.third_party_invite";
export const M_ROOM_ALIASES = "m.room.aliases";
export const M_ROOM_REDACTION = "m.room.redaction";

/** The defaults of the named levels when `m.room.power_levels` lacks them or is absent. */
export const DEFAULT_LEVELS = {
  ban: 50,
  kick: 50,
  redact: 50,
  invite: 0,
  state_default: 50,
  events_default: 0,
  users_default: 0,
} as const;
export type NamedLevel = "ban" | "kick" | "redact" | "invite";

/** The level of a room's creator when the room has no `m.room.power_levels` (v1..v11). */
export const CREATOR_DEFAULT_LEVEL = 100;

// The v1 "stringy" form: base 10, optional sign, leading zeros and surrounding whitespace.
const STRINGY_INTEGER = /^\s*[+-]?[0-9]+\s*$/;

/** Own-property read: event types and user IDs such as "constructor" must not reach Object.prototype. */
export function ownValue(obj: JsonObject, key: string): JsonValue | undefined {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

/**
 * A power-level value as the room version reads it, or undefined when it is not one.
 * - v10+: integers only.
 * - v6..v9: integers, or strings that are integers (floats cannot pass canonical JSON).
 * - v1..v5: also floats, truncated at the decimal point; Infinity/NaN (a double overflow) are not.
 * Numbers the lossless parser kept as text (floats, big integers of v1..v5) are read as their value.
 */
export function parsePowerLevel(value: JsonValue | undefined, version: RoomVersion): number | undefined {
  if (value instanceof LosslessNumber) {
    if (!value.isFinite) return undefined;
    if (version.strictCanonicalJson && !value.isIntegerLiteral) return undefined;
    return parsePowerLevel(value.valueOf(), version);
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return undefined;
    if (version.strictCanonicalJson) return Number.isSafeInteger(value) ? value : undefined;
    return Math.trunc(value) + 0; // + 0 turns -0 into 0
  }
  if (typeof value === "string" && !version.integerPowerLevels && STRINGY_INTEGER.test(value)) {
    const n = Number(value.trim());
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

/** The room creators' user IDs, as far as the version defines creators. */
export function roomCreators(create: RoomEvent, version: RoomVersion): string[] {
  if (!version.privilegedCreators) {
    const creator = roomCreator(create, version);
    return creator === undefined ? [] : [creator];
  }
  // v12: the sender plus any additional_creators (validated by rule 1.4 when the create was authorised).
  const extra = create.content.additional_creators;
  const additional = Array.isArray(extra) ? extra.filter((u): u is string => typeof u === "string") : [];
  return [create.sender, ...additional];
}

/** "The creator": `content.creator` up to v10, the create event's sender from v11. */
export function roomCreator(create: RoomEvent, version: RoomVersion): string | undefined {
  if (version.createUsesSender) return create.sender;
  const creator = create.content.creator;
  return typeof creator === "string" ? creator : undefined;
}

/**
 * A user's power level. v12 creators are infinitely high (`Infinity`); otherwise `users[user]`,
 * then `users_default`, then 0. With no `m.room.power_levels`, the creator has 100 before v12.
 */
export function userPowerLevel(userId: string, authState: AuthStateLookup, version: RoomVersion): number {
  const create = authState(M_ROOM_CREATE, "");
  if (version.privilegedCreators && create && roomCreators(create, version).includes(userId)) return Infinity;
  const powerLevels = authState(M_ROOM_POWER_LEVELS, "");
  if (powerLevels) {
    const users = powerLevels.content.users;
    if (isJsonObject(users)) {
      const own = parsePowerLevel(ownValue(users, userId), version);
      if (own !== undefined) return own;
    }
    return parsePowerLevel(powerLevels.content.users_default, version) ?? DEFAULT_LEVELS.users_default;
  }
  if (!version.privilegedCreators && create && roomCreator(create, version) === userId) return CREATOR_DEFAULT_LEVEL;
  return DEFAULT_LEVELS.users_default;
}

/** The invite, kick, ban or redact level (0, 50, 50, 50 when unspecified). */
export function namedLevel(name: NamedLevel, authState: AuthStateLookup, version: RoomVersion): number {
  const powerLevels = authState(M_ROOM_POWER_LEVELS, "");
  return (powerLevels && parsePowerLevel(ownValue(powerLevels.content, name), version)) ?? DEFAULT_LEVELS[name];
}

/**
 * The *required power level* to send an event of `type`: `events[type]`, else `state_default`
 * (50) for state events or `events_default` (0) for the rest.
 */
export function eventSendLevel(
  type: string,
  isStateEvent: boolean,
  authState: AuthStateLookup,
  version: RoomVersion,
): number {
  const powerLevels = authState(M_ROOM_POWER_LEVELS, "");
  if (!powerLevels) return isStateEvent ? DEFAULT_LEVELS.state_default : DEFAULT_LEVELS.events_default;
  const events = powerLevels.content.events;
  if (isJsonObject(events)) {
    const level = parsePowerLevel(ownValue(events, type), version);
    if (level !== undefined) return level;
  }
  const key = isStateEvent ? "state_default" : "events_default";
  return parsePowerLevel(powerLevels.content[key], version) ?? DEFAULT_LEVELS[key];
}

/** The level needed for a notification key such as "room" (@room); 50 when unspecified. */
export function notificationLevel(key: string, authState: AuthStateLookup, version: RoomVersion): number {
  const powerLevels = authState(M_ROOM_POWER_LEVELS, "");
  const notifications = powerLevels?.content.notifications;
  const level = isJsonObject(notifications) ? parsePowerLevel(ownValue(notifications, key), version) : undefined;
  return level ?? 50;
}
