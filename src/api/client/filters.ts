// Filters (client-server-api "Filtering"): POST /user/{userId}/filter, GET /user/{userId}/filter/{filterId}.
import { Elysia } from "elysia";
import type { AccountService } from "../../services/accounts/account-service";
import { FilterSchema, type FilterService } from "../../services/accounts/filter-service";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";

export function filterRoutes({ accounts, filters }: { accounts: AccountService; filters: FilterService }) {
  const app = new Elysia({ name: "client-filters" });
  for (const prefix of CLIENT_PREFIXES) {
    app.post(`${prefix}/user/:userId/filter`, async ({ params, request, body }) => {
      const me = await requireUser(accounts, request);
      return { filter_id: await filters.create(me.userId, params.userId, validateBody(FilterSchema, body)) };
    });
    app.get(`${prefix}/user/:userId/filter/:filterId`, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      return filters.get(me.userId, params.userId, params.filterId);
    });
  }
  return app;
}
