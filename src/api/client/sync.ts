// GET /sync (client-server-api "Syncing"), under v3 and r0: query parameters checked here, the
// answer computed (and, with a timeout, waited for) by the sync service.
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import { FilterSchema, type Filter } from "../../services/accounts/filter-service";
import type { SyncAnswerer } from "../../services/sync/sync-response-cache";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { clientPaths } from "./paths";

export interface SyncRouteDeps {
  accounts: AccountService;
  sync: SyncAnswerer;
}

const PRESENCE = ["online", "offline", "unavailable"];

function booleanParam(value: string | undefined, name: string): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === "true") return true;
  if (value === "false") return false;
  throw new MatrixError("M_INVALID_PARAM", `${name} must be 'true' or 'false'`);
}

/** The `filter` parameter: a JSON object when it starts with "{", else an uploaded filter's id. */
function filterParam(value: string | undefined): string | Filter | undefined {
  if (value === undefined || value === "") return undefined;
  if (!value.startsWith("{")) return value;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new MatrixError("M_INVALID_PARAM", "filter is not valid JSON");
  }
  return validateBody(FilterSchema, parsed);
}

export function syncRoutes({ accounts, sync }: SyncRouteDeps) {
  const app = new Elysia({ name: "client-sync" });
  for (const path of clientPaths("/sync")) {
    app.get(path, async ({ request, query }) => {
      const me = await requireUser(accounts, request);
      const timeout = query.timeout;
      if (timeout !== undefined && !/^\d{1,12}$/.test(timeout)) throw new MatrixError("M_INVALID_PARAM", "timeout must be a non-negative integer");
      if (query.set_presence !== undefined && !PRESENCE.includes(query.set_presence)) {
        throw new MatrixError("M_INVALID_PARAM", `set_presence must be one of ${PRESENCE.join(", ")}`);
      }
      return sync.sync({
        userId: me.userId,
        deviceId: me.deviceId,
        since: query.since || undefined,
        filter: filterParam(query.filter),
        fullState: booleanParam(query.full_state, "full_state"),
        timeoutMs: timeout === undefined ? 0 : Number(timeout),
        signal: request.signal,
        setPresence: query.set_presence as "online" | "unavailable" | "offline" | undefined,
      });
    });
  }
  return app;
}
