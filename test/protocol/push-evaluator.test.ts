// Push rule evaluation: the examples of modules/push.md ("Conditions") and the appendices (glob-style
// matching, dot-separated property paths), each condition kind, and the default rules of v1.19.
import { describe, expect, test } from "bun:test";
import { LosslessNumber, type JsonObject } from "../../src/protocol/json";
import { evaluatePushRules, globMatcher, memberCountMatches, propertyAt, splitPropertyPath, tweaksOf, type PushContext } from "../../src/protocol/push-evaluator";
import { defaultPushRules, effectivePushRules, emptyUserPushRules, type PushCondition, type PushRule, type PushRuleset } from "../../src/protocol/push-rules";
import { conditionHolds } from "../../src/protocol/push-evaluator";

const ME = "@me:example.org";
const context = (over: Partial<PushContext> = {}): PushContext => ({
  userId: ME,
  displayName: "Alice Liddell",
  roomMemberCount: 5,
  senderPowerLevel: 0,
  notificationPowerLevel: () => 50,
  ...over,
});
const holds = (condition: PushCondition, event: JsonObject, ctx = context()) => conditionHolds(condition, event, ctx);
const message = (content: JsonObject, extra: JsonObject = {}): JsonObject => ({
  type: "m.room.message",
  sender: "@example:example.org",
  room_id: "!636q39766251:example.com",
  event_id: "$143273976499sgjks:example.org",
  content,
  ...extra,
});
const defaults = (): PushRuleset => effectivePushRules(ME, emptyUserPushRules());
const winner = (event: JsonObject, ruleset = defaults(), ctx = context()) => evaluatePushRules(ruleset, event, ctx);

describe("event_match (the spec's examples)", () => {
  const topic = (value: unknown): JsonObject => ({
    content: { topic: value } as JsonObject,
    event_id: "$143273582443PhrSn:example.org",
    room_id: "!636q39766251:example.com",
    sender: "@example:example.org",
    state_key: "",
    type: "m.room.topic",
  });
  const lunch: PushCondition = { kind: "event_match", key: "content.topic", pattern: "lunc?*" };

  test("content.topic `lunc?*` matches 'Lunch plans' and 'LUNCH'", () => {
    expect(holds(lunch, topic("Lunch plans"))).toBe(true);
    expect(holds(lunch, topic("LUNCH"))).toBe(true);
  });

  test("...but not ' lunch' (leading space), 'lunc' (? needs a character) or null (not a string)", () => {
    expect(holds(lunch, topic(" lunch"))).toBe(false);
    expect(holds(lunch, topic("lunc"))).toBe(false);
    expect(holds(lunch, topic(null))).toBe(false);
  });

  test("a missing property or a non-string never matches, not even `*`", () => {
    expect(holds({ kind: "event_match", key: "content.nothing", pattern: "*" }, topic("x"))).toBe(false);
    expect(holds({ kind: "event_match", key: "content.topic", pattern: "*" }, topic(5))).toBe(false);
    expect(holds({ kind: "event_match", key: "content", pattern: "*" }, topic("x"))).toBe(false);
  });

  test("content.body `ex*ple` matches 'An example event.', 'exple' and 'An exciting triple-whammy' (word boundaries)", () => {
    const pattern: PushCondition = { kind: "event_match", key: "content.body", pattern: "ex*ple" };
    expect(holds(pattern, message({ body: "An example event." }))).toBe(true);
    expect(holds(pattern, message({ body: "exple" }))).toBe(true);
    expect(holds(pattern, message({ body: "An exciting triple-whammy" }))).toBe(true);
    // Inside a word is not at a boundary.
    expect(holds(pattern, message({ body: "Anexample" }))).toBe(false);
    expect(holds(pattern, message({ body: "examples" }))).toBe(false);
    expect(holds(pattern, message({ body: "example_" }))).toBe(false);
  });

  test("other keys match the whole value; content.body only at word boundaries", () => {
    expect(holds({ kind: "event_match", key: "type", pattern: "m.room.*" }, message({}))).toBe(true);
    expect(holds({ kind: "event_match", key: "type", pattern: "room" }, message({}))).toBe(false);
    expect(holds({ kind: "event_match", key: "content.body", pattern: "cake" }, message({ body: "I like cake." }))).toBe(true);
    expect(holds({ kind: "event_match", key: "content.body", pattern: "cake" }, message({ body: "cupcakes" }))).toBe(false);
  });

  test("state_key has no implicit condition: it is matched only when a rule names it", () => {
    expect(holds({ kind: "event_match", key: "state_key", pattern: "" }, topic("x"))).toBe(true);
    expect(holds({ kind: "event_match", key: "state_key", pattern: "" }, message({}))).toBe(false);
  });
});

