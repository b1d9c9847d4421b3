// Knocking (client-server-api "Knocking on rooms", knocking.yaml): POST /knock/{roomIdOrAlias}
// under v3 and r0, and MSC2403's room-id form POST /rooms/{roomId}/knock. `via` names the servers
// to knock through; the legacy `server_name` is used only when no `via` is given. Rooms this server
// is in are knocked on directly; others over federation (make_knock/send_knock) through those servers.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import { isValidServerName } from "../../protocol/identifiers";
import type { AccountService } from "../../services/accounts/account-service";
import type { FederatedMembershipService } from "../../services/federation/federated-membership";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";

const KnockBody = Type.Object({ reason: Type.Optional(Type.String()) });

export interface KnockRouteDeps {
  accounts: AccountService;
  federated: FederatedMembershipService;
}

/** The servers to knock through: every `via`, or else the legacy `server_name` values. */
export function knockServers(request: Request): string[] {
  const params = new URL(request.url).searchParams;
  const via = params.getAll("via");
  const servers = via.length > 0 ? via : params.getAll("server_name");
  for (const server of servers) {
    if (!isValidServerName(server)) throw new MatrixError("M_INVALID_PARAM", `Invalid server name: ${server}`);
  }
  return servers;
}

export function knockRoutes({ accounts, federated }: KnockRouteDeps) {
  const app = new Elysia({ name: "client-knock" });
  const knock = async (request: Request, roomIdOrAlias: string, body: unknown) => {
    const me = await requireUser(accounts, request);
    const input = validateBody(KnockBody, body);
    const via = knockServers(request);
    return { room_id: (await federated.knock(roomIdOrAlias, me.userId, input.reason, via)).roomId };
  };
  for (const prefix of CLIENT_PREFIXES) {
    app.post(`${prefix}/knock/:roomIdOrAlias`, ({ request, params, body }) => knock(request, params.roomIdOrAlias, body));
    app.post(`${prefix}/rooms/:roomId/knock`, ({ request, params, body }) => {
      if (!params.roomId.startsWith("!")) throw new MatrixError("M_INVALID_PARAM", `Invalid room ID: ${params.roomId}`);
      return knock(request, params.roomId, body);
    });
  }
  return app;
}
