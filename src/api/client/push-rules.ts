// Push rules (client-server-api "Push Rules: API", pushrules.yaml): GET /pushrules/ and
// /pushrules/global/, and GET/PUT/DELETE of one rule with its enabled flag and actions under
// /pushrules/global/{kind}/{ruleId}.
//
// One route per method takes everything under /pushrules/ and reads the path itself, because the
// shape of the path is part of the API: the spec's paths end in a slash where they name a set of
// rules (/pushrules/, /pushrules/global/), and clients and sytest rely on what the other shapes do.
// Where the spec is silent this follows Synapse: /pushrules/global/{kind}/ lists the rules of a kind;
// the same paths without their trailing slash, an unknown scope or attribute, or a missing rule id
// are 400 M_UNRECOGNIZED; /pushrules without the slash is no endpoint at all (404).
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { PushRuleKind } from "../../protocol/push-rules";
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

/** What a path under /pushrules/ names. */
type RulePath =
  | { target: "all" }
  | { target: "scope" }
  | { target: "kind"; kind: PushRuleKind }
  | { target: "rule"; kind: PushRuleKind; ruleId: string; attribute?: "enabled" | "actions" };

const unrecognized = (message: string) => new MatrixError("M_UNRECOGNIZED", message, 400);

/** Reads the segments after `/pushrules/` (each percent-decoded). */
export function parseRulePath(rest: string): RulePath {
  let segments: string[];
  try {
    segments = rest.split("/").map((s) => decodeURIComponent(s));
  } catch {
    throw new MatrixError("M_INVALID_PARAM", "Malformed push rule path");
  }
  if (segments.length === 1 && segments[0] === "") return { target: "all" };
  const [scope, kind, ruleId, attribute, ...extra] = segments;
  // Only the global scope exists; the device scopes of old versions are gone.
  if (scope !== "global") throw unrecognized(`Unknown push rule scope ${JSON.stringify(scope)}`);
  if (kind === undefined) throw unrecognized("The scope needs a trailing slash: /pushrules/global/");
  if (kind === "" && ruleId === undefined) return { target: "scope" };
  if (kind === "") throw unrecognized("Missing push rule kind");
  const parsedKind = parsePushRuleKind(kind);
  if (ruleId === undefined) throw unrecognized(`The kind needs a trailing slash: /pushrules/global/${kind}/`);
  if (ruleId === "" && attribute === undefined) return { target: "kind", kind: parsedKind };
  if (ruleId === "") throw unrecognized("Missing push rule id");
  if (extra.length > 0) throw unrecognized("Unrecognized push rule path");
  if (attribute === undefined || attribute === "") return { target: "rule", kind: parsedKind, ruleId };
  if (attribute !== "enabled" && attribute !== "actions") throw unrecognized(`Unknown push rule attribute ${JSON.stringify(attribute)}`);
  return { target: "rule", kind: parsedKind, ruleId, attribute };
}

/** The single rule (and attribute) a PUT or DELETE names; sets of rules cannot be written. */
function singleRule(path: RulePath): Extract<RulePath, { target: "rule" }> {
  if (path.target !== "rule") throw unrecognized("A push rule path must name a rule: /pushrules/global/{kind}/{ruleId}");
  return path;
}

export function pushRuleRoutes({ accounts, pushRules }: { accounts: AccountService; pushRules: PushRuleService }) {
  const app = new Elysia({ name: "client-push-rules" });
  for (const prefix of CLIENT_PREFIXES) {
    const base = `${prefix}/pushrules/`;
    const pathOf = (request: Request) => parseRulePath(new URL(request.url).pathname.slice(base.length));

    app.get(`${base}*`, async ({ request }) => {
      const me = await requireUser(accounts, request);
      const path = pathOf(request);
      switch (path.target) {
        case "all":
          return { global: await pushRules.ruleset(me.userId) };
        case "scope":
          return pushRules.ruleset(me.userId);
        case "kind":
          return pushRules.rulesOfKind(me.userId, path.kind);
        case "rule": {
          const rule = await pushRules.rule(me.userId, path.kind, path.ruleId);
          if (path.attribute === "enabled") return { enabled: rule.enabled };
          if (path.attribute === "actions") return { actions: rule.actions };
          return rule;
        }
      }
    });

    app.put(`${base}*`, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const path = singleRule(pathOf(request));
      if (path.attribute === "enabled") {
        await pushRules.setEnabled(me.userId, path.kind, path.ruleId, validateBody(EnabledBody, body).enabled);
      } else if (path.attribute === "actions") {
        await pushRules.setActions(me.userId, path.kind, path.ruleId, validateBody(ActionsBody, body).actions);
      } else {
        const input = validateBody(PutRuleBody, body);
        const query = new URL(request.url).searchParams;
        await pushRules.putRule(me.userId, path.kind, path.ruleId, input, { before: query.get("before") ?? undefined, after: query.get("after") ?? undefined });
      }
      return {};
    });

    app.delete(`${base}*`, async ({ request }) => {
      const me = await requireUser(accounts, request);
      const path = singleRule(pathOf(request));
      if (path.attribute !== undefined) throw unrecognized("An attribute of a push rule cannot be deleted");
      await pushRules.deleteRule(me.userId, path.kind, path.ruleId);
      return {};
    });
  }
  return app;
}
