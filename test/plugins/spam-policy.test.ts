// The bundled spam-policy plugin on its own (issue 9): keyword and pattern lists on bodies, names,
// display names and usernames; blocked servers for senders, invitees and rooms; exempt users; the
// shadow action for messages; config validation that names the key; and its decisions taken by a
// PolicySet as they are.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import spamPolicyPlugin, { configSchema, parseConfig, type SpamPolicyConfig } from "../../plugins/spam-policy";
import type { Decision, PluginHost, SpamEvent, SpamPolicy } from "../../src/extensions";
import { configErrors } from "../../src/services/plugins/config-schema";
import { PluginLoader } from "../../src/services/plugins/loader";
import { PolicySet } from "../../src/services/plugins/policies";
import { silentLogger } from "../helpers/server";
import { fakePluginHost } from "../helpers/plugin-host";

const ROOM = "!room:home.example";

/** Room state by "roomId|type|stateKey"; the policies are the spam policies the plugin registered. */
function spamHost(state: Record<string, Record<string, unknown>> = {}) {
  const fake = fakePluginHost((roomId, type, stateKey) => state[`${roomId}|${type}|${stateKey ?? ""}`]);
  return { ...fake, policies: fake.spamPolicies };
}


async function policyFor(config: SpamPolicyConfig, state: Record<string, Record<string, unknown>> = {}) {
  expect(configErrors(configSchema, config)).toEqual([]);
  const fake = spamHost(state);
  await spamPolicyPlugin.register(fake.host, config);
  expect(fake.policies).toHaveLength(1);
  return { ...fake, policy: fake.policies[0]! };
}

const message = (body: unknown, extra: Partial<SpamEvent> = {}, content: Record<string, unknown> = {}): SpamEvent => ({
  roomId: ROOM,
  sender: "@alice:home.example",
  type: "m.room.message",
  content: { msgtype: "m.text", body, ...content },
  local: true,
  ...extra,
});

const ALLOW: Decision = { kind: "allow" };
const forbidden = (message: string | RegExp): Decision => ({ kind: "deny", errcode: "M_FORBIDDEN", message: typeof message === "string" ? message : expect.stringMatching(message) });
const MESSAGE_REFUSED = forbidden("This message was not sent: it contains text this server does not allow");

describe("message bodies", () => {
  test("keywords match anywhere, ignoring case and look-alike (NFKC) forms; patterns are regular expressions", async () => {
    const { policy } = await policyFor({ messages: { keywords: ["Crypto Giveaway"], patterns: ["https?://\\S+\\.scam\\.example\\b"] } });
    expect(await policy.checkEventForSpam!(message("join the CRYPTO GIVEAWAY now"))).toEqual(MESSAGE_REFUSED);
    // Full-width letters fold to the keyword under NFKC.
    expect(await policy.checkEventForSpam!(message("ｃｒｙｐｔｏ ｇｉｖｅａｗａｙ"))).toEqual(MESSAGE_REFUSED);
    expect(await policy.checkEventForSpam!(message("see http://win.scam.example/now"))).toEqual(MESSAGE_REFUSED);
    expect(await policy.checkEventForSpam!(message("crypto is a giveaway of nothing"))).toEqual(ALLOW);
    expect(await policy.checkEventForSpam!(message("see http://scam.example.org"))).toEqual(ALLOW);
  });

  test("formatted_body, an edit's m.new_content, and any event type with a body are checked; other content is not", async () => {
    const { policy } = await policyFor({ messages: { keywords: ["buy pills"] } });
    expect(await policy.checkEventForSpam!(message("fine", {}, { format: "org.matrix.custom.html", formatted_body: "<b>BUY PILLS</b>" }))).toEqual(MESSAGE_REFUSED);
    expect(await policy.checkEventForSpam!(message("* fine", {}, { "m.new_content": { msgtype: "m.text", body: "buy pills" } }))).toEqual(MESSAGE_REFUSED);
    expect(await policy.checkEventForSpam!(message("buy pills", { type: "m.sticker" }))).toEqual(MESSAGE_REFUSED);
    expect(await policy.checkEventForSpam!(message(42))).toEqual(ALLOW);
    expect(await policy.checkEventForSpam!(message("hello", {}, { note: "buy pills" }))).toEqual(ALLOW);
  });

  test("message_action shadow: matching messages are shadowed, other rules still deny", async () => {
    const { policy, logs } = await policyFor({ messages: { keywords: ["spam"] }, room_names: { keywords: ["spam"] }, message_action: "shadow" });
    expect(await policy.checkEventForSpam!(message("spam spam"))).toEqual({ kind: "shadow" });
    expect(await policy.checkEventForSpam!({ ...message(""), type: "m.room.name", stateKey: "", content: { name: "spam room" } })).toEqual(forbidden(/room name or topic/));
    expect(logs.map((l) => [l.message, l.fields?.rule])).toEqual([
      ["spam policy: shadowed", "messages"],
      ["spam policy: refused", "room_names"],
    ]);
  });

  test("exempt users are never checked", async () => {
    const { policy } = await policyFor({ messages: { keywords: ["spam"] }, blocked_servers: ["home.example"], exempt_users: ["@mod*:home.example"] });
    expect(await policy.checkEventForSpam!(message("spam", { sender: "@moderator:home.example" }))).toEqual(ALLOW);
    expect(await policy.userMayJoinRoom!("@moderator:home.example", ROOM, false)).toEqual(ALLOW);
    expect(await policy.checkEventForSpam!(message("hello", { sender: "@alice:home.example" }))).toEqual(forbidden("Users of home.example are blocked on this server"));
  });
});

