// Room membership (client-server-api "Room membership"): POST /join/{roomIdOrAlias},
// /rooms/{roomId}/join, /leave, /invite, /kick, /ban, /unban, /forget — under v3 and r0.
// /join/{roomIdOrAlias} resolves aliases (local ones from the room directory, others by asking
// their server); rooms this server is not in are joined over federation through `via` (and the
// legacy `server_name`), the alias's servers and the room's own server.
import { Elysia } from "elysia";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { MembershipService } from "../../services/rooms/membership";
import type { DirectoryService } from "../../services/directory/directory-service";
import type { FederatedMembershipService } from "../../services/federation/federated-membership";
import type { ThirdPartyInviteService } from "../../services/rooms/third-party-invites";
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
/** The 3PID form of /invite (client-server-api "Third-party invites", Invite3pid). */
export const Invite3pidBody = Type.Object({
  id_server: Type.String({ minLength: 1 }),
  id_access_token: Type.String({ minLength: 1 }),
  medium: Type.String({ minLength: 1 }),
  address: Type.String({ minLength: 1 }),
});
const INVITE_3PID_KEYS = ["id_server", "id_access_token", "medium", "address"];

export interface MembershipRouteDeps {
  accounts: AccountService;
  membership: MembershipService;
  directory: DirectoryService;
  /** Joins, leaves and invites that involve rooms or users of other servers. */
  federated: FederatedMembershipService;
  /** Invites by 3PID, and joins that carry a third-party invite's signed proof. */
  thirdPartyInvites: ThirdPartyInviteService;
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

export function membershipRoutes({ accounts, membership, directory, federated, thirdPartyInvites }: MembershipRouteDeps) {
  const app = new Elysia({ name: "client-membership" });

  const join = async (request: Request, roomIdOrAlias: string, body: unknown) => {
    const me = await requireUser(accounts, request);
    const via = viaServers(request);
    const input = validateBody(JoinBody, body ?? {});
    // The proof of a third-party invite becomes the invite first (client-server-api "Third-party
    // invites"); the join itself is then the usual one.
    if (input.third_party_signed !== undefined) {
      const roomId = (await directory.resolveRoomIdOrAlias(roomIdOrAlias)).roomId;
      await thirdPartyInvites.inviteFromJoin(roomId, me.userId, input.third_party_signed);
    }
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
        // Without user_id, /invite is the 3PID form: its own body, looked up at the identity server.
        if (action === "invite" && isJsonObject(body) && !Object.hasOwn(body, "user_id") && INVITE_3PID_KEYS.some((key) => Object.hasOwn(body, key))) {
          const threepid = validateBody(Invite3pidBody, body);
          await thirdPartyInvites.invite(roomIdParam(params.roomId), me.userId, { idServer: threepid.id_server, idAccessToken: threepid.id_access_token, medium: threepid.medium, address: threepid.address });
          return {};
        }
        const input = validateBody(TargetBody, body);
        if (action === "invite") await federated.invite(roomIdParam(params.roomId), me.userId, input.user_id, input.reason);
        else await membership[action](roomIdParam(params.roomId), me.userId, input.user_id, input.reason);
        return {};
      });
    }
  }
  return app;
}
