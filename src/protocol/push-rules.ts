// Push rules (client-server-api "Push Notifications", modules/push.md): the server-default rules of
// v1.19 and how a user's own rules and changes to default rules combine into the ruleset clients see.
// Pure data: storage and the HTTP API live elsewhere.

export type PushRuleKind = "override" | "content" | "room" | "sender" | "underride";
export const PUSH_RULE_KINDS: readonly PushRuleKind[] = ["override", "content", "room", "sender", "underride"];

export type PushAction = string | Record<string, unknown>;
export type PushCondition = Record<string, unknown> & { kind: string };

export interface PushRule {
  rule_id: string;
  default: boolean;
  enabled: boolean;
  actions: PushAction[];
  conditions?: PushCondition[];
  pattern?: string;
}

export type PushRuleset = Record<PushRuleKind, PushRule[]>;

/** A user's own rules and what they changed of the server-default ones. */
export interface UserPushRules {
  /** User-defined rules per kind, most important first. */
  rules: Partial<Record<PushRuleKind, PushRule[]>>;
  /** Changes to server-default rules, by rule id. */
  defaults: Record<string, { enabled?: boolean; actions?: PushAction[] }>;
}

export const emptyUserPushRules = (): UserPushRules => ({ rules: {}, defaults: {} });

const notifySound = (sound: string): PushAction[] => ["notify", { set_tweak: "sound", value: sound }];
const match = (key: string, pattern: string): PushCondition => ({ kind: "event_match", key, pattern });
const rule = (rule_id: string, conditions: PushCondition[], actions: PushAction[], enabled = true): PushRule => ({ rule_id, default: true, enabled, conditions, actions });

/** The server-default rules (modules/push.md "Predefined Rules"), in the spec's order. */
export function defaultPushRules(userId: string): PushRuleset {
  return {
    override: [
      rule(".m.rule.master", [], [], false),
      rule(".m.rule.suppress_notices", [match("content.msgtype", "m.notice")], []),
      rule(".m.rule.invite_for_me", [match("type", "m.room.member"), match("content.membership", "invite"), match("state_key", userId)], notifySound("default")),
      rule(".m.rule.member_event", [match("type", "m.room.member")], []),
      rule(".m.rule.is_user_mention", [{ kind: "event_property_contains", key: "content.m\\.mentions.user_ids", value: userId }], [...notifySound("default"), { set_tweak: "highlight" }]),
      rule(".m.rule.is_room_mention", [{ kind: "event_property_is", key: "content.m\\.mentions.room", value: true }, { kind: "sender_notification_permission", key: "room" }], ["notify", { set_tweak: "highlight" }]),
      rule(".m.rule.tombstone", [match("type", "m.room.tombstone"), match("state_key", "")], ["notify", { set_tweak: "highlight" }]),
      rule(".m.rule.reaction", [match("type", "m.reaction")], []),
      rule(".m.rule.room.server_acl", [match("type", "m.room.server_acl"), match("state_key", "")], []),
      rule(".m.rule.suppress_edits", [{ kind: "event_property_is", key: "content.m\\.relates_to.rel_type", value: "m.replace" }], []),
    ],
    // v1.17 removed the legacy body-matching content rules (.m.rule.contains_user_name, ...).
    content: [],
    room: [],
    sender: [],
    underride: [
      rule(".m.rule.call", [match("type", "m.call.invite")], notifySound("ring")),
      rule(".m.rule.encrypted_room_one_to_one", [{ kind: "room_member_count", is: "2" }, match("type", "m.room.encrypted")], notifySound("default")),
      rule(".m.rule.room_one_to_one", [{ kind: "room_member_count", is: "2" }, match("type", "m.room.message")], notifySound("default")),
      rule(".m.rule.message", [match("type", "m.room.message")], ["notify"]),
      rule(".m.rule.encrypted", [match("type", "m.room.encrypted")], ["notify"]),
    ],
  };
}

/**
 * The ruleset a user sees: user-defined rules come before the server-default rules of the same
 * kind, except .m.rule.master, which always comes first.
 */
export function effectivePushRules(userId: string, user: UserPushRules): PushRuleset {
  const defaults = defaultPushRules(userId);
  const result = {} as PushRuleset;
  for (const kind of PUSH_RULE_KINDS) {
    const changed = defaults[kind].map((r) => ({ ...r, ...user.defaults[r.rule_id] }));
    const own = (user.rules[kind] ?? []).map((r) => structuredClone(r));
    const master = changed.filter((r) => r.rule_id === ".m.rule.master");
    result[kind] = [...master, ...own, ...changed.filter((r) => r.rule_id !== ".m.rule.master")];
  }
  return result;
}
