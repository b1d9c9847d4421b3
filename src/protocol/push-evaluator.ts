// Push rule evaluation (client-server-api "Push Notifications": Push Rules, Actions, Conditions;
// appendices "Glob-style matching" and "Dot-separated property paths"). Pure: what the conditions
// need of the room (member count, the user's display name, power levels) arrives in the context.
import { LosslessNumber, isJsonObject, type JsonObject, type JsonValue } from "./json";
import { PUSH_RULE_KINDS, type PushAction, type PushCondition, type PushRule, type PushRuleKind, type PushRuleset } from "./push-rules";

/** What the conditions read besides the event itself. */
export interface PushContext {
  /** The user the rules belong to. */
  readonly userId: string;
  /** The user's display name in the room (contains_display_name); undefined or "" never matches. */
  readonly displayName?: string;
  /** Joined members of the room (room_member_count). */
  readonly roomMemberCount: number;
  /** The sender's power level in the room (sender_notification_permission). */
  readonly senderPowerLevel: number;
  /** The level `notifications[key]` of m.room.power_levels requires (50 when unset). */
  notificationPowerLevel(key: string): number;
}

/** The rule that matched an event and what its actions ask for. */
export interface PushEvaluation {
  readonly kind: PushRuleKind;
  readonly ruleId: string;
  /** The rule's actions without the historical dont_notify and coalesce. */
  readonly actions: PushAction[];
  readonly notify: boolean;
  readonly highlight: boolean;
  /** set_tweak name -> value (a highlight tweak without a value is true). */
  readonly tweaks: Record<string, JsonValue>;
}

/** Actions the spec retired: clients and servers MUST ignore them (modules/push.md "Historical Actions"). */
const HISTORICAL_ACTIONS = new Set(["dont_notify", "coalesce"]);

/**
 * The first enabled rule, in kind order (override, content, room, sender, underride) and rule order
 * within a kind, whose conditions all hold for `event`; undefined when none does, which means no
 * notification. The caller skips the user's own events (servers MUST NOT notify for those).
 */
export function evaluatePushRules(ruleset: PushRuleset, event: JsonObject, context: PushContext): PushEvaluation | undefined {
  for (const kind of PUSH_RULE_KINDS) {
    for (const rule of ruleset[kind] ?? []) {
      if (!rule.enabled || !ruleMatches(kind, rule, event, context)) continue;
      return evaluationOf(kind, rule);
    }
  }
  return undefined;
}

function evaluationOf(kind: PushRuleKind, rule: PushRule): PushEvaluation {
  const actions = rule.actions.filter((a) => !(typeof a === "string" && HISTORICAL_ACTIONS.has(a)));
  const tweaks = tweaksOf(actions);
  return { kind, ruleId: rule.rule_id, actions, notify: actions.includes("notify"), highlight: tweaks.highlight === true, tweaks };
}

/**
 * The tweaks a list of actions sets, by name. A highlight tweak without a value is true; a tweak
 * without a value is null otherwise. A later set_tweak of the same name wins.
 */
export function tweaksOf(actions: readonly PushAction[]): Record<string, JsonValue> {
  const tweaks: Record<string, JsonValue> = {};
  for (const action of actions) {
    if (typeof action !== "object" || action === null || typeof action.set_tweak !== "string") continue;
    const value = action.value as JsonValue | undefined;
    tweaks[action.set_tweak] = value === undefined && action.set_tweak === "highlight" ? true : (value ?? null);
  }
  return tweaks;
}

/** Whether a rule's conditions hold; content, room and sender rules have theirs implied by kind. */
export function ruleMatches(kind: PushRuleKind, rule: PushRule, event: JsonObject, context: PushContext): boolean {
  switch (kind) {
    case "content":
      return typeof rule.pattern === "string" && eventMatch({ kind: "event_match", key: "content.body", pattern: rule.pattern }, event);
    case "room":
      return event.room_id === rule.rule_id;
    case "sender":
      return event.sender === rule.rule_id;
    default:
      return (rule.conditions ?? []).every((condition) => conditionHolds(condition, event, context));
  }
}

