// The membership handshakes and invites, resident side (server-server-api "Joining Rooms",
// "Knocking upon a room", "Leaving Rooms", "Inviting to a room"), and PUT /send/{txnId}:
// GET /v1/make_{join,leave,knock}/{roomId}/{userId}, PUT /v1 and /v2 send_{join,leave},
// PUT /v1/send_knock, PUT /v1 and /v2 invite. v1 answers are [200, body], as the spec keeps them.
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import { isJsonObject } from "../../protocol/json";
import type { ResidentMembershipService, MembershipKind } from "../../services/federation/membership-handshake";
import { strippedStateEvent } from "../../services/rooms/client-events";
import type { TransactionReceiver } from "../../services/federation/transaction-receiver";
import type { FederationAuthenticator } from "../middleware/x-matrix";

export interface FederationMembershipDeps {
  authenticate: FederationAuthenticator;
  resident: ResidentMembershipService;
  transactions: TransactionReceiver;
  serverName: string;
}

const FED = "/_matrix/federation";

export function federationMembershipRoutes({ authenticate, resident, transactions, serverName }: FederationMembershipDeps) {
  const app = new Elysia({ name: "federation-membership" });

  for (const kind of ["join", "leave", "knock"] as const) {
    app.get(`${FED}/v1/make_${kind}/:roomId/:userId`, async ({ request, params }) => {
      const origin = await authenticate(request, undefined);
      const versions = new URL(request.url).searchParams.getAll("ver");
      return resident.makeMembership(kind, origin, params.roomId, params.userId, versions);
    });
  }

  const sendMembership = async (kind: MembershipKind, request: Request, roomId: string, eventId: string, body: unknown) => {
    const origin = await authenticate(request, body);
    const done = await resident.sendMembership(kind, origin, roomId, eventId, body);
    if (kind === "knock") {
      const state = await resident.knockRoomState(roomId);
      // Full PDUs (spec v1.16+), and the stripped form older servers read.
      return { knock_room_state: state, knock_state_events: state.map(strippedStateEvent).filter((e) => e !== undefined) };
    }
    if (kind === "leave") return {};
    const answer = await resident.joinAnswer(origin, roomId, eventId);
    return {
      origin: serverName,
      auth_chain: answer.authChain,
      state: answer.state,
      members_omitted: false,
      servers_in_room: answer.serversInRoom,
      ...(done.signedByUs ? { event: done.stored } : {}),
    };
  };

  for (const kind of ["join", "leave"] as const) {
    app.put(`${FED}/v2/send_${kind}/:roomId/:eventId`, ({ request, params, body }) => sendMembership(kind, request, params.roomId, params.eventId, body));
    app.put(`${FED}/v1/send_${kind}/:roomId/:eventId`, async ({ request, params, body }) => [200, await sendMembership(kind, request, params.roomId, params.eventId, body)]);
  }
  app.put(`${FED}/v1/send_knock/:roomId/:eventId`, ({ request, params, body }) => sendMembership("knock", request, params.roomId, params.eventId, body));

  app.put(`${FED}/v2/invite/:roomId/:eventId`, async ({ request, params, body }) => {
    const origin = await authenticate(request, body);
    if (!isJsonObject(body)) throw new MatrixError("M_NOT_JSON", "The body must be a JSON object");
    if (typeof body.room_version !== "string") throw new MatrixError("M_MISSING_PARAM", "room_version is required");
    if (!isJsonObject(body.event)) throw new MatrixError("M_MISSING_PARAM", "event is required");
    const event = await resident.receiveInvite(origin, params.roomId, params.eventId, { roomVersion: body.room_version, event: body.event, inviteRoomState: body.invite_room_state });
    return { event };
  });
  app.put(`${FED}/v1/invite/:roomId/:eventId`, async ({ request, params, body }) => {
    const origin = await authenticate(request, body);
    if (!isJsonObject(body)) throw new MatrixError("M_NOT_JSON", "The body must be the invite event");
    // v1 carries no room version: only rooms of versions 1 and 2 may use it (spec).
    const unsigned = isJsonObject(body.unsigned) ? body.unsigned : {};
    const event = await resident.receiveInvite(origin, params.roomId, params.eventId, { roomVersion: "1", event: body, inviteRoomState: unsigned.invite_room_state });
    return [200, { event }];
  });

  app.put(`${FED}/v1/send/:txnId`, async ({ request, params, body }) => {
    const origin = await authenticate(request, body);
    if (isJsonObject(body) && typeof body.origin === "string" && body.origin !== origin) {
      throw new MatrixError("M_FORBIDDEN", `The transaction says it is from ${body.origin}, but ${origin} signed the request`);
    }
    return transactions.receive(origin, params.txnId, body);
  });
  return app;
}
