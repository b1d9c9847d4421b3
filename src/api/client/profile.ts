// Profiles (client-server-api "Profiles"): GET /profile/{userId}, and GET/PUT/DELETE of one field at
// /profile/{userId}/{keyName} (displayname, avatar_url, m.tz or a custom namespaced key).
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { ProfileService } from "../../services/accounts/profile-service";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";

const FieldBody = Type.Record(Type.String(), Type.Unknown());

export function profileRoutes({ accounts, profiles }: { accounts: AccountService; profiles: ProfileService }) {
  const app = new Elysia({ name: "client-profile" });
  for (const prefix of CLIENT_PREFIXES) {
    const path = `${prefix}/profile/:userId` as const;
    app.get(path, ({ params }) => profiles.profile(params.userId));

    app.get(`${path}/:keyName`, async ({ params }) => ({ [params.keyName]: await profiles.field(params.userId, params.keyName) }));

    app.put(`${path}/:keyName`, async ({ params, request, body }) => {
      const me = await requireUser(accounts, request);
      profiles.checkKeyName(params.keyName);
      const input = validateBody(FieldBody, body);
      if (!Object.hasOwn(input, params.keyName)) throw new MatrixError("M_MISSING_PARAM", `Missing parameter: ${params.keyName}`);
      await profiles.setField(me.userId, params.userId, params.keyName, input[params.keyName]);
      return {};
    });

    app.delete(`${path}/:keyName`, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      await profiles.deleteField(me.userId, params.userId, params.keyName);
      return {};
    });
  }
  return app;
}
