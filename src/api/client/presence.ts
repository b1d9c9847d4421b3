// GET and PUT /presence/{userId}/status (client-server-api "Presence"). Anyone may read the presence
// of a user they share a room with (or their own); only the user sets theirs. Synapse answers 403
// for users who share no room with the reader; so does Portier.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import { isValidUserId, serverNameOf } from "../../protocol/identifiers";
import type { AccountService } from "../../services/accounts/account-service";
import type { PresenceService } from "../../services/presence/presence-service";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";

const PresenceBody = Type.Object({
  presence: Type.Union([Type.Literal("online"), Type.Literal("unavailable"), Type.Literal("offline")]),
  status_msg: Type.Optional(Type.Union([Type.String({ maxLength: 4096 }), Type.Null()])),
});

export interface PresenceRouteDeps {
  accounts: AccountService;
  presence: PresenceService;
  serverName: string;
  /** Whether the two users share a joined room. */
  shareRoom(a: string, b: string): Promise<boolean>;
}

export function presenceRoutes({ accounts, presence, serverName, shareRoom }: PresenceRouteDeps) {
  const app = new Elysia({ name: "client-presence" });
  for (const prefix of CLIENT_PREFIXES) {
    const path = `${prefix}/presence/:userId/status` as const;
    app.get(path, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      const userId = params.userId;
      if (!isValidUserId(userId)) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID: ${userId}`);
      if (serverNameOf(userId) === serverName && !(await accounts.userExists(userId))) throw new MatrixError("M_NOT_FOUND", `Unknown user ${userId}`);
      if (userId !== me.userId && !(await shareRoom(me.userId, userId))) throw new MatrixError("M_FORBIDDEN", "You are not allowed to see their presence");
      return presence.status(userId);
    });
    app.put(path, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      if (params.userId !== me.userId) throw new MatrixError("M_FORBIDDEN", "You can only set your own presence");
      const input = validateBody(PresenceBody, body);
      presence.set(me.userId, input.presence, input.status_msg);
      return {};
    });
  }
  return app;
}
