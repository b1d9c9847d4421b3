// Account data (client-server-api "Client Config"): GET/PUT /user/{userId}/account_data/{type} and
// /user/{userId}/rooms/{roomId}/account_data/{type}; room tags ("Room Tagging"), kept as m.tag:
// GET /user/{userId}/rooms/{roomId}/tags, PUT and DELETE .../tags/{tag}.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { AccountService } from "../../services/accounts/account-service";
import type { AccountDataService } from "../../services/accounts/account-data-service";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";

const Content = Type.Record(Type.String(), Type.Unknown());

export function accountDataRoutes({ accounts, accountData }: { accounts: AccountService; accountData: AccountDataService }) {
  const app = new Elysia({ name: "client-account-data" });
  for (const prefix of CLIENT_PREFIXES) {
    const global = `${prefix}/user/:userId/account_data/:type` as const;
    app.get(global, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      return accountData.get(me.userId, params.userId, undefined, params.type);
    });
    app.put(global, async ({ params, request, body }) => {
      const me = await requireUser(accounts, request);
      await accountData.put(me.userId, params.userId, undefined, params.type, validateBody(Content, body));
      return {};
    });

    const room = `${prefix}/user/:userId/rooms/:roomId/account_data/:type` as const;
    app.get(room, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      return accountData.get(me.userId, params.userId, params.roomId, params.type);
    });
    app.put(room, async ({ params, request, body }) => {
      const me = await requireUser(accounts, request);
      await accountData.put(me.userId, params.userId, params.roomId, params.type, validateBody(Content, body));
      return {};
    });

    const tags = `${prefix}/user/:userId/rooms/:roomId/tags` as const;
    app.get(tags, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      return accountData.tags(me.userId, params.userId, params.roomId);
    });
    app.put(`${tags}/:tag`, async ({ params, request, body }) => {
      const me = await requireUser(accounts, request);
      await accountData.setTag(me.userId, params.userId, params.roomId, params.tag, validateBody(Content, body));
      return {};
    });
    app.delete(`${tags}/:tag`, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      await accountData.deleteTag(me.userId, params.userId, params.roomId, params.tag);
      return {};
    });
  }
  return app;
}
