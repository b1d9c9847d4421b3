// The /publicRooms request as the client API and the federation API both take it (client-server-api
// "Listing rooms", server-server-api "Published Room Directory"): the same query parameters and
// POST body, read into one PublicRoomsRequest.
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../protocol/errors";
import type { PublicRoomsRequest } from "../services/directory/public-rooms";
import { validateBody } from "./middleware/validate";

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

/** `limit` as a query parameter: absent or a non-negative integer. */
export function limitParam(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^\d{1,9}$/.test(value)) throw new MatrixError("M_INVALID_PARAM", "limit must be a non-negative integer");
  return Number(value);
}

function checkNetworks(includeAllNetworks: boolean, thirdPartyInstanceId: string | undefined): void {
  if (includeAllNetworks && thirdPartyInstanceId !== undefined) {
    throw new MatrixError("M_INVALID_PARAM", "third_party_instance_id cannot be used with include_all_networks");
  }
}

/** GET /publicRooms: limit, since, and (federation) include_all_networks / third_party_instance_id. */
export function publicRoomsQuery(query: Record<string, string | undefined>): PublicRoomsRequest {
  const includeAllNetworks = query.include_all_networks;
  if (includeAllNetworks !== undefined && includeAllNetworks !== "" && includeAllNetworks !== "true" && includeAllNetworks !== "false") {
    throw new MatrixError("M_INVALID_PARAM", "include_all_networks must be true or false");
  }
  const thirdPartyInstanceId = query.third_party_instance_id || undefined;
  checkNetworks(includeAllNetworks === "true", thirdPartyInstanceId);
  return { limit: limitParam(query.limit), since: query.since || undefined, ...(thirdPartyInstanceId !== undefined ? { thirdPartyInstanceId } : {}), ...(includeAllNetworks === "true" ? { includeAllNetworks: true } : {}) };
}

/** POST /publicRooms: the body, validated. */
export function publicRoomsBody(body: unknown): PublicRoomsRequest {
  const input = validateBody(PublicRoomsBody, body);
  checkNetworks(input.include_all_networks === true, input.third_party_instance_id);
  const filter: PublicRoomsRequest["filter"] = {};
  if (input.filter?.generic_search_term !== undefined) filter.genericSearchTerm = input.filter.generic_search_term;
  if (input.filter?.room_types !== undefined) filter.roomTypes = input.filter.room_types;
  return { limit: input.limit, since: input.since || undefined, filter, thirdPartyInstanceId: input.third_party_instance_id, ...(input.include_all_networks === true ? { includeAllNetworks: true } : {}) };
}
