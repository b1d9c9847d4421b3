// POST /account/deactivate (client-server-api "Account deactivation"), confirmed by the
// m.login.password UIA stage.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { AccountService } from "../../services/accounts/account-service";
import type { PasswordConfirmation } from "../../services/accounts/password-confirmation";
import type { AccountDeactivation } from "../../services/accounts/deactivation";
import { optionalUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { AuthData } from "./devices";
import { clientPaths } from "./paths";
import { uiaOperation } from "./uia-operation";

const DeactivateBody = Type.Object({
  auth: Type.Optional(AuthData),
  erase: Type.Optional(Type.Boolean()),
  id_server: Type.Optional(Type.String()),
});

export function deactivateRoutes({ accounts, passwordConfirmation, deactivation }: { accounts: AccountService; passwordConfirmation: PasswordConfirmation; deactivation: AccountDeactivation }) {
  const app = new Elysia({ name: "client-deactivate" });
  for (const path of clientPaths("/account/deactivate")) {
    app.post(path, async ({ request, body }) => {
      const me = await optionalUser(accounts, request);
      const input = validateBody(DeactivateBody, body ?? {});
      // An application service deactivates its own users without a password (as Synapse allows).
      if (me?.appServiceId !== undefined) return deactivation.deactivate(me.userId, input.erase === true);
      const userId = await passwordConfirmation.confirm(input.auth, me?.userId, uiaOperation(request));
      return deactivation.deactivate(userId, input.erase === true);
    });
  }
  return app;
}
