// GET /_matrix/client/v1/room_summary/{roomIdOrAlias}: a token is optional (room_summary.yaml).
import { Elysia } from "elysia";
import type { AccountService } from "../../services/accounts/account-service";
import type { RoomSummaryService } from "../../services/directory/room-summary";
import { accessTokenOf, requireUser } from "../middleware/auth";

export function roomSummaryRoutes(deps: { accounts: AccountService; summaries: RoomSummaryService }) {
  return new Elysia({ name: "client-room-summary" }).get("/_matrix/client/v1/room_summary/:roomIdOrAlias", async ({ request, params }) => {
    // A token, when given, must be valid; without one the summary is the public view.
    const userId = accessTokenOf(request) === undefined ? undefined : requireUser(deps.accounts, request).userId;
    return deps.summaries.summary(params.roomIdOrAlias, userId);
  });
}
