// spam-policy: the bundled spam policy (issue 9). Keyword and regular-expression lists on what users
// write (message bodies, room names and topics, display names, usernames) and a list of blocked
// servers, answered with M_FORBIDDEN and a message that says what was refused.
//
//   plugins:
//     - name: spam-policy
//       config:
//         messages:      { keywords: ["crypto giveaway"], patterns: ["https?://[^ ]*\\.scam\\.example"] }
//         room_names:    { keywords: ["free nitro"] }       # m.room.name, m.room.topic, new aliases
//         display_names: { patterns: ["^admin$"] }          # profile changes, member events
//         usernames:     { patterns: ["^spam", "bot\\d+$"] } # registration
//         blocked_servers: ["spam.example", "*.badhost.example"]
//         exempt_users: ["@admin:home.example"]
//         message_action: deny                              # or shadow: 200 to the sender, sent to nobody
//
// Keywords match anywhere in the text, ignoring case (and after Unicode NFKC normalisation, so that
// full-width and other look-alike forms of a keyword match too). Patterns are JavaScript regular
// expressions, matched ignoring case, anywhere unless anchored with ^ and $. An invalid pattern is
// refused at start (and on reload) with a message naming its key.
//
// What is checked where:
// - events (checkEventForSpam): `messages` on content.body and content.formatted_body (and those of
//   an edit's m.new_content), `room_names` on m.room.name's name and m.room.topic's topic,
//   `display_names` on an m.room.member's displayname; the sender's server and the room's server;
// - joins, knocks, invites: the user's server, the invitee's server and the room's server;
// - creating a room or an alias, publishing a room: the user's server; a new alias's local part and
//   the current name and topic of a room about to be published are checked against `room_names`;
// - profile changes (checkUsernameForSpam): `display_names` on the display name;
// - registration (checkRegistration): `usernames` on the username asked for.
// A matching message gets `message_action` (deny by default); everything else is denied. Users
// matching `exempt_users` (globs over whole user IDs) are never checked.
//
// Only types come from src/extensions (a plugin imports nothing else of Portier), so decisions are
// written out as the plain values Decision describes.
import type { Decision, PluginHost, PortierPlugin, SpamEvent, SpamPolicy } from "../../src/extensions";

export interface TextRules {
  keywords?: string[];
  patterns?: string[];
}

export interface SpamPolicyConfig {
  messages?: TextRules;
  room_names?: TextRules;
  display_names?: TextRules;
  usernames?: TextRules;
  blocked_servers?: string[];
  exempt_users?: string[];
  message_action?: "deny" | "shadow";
}

const stringList = { type: "array", items: { type: "string", minLength: 1, maxLength: 1024 } } as const;
const textRules = { type: "object", additionalProperties: false, properties: { keywords: stringList, patterns: stringList } } as const;

/** The config's JSON Schema (checked by Portier at start and on reload, before register). */
export const configSchema = {
  type: "object",
  additionalProperties: false,
  properties: {
    messages: textRules,
    room_names: textRules,
    display_names: textRules,
    usernames: textRules,
    blocked_servers: stringList,
    exempt_users: stringList,
    message_action: { type: "string", enum: ["deny", "shadow"] },
  },
} as const;

type Matcher = (text: string) => boolean;

/** A text matcher of keywords and patterns; undefined when both lists are empty. */
interface CompiledText {
  matches: Matcher;
}

export interface CompiledConfig {
  messages?: CompiledText;
  roomNames?: CompiledText;
  displayNames?: CompiledText;
  usernames?: CompiledText;
  blockedServers: Matcher[];
  exemptUsers: Matcher[];
  messageAction: "deny" | "shadow";
}

const normalise = (text: string) => text.normalize("NFKC").toLowerCase();

/** Glob over the whole string, case-insensitive: `*` any run of characters, `?` exactly one. */
export function globMatcher(pattern: string): Matcher {
  const source = [...pattern].map((c) => (c === "*" ? ".*" : c === "?" ? "." : c.replace(/[\\^$.|+()[\]{}]/g, "\\$&"))).join("");
  const regex = new RegExp(`^${source}$`, "isu");
  return (value) => regex.test(value);
}