describe("names", () => {
  test("room names and topics (topic and m.topic text), aliases, and the room's name and topic when it is published", async () => {
    const state = { [`!named:home.example|m.room.name|`]: { name: "FREE NITRO here" }, [`!topic:home.example|m.room.topic|`]: { topic: "get free nitro" } };
    const { policy } = await policyFor({ room_names: { keywords: ["free nitro"], patterns: ["^nitro"] } }, state);
    const stateEvent = (type: string, content: Record<string, unknown>): SpamEvent => ({ roomId: ROOM, sender: "@a:home.example", type, stateKey: "", content, local: true });
    expect(await policy.checkEventForSpam!(stateEvent("m.room.name", { name: "Free Nitro" }))).toEqual(forbidden("This room name or topic contains text this server does not allow"));
    expect(await policy.checkEventForSpam!(stateEvent("m.room.topic", { topic: "x", "m.topic": { "m.text": [{ body: "free nitro" }] } }))).toEqual(forbidden(/room name or topic/));
    expect(await policy.checkEventForSpam!(stateEvent("m.room.name", { name: "Book club" }))).toEqual(ALLOW);
    // A room name in a message body is just a message.
    expect(await policy.checkEventForSpam!(message("free nitro"))).toEqual(ALLOW);
    expect(await policy.userMayCreateAlias!("@a:home.example", "#nitro-club:home.example")).toEqual(forbidden("This room alias contains text this server does not allow"));
    expect(await policy.userMayCreateAlias!("@a:home.example", "#book-club:home.example")).toEqual(ALLOW);
    expect(await policy.userMayPublishRoom!("@a:home.example", "!named:home.example")).toEqual(forbidden(/cannot be published/));
    expect(await policy.userMayPublishRoom!("@a:home.example", "!topic:home.example")).toEqual(forbidden(/cannot be published/));
    expect(await policy.userMayPublishRoom!("@a:home.example", "!plain:home.example")).toEqual(ALLOW);
  });

  test("display names in profile changes and member events; usernames at registration", async () => {
    const { policy } = await policyFor({ display_names: { patterns: ["^official\\s*admin$"] }, usernames: { patterns: ["^spambot", "\\d{6,}$"], keywords: ["viagra"] } });
    const refusedName = forbidden("This display name contains text this server does not allow");
    expect(await policy.checkUsernameForSpam!({ userId: "@a:home.example", displayName: "Official Admin" })).toEqual(refusedName);
    expect(await policy.checkUsernameForSpam!({ userId: "@a:home.example", displayName: "Not the official admin" })).toEqual(ALLOW);
    expect(await policy.checkUsernameForSpam!({ userId: "@a:home.example", avatarUrl: "mxc://x/y" })).toEqual(ALLOW);
    const member: SpamEvent = { roomId: ROOM, sender: "@a:home.example", type: "m.room.member", stateKey: "@a:home.example", content: { membership: "join", displayname: "official admin" }, local: true };
    expect(await policy.checkEventForSpam!(member)).toEqual(refusedName);
    const refusedUser = forbidden("This username is not allowed on this server: choose another");
    expect(await policy.checkRegistration!({ username: "spambot7", address: "10.0.0.1" })).toEqual(refusedUser);
    expect(await policy.checkRegistration!({ username: "alice1234567", address: undefined })).toEqual(refusedUser);
    expect(await policy.checkRegistration!({ username: "cheapviagra", address: undefined })).toEqual(refusedUser);
    expect(await policy.checkRegistration!({ username: "alice", address: undefined })).toEqual(ALLOW);
    // A random username (none asked for) has nothing to match.
    expect(await policy.checkRegistration!({ username: undefined, address: undefined })).toEqual(ALLOW);
  });
});

