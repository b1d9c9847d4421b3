// GET /notifications (client-server-api "Listing Notifications", notifications.yaml): the events the
// user was notified about, newest first, `from` a next_token of an earlier page.
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { NotificationService } from "../../services/push/notification-service";
import { requireUser } from "../middleware/auth";
import { clientPaths } from "./paths";

export function notificationRoutes({ accounts, notifications }: { accounts: AccountService; notifications: NotificationService }) {
  const app = new Elysia({ name: "client-notifications" });
  for (const path of clientPaths("/notifications")) {
    app.get(path, async ({ request }) => {
      const me = await requireUser(accounts, request);
      const query = new URL(request.url).searchParams;
      const limitText = query.get("limit");
      let limit: number | undefined;
      if (limitText !== null) {
        limit = Number(limitText);
        if (!/^[0-9]+$/.test(limitText) || !Number.isSafeInteger(limit) || limit < 1) throw new MatrixError("M_INVALID_PARAM", "limit must be a positive integer");
      }
      return notifications.list(me.userId, { from: query.get("from") ?? undefined, limit, only: query.get("only") ?? undefined });
    });
  }
  return app;
}
