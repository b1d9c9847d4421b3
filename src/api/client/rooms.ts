// Rooms from the client side (client-server-api "Creating rooms", "Getting events for a room",
// "Sending events to a room", "Redactions", "Room membership" lists, "Syncing" pagination):
// POST /createRoom, GET/PUT /rooms/{roomId}/state..., PUT /send, PUT /redact, GET /event, /members,
// /joined_members, /messages, /context, and GET /joined_rooms — under v3 and r0.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { JsonObject } from "../../protocol/json";
import type { AccountService } from "../../services/accounts/account-service";
import type { RoomService } from "../../services/rooms/room-service";
import type { ThirdPartyInviteService } from "../../services/rooms/third-party-invites";
import { Invite3pidBody } from "./membership";
import { parseRoomEventFilter } from "../../services/rooms/room-event-filter";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES, clientPaths } from "./paths";
import { roomIdParam } from "../room-id-param";

const StateEventInput = Type.Object({
  type: Type.String(),
  state_key: Type.Optional(Type.String()),
  content: Type.Record(Type.String(), Type.Unknown()),
});

const CreateRoomBody = Type.Object({
  visibility: Type.Optional(Type.Union([Type.Literal("public"), Type.Literal("private")])),
  room_alias_name: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
  topic: Type.Optional(Type.String()),
  invite: Type.Optional(Type.Array(Type.String())),
  invite_3pid: Type.Optional(Type.Array(Invite3pidBody)),
  room_version: Type.Optional(Type.String()),
  creation_content: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  initial_state: Type.Optional(Type.Array(StateEventInput)),
  preset: Type.Optional(Type.Union([Type.Literal("private_chat"), Type.Literal("public_chat"), Type.Literal("trusted_private_chat")])),
  is_direct: Type.Optional(Type.Boolean()),
  power_level_content_override: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});

const RedactBody = Type.Object({ reason: Type.Optional(Type.String()) });

export interface RoomRouteDeps {
  accounts: AccountService;
  rooms: RoomService;
  /** createRoom's invite_3pid. */
  thirdPartyInvites: ThirdPartyInviteService;
}

function contentObject(body: unknown): JsonObject {
  if (body === undefined) throw new MatrixError("M_NOT_JSON", "Content not JSON.");
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new MatrixError("M_BAD_JSON", "Event content must be a JSON object");
  return body as JsonObject;
}

function integerParam(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new MatrixError("M_INVALID_PARAM", `${name} must be a non-negative integer`);
  return Number(value);
}