describe("blocked servers", () => {
  test("senders, invitees and rooms of a blocked server (globs), each with its own message", async () => {
    const { policy } = await policyFor({ blocked_servers: ["spam.example", "*.badhost.example"] });
    const usersOf = (server: string) => forbidden(`Users of ${server} are blocked on this server`);
    const roomsOf = (server: string) => forbidden(`Rooms of ${server} are blocked on this server`);
    expect(await policy.checkEventForSpam!(message("hi", { sender: "@x:spam.example", local: false }))).toEqual(usersOf("spam.example"));
    expect(await policy.checkEventForSpam!(message("hi", { roomId: "!r:a.badhost.example" }))).toEqual(roomsOf("a.badhost.example"));
    expect(await policy.userMayJoinRoom!("@a:home.example", "!r:spam.example", true)).toEqual(roomsOf("spam.example"));
    expect(await policy.userMayKnock!("@a:home.example", "!r:x.badhost.example")).toEqual(roomsOf("x.badhost.example"));
    expect(await policy.userMayInvite!("@a:home.example", "@b:spam.example", ROOM)).toEqual(usersOf("spam.example"));
    expect(await policy.userMayInvite!("@a:spam.example", "@b:home.example", ROOM)).toEqual(usersOf("spam.example"));
    expect(await policy.userMayCreateRoom!("@a:spam.example")).toEqual(usersOf("spam.example"));
    expect(await policy.checkUsernameForSpam!({ userId: "@a:spam.example" })).toEqual(usersOf("spam.example"));
    // Not blocked: the bare parent domain of a "*." pattern, other servers, v12 room IDs with no server.
    expect(await policy.userMayJoinRoom!("@a:home.example", "!r:badhost.example", false)).toEqual(ALLOW);
    expect(await policy.userMayInvite!("@a:home.example", "@b:home.example", ROOM)).toEqual(ALLOW);
    expect(await policy.userMayJoinRoom!("@a:home.example", "!AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg", false)).toEqual(ALLOW);
  });

  test("no config: everything is allowed", async () => {
    const { policy, logs } = await policyFor({});
    expect(await policy.checkEventForSpam!(message("anything at all"))).toEqual(ALLOW);
    expect(await policy.userMayJoinRoom!("@a:home.example", ROOM, false)).toEqual(ALLOW);
    expect(await policy.userMayCreateRoom!("@a:home.example")).toEqual(ALLOW);
    expect(await policy.checkRegistration!({ username: "spambot", address: undefined })).toEqual(ALLOW);
    expect(logs).toEqual([]);
  });
});

describe("config", () => {
  test("the schema names the key of a wrong type or an unknown key", () => {
    expect(configErrors(configSchema, { messages: { keywords: "spam" } })).toEqual(["key 'messages.keywords': expected array, got string"]);
    expect(configErrors(configSchema, { messages: { words: [] } })).toEqual(["key 'messages.words': unknown"]);
    expect(configErrors(configSchema, { message_action: "drop" })).toEqual(['key \'message_action\': must be one of "deny", "shadow"']);
    expect(configErrors(configSchema, { blocked_servers: [""] })).toEqual(["key 'blocked_servers[0]': must be at least 1 characters"]);
  });

  test("an invalid pattern and misplaced server or user patterns are refused, naming the key", () => {
    expect(() => parseConfig({ usernames: { patterns: ["ok", "(unclosed"] } })).toThrow(/^config key 'usernames\.patterns\[1\]': not a valid regular expression/);
    expect(() => parseConfig({ blocked_servers: ["@bad:example.org"] })).toThrow("config key 'blocked_servers[0]': a server pattern matches server names");
    expect(() => parseConfig({ exempt_users: ["admin"] })).toThrow("config key 'exempt_users[0]': a user pattern matches whole user IDs");
  });

  test("loaded by the loader: a bad config stops the start with the plugin's name and the key", async () => {
    const path = join(import.meta.dir, "../../plugins/spam-policy/index.ts");
    const loader = (policies: PolicySet) =>
      new PluginLoader(policies, { bundled: {}, baseDir: "/", serverName: "home.example", logger: silentLogger, clock: { now: () => 0 }, rooms: spamHost().host.rooms });
    await expect(loader(new PolicySet(silentLogger)).load([{ path, config: { messages: { patterns: ["[z-a]"] } } }])).rejects.toThrow(
      /plugin 'spam-policy' \(plugins\[0\]\): register failed: config key 'messages\.patterns\[0\]': not a valid regular expression/,
    );
    await expect(loader(new PolicySet(silentLogger)).load([{ path, config: { message: {} } }])).rejects.toThrow("plugin 'spam-policy' (plugins[0]): config key 'message': unknown");
    // A good config: the PolicySet runs it, and its denial reaches the caller as it is.
    const policies = new PolicySet(silentLogger);
    await loader(policies).load([{ path, config: { messages: { keywords: ["spam"] } } }]);
    expect(policies.hasSpamPolicies).toBe(true);
    expect(await policies.spamCheck((p) => p.checkEventForSpam?.(message("spam")))).toEqual(MESSAGE_REFUSED);
    expect(await policies.spamCheck((p) => p.checkEventForSpam?.(message("ham")))).toEqual(ALLOW);
    expect(policies.stats.get("spam-policy")).toMatchObject({ calls: 2, denials: 1, errors: 0 });
  });
});
