// Synapse-compatible shared-secret registration: GET /_synapse/admin/v1/register gives a nonce,
// POST registers a user with an HMAC of the configured registration.shared_secret.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { SharedSecretRegistration } from "../../services/accounts/shared-secret-registration";
import { validateBody } from "../middleware/validate";

const RegisterBody = Type.Object({
  nonce: Type.String(),
  username: Type.String(),
  password: Type.String(),
  mac: Type.String(),
  admin: Type.Optional(Type.Boolean()),
  user_type: Type.Optional(Type.String()),
  displayname: Type.Optional(Type.String()),
});

export function sharedSecretRegisterRoutes({ registration, serverName }: { registration: SharedSecretRegistration; serverName: string }) {
  return new Elysia({ name: "admin-register" })
    .get("/_synapse/admin/v1/register", () => ({ nonce: registration.newNonce() }))
    .post("/_synapse/admin/v1/register", async ({ body }) => {
      const input = validateBody(RegisterBody, body);
      const session = await registration.register({
        nonce: input.nonce,
        username: input.username,
        password: input.password,
        admin: input.admin ?? false,
        mac: input.mac,
        userType: input.user_type,
        displayname: input.displayname,
      });
      return { user_id: session.userId, access_token: session.accessToken, device_id: session.deviceId, home_server: serverName };
    });
}
