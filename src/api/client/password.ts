// POST /account/password (client-server-api "Password management"), confirmed by the
// m.login.password UIA stage. The requester's own device stays logged in.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { AccountService } from "../../services/accounts/account-service";
import type { PasswordConfirmation } from "../../services/accounts/password-confirmation";
import { optionalUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { AuthData } from "./devices";
import { clientPaths } from "./paths";

const ChangePasswordBody = Type.Object({
  new_password: Type.String({ minLength: 1, maxLength: 512 }),
  logout_devices: Type.Optional(Type.Boolean()),
  auth: Type.Optional(AuthData),
});

export function passwordRoutes({ accounts, passwordConfirmation }: { accounts: AccountService; passwordConfirmation: PasswordConfirmation }) {
  const app = new Elysia({ name: "client-password" });
  for (const path of clientPaths("/account/password")) {
    app.post(path, async ({ request, body }) => {
      // The access token is optional here: without one, the password stage names the account.
      const me = await optionalUser(accounts, request);
      const input = validateBody(ChangePasswordBody, body);
      const userId = await passwordConfirmation.confirm(input.auth, me?.userId);
      await accounts.changePassword(userId, input.new_password, input.logout_devices ?? true, me?.deviceId);
      return {};
    });
  }
  return app;
}