describe("glob-style matching", () => {
  test("* is zero or more characters, ? exactly one (one code point, outside the BMP too), case-insensitively", () => {
    expect(globMatcher("a*c")("ac")).toBe(true);
    expect(globMatcher("a*c")("abbbc")).toBe(true);
    expect(globMatcher("a?c")("ac")).toBe(false);
    expect(globMatcher("a?c")("a😀c")).toBe(true);
    expect(globMatcher("ÄBC")("äbc")).toBe(true);
    expect(globMatcher("a.c")("abc")).toBe(false); // no regular expression syntax
    expect(globMatcher("[a]")("[a]")).toBe(true);
    expect(globMatcher("")("")).toBe(true);
    expect(globMatcher("")("x")).toBe(false);
    expect(globMatcher("**")("")).toBe(true);
    expect(globMatcher("M.Room.Message")("m.room.message")).toBe(true);
    expect(globMatcher("m.room.message")("m.room.messages")).toBe(false);
    expect(globMatcher("a**b")("ab")).toBe(true);
  });

  test("patterns that backtrack exponentially in a regular expression stay fast", () => {
    const value = "a".repeat(20_000);
    const started = performance.now();
    expect(globMatcher("*a*a*a*a*a*a*a*a*a*b")(value)).toBe(false);
    expect(globMatcher("*a*a*a*a*a*a*a*a*a*b", true)(value)).toBe(false);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe("dot-separated property paths", () => {
  test("dots and backslashes escaped with a backslash; other escapes stay as written", () => {
    expect(splitPropertyPath("content.m\\.relates_to")).toEqual(["content", "m.relates_to"]);
    expect(splitPropertyPath("content.m\\\\foo")).toEqual(["content", "m\\foo"]);
    expect(splitPropertyPath("content.m\\x")).toEqual(["content", "m\\x"]);
    expect(splitPropertyPath("a..b")).toEqual(["a", "", "b"]);
  });

  test("lookups follow own properties only", () => {
    const event: JsonObject = { content: { "m.relates_to": { rel_type: "m.replace" }, "m\\foo": 1 } };
    expect(propertyAt(event, "content.m\\.relates_to.rel_type")).toBe("m.replace");
    expect(propertyAt(event, "content.m\\\\foo")).toBe(1);
    expect(propertyAt(event, "content.m.relates_to")).toBeUndefined();
    expect(propertyAt(event, "content.constructor")).toBeUndefined();
    expect(propertyAt(event, "content.__proto__")).toBeUndefined();
  });
});

describe("event_property_is and event_property_contains", () => {
  const create = (federate: unknown): JsonObject => ({
    content: { creator: "@example:example.org", "m.federate": federate, room_version: "1" } as JsonObject,
    type: "m.room.create",
    state_key: "",
    sender: "@example:example.org",
  });
  const federate: PushCondition = { kind: "event_property_is", key: "content.m\\.federate", value: true };

  test("content.m\\.federate is true: matches true, not 'true' or 1 (the spec's example)", () => {
    expect(holds(federate, create(true))).toBe(true);
    expect(holds(federate, create("true"))).toBe(false);
    expect(holds(federate, create(1))).toBe(false);
    expect(holds(federate, { content: {} })).toBe(false);
  });

  test("exact values: strings, integers, booleans and null; never floats or compound values", () => {
    expect(holds({ kind: "event_property_is", key: "content.n", value: null }, message({ n: null }))).toBe(true);
    expect(holds({ kind: "event_property_is", key: "content.n", value: null }, message({}))).toBe(false);
    expect(holds({ kind: "event_property_is", key: "content.n", value: 3 }, message({ n: 3 }))).toBe(true);
    expect(holds({ kind: "event_property_is", key: "content.n", value: 3 }, message({ n: new LosslessNumber("3") }))).toBe(true);
    expect(holds({ kind: "event_property_is", key: "content.n", value: 1.5 }, message({ n: 1.5 }))).toBe(false);
    expect(holds({ kind: "event_property_is", key: "content.n", value: 3 }, message({ n: new LosslessNumber("3.0") }))).toBe(false);
    expect(holds({ kind: "event_property_is", key: "content.n", value: "a" }, message({ n: "A" }))).toBe(false);
    expect(holds({ kind: "event_property_is", key: "content.n", value: [1] as never }, message({ n: [1] }))).toBe(false);
  });

  test("alt_aliases contains '#myroom:example.com', not a partial ':example.com' (the spec's example)", () => {
    const aliases: JsonObject = {
      content: { alias: "#somewhere:localhost", alt_aliases: ["#somewhere:example.org", "#myroom:example.com"] },
      type: "m.room.canonical_alias",
      state_key: "",
    };
    expect(holds({ kind: "event_property_contains", key: "content.alt_aliases", value: "#myroom:example.com" }, aliases)).toBe(true);
    expect(holds({ kind: "event_property_contains", key: "content.alt_aliases", value: ":example.com" }, aliases)).toBe(false);
    expect(holds({ kind: "event_property_contains", key: "content.alias", value: "#somewhere:localhost" }, aliases)).toBe(false);
    expect(holds({ kind: "event_property_contains", key: "content.list", value: 2 }, message({ list: [{ a: 2 }, 2.5, 2] }))).toBe(true);
  });
});

describe("the other conditions", () => {
  test("contains_display_name: the user's room display name in the body at word boundaries, case-insensitively", () => {
    const c: PushCondition = { kind: "contains_display_name" };
    expect(holds(c, message({ body: "hello alice liddell!" }))).toBe(true);
    expect(holds(c, message({ body: "hello Alice Liddells" }))).toBe(false);
    expect(holds(c, message({ body: "hello Alice" }))).toBe(false);
    expect(holds(c, message({ body: "hello Alice Liddell" }), context({ displayName: undefined }))).toBe(false);
    expect(holds(c, message({ body: "" }), context({ displayName: "" }))).toBe(false);
    // The name is literal: its `*` is no wildcard.
    expect(holds(c, message({ body: "hi a*b" }), context({ displayName: "a*b" }))).toBe(true);
    expect(holds(c, message({ body: "hi axxb" }), context({ displayName: "a*b" }))).toBe(false);
  });

  test("room_member_count: ==, <, >, >=, <= and a bare number", () => {
    expect(memberCountMatches("2", 2)).toBe(true);
    expect(memberCountMatches("==2", 3)).toBe(false);
    expect(memberCountMatches("<2", 1)).toBe(true);
    expect(memberCountMatches("<2", 2)).toBe(false);
    expect(memberCountMatches(">2", 3)).toBe(true);
    expect(memberCountMatches(">=2", 2)).toBe(true);
    expect(memberCountMatches("<=10", 10)).toBe(true);
    expect(memberCountMatches("<=10", 11)).toBe(false);
    for (const bad of ["", "=2", "!=2", "2.0", " 2", "two", "<"]) expect(memberCountMatches(bad, 2)).toBe(false);
    expect(holds({ kind: "room_member_count", is: "5" }, message({}))).toBe(true);
    expect(holds({ kind: "room_member_count" }, message({}))).toBe(false);
  });

  test("sender_notification_permission: the sender's level against notifications[key]", () => {
    const c: PushCondition = { kind: "sender_notification_permission", key: "room" };
    expect(holds(c, message({}), context({ senderPowerLevel: 50 }))).toBe(true);
    expect(holds(c, message({}), context({ senderPowerLevel: 49 }))).toBe(false);
    expect(holds(c, message({}), context({ senderPowerLevel: 0, notificationPowerLevel: (key) => (key === "room" ? 0 : 100) }))).toBe(true);
    expect(holds({ kind: "sender_notification_permission" }, message({}), context({ senderPowerLevel: 100 }))).toBe(false);
  });

  test("an unrecognised condition never matches, which disables its rule", () => {
    expect(holds({ kind: "org.example.always" }, message({}))).toBe(false);
    const rule: PushRule = { rule_id: "x", default: false, enabled: true, actions: ["notify"], conditions: [{ kind: "org.example.always" }] };
    // The rule would have matched first; the event falls through to .m.rule.message.
    expect(winner(message({ msgtype: "m.text", body: "x" }), { ...defaults(), override: [rule] })?.ruleId).toBe(".m.rule.message");
  });
});

describe("rules and actions", () => {
  test("kinds in order override, content, room, sender, underride; disabled rules never match; the first match wins", () => {
    const base = defaults();
    const rule = (rule_id: string, extra: Partial<PushRule> = {}): PushRule => ({ rule_id, default: false, enabled: true, actions: ["notify", { set_tweak: "sound", value: rule_id }], ...extra });
    const event = message({ body: "It's time for tea" }, { room_id: "!r:x", sender: "@s:x" });
    const ruleset: PushRuleset = {
      ...base,
      content: [rule("tea", { pattern: "tea" }), rule("time", { pattern: "time" })],
      room: [rule("!r:x")],
      sender: [rule("@s:x")],
    };
    expect(winner(event, ruleset)?.ruleId).toBe("tea");
    ruleset.content[0] = { ...ruleset.content[0], enabled: false };
    expect(winner(event, ruleset)?.ruleId).toBe("time");
    ruleset.content = [];
    expect(winner(event, ruleset)?.ruleId).toBe("!r:x");
    ruleset.room = [];
    expect(winner(event, ruleset)?.ruleId).toBe("@s:x");
    expect(winner({ ...event, sender: "@other:x" }, ruleset)?.ruleId).toBe(".m.rule.message");
    // Room and sender rules compare ids exactly, with no glob.
    expect(winner(event, { ...base, room: [rule("!*")] })?.ruleId).toBe(".m.rule.message");
  });

  test("historical dont_notify and coalesce are ignored: ['dont_notify'] is the same as []", () => {
    const ruleset = { ...defaults(), override: [{ rule_id: "mute", default: false, enabled: true, actions: ["dont_notify", "coalesce"] }] };
    const result = winner(message({ body: "x" }), ruleset);
    expect(result).toMatchObject({ ruleId: "mute", actions: [], notify: false, highlight: false });
  });

  test("tweaks: a highlight tweak without a value is true, with false it is false; others pass as they are", () => {
    expect(tweaksOf(["notify", { set_tweak: "highlight" }, { set_tweak: "sound", value: "ring" }, { set_tweak: "x" }])).toEqual({ highlight: true, sound: "ring", x: null });
    expect(tweaksOf([{ set_tweak: "highlight", value: false }])).toEqual({ highlight: false });
    const ruleset = { ...defaults(), override: [{ rule_id: "quiet", default: false, enabled: true, actions: ["notify", { set_tweak: "highlight", value: false }] }] };
    expect(winner(message({ body: "x" }), ruleset)).toMatchObject({ notify: true, highlight: false });
  });

  test("a rule with no conditions matches every event", () => {
    const ruleset = { ...defaults(), underride: [{ rule_id: "all", default: false, enabled: true, actions: ["notify"] }] };
    expect(winner({ type: "org.example.custom", content: {} }, ruleset)?.ruleId).toBe("all");
  });
});

describe("the default rules of v1.19", () => {
  test("a message in a group room notifies without a sound; in a two-member room with one", () => {
    expect(winner(message({ msgtype: "m.text", body: "hi" }))).toMatchObject({ ruleId: ".m.rule.message", notify: true, highlight: false, tweaks: {} });
    expect(winner(message({ msgtype: "m.text", body: "hi" }), defaults(), context({ roomMemberCount: 2 }))).toMatchObject({ ruleId: ".m.rule.room_one_to_one", notify: true, tweaks: { sound: "default" } });
    expect(winner({ type: "m.room.encrypted", content: {} }, defaults(), context({ roomMemberCount: 2 }))?.ruleId).toBe(".m.rule.encrypted_room_one_to_one");
    expect(winner({ type: "m.room.encrypted", content: {} })?.ruleId).toBe(".m.rule.encrypted");
    expect(winner({ type: "m.call.invite", content: {} })).toMatchObject({ ruleId: ".m.rule.call", tweaks: { sound: "ring" } });
  });

  test(".m.rule.master, once enabled, silences everything", () => {
    const user = emptyUserPushRules();
    user.defaults[".m.rule.master"] = { enabled: true };
    expect(winner(message({ body: "hi" }), effectivePushRules(ME, user))).toMatchObject({ ruleId: ".m.rule.master", notify: false });
  });

  test("notices, member events, reactions, server ACLs and edits do not notify", () => {
    expect(winner(message({ msgtype: "m.notice", body: "bot" }))).toMatchObject({ ruleId: ".m.rule.suppress_notices", notify: false });
    expect(winner({ type: "m.room.member", state_key: "@x:y", content: { membership: "join" } })).toMatchObject({ ruleId: ".m.rule.member_event", notify: false });
    expect(winner({ type: "m.reaction", content: {} })).toMatchObject({ ruleId: ".m.rule.reaction", notify: false });
    expect(winner({ type: "m.room.server_acl", state_key: "", content: {} })).toMatchObject({ ruleId: ".m.rule.room.server_acl", notify: false });
    const edit = message({ body: "* fixed", "m.relates_to": { rel_type: "m.replace", event_id: "$x" } });
    expect(winner(edit)).toMatchObject({ ruleId: ".m.rule.suppress_edits", notify: false });
  });

  test("an invite for me notifies with a sound; one for someone else does not", () => {
    const invite = (target: string): JsonObject => ({ type: "m.room.member", state_key: target, sender: "@x:y", content: { membership: "invite" } });
    expect(winner(invite(ME))).toMatchObject({ ruleId: ".m.rule.invite_for_me", notify: true, tweaks: { sound: "default" } });
    expect(winner(invite("@other:example.org"))?.ruleId).toBe(".m.rule.member_event");
  });

  test(".m.rule.is_user_mention: my id in content.m.mentions.user_ids highlights, with a sound", () => {
    const mention = message({ body: "hey", "m.mentions": { user_ids: ["@other:x", ME] } });
    expect(winner(mention)).toMatchObject({ ruleId: ".m.rule.is_user_mention", notify: true, highlight: true, tweaks: { sound: "default", highlight: true } });
    expect(winner(message({ body: `hey ${ME}`, "m.mentions": { user_ids: [] } }))?.ruleId).toBe(".m.rule.message");
    // A notice that mentions me is still suppressed: suppress_notices comes first.
    expect(winner(message({ msgtype: "m.notice", body: "hey", "m.mentions": { user_ids: [ME] } }))?.ruleId).toBe(".m.rule.suppress_notices");
  });

  test(".m.rule.is_room_mention: m.mentions.room true from a sender with the power for @room", () => {
    const atRoom = message({ body: "@room", "m.mentions": { room: true } });
    expect(winner(atRoom, defaults(), context({ senderPowerLevel: 50 }))).toMatchObject({ ruleId: ".m.rule.is_room_mention", highlight: true });
    expect(winner(atRoom, defaults(), context({ senderPowerLevel: 10 }))?.ruleId).toBe(".m.rule.message");
    expect(winner(message({ body: "@room", "m.mentions": { room: "true" } }), defaults(), context({ senderPowerLevel: 100 }))?.ruleId).toBe(".m.rule.message");
  });

  test(".m.rule.tombstone: the room's tombstone (state_key '') highlights", () => {
    expect(winner({ type: "m.room.tombstone", state_key: "", content: { body: "moved" } })).toMatchObject({ ruleId: ".m.rule.tombstone", highlight: true });
    expect(winner({ type: "m.room.tombstone", content: {} })).toBeUndefined();
  });

  test("the defaults carry the user's own id", () => {
    const rules = defaultPushRules("@someone:x");
    expect(JSON.stringify(rules)).toContain("@someone:x");
    expect(JSON.stringify(rules)).not.toContain(ME);
  });
});
