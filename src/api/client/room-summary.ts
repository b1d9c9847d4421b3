// GET /_matrix/client/v1/room_summary/{roomIdOrAlias}: a token is optional (room_summary.yaml).
// GET /_matrix/client/v1/rooms/{roomId}/hierarchy: the space tree (space_hierarchy.yaml).
import { Elysia } from "elysia";
import type { AccountService } from "../../services/accounts/account-service";
import type { RoomSummaryService } from "../../services/directory/room-summary";
import { SpaceHierarchyService } from "../../services/directory/space-hierarchy";
import { MatrixError } from "../../protocol/errors";
import type { RoomAccess } from "../../services/rooms/room-access";
import { optionalUser, requireUser } from "../middleware/auth";

function optionalInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value)) throw new MatrixError("M_INVALID_PARAM", `${name} must be a non-negative integer`);
  return Number(value);
}

export function roomSummaryRoutes(deps: { accounts: AccountService; summaries: RoomSummaryService; access: RoomAccess }) {
  const hierarchy = new SpaceHierarchyService(deps.access, deps.summaries);
  return new Elysia({ name: "client-room-summary" })
    .get("/_matrix/client/v1/rooms/:roomId/hierarchy", async ({ request, params, query }) => {
      const me = await requireUser(deps.accounts, request);
      const suggested = query.suggested_only;
      if (suggested !== undefined && suggested !== "true" && suggested !== "false") throw new MatrixError("M_INVALID_PARAM", "suggested_only must be true or false");
      return hierarchy.hierarchy(params.roomId, me.userId, {
        suggestedOnly: suggested === "true",
        limit: optionalInt(query.limit, "limit"),
        maxDepth: optionalInt(query.max_depth, "max_depth"),
        from: query.from,
      });
    })
    .get("/_matrix/client/v1/room_summary/:roomIdOrAlias", async ({ request, params }) => {
      // A token, when given, must be valid; without one the summary is the public view.
      const userId = (await optionalUser(deps.accounts, request))?.userId;
      return deps.summaries.summary(params.roomIdOrAlias, userId);
    });
}
