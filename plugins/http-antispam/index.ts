// http-antispam: asks an antispam service over HTTP, in the protocol of synapse-http-antispam (issue
// 9), so that services written for it (Meowlnir, Draupnir) decide for Portier unchanged.
//
//   plugins:
//     - name: http-antispam
//       config:
//         base_url: http://localhost:8080/api/1/spam_check
//         authorization: a shared secret          # or authorization_path: /etc/portier/antispam.token
//         enabled_callbacks: [user_may_invite, user_may_join_room]
//         fail_open: { user_may_invite: true }     # per callback, when the service cannot answer
//         async: { check_event_for_spam: true }    # sent in the background; always allowed
//         timeout_ms: 800
//         do_ping: true
//       fail_mode: open                             # the rest: what Portier does when this plugin fails
//       timeout_ms: 1000
//
// The protocol: each callback is a POST of its arguments as a JSON object to
// `${base_url}/${callback_name}`, with `Authorization: Bearer <authorization>` when one is set. Any
// 2xx answer allows (its body is ignored, so `{}` is enough). Any other status with a JSON object body
// refuses, with the body's errcode (M_FORBIDDEN when it has none or not a valid one) and its error as
// the message the client sees. A non-JSON answer, a network error or a timeout is a failure: a
// callback listed in `fail_open` is decided by it (true: allow; false: refuse with M_UNKNOWN, as the
// original does), and any other failure is thrown, so that the plugin entry's fail_mode applies.
// Keep `timeout_ms` below the entry's timeout_ms, so that a hanging service meets `fail_open` first.
//
// Callbacks and the arguments they send (the names of Synapse's spam-checker callbacks):
//   check_event_for_spam        { event: { room_id, sender, type, state_key?, content } }
//   user_may_join_room          { user, room, is_invited }
//   user_may_invite             { inviter, invitee, room_id }
//   user_may_create_room        { user_id }
//   user_may_create_room_alias  { user_id, room_alias }
//   user_may_publish_room       { user_id, room_id }
//   check_username_for_spam     { user_profile: { user_id, display_name, avatar_url }, requester_id }
// and two Synapse's module does not offer, sent only when listed in enabled_callbacks:
//   user_may_knock              { user_id, room_id }
//   check_registration_for_spam { email_threepid: null, username, request_info: [[user_agent, ip]], auth_provider_id: null }
// Without enabled_callbacks, the seven above are enabled (the original's "all callbacks").
// check_event_for_spam is asked before the event is built, so the event has no event_id yet, and
// for a room being created its room_id is "". Only local actions are checked for now.
//
// Only types come from src/extensions (a plugin imports nothing else of Portier); fetch and Bun.file
// are the runtime's own.
import type { Decision, PluginHost, PortierPlugin, SpamPolicy } from "../../src/extensions";

export const STANDARD_CALLBACKS = [
  "check_event_for_spam",
  "user_may_join_room",
  "user_may_invite",
  "user_may_create_room",
  "user_may_create_room_alias",
  "user_may_publish_room",
  "check_username_for_spam",
] as const;
export const EXTRA_CALLBACKS = ["user_may_knock", "check_registration_for_spam"] as const;
export const CALLBACKS = [...STANDARD_CALLBACKS, ...EXTRA_CALLBACKS] as const;
export type CallbackName = (typeof CALLBACKS)[number];

export interface HttpAntispamConfig {
  base_url: string;
  authorization?: string;
  /** A file holding the token (read at start and on reload), instead of `authorization`. */
  authorization_path?: string;
  enabled_callbacks?: CallbackName[];
  fail_open?: Partial<Record<CallbackName, boolean>>;
  async?: Partial<Record<CallbackName, boolean>>;
  /** How long one request may take (default 800 ms). */
  timeout_ms?: number;
  /** At start, POST `${base_url}/ping` once with an id and log whether the service answered it. */
  do_ping?: boolean;
}

const DEFAULT_TIMEOUT_MS = 800;
const perCallback = { type: "object", additionalProperties: false, properties: Object.fromEntries(CALLBACKS.map((c) => [c, { type: "boolean" }])) };

