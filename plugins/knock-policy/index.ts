// knock-policy: the bundled knock policy (issue 9). Decides every knock, local or over federation,
// from lists of servers and user-ID patterns, a required reason and a maximum reason length, and
// accepts (invites at once) the knockers an operator or a room trusts.
//
//   plugins:
//     - name: knock-policy
//       config:
//         deny: { servers: ["spam.example", "*.badhost.example"], users: ["@bot*:*"] }
//         allow: { servers: ["example.org", "friends.example"] }   # when set: nobody else knocks
//         shadow: { users: ["@spammer:*"] }       # told it worked; nothing is stored or sent
//         auto_accept: { users: ["@*:example.org"] }
//         require_reason: true
//         max_reason_length: 500
//
// Patterns are globs over the whole name, case-insensitive: `*` any run of characters, `?` one.
// Server patterns match the knocker's server (and the origin server of a federated knock); user
// patterns match whole user IDs, e.g. "@*:example.org". An empty or missing list restricts nothing.
//
// The checks, in order: shadow, deny, allow, require_reason, max_reason_length; a knock that passes
// them all is accepted when it matches auto_accept, and allowed otherwise. Every denial is
// M_FORBIDDEN with a message saying what to change.
//
// Per-room overrides: a room's state event `org.portier.knock_policy` (state key "", the type is
// configurable) with the same keys. A room can tighten the operator's rules and never loosen them:
// its shadow and deny lists add to the operator's, its allow lists narrow them (both must admit a
// knocker), require_reason true adds the requirement, and the smaller maximum length wins. Its
// auto_accept replaces the operator's for that room: whom to let in is the room's own business (its
// moderators can invite anyway). Keys of a room's event that are not valid are ignored, and logged.
//
// Only types come from src/extensions (a plugin imports nothing else of Portier), so decisions are
// written out as the plain values Decision describes.
import type { Decision, KnockPolicy, KnockRequest, PluginHost, PortierPlugin } from "../../src/extensions";

export interface PatternLists {
  servers?: string[];
  users?: string[];
}

export interface KnockPolicyRules {
  allow?: PatternLists;
  deny?: PatternLists;
  shadow?: PatternLists;
  auto_accept?: PatternLists;
  require_reason?: boolean;
  max_reason_length?: number;
}

export interface KnockPolicyConfig extends KnockPolicyRules {
  /** Read per-room overrides from room state (default true). */
  room_overrides?: boolean;
  /** The state event type of the per-room overrides (default org.portier.knock_policy). */
  room_state_type?: string;
}

export const DEFAULT_ROOM_STATE_TYPE = "org.portier.knock_policy";

const patternList = { type: "array", items: { type: "string", minLength: 1, maxLength: 512 } } as const;
const lists = { type: "object", additionalProperties: false, properties: { servers: patternList, users: patternList } } as const;
const ruleProperties = {
  allow: lists,
  deny: lists,
  shadow: lists,
  auto_accept: lists,
  require_reason: { type: "boolean" },
  max_reason_length: { type: "integer", minimum: 1, maximum: 65536 },
} as const;

/** The config's JSON Schema (checked by Portier at start and on reload, before register). */
export const configSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    ...ruleProperties,
    room_overrides: { type: "boolean" },
    room_state_type: { type: "string", minLength: 1, maxLength: 255 },
  },
} as const;

/** Glob over the whole string, case-insensitive: `*` any run of characters, `?` exactly one. */
export function globMatcher(pattern: string): (value: string) => boolean {
  const source = [...pattern].map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[\\^$.|+()[\]{}]/g, "\\$&"))).join("");
  const regex = new RegExp(`^${source}$`, "isu");
  return (value) => regex.test(value);
}

interface CompiledLists {
  servers: ((server: string) => boolean)[];
  users: ((userId: string) => boolean)[];
}

interface CompiledRules {
  allow?: CompiledLists;
  deny?: CompiledLists;
  shadow?: CompiledLists;
  autoAccept?: CompiledLists;
  requireReason?: boolean;
  maxReasonLength?: number;
}

