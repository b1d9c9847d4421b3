// Room membership (client-server-api "Room membership"): POST /join/{roomIdOrAlias},
// /rooms/{roomId}/join, /leave, /invite, /kick, /ban, /unban, /forget — under v3 and r0.
// /join/{roomIdOrAlias} resolves local aliases through the room directory; `via` and the legacy
// `server_name` are checked and otherwise unused: rooms on other servers need federation.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { MembershipService } from "../../services/rooms/membership";
import type { DirectoryService } from "../../services/directory/directory-service";
import { isValidServerName } from "../../protocol/identifiers";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";

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
}

function roomIdParam(roomId: string): string {
  if (!roomId.startsWith("!")) throw new MatrixError("M_INVALID_PARAM", `Invalid room ID: ${roomId}`);
  return roomId;
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

export function membershipRoutes({ accounts, membership, directory }: MembershipRouteDeps) {
  const app = new Elysia({ name: "client-membership" });

  const join = async (request: Request, roomId: string, body: unknown) => {
    const me = await requireUser(accounts, request);
    const input = validateBody(JoinBody, body ?? {});
    if (input.third_party_signed !== undefined) throw new MatrixError("M_FORBIDDEN", "Third-party invites are not supported by this server");
    return { room_id: (await membership.join(roomId, me.userId, input.reason)).roomId };
  };

  for (const prefix of CLIENT_PREFIXES) {
    const path = `${prefix}/join/:roomIdOrAlias` as const;
    app.post(path, async ({ request, params, body }) => {
      await requireUser(accounts, request);
      viaServers(request);
      const { roomId } = await directory.resolveRoomIdOrAlias(params.roomIdOrAlias);
      return join(request, roomId, body);
    });
  }

  for (const prefix of CLIENT_PREFIXES) {
    const base = `${prefix}/rooms/:roomId` as const;
    app.post(`${base}/join`, ({ request, params, body }) => join(request, roomIdParam(params.roomId), body));

    app.post(`${base}/leave`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      await membership.leave(roomIdParam(params.roomId), me.userId, validateBody(ReasonBody, body ?? {}).reason);
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
        await membership[action](roomIdParam(params.roomId), me.userId, input.user_id, input.reason);
        return {};
      });
    }
  }
  return app;
}
