// The redaction algorithm (content/rooms/fragments/v1-, v6-, v9-, v11-redactions.md), driven by the
// room version's RedactionRules. Hashing, signing and event IDs all work on the redacted form, so it
// must match every other server's key for key.
//
// `unsigned` is dropped, as the spec's lists say. (Synapse's pruned copy keeps unsigned.age_ts and
// unsigned.replaces_state, but `unsigned` is never hashed or signed, so the bytes agree.)
// Kept values are shared with the input, not copied: treat both as immutable.

import { isJsonObject, type JsonObject, type JsonValue } from "../json";
import type { RedactionRules, RoomVersion } from "../room-versions";

/** Top-level keys every room version keeps. */
const ESSENTIAL_KEYS = [
  "event_id",
  "type",
  "room_id",
  "sender",
  "state_key",
  "content",
  "hashes",
  "signatures",
  "depth",
  "prev_events",
  "auth_events",
  "origin_server_ts",
] as const;

/** Top-level keys only room versions 1-10 keep. */
const LEGACY_KEYS = ["origin", "membership", "prev_state"] as const;

const POWER_LEVELS_KEYS = ["ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"];

/** The redacted copy of an event (PDU or client-format event) under the rules of its room version. */
export function redactEvent(event: JsonObject, version: RoomVersion): JsonObject {
  const rules = version.redaction;
  const redacted: JsonObject = {};
  const keptKeys = rules.keepOriginMembershipPrevState ? [...ESSENTIAL_KEYS, ...LEGACY_KEYS] : ESSENTIAL_KEYS;
  for (const key of keptKeys) {
    if (Object.hasOwn(event, key)) redacted[key] = event[key];
  }
  // Every redacted event has a content object, even if the original's was missing or malformed.
  const content = isJsonObject(event.content) ? event.content : {};
  redacted.content = typeof event.type === "string" ? redactContent(event.type, content, rules) : {};
  return redacted;
}

/** The content keys that survive redaction for one event type. */
export function redactContent(type: string, content: JsonObject, rules: RedactionRules): JsonObject {
  switch (type) {
    case "m.room.member":
      return redactMemberContent(content, rules);
    case "m.room.create":
      return rules.keepAllCreateContent ? content : pick(content, ["creator"]);
    case "m.room.join_rules":
      return pick(content, rules.keepJoinRulesAllow ? ["join_rule", "allow"] : ["join_rule"]);
    case "m.room.power_levels":
      return pick(content, rules.keepPowerLevelsInvite ? [...POWER_LEVELS_KEYS, "invite"] : POWER_LEVELS_KEYS);
    case "m.room.aliases":
      return rules.keepAliasesContent ? pick(content, ["aliases"]) : {};
    case "m.room.history_visibility":
      return pick(content, ["history_visibility"]);
    case "m.room.redaction":
      return rules.keepRedactionRedacts ? pick(content, ["redacts"]) : {};
    default:
      return {};
  }
}

function redactMemberContent(content: JsonObject, rules: RedactionRules): JsonObject {
  const kept = pick(content, rules.keepJoinAuthorisedViaUsersServer ? ["membership", "join_authorised_via_users_server"] : ["membership"]);
  // v11+: "the `signed` key of the `third_party_invite` key", and nothing else of it.
  const invite = content.third_party_invite;
  if (rules.keepThirdPartyInviteSigned && isJsonObject(invite) && Object.hasOwn(invite, "signed")) {
    kept.third_party_invite = { signed: invite.signed as JsonValue };
  }
  return kept;
}

function pick(object: JsonObject, keys: readonly string[]): JsonObject {
  const picked: JsonObject = {};
  for (const key of keys) {
    if (Object.hasOwn(object, key)) picked[key] = object[key];
  }
  return picked;
}
