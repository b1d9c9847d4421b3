// Push rules through the HTTP API (pushrules.yaml): the default ruleset, the shapes of the paths,
// user rules with before/after, enabled and actions of default and user rules, and the refusals
// sytest's 61push tests check (02add_rules, 05_set_actions, 07_set_enabled, 80torture).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { bearer, registerUser, type TestUser } from "../../helpers/accounts";

let server: PortierServer;
let alice: TestUser;
let bob: TestUser;
beforeAll(async () => {
  server = await testServer({ server_name: "push.example", registration: { enabled: true } });
  alice = await registerUser(server, "alice");
  bob = await registerUser(server, "bob");
});
afterAll(() => server.stop());

const V3 = "/_matrix/client/v3";
const BASE = `${V3}/pushrules/global`;
const check = (method: string, path: string, status: number, body: unknown) => expectMatchesSpec({ api: "client-server", method, path, status, body });
const ids = (rules: { rule_id: string }[]) => rules.map((r) => r.rule_id);
const get = (path: string, user: TestUser = alice) => request(server, "GET", path, undefined, bearer(user.token));
const put = (path: string, body: unknown, user: TestUser = alice) => request(server, "PUT", path, body, bearer(user.token));
const del = (path: string, user: TestUser = alice) => request(server, "DELETE", path, undefined, bearer(user.token));
const enc = encodeURIComponent;
let users = 0;
const freshUser = () => registerUser(server, `pr${++users}`);

