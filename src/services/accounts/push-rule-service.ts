// Push rules (client-server-api "Push Rules: API"): a user's ruleset is the server-default rules
// combined with the user's own rules and changes. Every change is also written as the m.push_rules
// account data event, which is how /sync tells a user's other clients about it.
import { MatrixError } from "../../protocol/errors";
import {
  defaultPushRules,
  effectivePushRules,
  emptyUserPushRules,
  PUSH_RULE_KINDS,
  type PushAction,
  type PushCondition,
  type PushRule,
  type PushRuleKind,
  type PushRuleset,
  type UserPushRules,
} from "../../protocol/push-rules";
import type { PushRuleStore } from "../../storage/stores";
import { RoomWriteQueue } from "../rooms/room-write-queue";
import type { AccountDataService } from "./account-data-service";

export interface PushRuleInput {
  actions: unknown[];
  conditions?: unknown[];
  pattern?: string;
}

/**
 * The string actions a rule may carry: notify, and the historical dont_notify and coalesce, which
 * are stored as given (clients still send them) and ignored when rules are evaluated.
 */
const STRING_ACTIONS = new Set(["notify", "dont_notify", "coalesce"]);

export function parsePushRuleKind(kind: string): PushRuleKind {
  if (!(PUSH_RULE_KINDS as readonly string[]).includes(kind)) throw new MatrixError("M_INVALID_PARAM", `Unknown push rule kind ${kind}`);
  return kind as PushRuleKind;
}

function validActions(actions: unknown[]): PushAction[] {
  for (const a of actions) {
    const ok = typeof a === "string" ? STRING_ACTIONS.has(a) : typeof a === "object" && a !== null && !Array.isArray(a) && typeof (a as { set_tweak?: unknown }).set_tweak === "string";
    if (!ok) throw new MatrixError("M_BAD_JSON", `Invalid push rule action ${JSON.stringify(a)}`);
  }
  return actions as PushAction[];
}

/** The value types definitions/push_condition.yaml gives each parameter. */
const CONDITION_FIELDS: Record<string, (v: unknown) => boolean> = {
  key: (v) => typeof v === "string",
  pattern: (v) => typeof v === "string",
  is: (v) => typeof v === "string",
  value: (v) => v === null || typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isSafeInteger(v)),
};

/**
 * Conditions are objects with a string kind and parameters of the schema's types. A kind Portier
 * does not know is stored: it never matches (modules/push.md "Conditions"), as the spec requires.
 */
function validConditions(conditions: unknown[]): PushCondition[] {
  for (const c of conditions) {
    if (typeof c !== "object" || c === null || Array.isArray(c) || typeof (c as { kind?: unknown }).kind !== "string") {
      throw new MatrixError("M_BAD_JSON", "Each push rule condition must be an object with a string 'kind'");
    }
    for (const [field, valid] of Object.entries(CONDITION_FIELDS)) {
      if (field in c && !valid((c as Record<string, unknown>)[field])) throw new MatrixError("M_BAD_JSON", `Invalid push rule condition field '${field}'`);
    }
  }
  return conditions as PushCondition[];
}

/** A rule id a user may create: not empty, no slashes or backslashes, no leading dot (server-default rules). */
export function checkUserRuleId(ruleId: string): void {
  if (ruleId.startsWith(".")) throw new MatrixError("M_INVALID_PARAM", "Rule IDs starting with '.' are reserved for server-default rules");
  if (ruleId.length === 0 || /[/\\]/.test(ruleId)) throw new MatrixError("M_INVALID_PARAM", "Rule IDs may not be empty or contain slashes");
}

/** Parsed rules of recently active users; every write goes through this service, which keeps it current. */
const CACHED_USERS = 10_000;

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}

export class PushRuleService {
  /** Changes to a user's rules, one at a time per user (keyed by user id). */
  private readonly writes = new RoomWriteQueue();
  /**
   * user id -> their stored rules and the ruleset they make: evaluation reads the ruleset for every
   * recipient of every event. The ruleset is frozen, since every caller shares it.
   */
  private readonly cache = new Map<string, { user: UserPushRules; ruleset: PushRuleset }>();

  constructor(
    private readonly store: PushRuleStore,
    private readonly accountData: AccountDataService,
  ) {}

  /** The user's whole ruleset (the `global` scope of GET /pushrules/). */
  async ruleset(userId: string): Promise<PushRuleset> {
    return (await this.cached(userId)).ruleset;
  }

  /** The content of the user's m.push_rules account data event, for an initial /sync. */
  async accountDataContent(userId: string): Promise<{ global: PushRuleset }> {
    return { global: await this.ruleset(userId) };
  }

  /** The rules of one kind, most important first (GET /pushrules/global/{kind}/). */
  async rulesOfKind(userId: string, kind: PushRuleKind): Promise<PushRule[]> {
    return (await this.ruleset(userId))[kind];
  }

