// OpenID: POST /user/{userId}/openid/request_token (client-server-api) and the third party's side,
// GET /_matrix/federation/v1/openid/userinfo (server-server-api; the token in the query is its only
// authentication, no X-Matrix).
import { Elysia } from "elysia";
import type { AccountService } from "../../services/accounts/account-service";
import type { OpenIdTokens } from "../../services/accounts/openid-tokens";
import { requireUser } from "../middleware/auth";
import { CLIENT_PREFIXES } from "./paths";

export function openIdRoutes({ accounts, openid }: { accounts: AccountService; openid: OpenIdTokens }) {
  const app = new Elysia({ name: "openid" });
  for (const prefix of CLIENT_PREFIXES) {
    app.post(`${prefix}/user/:userId/openid/request_token`, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      return openid.issue(me.userId, params.userId);
    });
  }
  app.get("/_matrix/federation/v1/openid/userinfo", ({ query }) => openid.userInfo(query.access_token || undefined));
  return app;
}