function compileText(raw: TextRules | undefined, key: string): CompiledText | undefined {
  if (raw === undefined) return undefined;
  const keywords = (raw.keywords ?? []).map(normalise);
  const patterns = (raw.patterns ?? []).map((source, i) => {
    try {
      return new RegExp(source, "iu");
    } catch (error) {
      throw new Error(`config key '${key}.patterns[${i}]': not a valid regular expression: ${(error as Error).message}`);
    }
  });
  if (keywords.length === 0 && patterns.length === 0) return undefined;
  return {
    matches(text) {
      if (text.length === 0) return false;
      if (keywords.length > 0) {
        const folded = normalise(text);
        if (keywords.some((k) => folded.includes(k))) return true;
      }
      return patterns.some((p) => p.test(text));
    },
  };
}

/** Reads the plugin's config (already checked against configSchema); throws naming the key of an invalid pattern. */
export function parseConfig(raw: SpamPolicyConfig | undefined): CompiledConfig {
  const config = raw ?? {};
  (config.blocked_servers ?? []).forEach((s, i) => {
    if (s.includes("@") || /\s/.test(s)) throw new Error(`config key 'blocked_servers[${i}]': a server pattern matches server names, e.g. "*.example.org"; got ${JSON.stringify(s)}`);
  });
  (config.exempt_users ?? []).forEach((u, i) => {
    if (!u.startsWith("@") && !u.startsWith("*")) throw new Error(`config key 'exempt_users[${i}]': a user pattern matches whole user IDs, e.g. "@*:example.org"; got ${JSON.stringify(u)}`);
  });
  return {
    messages: compileText(config.messages, "messages"),
    roomNames: compileText(config.room_names, "room_names"),
    displayNames: compileText(config.display_names, "display_names"),
    usernames: compileText(config.usernames, "usernames"),
    blockedServers: (config.blocked_servers ?? []).map(globMatcher),
    exemptUsers: (config.exempt_users ?? []).map(globMatcher),
    messageAction: config.message_action ?? "deny",
  };
}

/** The server part of a user ID, room ID or alias; undefined when it has none (v12 room IDs). */
function serverOf(id: string): string | undefined {
  const colon = id.indexOf(":");
  return colon < 0 ? undefined : id.slice(colon + 1);
}

const ALLOW: Decision = { kind: "allow" };
const SHADOW: Decision = { kind: "shadow" };
const forbidden = (message: string): Decision => ({ kind: "deny", errcode: "M_FORBIDDEN", message });

const strings = (...values: unknown[]): string[] => values.filter((v): v is string => typeof v === "string");

/** The message text of an event's content: body and formatted_body, and those of an edit's new content. */
function messageTexts(content: Readonly<Record<string, unknown>>): string[] {
  const out = strings(content.body, content.formatted_body);
  const edit = content["m.new_content"];
  if (typeof edit === "object" && edit !== null) out.push(...strings((edit as Record<string, unknown>).body, (edit as Record<string, unknown>).formatted_body));
  return out;
}

/** The room name or topic an event sets (m.room.topic's text forms in m.topic too). */
function roomNameTexts(event: SpamEvent): string[] {
  if (event.type === "m.room.name") return strings(event.content.name);
  if (event.type !== "m.room.topic") return [];
  const out = strings(event.content.topic);
  const topic = event.content["m.topic"];
  const text = typeof topic === "object" && topic !== null ? (topic as Record<string, unknown>)["m.text"] : undefined;
  if (Array.isArray(text)) for (const part of text) if (typeof part === "object" && part !== null) out.push(...strings((part as Record<string, unknown>).body));
  return out;
}