describe("push rules", () => {
  test("the default ruleset of v1.19 under /pushrules/ (v3 and r0) and /pushrules/global/", async () => {
    for (const path of [`${V3}/pushrules/`, "/_matrix/client/r0/pushrules/"]) {
      const r = await get(path, bob);
      expect(r.status).toBe(200);
      check("GET", `${V3}/pushrules/`, 200, r.body);
      const g = r.body.global;
      expect(ids(g.override)).toEqual([
        ".m.rule.master",
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
        ".m.rule.member_event",
        ".m.rule.is_user_mention",
        ".m.rule.is_room_mention",
        ".m.rule.tombstone",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
      ]);
      expect(ids(g.underride)).toEqual([".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one", ".m.rule.message", ".m.rule.encrypted"]);
      expect(g.content).toEqual([]);
      expect(g.room).toEqual([]);
      expect(g.sender).toEqual([]);
      expect(g.override[0]).toEqual({ rule_id: ".m.rule.master", default: true, enabled: false, conditions: [], actions: [] });
      const invite = g.override.find((x: { rule_id: string }) => x.rule_id === ".m.rule.invite_for_me");
      expect(invite.conditions).toContainEqual({ kind: "event_match", key: "state_key", pattern: bob.userId });
      const mention = g.override.find((x: { rule_id: string }) => x.rule_id === ".m.rule.is_user_mention");
      expect(mention.conditions).toEqual([{ kind: "event_property_contains", key: "content.m\\.mentions.user_ids", value: bob.userId }]);
    }
    const scope = await get(`${BASE}/`, bob);
    expect(scope.status).toBe(200);
    check("GET", `${BASE}/`, 200, scope.body);
    expect(scope.body).toEqual((await get(`${V3}/pushrules/`, bob)).body.global);
    // One kind's rules, with the kind's trailing slash (as Synapse; sytest reads them so).
    const kind = await get(`${BASE}/underride/`, bob);
    expect(kind.status).toBe(200);
    expect(kind.body).toEqual(scope.body.underride);
  });

  test("the shapes of paths: /pushrules is no endpoint (404); a scope or kind without its slash, unknown scopes and attributes are 400", async () => {
    const none = await get(`${V3}/pushrules`);
    expect(none.status).toBe(404);
    expect(none.body.errcode).toBe("M_UNRECOGNIZED");
    const cases: [string, string][] = [
      [`${V3}/pushrules/global`, "M_UNRECOGNIZED"],
      [`${BASE}/room`, "M_UNRECOGNIZED"],
      [`${V3}/pushrules/not_a_scope/`, "M_UNRECOGNIZED"],
      [`${V3}/pushrules/device/`, "M_UNRECOGNIZED"],
      [`${BASE}/not_a_template/`, "M_INVALID_PARAM"],
      [`${BASE}/override/.m.rule.master/not_an_attr`, "M_UNRECOGNIZED"],
      [`${BASE}/override/.m.rule.master/enabled/more`, "M_UNRECOGNIZED"],
      [`${BASE}//x`, "M_UNRECOGNIZED"],
      [`${BASE}/room/%E0%A4%A`, "M_INVALID_PARAM"],
    ];
    for (const [path, errcode] of cases) {
      const r = await get(path);
      expect({ path, status: r.status, errcode: r.body.errcode }).toEqual({ path, status: 400, errcode });
    }
    const unknown = await get(`${BASE}/override/not_a_rule_id`);
    expect(unknown.status).toBe(404);
    check("GET", `${BASE}/override/not_a_rule_id`, 404, unknown.body);
    // A trailing slash after a rule id names the rule.
    expect((await get(`${BASE}/override/.m.rule.master/`)).body.rule_id).toBe(".m.rule.master");
  });

  test("every PUT sytest's 80torture sends is refused with 400, and stores nothing", async () => {
    const user = await freshUser();
    const before = (await get(`${V3}/pushrules/`, user)).body;
    const cases: [string, string, unknown][] = [
      ["no scope", "/", {}],
      ["invalid scope", `/not_a_scope/room/${enc("#spam:example.com")}`, { actions: ["notify"] }],
      ["missing template", "/global", { actions: ["notify"] }],
      ["missing rule_id", "/global/room", { actions: ["notify"] }],
      ["empty rule_id", "/global/room/", { actions: ["notify"] }],
      ["invalid template", "/global/not_a_template/foo", { actions: ["notify"] }],
      ["rule_id with slashes", `/global/room/${enc("#fo\\o:example.com")}`, { actions: ["notify"] }],
      ["rule_id with an encoded slash", `/global/room/${enc("a/b")}`, { actions: ["notify"] }],
      ["override rule without conditions", "/global/override/my_id", {}],
      ["underride rule without conditions", "/global/underride/my_id", {}],
      ["condition without kind", "/global/underride/my_id", { actions: ["notify"], conditions: [{}] }],
      ["condition with a wrong type", "/global/underride/my_id", { actions: ["notify"], conditions: [{ kind: "event_match", key: 1, pattern: "x" }] }],
      ["content rule without pattern", "/global/content/my_id", { actions: ["notify"] }],
      ["no actions", `/global/room/${enc("#my_room:example.com")}`, {}],
      ["invalid action", `/global/room/${enc("#my_room:example.com")}`, { actions: ["not_an_action"] }],
      ["an unknown action (MSC2625)", "/global/content/anything", { pattern: "*", actions: ["org.matrix.msc2625.mark_unread"] }],
      ["invalid attr", "/global/override/.m.rule.master/not_an_attr", { enabled: true }],
      ["invalid value for enabled", "/global/override/.m.rule.master/enabled", { enabled: "not a boolean" }],
      ["a server-default rule id", "/global/override/.my_rule", { actions: ["notify"] }],
    ];
    for (const [name, path, body] of cases) {
      const r = await put(`${V3}/pushrules${path}`, body, user);
      expect({ name, status: r.status }).toEqual({ name, status: 400 });
      expect(r.body.errcode).toMatch(/^M_/);
    }
    expect((await get(`${V3}/pushrules/`, user)).body).toEqual(before);
  });

  test("a rule of each kind (sytest 02add_rules): read back one by one, by kind, by scope, whole, enabled and actions", async () => {
    const user = await freshUser();
    const cases: [string, string, Record<string, unknown>][] = [
      ["room", "#spam:example.com", {}],
      ["sender", "@bob:example.com", {}],
      ["content", "my_content_rule", { pattern: "my_pattern" }],
      ["override", "my_override_rule", { conditions: [{ kind: "event_match", key: "content.msgtype", pattern: "m.notice" }] }],
      ["underride", "my_underride_rule", { conditions: [{ kind: "event_match", key: "content.msgtype", pattern: "m.notice" }] }],
      ["content", "тест", { pattern: "тест" }],
    ];
    for (const [kind, ruleId, extra] of cases) {
      const path = `${BASE}/${kind}/${enc(ruleId)}`;
      const r = await put(path, { actions: ["notify"], ...extra }, user);
      expect(r.status).toBe(200);
      check("PUT", path, 200, r.body);
      const one = await get(path, user);
      expect(one.status).toBe(200);
      check("GET", path, 200, one.body);
      expect(one.body).toEqual({ rule_id: ruleId, default: false, enabled: true, actions: ["notify"], ...extra });
      expect((await get(`${BASE}/${kind}/`, user)).body).toContainEqual(one.body);
      expect((await get(`${BASE}/`, user)).body[kind]).toContainEqual(one.body);
      expect((await get(`${V3}/pushrules/`, user)).body.global[kind]).toContainEqual(one.body);
      const enabled = await get(`${path}/enabled`, user);
      expect(enabled.body).toEqual({ enabled: true });
      check("GET", `${path}/enabled`, 200, enabled.body);
      const actions = await get(`${path}/actions`, user);
      expect(actions.body).toEqual({ actions: ["notify"] });
      check("GET", `${path}/actions`, 200, actions.body);
    }
    const whole = await get(`${V3}/pushrules/`, user);
    check("GET", `${V3}/pushrules/`, 200, whole.body);
    // User rules come first in their kind; .m.rule.master stays above every rule.
    expect(ids(whole.body.global.override).slice(0, 3)).toEqual([".m.rule.master", "my_override_rule", ".m.rule.suppress_notices"]);
    expect(ids(whole.body.global.underride)[0]).toBe("my_underride_rule");
  });

  test("order: new rules first, before and after an existing rule, delete, disable, the same rule twice", async () => {
    const user = await freshUser();
    const room = (id: string, query = "") => put(`${BASE}/room/${enc(id)}${query}`, { actions: ["notify"] }, user);
    const rooms = async () => ids((await get(`${V3}/pushrules/`, user)).body.global.room);
    await room("#a:example.com");
    await room("#b:example.com");
    expect(await rooms()).toEqual(["#b:example.com", "#a:example.com"]);
    expect((await room("#c:example.com", `?before=${enc("#a:example.com")}`)).status).toBe(200);
    expect(await rooms()).toEqual(["#b:example.com", "#c:example.com", "#a:example.com"]);
    expect((await room("#d:example.com", `?after=${enc("#b:example.com")}`)).status).toBe(200);
    expect(await rooms()).toEqual(["#b:example.com", "#d:example.com", "#c:example.com", "#a:example.com"]);
    // With both, before wins (pushrules.yaml).
    expect((await room("#e:example.com", `?before=${enc("#b:example.com")}&after=${enc("#a:example.com")}`)).status).toBe(200);
    expect(await rooms()).toEqual(["#e:example.com", "#b:example.com", "#d:example.com", "#c:example.com", "#a:example.com"]);
    // Moving an existing rule.
    expect((await room("#a:example.com", `?before=${enc("#e:example.com")}`)).status).toBe(200);
    expect(await rooms()).toEqual(["#a:example.com", "#e:example.com", "#b:example.com", "#d:example.com", "#c:example.com"]);

    const removed = await del(`${BASE}/room/${enc("#d:example.com")}`, user);
    expect(removed.status).toBe(200);
    check("DELETE", `${BASE}/room/x`, 200, removed.body);
    expect(await rooms()).toEqual(["#a:example.com", "#e:example.com", "#b:example.com", "#c:example.com"]);
    const gone = await del(`${BASE}/room/${enc("#d:example.com")}`, user);
    expect(gone.status).toBe(404);
    check("DELETE", `${BASE}/room/x`, 404, gone.body);

    const off = await put(`${BASE}/room/${enc("#a:example.com")}/enabled`, { enabled: false }, user);
    expect(off.status).toBe(200);
    check("PUT", `${BASE}/room/x/enabled`, 200, off.body);
    expect((await get(`${BASE}/room/${enc("#a:example.com")}`, user)).body.enabled).toBe(false);
    // Replacing the rule keeps its place and its enabled flag.
    await put(`${BASE}/room/${enc("#a:example.com")}`, { actions: [] }, user);
    expect((await get(`${BASE}/room/${enc("#a:example.com")}`, user)).body).toEqual({ rule_id: "#a:example.com", default: false, enabled: false, actions: [] });
    expect((await rooms())[0]).toBe("#a:example.com");

    for (let i = 0; i < 2; i++) expect((await put(`${BASE}/sender/${enc("@bob:example.com")}`, { actions: ["notify"] }, user)).status).toBe(200);
    expect(ids((await get(`${V3}/pushrules/`, user)).body.global.sender)).toEqual(["@bob:example.com"]);
  });

  test("before/after must name a user-defined rule of the same kind (400 M_UNKNOWN), never a server-default one", async () => {
    const user = await freshUser();
    await put(`${BASE}/override/mine`, { actions: [] }, user);
    const cases = ["?before=missing", "?after=missing", "?after=.m.rule.master", "?before=.m.rule.suppress_notices", "?before=mine-elsewhere", "?before=x"];
    await put(`${BASE}/underride/mine-elsewhere`, { actions: [] }, user);
    for (const query of cases) {
      const r = await put(`${BASE}/override/x${query}`, { actions: [] }, user);
      expect({ query, status: r.status, errcode: r.body.errcode }).toEqual({ query, status: 400, errcode: "M_UNKNOWN" });
      check("PUT", `${BASE}/override/x`, 400, r.body);
    }
    expect((await get(`${BASE}/override/x`, user)).status).toBe(404);
  });

  test("every default rule's actions can be changed and read back (sytest 05_set_actions); unknown rules are 404", async () => {
    const user = await freshUser();
    const global = (await get(`${V3}/pushrules/`, user)).body.global as Record<string, { rule_id: string }[]>;
    for (const [kind, rules] of Object.entries(global)) {
      for (const rule of rules) {
        const path = `${BASE}/${kind}/${rule.rule_id}/actions`;
        const r = await put(path, { actions: ["dont_notify"] }, user);
        expect({ path, status: r.status }).toEqual({ path, status: 200 });
        check("PUT", path, 200, r.body);
        expect((await get(path, user)).body).toEqual({ actions: ["dont_notify"] });
      }
    }
    await put(`${BASE}/sender/${enc("@bob:example.com")}`, { actions: ["notify"] }, user);
    await put(`${BASE}/sender/${enc("@bob:example.com")}/actions`, { actions: ["dont_notify"] }, user);
    expect((await get(`${BASE}/sender/${enc("@bob:example.com")}/actions`, user)).body).toEqual({ actions: ["dont_notify"] });
    for (const path of [`${BASE}/override/.not.a.default.rule/actions`, `${BASE}/sender/${enc("@carol:example.com")}/actions`]) {
      const r = await put(path, { actions: ["notify"] }, user);
      expect(r.status).toBe(404);
      check("PUT", path, 404, r.body);
    }
  });

  test("every default rule can be enabled and disabled (sytest 07_set_enabled); unknown rules are 404", async () => {
    const user = await freshUser();
    const global = (await get(`${V3}/pushrules/`, user)).body.global as Record<string, { rule_id: string }[]>;
    for (const [kind, rules] of Object.entries(global)) {
      for (const rule of rules) {
        const path = `${BASE}/${kind}/${rule.rule_id}/enabled`;
        for (const enabled of [true, false, true]) {
          expect((await put(path, { enabled }, user)).status).toBe(200);
          expect((await get(path, user)).body).toEqual({ enabled });
        }
      }
    }
    const r = await put(`${BASE}/override/.not.a.default.rule/enabled`, { enabled: true }, user);
    expect(r.status).toBe(404);
    check("PUT", `${BASE}/override/x/enabled`, 404, r.body);
  });

  test("changing a default rule, per user", async () => {
    const path = `${BASE}/override/.m.rule.suppress_notices`;
    expect((await put(`${path}/enabled`, { enabled: false })).status).toBe(200);
    expect((await get(`${path}/enabled`)).body).toEqual({ enabled: false });
    expect((await put(`${BASE}/override/.m.rule.master/enabled`, { enabled: true })).status).toBe(200);
    const whole = (await get(`${V3}/pushrules/`)).body.global;
    expect(whole.override[0]).toMatchObject({ rule_id: ".m.rule.master", enabled: true, default: true });
    // Bob's rules are his own.
    expect((await get(`${path}/enabled`, bob)).body).toEqual({ enabled: true });
  });

  test("changes are written to the m.push_rules account data for /sync", async () => {
    const accountData = resolve(server.container, Tokens.AccountData);
    const before = await accountData.maxStream();
    await put(`${BASE}/override/.m.rule.reaction/enabled`, { enabled: false }, bob);
    expect(await accountData.maxStream()).toBe(before + 1);
    const content = (await accountData.read(bob.userId, undefined, "m.push_rules")) as { global: { override: { rule_id: string; enabled: boolean }[] } };
    expect(content.global.override.find((r) => r.rule_id === ".m.rule.reaction")?.enabled).toBe(false);
    const viaApi = await get(`${V3}/user/${enc(bob.userId)}/account_data/m.push_rules`, bob);
    expect(viaApi.body).toEqual(content);
    expect(await resolve(server.container, Tokens.PushRules).accountDataContent(bob.userId)).toEqual(content as never);
  });

  test("changes made at the same time are all kept, and the account data ends with all of them", async () => {
    const carol = await registerUser(server, "carol");
    const names = Array.from({ length: 8 }, (_, i) => `together${i}`);
    const answers = await Promise.all(names.map((name) => put(`${BASE}/content/${name}`, { pattern: name, actions: ["notify"] }, carol)));
    expect(answers.map((r) => r.status)).toEqual(names.map(() => 200));
    const stored = (await get(`${BASE}/`, carol)).body;
    expect(ids(stored.content).filter((id) => id.startsWith("together")).sort()).toEqual([...names].sort());
    const accountData = await resolve(server.container, Tokens.AccountData).read(carol.userId, undefined, "m.push_rules");
    expect(accountData).toEqual({ global: stored });
  });

  test("errors: unknown rules 404, reserved and invalid ids, bad kinds, bad bodies", async () => {
    const cases: [string, string, unknown, number, string][] = [
      ["GET", `${BASE}/override/nope`, undefined, 404, "M_NOT_FOUND"],
      ["GET", `${BASE}/override/nope/enabled`, undefined, 404, "M_NOT_FOUND"],
      ["GET", `${BASE}/override/nope/actions`, undefined, 404, "M_NOT_FOUND"],
      ["PUT", `${BASE}/override/nope/enabled`, { enabled: true }, 404, "M_NOT_FOUND"],
      ["PUT", `${BASE}/override/nope/actions`, { actions: [] }, 404, "M_NOT_FOUND"],
      ["DELETE", `${BASE}/override/nope`, undefined, 404, "M_NOT_FOUND"],
      ["DELETE", `${BASE}/override/.m.rule.master`, undefined, 404, "M_NOT_FOUND"],
      ["DELETE", `${BASE}/override/.m.rule.master/enabled`, undefined, 400, "M_UNRECOGNIZED"],
      ["DELETE", `${BASE}/`, undefined, 400, "M_UNRECOGNIZED"],
      ["PUT", `${BASE}/underride/.m.rule.suppress_notices/enabled`, { enabled: true }, 404, "M_NOT_FOUND"],
      ["PUT", `${BASE}/override/.mine`, { actions: [] }, 400, "M_INVALID_PARAM"],
      ["PUT", `${BASE}/override/a%5Cb`, { actions: [] }, 400, "M_INVALID_PARAM"],
      ["PUT", `${BASE}/nonsense/x`, { actions: [] }, 400, "M_INVALID_PARAM"],
      ["GET", `${BASE}/nonsense/x`, undefined, 400, "M_INVALID_PARAM"],
      ["PUT", `${BASE}/content/nopattern`, { actions: [] }, 400, "M_MISSING_PARAM"],
      ["PUT", `${BASE}/override/noactions`, {}, 400, "M_MISSING_PARAM"],
      ["PUT", `${BASE}/override/badaction`, { actions: ["explode"] }, 400, "M_BAD_JSON"],
      ["PUT", `${BASE}/override/badtweak`, { actions: [{ value: 1 }] }, 400, "M_BAD_JSON"],
      ["PUT", `${BASE}/override/badcond`, { actions: [], conditions: [{ key: "type" }] }, 400, "M_BAD_JSON"],
      ["PUT", `${BASE}/override/badvalue`, { actions: [], conditions: [{ kind: "event_property_is", key: "a", value: { x: 1 } }] }, 400, "M_BAD_JSON"],
      ["PUT", `${BASE}/override/.m.rule.master/enabled`, { enabled: "yes" }, 400, "M_BAD_JSON"],
      ["PUT", `${BASE}/override/.m.rule.master/actions`, { actions: "notify" }, 400, "M_BAD_JSON"],
    ];
    for (const [method, path, body, status, errcode] of cases) {
      const r = await request(server, method, path, body, bearer(alice.token));
      expect({ method, path, status: r.status, errcode: r.body.errcode }).toEqual({ method, path, status, errcode });
    }
    // An unknown condition kind is stored: it never matches (modules/push.md "Conditions").
    expect((await put(`${BASE}/override/future`, { actions: ["notify"], conditions: [{ kind: "org.example.future", anything: [1] }] })).status).toBe(200);
    expect((await request(server, "GET", `${V3}/pushrules/`)).status).toBe(401);
    expect((await request(server, "PUT", `${BASE}/override/x`, { actions: [] })).status).toBe(401);
  });
});
