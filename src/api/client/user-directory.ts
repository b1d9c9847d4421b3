// POST /user_directory/search (client-server-api "User directory").
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { AccountService } from "../../services/accounts/account-service";
import type { UserDirectoryService } from "../../services/directory/user-directory";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";

const SearchBody = Type.Object({ search_term: Type.String(), limit: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })) });

export function userDirectoryRoutes({ accounts, users }: { accounts: AccountService; users: UserDirectoryService }) {
  const app = new Elysia({ name: "client-user-directory" });
  for (const prefix of CLIENT_PREFIXES) {
    app.post(`${prefix}/user_directory/search`, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(SearchBody, body);
      return users.search(me.userId, input.search_term, input.limit);
    });
  }
  return app;
}