/** The policy for a parsed config (what register adds; tests call it directly). */
export function spamPolicy(host: Pick<PluginHost, "logger" | "rooms">, config: CompiledConfig): SpamPolicy {
  const exempt = (userId: string) => config.exemptUsers.some((m) => m(userId));
  const blocked = (id: string) => {
    const server = serverOf(id);
    return server !== undefined && config.blockedServers.some((m) => m(server)) ? server : undefined;
  };
  const refused = (decision: Decision, rule: string, fields: Record<string, unknown>): Decision => {
    host.logger.log("info", `spam policy: ${decision.kind === "shadow" ? "shadowed" : "refused"}`, { rule, ...fields });
    return decision;
  };
  /** The first blocked server among a user's and a room's (and an invitee's), as a denial. */
  const serverCheck = (fields: Record<string, unknown>, user: string, room?: string, invitee?: string): Decision | undefined => {
    if (config.blockedServers.length === 0) return undefined;
    const userServer = blocked(user);
    if (userServer) return refused(forbidden(`Users of ${userServer} are blocked on this server`), "blocked_servers", fields);
    const inviteeServer = invitee === undefined ? undefined : blocked(invitee);
    if (inviteeServer) return refused(forbidden(`Users of ${inviteeServer} are blocked on this server`), "blocked_servers", fields);
    const roomServer = room === undefined ? undefined : blocked(room);
    if (roomServer) return refused(forbidden(`Rooms of ${roomServer} are blocked on this server`), "blocked_servers", fields);
    return undefined;
  };
  const anyMatch = (rules: CompiledText | undefined, texts: readonly string[]) => rules !== undefined && texts.some((t) => rules.matches(t));

  return {
    checkEventForSpam(event) {
      if (exempt(event.sender)) return ALLOW;
      const fields = { room_id: event.roomId, user_id: event.sender, type: event.type };
      const server = serverCheck(fields, event.sender, event.roomId || undefined);
      if (server) return server;
      if (anyMatch(config.messages, messageTexts(event.content))) {
        if (config.messageAction === "shadow") return refused(SHADOW, "messages", fields);
        return refused(forbidden("This message was not sent: it contains text this server does not allow"), "messages", fields);
      }
      if (anyMatch(config.roomNames, roomNameTexts(event))) return refused(forbidden("This room name or topic contains text this server does not allow"), "room_names", fields);
      if (event.type === "m.room.member" && anyMatch(config.displayNames, strings(event.content.displayname))) {
        return refused(forbidden("This display name contains text this server does not allow"), "display_names", fields);
      }
      return ALLOW;
    },
    userMayJoinRoom(userId, roomId) {
      if (exempt(userId)) return ALLOW;
      return serverCheck({ room_id: roomId, user_id: userId, action: "join" }, userId, roomId) ?? ALLOW;
    },
    userMayKnock(userId, roomId) {
      if (exempt(userId)) return ALLOW;
      return serverCheck({ room_id: roomId, user_id: userId, action: "knock" }, userId, roomId) ?? ALLOW;
    },
    userMayInvite(inviter, invitee, roomId) {
      if (exempt(inviter)) return ALLOW;
      return serverCheck({ room_id: roomId, user_id: inviter, invitee, action: "invite" }, inviter, roomId, invitee) ?? ALLOW;
    },
    userMayCreateRoom(userId) {
      if (exempt(userId)) return ALLOW;
      return serverCheck({ user_id: userId, action: "create room" }, userId) ?? ALLOW;
    },
    userMayCreateAlias(userId, alias) {
      if (exempt(userId)) return ALLOW;
      const fields = { user_id: userId, alias, action: "create alias" };
      const server = serverCheck(fields, userId);
      if (server) return server;
      const localpart = alias.slice(1, alias.includes(":") ? alias.indexOf(":") : undefined);
      if (anyMatch(config.roomNames, [localpart])) return refused(forbidden("This room alias contains text this server does not allow"), "room_names", fields);
      return ALLOW;
    },
    async userMayPublishRoom(userId, roomId) {
      if (exempt(userId)) return ALLOW;
      const fields = { room_id: roomId, user_id: userId, action: "publish" };
      const server = serverCheck(fields, userId, roomId);
      if (server) return server;
      if (config.roomNames) {
        const name = await host.rooms.state(roomId, "m.room.name", "");
        const topic = await host.rooms.state(roomId, "m.room.topic", "");
        if (anyMatch(config.roomNames, strings(name?.name, topic?.topic))) {
          return refused(forbidden("This room cannot be published: its name or topic contains text this server does not allow"), "room_names", fields);
        }
      }
      return ALLOW;
    },
    checkUsernameForSpam(profile) {
      if (exempt(profile.userId)) return ALLOW;
      const fields = { user_id: profile.userId, action: "profile" };
      const server = serverCheck(fields, profile.userId);
      if (server) return server;
      if (anyMatch(config.displayNames, strings(profile.displayName))) return refused(forbidden("This display name contains text this server does not allow"), "display_names", fields);
      return ALLOW;
    },
    checkRegistration(request) {
      if (request.username === undefined || !config.usernames) return ALLOW;
      if (config.usernames.matches(request.username)) {
        return refused(forbidden("This username is not allowed on this server: choose another"), "usernames", { username: request.username, address: request.address });
      }
      return ALLOW;
    },
  };
}

const plugin: PortierPlugin<SpamPolicyConfig> = {
  name: "spam-policy",
  version: "1.0.0",
  configSchema,
  register(host, config) {
    host.addSpamPolicy(spamPolicy(host, parseConfig(config)));
  },
};

export default plugin;
