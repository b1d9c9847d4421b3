// Pushers (client-server-api "Push Notifications: Client behaviour", pusher.yaml): GET /pushers and
// POST /pushers/set.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { AccountService } from "../../services/accounts/account-service";
import type { PusherService } from "../../services/push/pusher-service";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { clientPaths } from "./paths";

const SetPusherBody = Type.Object({
  pushkey: Type.String(),
  kind: Type.Union([Type.String(), Type.Null()]),
  app_id: Type.String(),
  app_display_name: Type.Optional(Type.String()),
  device_display_name: Type.Optional(Type.String()),
  profile_tag: Type.Optional(Type.String()),
  lang: Type.Optional(Type.String()),
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  append: Type.Optional(Type.Boolean()),
});

export function pusherRoutes({ accounts, pushers }: { accounts: AccountService; pushers: PusherService }) {
  const app = new Elysia({ name: "client-pushers" });
  for (const path of clientPaths("/pushers")) {
    app.get(path, async ({ request }) => {
      const me = await requireUser(accounts, request);
      return { pushers: await pushers.pushers(me.userId) };
    });
  }
  for (const path of clientPaths("/pushers/set")) {
    app.post(path, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      await pushers.setPusher(me.userId, me, validateBody(SetPusherBody, body));
      return {};
    });
  }
  return app;
}
