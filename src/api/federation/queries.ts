// Federation queries about this server's own users and rooms, under /_matrix/federation/v1:
// GET /query/directory, GET /query/profile (server-server-api "Querying for information"),
// GET and POST /publicRooms ("Published Room Directory"), GET /user/devices/{userId} ("Device
// Management"), POST /user/keys/query and /user/keys/claim ("End-to-End Encryption").
// Every handler first authenticates the requesting server (X-Matrix), then asks FederationQueries.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { FederationQueries } from "../../services/federation/queries";
import { publicRoomsBody, publicRoomsQuery } from "../public-rooms-request";
import { validateBody } from "../middleware/validate";
import type { FederationAuthenticator } from "../middleware/x-matrix";

export interface FederationQueryRouteDeps {
  authenticate: FederationAuthenticator;
  queries: FederationQueries;
}

const V1 = "/_matrix/federation/v1";

const KeysQueryBody = Type.Object({ device_keys: Type.Record(Type.String(), Type.Array(Type.String())) });
const KeysClaimBody = Type.Object({ one_time_keys: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())) });

function requiredParam(value: string | undefined, name: string): string {
  if (value === undefined || value === "") throw new MatrixError("M_MISSING_PARAM", `Missing parameter: ${name}`);
  return value;
}

export function federationQueryRoutes({ authenticate, queries }: FederationQueryRouteDeps) {
  return new Elysia({ name: "federation-queries" })
    .get(`${V1}/query/directory`, async ({ request, query }) => {
      await authenticate(request, undefined);
      return queries.roomAlias(requiredParam(query.room_alias, "room_alias"));
    })
    .get(`${V1}/query/profile`, async ({ request, query }) => {
      await authenticate(request, undefined);
      return queries.profile(requiredParam(query.user_id, "user_id"), query.field || undefined);
    })
    .get(`${V1}/publicRooms`, async ({ request, query }) => {
      await authenticate(request, undefined);
      return queries.publicRooms(publicRoomsQuery(query));
    })
    .post(`${V1}/publicRooms`, async ({ request, body }) => {
      await authenticate(request, body);
      return queries.publicRooms(publicRoomsBody(body));
    })
    .get(`${V1}/user/devices/:userId`, async ({ request, params }) => {
      await authenticate(request, undefined);
      return queries.userDevices(params.userId);
    })
    .post(`${V1}/user/keys/query`, async ({ request, body }) => {
      await authenticate(request, body);
      return queries.queryKeys(validateBody(KeysQueryBody, body).device_keys);
    })
    .post(`${V1}/user/keys/claim`, async ({ request, body }) => {
      await authenticate(request, body);
      return queries.claimKeys(validateBody(KeysClaimBody, body).one_time_keys);
    });
}