const LIST_KEYS = ["allow", "deny", "shadow", "auto_accept"] as const;
const RULE_KEYS = new Set<string>([...LIST_KEYS, "require_reason", "max_reason_length"]);
const CONFIG_KEYS = new Set<string>([...RULE_KEYS, "room_overrides", "room_state_type"]);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Reads rules (the config, or a room's override content), each problem naming its key; a key with a
 * problem is left out of the rules. `known`: the keys allowed at the top level.
 */
export function parseRules(raw: unknown, known: ReadonlySet<string> = RULE_KEYS): { rules: CompiledRules; problems: string[] } {
  const rules: CompiledRules = {};
  const problems: string[] = [];
  if (!isObject(raw)) return { rules, problems: ["expected an object"] };
  for (const key of Object.keys(raw)) if (!known.has(key)) problems.push(`key '${key}': unknown (known: ${[...known].join(", ")})`);
  for (const key of LIST_KEYS) {
    if (raw[key] === undefined) continue;
    const compiled = parseLists(raw[key], key, problems);
    if (!compiled) continue;
    if (key === "auto_accept") rules.autoAccept = compiled;
    else rules[key] = compiled;
  }
  if (raw.require_reason !== undefined) {
    if (typeof raw.require_reason === "boolean") rules.requireReason = raw.require_reason;
    else problems.push("key 'require_reason': expected true or false");
  }
  if (raw.max_reason_length !== undefined) {
    const max = raw.max_reason_length;
    if (typeof max === "number" && Number.isInteger(max) && max >= 1) rules.maxReasonLength = max;
    else problems.push("key 'max_reason_length': expected a whole number of characters, at least 1");
  }
  return { rules, problems };
}

function parseLists(raw: unknown, key: string, problems: string[]): CompiledLists | undefined {
  if (!isObject(raw)) {
    problems.push(`key '${key}': expected an object with 'servers' and/or 'users' lists`);
    return undefined;
  }
  const before = problems.length;
  for (const k of Object.keys(raw)) if (k !== "servers" && k !== "users") problems.push(`key '${key}.${k}': unknown (known: servers, users)`);
  const patterns = (k: "servers" | "users"): string[] => {
    const list = raw[k];
    if (list === undefined) return [];
    if (!Array.isArray(list)) {
      problems.push(`key '${key}.${k}': expected a list of patterns`);
      return [];
    }
    const out: string[] = [];
    list.forEach((p, i) => {
      if (typeof p !== "string" || p.length === 0) problems.push(`key '${key}.${k}[${i}]': expected a non-empty string`);
      else if (k === "users" && !p.startsWith("@") && !p.startsWith("*")) problems.push(`key '${key}.${k}[${i}]': a user pattern matches whole user IDs, e.g. "@*:example.org"; got ${JSON.stringify(p)}`);
      else if (k === "servers" && (p.includes("@") || /\s/.test(p))) problems.push(`key '${key}.${k}[${i}]': a server pattern matches server names, e.g. "*.example.org"; got ${JSON.stringify(p)}`);
      else out.push(p);
    });
    return out;
  };
  const servers = patterns("servers");
  const users = patterns("users");
  if (problems.length > before) return undefined;
  return { servers: servers.map(globMatcher), users: users.map(globMatcher) };
}

/** Reads the plugin's config; throws with the first problem, naming the key. */
export function parseConfig(raw: unknown): { rules: CompiledRules; roomOverrides: boolean; roomStateType: string } {
  const { rules, problems } = parseRules(raw ?? {}, CONFIG_KEYS);
  const config = (raw ?? {}) as Record<string, unknown>;
  if (config.room_overrides !== undefined && typeof config.room_overrides !== "boolean") problems.push("key 'room_overrides': expected true or false");
  if (config.room_state_type !== undefined && (typeof config.room_state_type !== "string" || config.room_state_type.length === 0)) {
    problems.push("key 'room_state_type': expected an event type");
  }
  if (problems.length > 0) throw new Error(`config ${problems[0]}`);
  return {
    rules,
    roomOverrides: config.room_overrides !== false,
    roomStateType: typeof config.room_state_type === "string" ? config.room_state_type : DEFAULT_ROOM_STATE_TYPE,
  };
}

const serverOf = (userId: string) => userId.slice(userId.indexOf(":") + 1);

/** The knocker's server, and the origin server when another one sent the knock. */
function serversOf(knock: KnockRequest): string[] {
  const own = serverOf(knock.userId);
  return knock.originServer === own ? [own] : [own, knock.originServer];
}

function matchesAny(lists: CompiledLists | undefined, knock: KnockRequest): boolean {
  if (!lists) return false;
  if (lists.users.some((m) => m(knock.userId))) return true;
  return serversOf(knock).some((server) => lists.servers.some((m) => m(server)));
}

/** An allow list admits a knocker when it is empty, or names their user ID or every server involved. */
function admits(lists: CompiledLists | undefined, knock: KnockRequest): boolean {
  if (!lists || (lists.servers.length === 0 && lists.users.length === 0)) return true;
  if (lists.users.some((m) => m(knock.userId))) return true;
  return lists.servers.length > 0 && serversOf(knock).every((server) => lists.servers.some((m) => m(server)));
}

const denial = (message: string): Decision => ({ kind: "deny", errcode: "M_FORBIDDEN", message });

/** The decision for a knock under the operator's rules and, when given, the room's. */
export function decide(knock: KnockRequest, server: CompiledRules, room: CompiledRules = {}): { decision: Decision; rule: string } {
  if (matchesAny(server.shadow, knock) || matchesAny(room.shadow, knock)) return { decision: { kind: "shadow" }, rule: "shadow" };
  const deniedServer = serversOf(knock).find((s) => [server.deny, room.deny].some((l) => l?.servers.some((m) => m(s))));
  if (deniedServer !== undefined) return { decision: denial(`Knocks from users of ${deniedServer} are not accepted here`), rule: "deny.servers" };
  if ([server.deny, room.deny].some((l) => l?.users.some((m) => m(knock.userId)))) return { decision: denial("You may not knock on this room"), rule: "deny.users" };
  if (!admits(server.allow, knock) || !admits(room.allow, knock)) {
    return { decision: denial("This room only takes knocks from the users and servers it lists, and you are not among them"), rule: "allow" };
  }
  const reason = knock.reason?.trim() ?? "";
  if ((server.requireReason || room.requireReason) && reason.length === 0) {
    return { decision: denial("This room asks for a reason with each knock: say who you are and why you would like to join"), rule: "require_reason" };
  }
  const limits = [server.maxReasonLength, room.maxReasonLength].filter((n): n is number => n !== undefined);
  const max = limits.length > 0 ? Math.min(...limits) : undefined;
  if (max !== undefined && knock.reason !== undefined && [...knock.reason].length > max) {
    return { decision: denial(`Your reason is too long: at most ${max} characters, please`), rule: "max_reason_length" };
  }
  const autoAccept = room.autoAccept ?? server.autoAccept;
  if (matchesAny(autoAccept, knock)) return { decision: { kind: "accept" }, rule: "auto_accept" };
  return { decision: { kind: "allow" }, rule: "none" };
}

/** The policy itself, for a parsed config (what register adds; tests call it directly). */
export function knockPolicy(host: PluginHost, config: ReturnType<typeof parseConfig>): KnockPolicy {
  const roomRules = async (roomId: string): Promise<CompiledRules> => {
    if (!config.roomOverrides) return {};
    const content = await host.rooms.state(roomId, config.roomStateType, "");
    if (content === undefined) return {};
    const { rules, problems } = parseRules(content);
    if (problems.length > 0) host.logger.log("warn", `the room's ${config.roomStateType} event has keys that are not valid; they are ignored`, { room_id: roomId, problems });
    return rules;
  };
  return {
    async decideKnock(knock) {
      const { decision, rule } = decide(knock, config.rules, await roomRules(knock.roomId));
      if (decision.kind !== "allow") {
        host.logger.log("info", `knock ${decision.kind === "deny" ? "denied" : decision.kind === "accept" ? "accepted" : "shadowed"}`, {
          room_id: knock.roomId,
          user_id: knock.userId,
          origin: knock.originServer,
          rule,
        });
      }
      return decision;
    },
  };
}

const plugin: PortierPlugin<KnockPolicyConfig> = {
  name: "knock-policy",
  version: "1.0.0",
  configSchema,
  register(host, config) {
    host.addKnockPolicy(knockPolicy(host, parseConfig(config)));
  },
};

export default plugin;
