// Push rules (client-server-api "Push Rules: API"): GET /pushrules/ and /pushrules/global/, and
// GET/PUT/DELETE of one rule with its enabled flag and actions under /pushrules/global/{kind}/{ruleId}.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { AccountService } from "../../services/accounts/account-service";
import { parsePushRuleKind, type PushRuleService } from "../../services/accounts/push-rule-service";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";

const Actions = Type.Array(Type.Union([Type.String(), Type.Record(Type.String(), Type.Unknown())]));
const PutRuleBody = Type.Object({
  actions: Actions,
  conditions: Type.Optional(Type.Array(Type.Record(Type.String(), Type.Unknown()))),
  pattern: Type.Optional(Type.String()),
});
const EnabledBody = Type.Object({ enabled: Type.Boolean() });
const ActionsBody = Type.Object({ actions: Actions });

export function pushRuleRoutes({ accounts, pushRules }: { accounts: AccountService; pushRules: PushRuleService }) {
  const app = new Elysia({ name: "client-push-rules" });
  for (const prefix of CLIENT_PREFIXES) {
    for (const path of [`${prefix}/pushrules`, `${prefix}/pushrules/`]) {
      app.get(path, async ({ request }) => {
        const me = await requireUser(accounts, request);
        return { global: await pushRules.ruleset(me.userId) };
      });
    }
    for (const path of [`${prefix}/pushrules/global`, `${prefix}/pushrules/global/`]) {
      app.get(path, async ({ request }) => {
        const me = await requireUser(accounts, request);
        return pushRules.ruleset(me.userId);
      });
    }

    const rule = `${prefix}/pushrules/global/:kind/:ruleId` as const;
    app.get(rule, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      return pushRules.rule(me.userId, parsePushRuleKind(params.kind), params.ruleId);
    });
    app.put(rule, async ({ params, request, body, query }) => {
      const me = await requireUser(accounts, request);
      const kind = parsePushRuleKind(params.kind);
      const input = validateBody(PutRuleBody, body);
      await pushRules.putRule(me.userId, kind, params.ruleId, input, { before: query.before, after: query.after });
      return {};
    });
    app.delete(rule, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      await pushRules.deleteRule(me.userId, parsePushRuleKind(params.kind), params.ruleId);
      return {};
    });

    app.get(`${rule}/enabled`, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      return { enabled: (await pushRules.rule(me.userId, parsePushRuleKind(params.kind), params.ruleId)).enabled };
    });
    app.put(`${rule}/enabled`, async ({ params, request, body }) => {
      const me = await requireUser(accounts, request);
      const kind = parsePushRuleKind(params.kind);
      await pushRules.setEnabled(me.userId, kind, params.ruleId, validateBody(EnabledBody, body).enabled);
      return {};
    });

    app.get(`${rule}/actions`, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      return { actions: (await pushRules.rule(me.userId, parsePushRuleKind(params.kind), params.ruleId)).actions };
    });
    app.put(`${rule}/actions`, async ({ params, request, body }) => {
      const me = await requireUser(accounts, request);
      const kind = parsePushRuleKind(params.kind);
      await pushRules.setActions(me.userId, kind, params.ruleId, validateBody(ActionsBody, body).actions);
      return {};
    });
  }
  return app;
}
