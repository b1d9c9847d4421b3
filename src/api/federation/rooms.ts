// The read-only room endpoints of the federation API (server-server-api "Retrieving events",
// "Backfilling and retrieving missing events", "Retrieving event authorisation information"):
// GET /state/{roomId}, /state_ids/{roomId}, /event/{eventId}, /event_auth/{roomId}/{eventId},
// /backfill/{roomId}, POST /get_missing_events/{roomId} — all under /_matrix/federation/v1.
// Every handler first authenticates the requesting server (X-Matrix), then asks the room reader.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { FederationRoomReader } from "../../services/federation/room-reader";
import type { Clock } from "../../services/runtime";
import { validateBody } from "../middleware/validate";
import type { FederationAuthenticator } from "../middleware/x-matrix";
import { roomIdParam } from "../room-id-param";

export interface FederationRoomRouteDeps {
  /** Verifies X-Matrix (with the parsed body, which is signed too); the origin server name, or a 401. */
  authenticate: FederationAuthenticator;
  reader: FederationRoomReader;
  /** This server's name: the `origin` of the transactions these endpoints answer with. */
  serverName: string;
  clock: Clock;
}

const V1 = "/_matrix/federation/v1";

const MissingEventsBody = Type.Object({
  earliest_events: Type.Array(Type.String()),
  latest_events: Type.Array(Type.String()),
  limit: Type.Optional(Type.Integer({ minimum: 0 })),
  min_depth: Type.Optional(Type.Integer()),
});

function eventIdParam(eventId: string | undefined, name = "event_id"): string {
  if (eventId === undefined || eventId === "") throw new MatrixError("M_MISSING_PARAM", `Missing parameter: ${name}`);
  if (!eventId.startsWith("$")) throw new MatrixError("M_INVALID_PARAM", `Invalid event ID: ${eventId}`);
  return eventId;
}

/** backfill's `limit`: required, a non-negative integer. */
function limitParam(value: string | null): number {
  if (value === null || value === "") throw new MatrixError("M_MISSING_PARAM", "Missing parameter: limit");
  if (!/^\d{1,9}$/.test(value)) throw new MatrixError("M_INVALID_PARAM", "limit must be a non-negative integer");
  return Number(value);
}

export function federationRoomRoutes({ authenticate, reader, serverName, clock }: FederationRoomRouteDeps) {
  /** A transaction-shaped answer (single_pdu_transaction / unlimited_pdu_transaction). */
  const transaction = (pdus: unknown[]) => ({ origin: serverName, origin_server_ts: clock.now(), pdus });

  return new Elysia({ name: "federation-rooms" })
    .get(`${V1}/state/:roomId`, async ({ request, params, query }) => {
      const origin = await authenticate(request, undefined);
      const { pdus, authChain } = await reader.state(origin, roomIdParam(params.roomId), eventIdParam(query.event_id));
      return { pdus, auth_chain: authChain };
    })
    .get(`${V1}/state_ids/:roomId`, async ({ request, params, query }) => {
      const origin = await authenticate(request, undefined);
      const { pduIds, authChainIds } = await reader.stateIds(origin, roomIdParam(params.roomId), eventIdParam(query.event_id));
      return { pdu_ids: pduIds, auth_chain_ids: authChainIds };
    })
    .get(`${V1}/event/:eventId`, async ({ request, params }) => {
      const origin = await authenticate(request, undefined);
      return transaction([await reader.event(origin, eventIdParam(params.eventId, "eventId"))]);
    })
    .get(`${V1}/event_auth/:roomId/:eventId`, async ({ request, params }) => {
      const origin = await authenticate(request, undefined);
      return { auth_chain: await reader.eventAuth(origin, roomIdParam(params.roomId), eventIdParam(params.eventId, "eventId")) };
    })
    .get(`${V1}/backfill/:roomId`, async ({ request, params }) => {
      const origin = await authenticate(request, undefined);
      // `v` repeats (v=$a&v=$b); read from the URL itself, which keeps every value.
      const search = new URL(request.url).searchParams;
      const from = search.getAll("v").filter((v) => v !== "");
      if (from.length === 0) throw new MatrixError("M_MISSING_PARAM", "Missing parameter: v");
      for (const id of from) eventIdParam(id, "v");
      const limit = limitParam(search.get("limit"));
      return transaction(await reader.backfill(origin, roomIdParam(params.roomId), from, limit));
    })
    .post(`${V1}/get_missing_events/:roomId`, async ({ request, params, body }) => {
      const origin = await authenticate(request, body);
      const input = validateBody(MissingEventsBody, body);
      return {
        events: await reader.missingEvents(origin, roomIdParam(params.roomId), {
          earliestEvents: input.earliest_events,
          latestEvents: input.latest_events,
          limit: input.limit,
          minDepth: input.min_depth,
        }),
      };
    });
}