export function roomRoutes({ accounts, rooms, thirdPartyInvites }: RoomRouteDeps) {
  const app = new Elysia({ name: "client-rooms" });

  for (const path of clientPaths("/createRoom")) {
    app.post(path, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(CreateRoomBody, body);
      const roomId = await rooms.createRoom({
        creator: me.userId,
        roomVersion: input.room_version,
        preset: input.preset,
        visibility: input.visibility,
        roomAliasName: input.room_alias_name,
        name: input.name,
        topic: input.topic,
        invite: input.invite,
        isDirect: input.is_direct,
        initialState: input.initial_state as { type: string; state_key?: string; content: JsonObject }[] | undefined,
        powerLevelContentOverride: input.power_level_content_override as JsonObject | undefined,
        creationContent: input.creation_content as JsonObject | undefined,
      });
      // After the room's initial state, as Synapse does: each is an invite by the creator, and one
      // that fails fails the request (the room stays, as with a failing `invite`).
      for (const threepid of input.invite_3pid ?? []) {
        await thirdPartyInvites.invite(roomId, me.userId, { idServer: threepid.id_server, idAccessToken: threepid.id_access_token, medium: threepid.medium, address: threepid.address });
      }
      return { room_id: roomId };
    });
  }

  for (const path of clientPaths("/joined_rooms")) {
    app.get(path, async ({ request }) => {
      const me = await requireUser(accounts, request);
      return { joined_rooms: await rooms.joinedRooms(me.userId) };
    });
  }

  for (const prefix of CLIENT_PREFIXES) {
    const base = `${prefix}/rooms/:roomId` as const;
    app.put(`${base}/send/:eventType/:txnId`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const eventId = await rooms.send(roomIdParam(params.roomId), me, params.eventType, params.txnId, contentObject(body));
      return { event_id: eventId };
    });
    // The old form without a transaction id (sytest and early clients use it; Synapse still serves
    // it): each request is a new event, so it gets a transaction id of its own.
    app.post(`${base}/send/:eventType`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const eventId = await rooms.send(roomIdParam(params.roomId), me, params.eventType, `post-${crypto.randomUUID()}`, contentObject(body));
      return { event_id: eventId };
    });

    app.put(`${base}/redact/:eventId/:txnId`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(RedactBody, body ?? {});
      return { event_id: await rooms.redact(roomIdParam(params.roomId), me, params.eventId, params.txnId, input.reason) };
    });

    // The state key is the last path segment; without one (or with a trailing slash) it is "".
    const putState = async (request: Request, roomId: string, eventType: string, stateKey: string, body: unknown) => {
      const me = await requireUser(accounts, request);
      return { event_id: await rooms.setState(roomIdParam(roomId), me.userId, eventType, stateKey, contentObject(body)) };
    };
    app.put(`${base}/state/:eventType`, ({ request, params, body }) => putState(request, params.roomId, params.eventType, "", body));
    app.put(`${base}/state/:eventType/:stateKey`, ({ request, params, body }) => putState(request, params.roomId, params.eventType, params.stateKey, body));

    const getState = async (request: Request, roomId: string, eventType: string, stateKey: string, format: string | undefined) => {
      const me = await requireUser(accounts, request);
      if (format !== undefined && format !== "content" && format !== "event") throw new MatrixError("M_INVALID_PARAM", "format must be 'content' or 'event'");
      const event = await rooms.stateEvent(roomIdParam(roomId), me, eventType, stateKey);
      return format === "event" ? event : event.content;
    };
    app.get(`${base}/state`, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      return rooms.state(roomIdParam(params.roomId), me);
    });
    app.get(`${base}/state/:eventType`, ({ request, params, query }) => getState(request, params.roomId, params.eventType, "", query.format));
    app.get(`${base}/state/:eventType/:stateKey`, ({ request, params, query }) => getState(request, params.roomId, params.eventType, params.stateKey, query.format));

    app.get(`${base}/event/:eventId`, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      return rooms.event(roomIdParam(params.roomId), me, params.eventId);
    });

    app.get(`${base}/members`, async ({ request, params, query }) => {
      const me = await requireUser(accounts, request);
      const memberships = ["join", "invite", "knock", "leave", "ban"];
      for (const name of ["membership", "not_membership"] as const) {
        const value = query[name];
        if (value !== undefined && !memberships.includes(value)) throw new MatrixError("M_INVALID_PARAM", `${name} must be one of ${memberships.join(", ")}`);
      }
      // `at` (a pagination token) is accepted and ignored: the members are those of the readable state.
      return { chunk: await rooms.members(roomIdParam(params.roomId), me, { membership: query.membership, notMembership: query.not_membership }) };
    });

    app.get(`${base}/joined_members`, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      return { joined: await rooms.joinedMembers(roomIdParam(params.roomId), me.userId) };
    });

    app.get(`${base}/messages`, async ({ request, params, query }) => {
      const me = await requireUser(accounts, request);
      const dir = query.dir;
      if (dir === undefined) throw new MatrixError("M_MISSING_PARAM", "Missing parameter: dir");
      if (dir !== "b" && dir !== "f") throw new MatrixError("M_INVALID_PARAM", "dir must be 'b' or 'f'");
      return rooms.messages(roomIdParam(params.roomId), me, {
        dir,
        from: query.from || undefined,
        to: query.to || undefined,
        limit: integerParam(query.limit, "limit"),
        filter: parseRoomEventFilter(query.filter),
      });
    });

    app.get(`${base}/context/:eventId`, async ({ request, params, query }) => {
      const me = await requireUser(accounts, request);
      return rooms.context(roomIdParam(params.roomId), me, params.eventId, integerParam(query.limit, "limit"), parseRoomEventFilter(query.filter));
    });
  }
  return app;
}
