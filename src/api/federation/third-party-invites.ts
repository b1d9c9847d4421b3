// Third-party invites over federation (server-server-api "Third-party invites"):
// PUT /_matrix/federation/v1/3pid/onbind, from an identity server that bound a 3PID to one of our
// users (unauthenticated: the proof is each invite's signed block, checked against the room's
// m.room.third_party_invite), also under POST, which Synapse serves and identity servers (Sydent,
// sytest's) send; and PUT /v1/exchange_third_party_invite/{roomId}, from the invitee's server when
// this server is the room's resident (X-Matrix).
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import { isJsonObject } from "../../protocol/json";
import type { ThirdPartyInviteService } from "../../services/rooms/third-party-invites";
import type { FederationAuthenticator } from "../middleware/x-matrix";
import { roomIdParam } from "../room-id-param";

export interface ThirdPartyInviteFederationDeps {
  authenticate: FederationAuthenticator;
  thirdPartyInvites: ThirdPartyInviteService;
}

const V1 = "/_matrix/federation/v1";

export function thirdPartyInviteFederationRoutes({ authenticate, thirdPartyInvites }: ThirdPartyInviteFederationDeps) {
  const onBind = async (body: unknown) => {
    if (!isJsonObject(body)) throw new MatrixError("M_NOT_JSON", "The body must be a JSON object");
    await thirdPartyInvites.onBind(body);
    return {};
  };
  return new Elysia({ name: "federation-third-party-invites" })
    .put(`${V1}/3pid/onbind`, ({ body }) => onBind(body))
    .post(`${V1}/3pid/onbind`, ({ body }) => onBind(body))
    .put(`${V1}/exchange_third_party_invite/:roomId`, async ({ request, params, body }) => {
      await authenticate(request, body);
      if (!isJsonObject(body)) throw new MatrixError("M_NOT_JSON", "The body must be a JSON object");
      await thirdPartyInvites.onExchange(roomIdParam(params.roomId), body);
      return {};
    });
}