/** One condition; unrecognised kinds (and malformed conditions) MUST NOT match. */
export function conditionHolds(condition: PushCondition, event: JsonObject, context: PushContext): boolean {
  switch (condition.kind) {
    case "event_match":
      return eventMatch(condition, event);
    case "event_property_is": {
      const value = propertyAt(event, condition.key);
      return isPlainValue(value) && isPlainValue(condition.value as JsonValue | undefined) && sameValue(value!, condition.value as JsonValue);
    }
    case "event_property_contains": {
      const list = propertyAt(event, condition.key);
      const wanted = condition.value as JsonValue | undefined;
      return Array.isArray(list) && isPlainValue(wanted) && list.some((item) => isPlainValue(item) && sameValue(item, wanted!));
    }
    case "contains_display_name": {
      const body = propertyAt(event, "content.body");
      const name = context.displayName;
      return typeof body === "string" && typeof name === "string" && name.length > 0 && literalMatcher(name)(body);
    }
    case "room_member_count":
      return typeof condition.is === "string" && memberCountMatches(condition.is, context.roomMemberCount);
    case "sender_notification_permission":
      return typeof condition.key === "string" && context.senderPowerLevel >= context.notificationPowerLevel(condition.key);
    default:
      return false;
  }
}

/**
 * event_match: a case-insensitive glob over the whole string value at `key`; for `content.body`, over
 * any substring that starts and ends at a word boundary. A missing or non-string value never matches.
 */
function eventMatch(condition: PushCondition, event: JsonObject): boolean {
  if (typeof condition.key !== "string" || typeof condition.pattern !== "string") return false;
  const value = propertyAt(event, condition.key);
  if (typeof value !== "string") return false;
  const pattern = condition.pattern;
  const wordBoundary = condition.key === "content.body";
  return memo(matchers, `${wordBoundary ? "w" : "v"}${pattern}`, () => globMatcher(pattern, wordBoundary))(value);
}
const matchers = new Map<string, (value: string) => boolean>();

/** `==N`, `<N`, `>N`, `>=N`, `<=N` or a bare `N` (which means ==). */
export function memberCountMatches(is: string, count: number): boolean {
  const match = /^(==|<=|>=|<|>)?([0-9]+)$/.exec(is);
  if (!match) return false;
  const n = Number(match[2]);
  switch (match[1] ?? "==") {
    case "<":
      return count < n;
    case ">":
      return count > n;
    case "<=":
      return count <= n;
    case ">=":
      return count >= n;
    default:
      return count === n;
  }
}

// ---------------------------------------------------------------------------------------------------
// Dot-separated property paths

/**
 * Splits a dot-separated path: `\.` is a literal dot and `\\` a literal backslash; any other
 * backslash stays as it is (appendices "Dot-separated property paths").
 */
export function splitPropertyPath(path: string): string[] {
  const parts: string[] = [];
  let current = "";
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (c === "\\" && (path[i + 1] === "." || path[i + 1] === "\\")) {
      current += path[++i];
    } else if (c === ".") {
      parts.push(current);
      current = "";
    } else current += c;
  }
  parts.push(current);
  return parts;
}

/** Paths and glob patterns recur in every rule of every user: each is parsed once (up to a bound). */
const MEMO_LIMIT = 10_000;
function memo<T>(cache: Map<string, T>, key: string, make: () => T): T {
  let hit = cache.get(key);
  if (hit === undefined) {
    if (cache.size >= MEMO_LIMIT) cache.clear();
    cache.set(key, (hit = make()));
  }
  return hit;
}
const splitPaths = new Map<string, string[]>();

/** The value at a dot-separated path of the event; undefined when any step is absent. */
export function propertyAt(event: JsonObject, path: unknown): JsonValue | undefined {
  if (typeof path !== "string") return undefined;
  let node: JsonValue | undefined = event;
  for (const part of memo(splitPaths, path, () => splitPropertyPath(path))) {
    if (!isJsonObject(node) || !Object.prototype.hasOwnProperty.call(node, part)) return undefined;
    node = node[part];
  }
  return node;
}