  async rule(userId: string, kind: PushRuleKind, ruleId: string): Promise<PushRule> {
    const found = (await this.ruleset(userId))[kind].find((r) => r.rule_id === ruleId);
    if (!found) throw new MatrixError("M_NOT_FOUND", "The push rule was not found.");
    return found;
  }

  /** Creates or replaces a user-defined rule; before/after place it relative to another user-defined rule. */
  async putRule(userId: string, kind: PushRuleKind, ruleId: string, input: PushRuleInput, placement: { before?: string; after?: string } = {}): Promise<void> {
    checkUserRuleId(ruleId);
    const rule: PushRule = { rule_id: ruleId, default: false, enabled: true, actions: validActions(input.actions) };
    if (kind === "content") {
      if (input.pattern === undefined) throw new MatrixError("M_MISSING_PARAM", "Missing parameter: pattern");
      rule.pattern = input.pattern;
    }
    if (kind === "override" || kind === "underride") rule.conditions = validConditions(input.conditions ?? []);

    return this.update(userId, (user) => {
      const list = [...(user.rules[kind] ?? [])];
      const existing = list.findIndex((r) => r.rule_id === ruleId);
      const anchorId = placement.before ?? placement.after;
      if (anchorId !== undefined && (anchorId.startsWith(".") || !list.some((r) => r.rule_id === anchorId && r.rule_id !== ruleId))) {
        throw new MatrixError("M_UNKNOWN", `before/after rule not found: ${anchorId}`);
      }
      if (existing >= 0) {
        rule.enabled = list[existing].enabled;
        if (anchorId === undefined) {
          list[existing] = rule;
          return { ...user, rules: { ...user.rules, [kind]: list } };
        }
        list.splice(existing, 1);
      }
      if (anchorId === undefined) list.unshift(rule);
      else {
        const at = list.findIndex((r) => r.rule_id === anchorId);
        list.splice(placement.before !== undefined ? at : at + 1, 0, rule);
      }
      return { ...user, rules: { ...user.rules, [kind]: list } };
    });
  }

  /** Deletes a user-defined rule; server-default rules cannot be deleted (404, as Synapse). */
  deleteRule(userId: string, kind: PushRuleKind, ruleId: string): Promise<void> {
    return this.update(userId, (user) => {
      const list = user.rules[kind] ?? [];
      if (!list.some((r) => r.rule_id === ruleId)) throw new MatrixError("M_NOT_FOUND", "The push rule was not found.");
      return { ...user, rules: { ...user.rules, [kind]: list.filter((r) => r.rule_id !== ruleId) } };
    });
  }

  setEnabled(userId: string, kind: PushRuleKind, ruleId: string, enabled: boolean): Promise<void> {
    return this.change(userId, kind, ruleId, { enabled });
  }

  async setActions(userId: string, kind: PushRuleKind, ruleId: string, actions: unknown[]): Promise<void> {
    return this.change(userId, kind, ruleId, { actions: validActions(actions) });
  }

  private change(userId: string, kind: PushRuleKind, ruleId: string, change: { enabled?: boolean; actions?: PushAction[] }): Promise<void> {
    return this.update(userId, (user) => {
      const own = user.rules[kind] ?? [];
      const i = own.findIndex((r) => r.rule_id === ruleId);
      if (i >= 0) {
        const list = [...own];
        list[i] = { ...list[i], ...change };
        return { ...user, rules: { ...user.rules, [kind]: list } };
      }
      if (!defaultPushRules(userId)[kind].some((r) => r.rule_id === ruleId)) throw new MatrixError("M_NOT_FOUND", "The push rule was not found.");
      return { ...user, defaults: { ...user.defaults, [ruleId]: { ...user.defaults[ruleId], ...change } } };
    });
  }

  private async userRules(userId: string): Promise<UserPushRules> {
    return (await this.cached(userId)).user;
  }

  private async cached(userId: string): Promise<{ user: UserPushRules; ruleset: PushRuleset }> {
    const hit = this.cache.get(userId);
    if (hit) return hit;
    const json = await this.store.getUserPushRules(userId);
    return this.remember(userId, json === undefined ? emptyUserPushRules() : (JSON.parse(json) as UserPushRules));
  }

  private remember(userId: string, user: UserPushRules): { user: UserPushRules; ruleset: PushRuleset } {
    const entry = { user, ruleset: deepFreeze(effectivePushRules(userId, user)) };
    this.cache.delete(userId);
    this.cache.set(userId, entry);
    if (this.cache.size > CACHED_USERS) this.cache.delete(this.cache.keys().next().value!);
    return entry;
  }

  /**
   * Reads the user's rules, applies `edit` and saves the result (with the m.push_rules account data),
   * one change per user at a time: two changes at once must not both start from the same rules.
   */
  private update(userId: string, edit: (user: UserPushRules) => UserPushRules): Promise<void> {
    return this.writes.run(userId, async () => {
      const user = edit(await this.userRules(userId));
      await this.store.setUserPushRules(userId, JSON.stringify(user));
      const { ruleset } = this.remember(userId, user);
      await this.accountData.write(userId, undefined, "m.push_rules", { global: ruleset });
    });
  }
}
