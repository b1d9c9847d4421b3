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
      app.get(path, ({ request }) => ({ global: pushRules.ruleset(requireUser(accounts, request).userId) }));
    }
    for (const path of [`${prefix}/pushrules/global`, `${prefix}/pushrules/global/`]) {
      app.get(path, ({ request }) => pushRules.ruleset(requireUser(accounts, request).userId));
    }

    const rule = `${prefix}/pushrules/global/:kind/:ruleId` as const;
    app.get(rule, ({ params, request }) => pushRules.rule(requireUser(accounts, request).userId, parsePushRuleKind(params.kind), params.ruleId));
    app.put(rule, ({ params, request, body, query }) => {
      const me = requireUser(accounts, request);
      const kind = parsePushRuleKind(params.kind);
      const input = validateBody(PutRuleBody, body);
      pushRules.putRule(me.userId, kind, params.ruleId, input, { before: query.before, after: query.after });
      return {};
    });
    app.delete(rule, ({ params, request }) => {
      pushRules.deleteRule(requireUser(accounts, request).userId, parsePushRuleKind(params.kind), params.ruleId);
      return {};
    });

    app.get(`${rule}/enabled`, ({ params, request }) => ({
      enabled: pushRules.rule(requireUser(accounts, request).userId, parsePushRuleKind(params.kind), params.ruleId).enabled,
    }));
    app.put(`${rule}/enabled`, ({ params, request, body }) => {
      const me = requireUser(accounts, request);
      const kind = parsePushRuleKind(params.kind);
      pushRules.setEnabled(me.userId, kind, params.ruleId, validateBody(EnabledBody, body).enabled);
      return {};
    });

    app.get(`${rule}/actions`, ({ params, request }) => ({
      actions: pushRules.rule(requireUser(accounts, request).userId, parsePushRuleKind(params.kind), params.ruleId).actions,
    }));
    app.put(`${rule}/actions`, ({ params, request, body }) => {
      const me = requireUser(accounts, request);
      const kind = parsePushRuleKind(params.kind);
      pushRules.setActions(me.userId, kind, params.ruleId, validateBody(ActionsBody, body).actions);
      return {};
    });
  }
  return app;
}
