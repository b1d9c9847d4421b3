// GET /admin/whois/{userId} (client-server-api "Server Administration", admin.yaml): the devices of
// a user and the connections seen from each. The spec lets a server restrict it to the user looked
// up and server admins, and Portier does (as Synapse). Only local users can be looked up: a remote
// user's connections are not seen here (Synapse answers 400 too).
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import { parseUserId } from "../../protocol/identifiers";
import type { AccountService } from "../../services/accounts/account-service";
import type { ClientConnections } from "../../services/accounts/client-connections";
import { requireUser } from "../middleware/auth";
import { CLIENT_PREFIXES } from "./paths";

export interface WhoisRouteDeps {
  accounts: AccountService;
  connections: Pick<ClientConnections, "whois">;
  serverName: string;
}

export function whoisRoutes({ accounts, connections, serverName }: WhoisRouteDeps) {
  const app = new Elysia({ name: "client-admin-whois" });
  for (const prefix of CLIENT_PREFIXES) {
    app.get(`${prefix}/admin/whois/:userId`, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      const userId = params.userId;
      if (userId !== me.userId && !(await accounts.isAdmin(me.userId))) throw new MatrixError("M_FORBIDDEN", "You are not a server admin", 403);
      const parsed = parseUserId(userId);
      if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID: ${userId}`, 400);
      if (parsed.value.serverName !== serverName) throw new MatrixError("M_INVALID_PARAM", "Can only look up local users", 400);
      return connections.whois(userId);
    });
  }
  return app;
}