/** The config's JSON Schema (checked by Portier at start and on reload, before register). */
export const configSchema = {
  type: "object",
  additionalProperties: false,
  required: ["base_url"],
  properties: {
    base_url: { type: "string", pattern: "^https?://[^\\s]+$", maxLength: 2048 },
    authorization: { type: "string", minLength: 1, maxLength: 4096 },
    authorization_path: { type: "string", minLength: 1, maxLength: 4096 },
    enabled_callbacks: { type: "array", items: { type: "string", enum: [...CALLBACKS] } },
    fail_open: perCallback,
    async: perCallback,
    timeout_ms: { type: "integer", minimum: 1, maximum: 600000 },
    do_ping: { type: "boolean" },
  },
} as const;

/** The service could not give an answer (network, timeout, not JSON): decided by fail_open, or thrown. */
export class AntispamUnavailable extends Error {
  override name = "AntispamUnavailable";
}

const ALLOW: Decision = { kind: "allow" };
const ERRCODE = /^M_[A-Z_]+$/;

export interface Settings {
  readonly baseUrl: string;
  readonly authorization: string | undefined;
  readonly enabled: ReadonlySet<CallbackName>;
  readonly failOpen: Partial<Record<CallbackName, boolean>>;
  readonly async: Partial<Record<CallbackName, boolean>>;
  readonly timeoutMs: number;
}

/** Reads the config (already checked against configSchema); the token file is read here. */
export async function parseConfig(config: HttpAntispamConfig): Promise<Settings> {
  if (config.authorization !== undefined && config.authorization_path !== undefined) {
    throw new Error("config keys 'authorization' and 'authorization_path': give one of them, not both");
  }
  let authorization = config.authorization;
  if (config.authorization_path !== undefined) {
    try {
      authorization = (await Bun.file(config.authorization_path).text()).trim();
    } catch (error) {
      throw new Error(`config key 'authorization_path': cannot read ${config.authorization_path}: ${(error as Error).message}`);
    }
    if (authorization.length === 0) throw new Error(`config key 'authorization_path': ${config.authorization_path} is empty`);
  }
  return {
    baseUrl: config.base_url.replace(/\/+$/, ""),
    authorization,
    enabled: new Set(config.enabled_callbacks ?? STANDARD_CALLBACKS),
    failOpen: config.fail_open ?? {},
    async: config.async ?? {},
    timeoutMs: config.timeout_ms ?? DEFAULT_TIMEOUT_MS,
  };
}

/** One POST to the service; the answer as a decision, or AntispamUnavailable. */
async function ask(settings: Settings, callback: string, args: Record<string, unknown>): Promise<Decision> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (settings.authorization !== undefined) headers.Authorization = `Bearer ${settings.authorization}`;
  let response: Response;
  let text: string;
  try {
    response = await fetch(`${settings.baseUrl}/${callback}`, { method: "POST", headers, body: JSON.stringify(args), signal: AbortSignal.timeout(settings.timeoutMs) });
    text = await response.text();
  } catch (error) {
    const name = (error as Error)?.name;
    const what = name === "TimeoutError" || name === "AbortError" ? `no answer within ${settings.timeoutMs} ms` : String((error as Error)?.message ?? error);
    throw new AntispamUnavailable(`POST ${callback}: ${what}`);
  }
  if (response.ok) return ALLOW;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new AntispamUnavailable(`POST ${callback}: status ${response.status} with a body that is not JSON`);
  }
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw new AntispamUnavailable(`POST ${callback}: status ${response.status} with a body that is not a JSON object`);
  const { errcode, error } = body as { errcode?: unknown; error?: unknown };
  return {
    kind: "deny",
    errcode: typeof errcode === "string" && ERRCODE.test(errcode) ? errcode : "M_FORBIDDEN",
    message: typeof error === "string" && error.length > 0 ? error : "Refused by this server's antispam service",
  };
}

