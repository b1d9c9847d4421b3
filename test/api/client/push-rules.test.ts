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
const check = (method: string, path: string, status: number, body: unknown) => expectMatchesSpec({ api: "client-server", method, path, status, body });
const ids = (rules: { rule_id: string }[]) => rules.map((r) => r.rule_id);
const get = (path: string, user: TestUser = alice) => request(server, "GET", path, undefined, bearer(user.token));
const put = (path: string, body: unknown, user: TestUser = alice) => request(server, "PUT", path, body, bearer(user.token));

describe("push rules", () => {
  test("the default ruleset of v1.19, under v3 and r0, with and without the trailing slash", async () => {
    for (const path of [`${V3}/pushrules/`, `${V3}/pushrules`, "/_matrix/client/r0/pushrules/"]) {
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
    for (const path of [`${V3}/pushrules/global/`, `${V3}/pushrules/global`]) {
      const r = await get(path, bob);
      expect(r.status).toBe(200);
      check("GET", `${V3}/pushrules/global/`, 200, r.body);
      expect(ids(r.body.override)[0]).toBe(".m.rule.master");
    }
  });

  test("one rule, its enabled flag and actions; changing a default rule", async () => {
    const path = `${V3}/pushrules/global/override/.m.rule.suppress_notices`;
    const r = await get(path);
    expect(r.status).toBe(200);
    check("GET", path, 200, r.body);
    expect(r.body.rule_id).toBe(".m.rule.suppress_notices");

    const en = await put(`${path}/enabled`, { enabled: false });
    expect(en.status).toBe(200);
    check("PUT", `${path}/enabled`, 200, en.body);
    const enGet = await get(`${path}/enabled`);
    expect(enGet.body).toEqual({ enabled: false });
    check("GET", `${path}/enabled`, 200, enGet.body);

    const act = await put(`${V3}/pushrules/global/underride/.m.rule.message/actions`, { actions: ["notify", { set_tweak: "sound", value: "default" }] });
    expect(act.status).toBe(200);
    check("PUT", `${V3}/pushrules/global/underride/.m.rule.message/actions`, 200, act.body);
    const actGet = await get(`${V3}/pushrules/global/underride/.m.rule.message/actions`);
    expect(actGet.body).toEqual({ actions: ["notify", { set_tweak: "sound", value: "default" }] });
    check("GET", `${V3}/pushrules/global/underride/.m.rule.message/actions`, 200, actGet.body);
    const master = await put(`${V3}/pushrules/global/override/.m.rule.master/enabled`, { enabled: true });
    expect(master.status).toBe(200);
    const whole = (await get(`${V3}/pushrules/`)).body.global;
    expect(whole.override[0]).toMatchObject({ rule_id: ".m.rule.master", enabled: true, default: true });
    // Bob's rules are his own.
    expect((await get(path + "/enabled", bob)).body).toEqual({ enabled: true });
  });

  test("user-defined rules: create, order with before/after, update, delete; they precede default rules", async () => {
    const base = `${V3}/pushrules/global`;
    const a = await put(`${base}/content/cake`, { pattern: "cake*lie", actions: ["notify"] });
    expect(a.status).toBe(200);
    check("PUT", `${base}/content/cake`, 200, a.body);
    const cake = await get(`${base}/content/cake`);
    expect(cake.body).toEqual({ rule_id: "cake", default: false, enabled: true, pattern: "cake*lie", actions: ["notify"] });
    check("GET", `${base}/content/cake`, 200, cake.body);

    await put(`${base}/override/first`, { conditions: [{ kind: "event_match", key: "type", pattern: "m.x" }], actions: [] });
    await put(`${base}/override/newest`, { actions: ["notify"] }); // no conditions: matches everything
    await put(`${base}/override/after-first?after=first`, { actions: [] });
    await put(`${base}/override/before-first?before=first`, { actions: [] });
    const override = (await get(`${base}/`)).body.override;
    expect(ids(override).slice(0, 6)).toEqual([".m.rule.master", "newest", "before-first", "first", "after-first", ".m.rule.suppress_notices"]);

    // Updating keeps the position and the enabled flag, and changes the rest.
    await put(`${base}/override/first/enabled`, { enabled: false });
    await put(`${base}/override/first`, { conditions: [], actions: ["notify"] });
    const first = (await get(`${base}/override/first`)).body;
    expect(first).toMatchObject({ enabled: false, actions: ["notify"], conditions: [] });
    expect(ids((await get(`${base}/`)).body.override).indexOf("first")).toBe(3);

    await put(`${base}/room/${encodeURIComponent("!room:push.example")}`, { actions: ["dont_notify"] });
    await put(`${base}/sender/${encodeURIComponent(bob.userId)}`, { actions: [] });
    const whole = await get(`${V3}/pushrules/`);
    check("GET", `${V3}/pushrules/`, 200, whole.body);
    expect(ids(whole.body.global.room)).toEqual(["!room:push.example"]);
    expect(ids(whole.body.global.sender)).toEqual([bob.userId]);

    const del = await request(server, "DELETE", `${base}/content/cake`, undefined, bearer(alice.token));
    expect(del.status).toBe(200);
    check("DELETE", `${base}/content/cake`, 200, del.body);
    const gone = await get(`${base}/content/cake`);
    expect(gone.status).toBe(404);
    expect(gone.body.errcode).toBe("M_NOT_FOUND");
    check("GET", `${base}/content/cake`, 404, gone.body);
  });

  test("changes are written to the m.push_rules account data for /sync", async () => {
    const accountData = resolve(server.container, Tokens.AccountData);
    const before = await accountData.maxStream();
    await put(`${V3}/pushrules/global/override/.m.rule.reaction/enabled`, { enabled: false }, bob);
    expect(await accountData.maxStream()).toBe(before + 1);
    const content = (await accountData.read(bob.userId, undefined, "m.push_rules")) as { global: { override: { rule_id: string; enabled: boolean }[] } };
    expect(content.global.override.find((r) => r.rule_id === ".m.rule.reaction")?.enabled).toBe(false);
    const viaApi = await get(`${V3}/user/${encodeURIComponent(bob.userId)}/account_data/m.push_rules`, bob);
    expect(viaApi.body).toEqual(content);
    expect(await resolve(server.container, Tokens.PushRules).accountDataContent(bob.userId)).toEqual(content as never);
  });

  test("changes made at the same time are all kept, and the account data ends with all of them", async () => {
    const carol = await registerUser(server, "carol");
    const names = Array.from({ length: 8 }, (_, i) => `together${i}`);
    const answers = await Promise.all(names.map((name) => put(`${V3}/pushrules/global/content/${name}`, { pattern: name, actions: ["notify"] }, carol)));
    expect(answers.map((r) => r.status)).toEqual(names.map(() => 200));
    const stored = (await get(`${V3}/pushrules/global/`, carol)).body;
    expect(ids(stored.content).filter((id) => id.startsWith("together")).sort()).toEqual([...names].sort());
    const accountData = await resolve(server.container, Tokens.AccountData).read(carol.userId, undefined, "m.push_rules");
    expect(accountData).toEqual({ global: stored });
  });

  test("errors: unknown rules 404, reserved and invalid ids, bad kinds, bad bodies, before/after not found", async () => {
    const base = `${V3}/pushrules/global`;
    const cases: [string, string, unknown, number, string][] = [
      ["GET", `${base}/override/nope`, undefined, 404, "M_NOT_FOUND"],
      ["GET", `${base}/override/nope/enabled`, undefined, 404, "M_NOT_FOUND"],
      ["PUT", `${base}/override/nope/enabled`, { enabled: true }, 404, "M_NOT_FOUND"],
      ["PUT", `${base}/override/nope/actions`, { actions: [] }, 404, "M_NOT_FOUND"],
      ["DELETE", `${base}/override/nope`, undefined, 404, "M_NOT_FOUND"],
      ["DELETE", `${base}/override/.m.rule.master`, undefined, 404, "M_NOT_FOUND"],
      ["PUT", `${base}/underride/.m.rule.suppress_notices/enabled`, { enabled: true }, 404, "M_NOT_FOUND"],
      ["PUT", `${base}/override/.mine`, { actions: [] }, 400, "M_INVALID_PARAM"],
      ["PUT", `${base}/override/a%5Cb`, { actions: [] }, 400, "M_INVALID_PARAM"],
      ["PUT", `${base}/nonsense/x`, { actions: [] }, 400, "M_INVALID_PARAM"],
      ["GET", `${base}/nonsense/x`, undefined, 400, "M_INVALID_PARAM"],
      ["PUT", `${base}/content/nopattern`, { actions: [] }, 400, "M_MISSING_PARAM"],
      ["PUT", `${base}/override/noactions`, {}, 400, "M_MISSING_PARAM"],
      ["PUT", `${base}/override/badaction`, { actions: ["explode"] }, 400, "M_BAD_JSON"],
      ["PUT", `${base}/override/badtweak`, { actions: [{ value: 1 }] }, 400, "M_BAD_JSON"],
      ["PUT", `${base}/override/badcond`, { actions: [], conditions: [{ key: "type" }] }, 400, "M_BAD_JSON"],
      ["PUT", `${base}/override/x?before=missing`, { actions: [] }, 400, "M_UNKNOWN"],
      ["PUT", `${base}/override/x?after=.m.rule.master`, { actions: [] }, 400, "M_UNKNOWN"],
      ["PUT", `${base}/override/.m.rule.master/enabled`, { enabled: "yes" }, 400, "M_BAD_JSON"],
    ];
    for (const [method, path, body, status, errcode] of cases) {
      const r = await request(server, method, path, body, bearer(alice.token));
      expect({ method, path, status: r.status, errcode: r.body.errcode }).toEqual({ method, path, status, errcode });
    }
    expect((await request(server, "GET", `${V3}/pushrules/`)).status).toBe(401);
  });
});
