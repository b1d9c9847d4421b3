// POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync: simplified sliding sync
// (MSC4186) at its unstable path, as Synapse serves it and Element X calls it. `pos`, `timeout` and
// `set_presence` are query parameters there; the body (lists, room subscriptions, extensions) is
// checked here and the answer computed (and, with a timeout, waited for) by the sliding sync service.
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { SlidingSyncService } from "../../services/sync/sliding-sync-service";
import { SlidingSyncBodySchema } from "../../services/sync/sliding-sync-request";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";

export const SLIDING_SYNC_PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync";

const PRESENCE = ["online", "offline", "unavailable"];

export function slidingSyncRoutes({ accounts, slidingSync }: { accounts: AccountService; slidingSync: SlidingSyncService }) {
  return new Elysia({ name: "client-sliding-sync" }).post(SLIDING_SYNC_PATH, async ({ request, query, body }) => {
    const me = await requireUser(accounts, request);
    const timeout = query.timeout;
    if (timeout !== undefined && !/^\d{1,12}$/.test(timeout)) throw new MatrixError("M_INVALID_PARAM", "timeout must be a non-negative integer");
    if (query.set_presence !== undefined && !PRESENCE.includes(query.set_presence)) {
      throw new MatrixError("M_INVALID_PARAM", `set_presence must be one of ${PRESENCE.join(", ")}`);
    }
    return slidingSync.sync({
      userId: me.userId,
      deviceId: me.deviceId,
      pos: query.pos || undefined,
      timeoutMs: timeout === undefined ? 0 : Number(timeout),
      signal: request.signal,
      body: validateBody(SlidingSyncBodySchema, body),
      setPresence: query.set_presence as "online" | "unavailable" | "offline" | undefined,
    });
  });
}