/** The policy for parsed settings (what register adds; tests call it directly). */
export function httpAntispamPolicy(host: Pick<PluginHost, "logger">, settings: Settings): SpamPolicy {
  const call = async (callback: CallbackName, args: Record<string, unknown>): Promise<Decision> => {
    if (settings.async[callback]) {
      // In the background: the answer is not waited for and does not count.
      void ask(settings, callback, args).catch((error) => host.logger.log("warn", "antispam service: a background callback failed", { callback, error: String((error as Error)?.message ?? error) }));
      return ALLOW;
    }
    try {
      return await ask(settings, callback, args);
    } catch (error) {
      const failOpen = settings.failOpen[callback];
      if (!(error instanceof AntispamUnavailable) || failOpen === undefined) throw error;
      host.logger.log("error", "antispam service: no usable answer", { callback, fail_open: failOpen, error: error.message });
      return failOpen ? ALLOW : { kind: "deny", errcode: "M_UNKNOWN", message: "This server's antispam service could not be reached; try again later" };
    }
  };
  const on = (callback: CallbackName) => settings.enabled.has(callback);
  const policy: SpamPolicy = {};
  if (on("check_event_for_spam")) {
    policy.checkEventForSpam = (event) =>
      call("check_event_for_spam", {
        event: { room_id: event.roomId, sender: event.sender, type: event.type, ...(event.stateKey === undefined ? {} : { state_key: event.stateKey }), content: event.content },
      });
  }
  if (on("user_may_join_room")) policy.userMayJoinRoom = (user, room, isInvited) => call("user_may_join_room", { user, room, is_invited: isInvited });
  if (on("user_may_invite")) policy.userMayInvite = (inviter, invitee, roomId) => call("user_may_invite", { inviter, invitee, room_id: roomId });
  if (on("user_may_create_room")) policy.userMayCreateRoom = (userId) => call("user_may_create_room", { user_id: userId });
  if (on("user_may_create_room_alias")) policy.userMayCreateAlias = (userId, alias) => call("user_may_create_room_alias", { user_id: userId, room_alias: alias });
  if (on("user_may_publish_room")) policy.userMayPublishRoom = (userId, roomId) => call("user_may_publish_room", { user_id: userId, room_id: roomId });
  if (on("check_username_for_spam")) {
    policy.checkUsernameForSpam = (profile) =>
      call("check_username_for_spam", {
        user_profile: { user_id: profile.userId, display_name: profile.displayName ?? null, avatar_url: profile.avatarUrl ?? null },
        requester_id: profile.userId,
      });
  }
  if (on("user_may_knock")) policy.userMayKnock = (userId, roomId) => call("user_may_knock", { user_id: userId, room_id: roomId });
  if (on("check_registration_for_spam")) {
    policy.checkRegistration = (request) =>
      call("check_registration_for_spam", {
        email_threepid: null,
        username: request.username ?? null,
        request_info: request.address === undefined ? [] : [["", request.address]],
        auth_provider_id: null,
      });
  }
  return policy;
}

/** do_ping: one ping at start, logged; never holds the start and never fails it. */
async function ping(host: Pick<PluginHost, "logger">, settings: Settings): Promise<void> {
  const id = crypto.randomUUID();
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (settings.authorization !== undefined) headers.Authorization = `Bearer ${settings.authorization}`;
  try {
    const response = await fetch(`${settings.baseUrl}/ping`, { method: "POST", headers, body: JSON.stringify({ id }), signal: AbortSignal.timeout(settings.timeoutMs) });
    const body = (await response.json().catch(() => undefined)) as { id?: unknown; status?: unknown } | undefined;
    if (response.ok && body?.id === id && body.status === "ok") host.logger.log("info", "antispam service answered the ping", { url: settings.baseUrl });
    else host.logger.log("error", "antispam service gave an unexpected answer to the ping", { url: settings.baseUrl, status: response.status, body });
  } catch (error) {
    host.logger.log("error", "antispam service did not answer the ping", { url: settings.baseUrl, error: String((error as Error)?.message ?? error) });
  }
}

const plugin: PortierPlugin<HttpAntispamConfig> = {
  name: "http-antispam",
  version: "1.0.0",
  configSchema,
  async register(host, config) {
    const settings = await parseConfig(config);
    host.addSpamPolicy(httpAntispamPolicy(host, settings));
    if (config.do_ping) void ping(host, settings);
  },
};

export default plugin;