/**
 * The values event_property_is/contains compare: strings, integers within ±(2^53 - 1), booleans and
 * null. Floats and compound values never match.
 */
function isPlainValue(value: JsonValue | undefined): boolean {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isSafeInteger(value);
  if (value instanceof LosslessNumber) return value.isIntegerLiteral && Number.isSafeInteger(value.valueOf());
  return false;
}

function sameValue(a: JsonValue, b: JsonValue): boolean {
  const plain = (v: JsonValue) => (v instanceof LosslessNumber ? v.valueOf() : v);
  return plain(a) === plain(b);
}

// ---------------------------------------------------------------------------------------------------
// Glob-style matching

/** `*`, `?`, or one literal (lower-cased) code point. */
type GlobToken = { kind: "star" } | { kind: "one" } | { kind: "char"; char: string };

const WORD_CHARACTER = /^[A-Za-z0-9_]$/;

/**
 * A glob matcher: `*` is zero or more characters, `?` exactly one (a code point), the rest literal,
 * compared case-insensitively (lower-cased). With `wordBoundary`, it matches any substring that
 * starts and ends at a word boundary (start or end of the value, or a character outside
 * [A-Za-z0-9_]); otherwise the whole value.
 *
 * It runs the pattern as a set of positions advanced one character at a time (no backtracking), so
 * a pattern such as `*a*a*a*a*b` costs pattern length × value length, never exponential time.
 */
export function globMatcher(pattern: string, wordBoundary = false): (value: string) => boolean {
  const lower = pattern.toLowerCase();
  // The common shapes of whole-value patterns need no automaton: `*` and a literal (`m.room.member`).
  if (!wordBoundary && /^\*+$/.test(lower)) return () => true;
  if (!wordBoundary && !/[*?]/.test(lower)) return (value) => value.toLowerCase() === lower;
  const tokens: GlobToken[] = [];
  for (const c of lower) {
    if (c === "*") {
      if (tokens.at(-1)?.kind !== "star") tokens.push({ kind: "star" }); // `**` is `*`
    } else tokens.push(c === "?" ? { kind: "one" } : { kind: "char", char: c });
  }
  return (value) => runGlob(tokens, value, wordBoundary);
}

/** Matches `text` literally (no wildcards), at word boundaries, case-insensitively. */
function literalMatcher(text: string): (value: string) => boolean {
  const tokens: GlobToken[] = [...text.toLowerCase()].map((c) => ({ kind: "char", char: c }));
  return (value) => runGlob(tokens, value, true);
}

function runGlob(tokens: readonly GlobToken[], value: string, wordBoundary: boolean): boolean {
  const chars = [...value.toLowerCase()];
  const n = chars.length;
  const m = tokens.length;
  const isWord = (i: number) => WORD_CHARACTER.test(chars[i]);
  let current = new Uint8Array(m + 1);
  for (let i = 0; ; i++) {
    // A match may start here: at the value's start, or (with word boundaries) after a non-word character.
    if (i === 0 || (wordBoundary && !isWord(i - 1))) current[0] = 1;
    // `*` may match nothing: its position also stands at the next one.
    let live = false;
    for (let j = 0; j < m; j++) {
      if (current[j] && tokens[j].kind === "star") current[j + 1] = 1;
      if (current[j]) live = true;
    }
    if (current[m]) {
      live = true;
      if (i === n || (wordBoundary && !isWord(i))) return true;
    }
    if (i === n) return false;
    if (!live && !wordBoundary) return false;
    const next = new Uint8Array(m + 1);
    const c = chars[i];
    for (let j = 0; j < m; j++) {
      if (!current[j]) continue;
      const token = tokens[j];
      if (token.kind === "star") next[j] = 1;
      else if (token.kind === "one" || token.char === c) next[j + 1] = 1;
    }
    current = next;
  }
}
