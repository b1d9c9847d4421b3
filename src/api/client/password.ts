// POST /account/password (client-server-api "Password management"), confirmed by the
// m.login.password UIA stage. The requester's own device stays logged in. When the other sessions
// are logged out, their pushers go with them (as Synapse does): only those set with the
// requester's access token remain.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { AccountService } from "../../services/accounts/account-service";
import type { PasswordConfirmation } from "../../services/accounts/password-confirmation";
import type { PusherService } from "../../services/push/pusher-service";
import { optionalUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { AuthData } from "./devices";
import { clientPaths } from "./paths";
import { uiaOperation } from "./uia-operation";

const ChangePasswordBody = Type.Object({
  new_password: Type.String({ minLength: 1, maxLength: 512 }),
  logout_devices: Type.Optional(Type.Boolean()),
  auth: Type.Optional(AuthData),
});

export function passwordRoutes({ accounts, passwordConfirmation, pushers }: { accounts: AccountService; passwordConfirmation: PasswordConfirmation; pushers: Pick<PusherService, "removeOtherSessionsPushers"> }) {
  const app = new Elysia({ name: "client-password" });
  for (const path of clientPaths("/account/password")) {
    app.post(path, async ({ request, body }) => {
      // The access token is optional here: without one, the password stage names the account.
      const me = await optionalUser(accounts, request);
      const input = validateBody(ChangePasswordBody, body);
      const userId = await passwordConfirmation.confirm(input.auth, me?.userId, uiaOperation(request));
      const logoutDevices = input.logout_devices ?? true;
      await accounts.changePassword(userId, input.new_password, logoutDevices, me?.deviceId);
      if (logoutDevices) await pushers.removeOtherSessionsPushers(userId, me?.accessToken);
      return {};
    });
  }
  return app;
}
