// Room membership (client-server-api "Room membership"): POST /join/{roomIdOrAlias},
// /rooms/{roomId}/join, /leave, /invite, /kick, /ban, /unban, /forget — under v3 and r0.
// /join/{roomIdOrAlias} resolves aliases (local ones from the room directory, others by asking
// their server); rooms this server is not in are joined over federation through `via` (and the
// legacy `server_name`), the alias's servers and the room's own server.
import { Elysia } from "elysia";
import type { JsonObject } from "../../protocol/json";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { MembershipService } from "../../services/rooms/membership";
import type { DirectoryService } from "../../services/directory/directory-service";
import type { FederatedMembershipService } from "../../services/federation/federated-membership";
import { isValidServerName } from "../../protocol/identifiers";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";
import { roomIdParam } from "../room-id-param";

const ReasonBody = Type.Object({ reason: Type.Optional(Type.String()) });
const JoinBody = Type.Object({
  reason: Type.Optional(Type.String()),
  third_party_signed: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
const TargetBody = Type.Object({ user_id: Type.String(), reason: Type.Optional(Type.String()) });

export interface MembershipRouteDeps {
  accounts: AccountService;
  membership: MembershipService;
  directory: DirectoryService;
  /** Joins, leaves and invites that involve rooms or users of other servers. */
  federated: FederatedMembershipService;
}

/** The servers named by repeated `via` (and legacy `server_name`) query parameters; 400 for a malformed one. */
function viaServers(request: Request): string[] {
  const params = new URL(request.url).searchParams;
  const servers = [...params.getAll("via"), ...params.getAll("server_name")];
  for (const server of servers) {
    if (!isValidServerName(server)) throw new MatrixError("M_INVALID_PARAM", `Invalid server name in via: ${server}`);
  }
  return servers;
}

export function membershipRoutes({ accounts, membership, federated }: MembershipRouteDeps) {
  const app = new Elysia({ name: "client-membership" });

  const join = async (request: Request, roomIdOrAlias: string, body: unknown) => {
    const me = await requireUser(accounts, request);
    const via = viaServers(request);
    const input = validateBody(JoinBody, body ?? {});
    if (input.third_party_signed !== undefined) throw new MatrixError("M_FORBIDDEN", "Third-party invites are not supported by this server");
    // Other keys of the body go into the member event's content, as Synapse does (sytest "can join a
    // room with custom content"); the keys the server sets itself are not the client's to choose.
    const { reason: _reason, third_party_signed: _signed, ...custom } = (body ?? {}) as JsonObject;
    for (const key of ["membership", "join_authorised_via_users_server", "displayname", "avatar_url"]) delete custom[key];
    return { room_id: (await federated.join(roomIdOrAlias, me.userId, input.reason, via, custom)).roomId };
  };

  for (const prefix of CLIENT_PREFIXES) {
    app.post(`${prefix}/join/:roomIdOrAlias`, ({ request, params, body }) => join(request, params.roomIdOrAlias, body));
  }

  for (const prefix of CLIENT_PREFIXES) {
    const base = `${prefix}/rooms/:roomId` as const;
    app.post(`${base}/join`, ({ request, params, body }) => join(request, roomIdParam(params.roomId), body));

    app.post(`${base}/leave`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      await federated.leave(roomIdParam(params.roomId), me.userId, validateBody(ReasonBody, body ?? {}).reason);
      return {};
    });

    app.post(`${base}/forget`, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      await membership.forget(roomIdParam(params.roomId), me.userId);
      return {};
    });

    for (const action of ["invite", "kick", "ban", "unban"] as const) {
      app.post(`${base}/${action}`, async ({ request, params, body }) => {
        const me = await requireUser(accounts, request);
        const input = validateBody(TargetBody, body);
        if (action === "invite") await federated.invite(roomIdParam(params.roomId), me.userId, input.user_id, input.reason);
        else await membership[action](roomIdParam(params.roomId), me.userId, input.user_id, input.reason);
        return {};
      });
    }
  }
  return app;
}
