// Knock moderation admin API (issue 5), under /_portier/admin/v1, access token required:
//   GET  /rooms/{roomId}/knocks          pending knocks on a room (server admins, room moderators)
//   GET  /users/{userId}/knocks          a user's pending knocks (server admins, the user themself)
//   POST /rooms/{roomId}/knocks/accept   {user_ids, reason?}: invite each knocker
//   POST /rooms/{roomId}/knocks/deny     {user_ids, reason?}: kick each knocker
//   POST /knocks/expire                  {older_than_ms?, reason?}: deny old knocks (server admins)
// Bulk answers report each user on their own: one user no longer knocking fails only that user.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { KnockModerationService } from "../../services/knocks/knock-moderation";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { roomIdParam } from "../room-id-param";

export const ADMIN_V1 = "/_portier/admin/v1";

const BulkBody = Type.Object({
  user_ids: Type.Array(Type.String(), { minItems: 1, maxItems: 1000 }),
  reason: Type.Optional(Type.String()),
});
const ExpireBody = Type.Object({
  older_than_ms: Type.Optional(Type.Integer({ minimum: 0 })),
  reason: Type.Optional(Type.String()),
});

export function knockAdminRoutes({ accounts, knocks }: { accounts: AccountService; knocks: KnockModerationService }) {
  return new Elysia({ name: "admin-knocks" })
    .get(`${ADMIN_V1}/rooms/:roomId/knocks`, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      return { knocks: await knocks.roomKnocks(me.userId, roomIdParam(params.roomId)) };
    })
    .get(`${ADMIN_V1}/users/:userId/knocks`, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      return { knocks: await knocks.userKnocks(me.userId, params.userId) };
    })
    .post(`${ADMIN_V1}/rooms/:roomId/knocks/accept`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(BulkBody, body);
      return { results: await knocks.accept(me.userId, roomIdParam(params.roomId), input.user_ids, input.reason) };
    })
    .post(`${ADMIN_V1}/rooms/:roomId/knocks/deny`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(BulkBody, body);
      return { results: await knocks.deny(me.userId, roomIdParam(params.roomId), input.user_ids, input.reason) };
    })
    .post(`${ADMIN_V1}/knocks/expire`, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(ExpireBody, body ?? {});
      return knocks.expire(me.userId, { olderThanMs: input.older_than_ms, reason: input.reason });
    });
}
