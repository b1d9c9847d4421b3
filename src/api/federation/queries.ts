// Federation queries about this server's own users and rooms, under /_matrix/federation/v1:
// GET /query/directory, GET /query/profile (server-server-api "Querying for information"),
// GET and POST /publicRooms ("Published Room Directory"), GET /user/devices/{userId} ("Device
// Management"), POST /user/keys/query and /user/keys/claim ("End-to-End Encryption").
// Every handler first authenticates the requesting server (X-Matrix), then asks FederationQueries.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { FederationQueries } from "../../services/federation/queries";
import type { PublicRoomsRequest } from "../../services/directory/public-rooms";
import { validateBody } from "../middleware/validate";
import type { FederationAuthenticator } from "../middleware/x-matrix";

export interface FederationQueryRouteDeps {
  authenticate: FederationAuthenticator;
  queries: FederationQueries;
}

const V1 = "/_matrix/federation/v1";

const PublicRoomsBody = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 0 })),
  since: Type.Optional(Type.String()),
  filter: Type.Optional(
    Type.Object({
      generic_search_term: Type.Optional(Type.String()),
      room_types: Type.Optional(Type.Array(Type.Union([Type.String(), Type.Null()]))),
    }),
  ),
  include_all_networks: Type.Optional(Type.Boolean()),
  third_party_instance_id: Type.Optional(Type.String()),
});

const KeysQueryBody = Type.Object({ device_keys: Type.Record(Type.String(), Type.Array(Type.String())) });
const KeysClaimBody = Type.Object({ one_time_keys: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())) });

function requiredParam(value: string | undefined, name: string): string {
  if (value === undefined || value === "") throw new MatrixError("M_MISSING_PARAM", `Missing parameter: ${name}`);
  return value;
}

function limitParam(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new MatrixError("M_INVALID_PARAM", "limit must be a non-negative integer");
  return Number(value);
}

function booleanParam(value: string | undefined, name: string): boolean {
  if (value === undefined || value === "" || value === "false") return false;
  if (value === "true") return true;
  throw new MatrixError("M_INVALID_PARAM", `${name} must be true or false`);
}

function checkNetworks(includeAllNetworks: boolean, thirdPartyInstanceId: string | undefined): void {
  if (includeAllNetworks && thirdPartyInstanceId !== undefined) {
    throw new MatrixError("M_INVALID_PARAM", "third_party_instance_id cannot be used with include_all_networks");
  }
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
      const thirdPartyInstanceId = query.third_party_instance_id || undefined;
      checkNetworks(booleanParam(query.include_all_networks, "include_all_networks"), thirdPartyInstanceId);
      return queries.publicRooms({ limit: limitParam(query.limit), since: query.since || undefined, thirdPartyInstanceId });
    })
    .post(`${V1}/publicRooms`, async ({ request, body }) => {
      await authenticate(request, body);
      const input = validateBody(PublicRoomsBody, body);
      checkNetworks(input.include_all_networks === true, input.third_party_instance_id);
      const filter: PublicRoomsRequest["filter"] = {};
      if (input.filter?.generic_search_term !== undefined) filter.genericSearchTerm = input.filter.generic_search_term;
      if (input.filter?.room_types !== undefined) filter.roomTypes = input.filter.room_types;
      return queries.publicRooms({ limit: input.limit, since: input.since || undefined, filter, thirdPartyInstanceId: input.third_party_instance_id });
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
