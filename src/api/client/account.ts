// Registration, login, logout and whoami (client-server-api "Account registration and management",
// "Login"), under /_matrix/client/v3 and the r0 paths older clients use.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { Config } from "../../config/schema";
import { MatrixError } from "../../protocol/errors";
import type { AccountService, Session } from "../../services/accounts/account-service";
import type { UserInteractiveAuth } from "../../services/accounts/user-interactive-auth";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { clientPaths } from "./paths";
import { uiaOperation } from "./uia-operation";

const REGISTER_FLOWS = [{ stages: ["m.login.dummy"] }];

const RegisterBody = Type.Object({
  username: Type.Optional(Type.String()),
  password: Type.Optional(Type.String({ maxLength: 512 })),
  device_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  initial_device_display_name: Type.Optional(Type.String({ maxLength: 512 })),
  inhibit_login: Type.Optional(Type.Boolean()),
  /** A guest's access token: the guest becomes a full account (client-server-api "Guest Access"). */
  guest_access_token: Type.Optional(Type.String()),
  auth: Type.Optional(Type.Object({ type: Type.Optional(Type.String()), session: Type.Optional(Type.String()) })),
});

const LoginBody = Type.Object({
  type: Type.String(),
  identifier: Type.Optional(Type.Object({ type: Type.String(), user: Type.Optional(Type.String()) })),
  /** Deprecated top-level user, still sent by older clients. */
  user: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
  device_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  initial_device_display_name: Type.Optional(Type.String({ maxLength: 512 })),
});

export interface AccountRouteDeps {
  config: Readonly<Config>;
  accounts: AccountService;
  uia: UserInteractiveAuth;
}

function sessionBody(session: Session, serverName: string) {
  // home_server is deprecated but still read by older clients (matrix-nio).
  return { user_id: session.userId, access_token: session.accessToken, device_id: session.deviceId, home_server: serverName };
}

export function accountRoutes({ config, accounts, uia }: AccountRouteDeps) {
  const app = new Elysia({ name: "client-account" });

  for (const path of clientPaths("/register")) {
    app.post(path, async ({ body, query, request }) => {
      if (query.kind === "guest") {
        // Guest registration needs no user-interactive auth, and every field but the device's name
        // is ignored (registration.yaml); it is allowed apart from `registration.enabled`, as in Synapse.
        if (!config.registration.allow_guest_access) throw new MatrixError("M_GUEST_ACCESS_FORBIDDEN", "Guest access is not enabled on this server", 403);
        const displayName = (body as { initial_device_display_name?: unknown } | undefined)?.initial_device_display_name;
        const session = await accounts.registerGuest(typeof displayName === "string" ? displayName.slice(0, 512) : undefined);
        return sessionBody(session, config.server_name);
      }
      if (query.kind !== undefined && query.kind !== "user") throw new MatrixError("M_INVALID_PARAM", `Unknown kind ${query.kind}`);
      const { auth, ...given } = validateBody(RegisterBody, body ?? {});
      // A guest upgrading to a full account (guest_access.md) is refused only by the guest switch.
      if (given.guest_access_token !== undefined ? !config.registration.allow_guest_access : !config.registration.enabled) throw new MatrixError("M_FORBIDDEN", "Registration has been disabled", 403);
      const session = uia.open(auth?.session, uiaOperation(request));
      // Clients may send the parameters once and then only `auth` (as Synapse allows).
      const input = uia.params(session, given);
      const upgrading = input.guest_access_token !== undefined;
      // A retry of a session that already registered answers with that account (the spec: "the
      // result of the API call if all stages were completed when a client retries a stage").
      const registered = uia.registeredUser(session);
      // The username is checked before authentication, so a client learns at once that it is taken.
      if (upgrading) {
        if (registered === undefined) await accounts.guestToUpgrade(input.guest_access_token!, input.username);
      } else if (input.username !== undefined && (registered === undefined || accounts.userIdFor(input.username) !== registered)) {
        await accounts.checkUsernameAvailable(input.username);
      }
      if (auth?.type !== undefined && auth.type !== "m.login.dummy") throw uia.challenge(REGISTER_FLOWS, session, new MatrixError("M_UNRECOGNIZED", `Unknown auth stage ${auth.type}`));
      // No auth at all is always a 401 (the spec's note); a dict with only the session asks whether the flow is done.
      if (auth === undefined || !uia.complete(REGISTER_FLOWS, session, auth.type, true)) throw uia.challenge(REGISTER_FLOWS, session);
      const result =
        registered !== undefined
          ? { userId: registered, session: input.inhibit_login ? undefined : await accounts.startSession(registered, input.device_id, input.initial_device_display_name) }
          : upgrading
            ? await accounts.upgradeGuest({
                guestAccessToken: input.guest_access_token!,
                username: input.username,
                password: input.password,
                deviceId: input.device_id,
                initialDeviceDisplayName: input.initial_device_display_name,
                inhibitLogin: input.inhibit_login,
              })
            : await accounts.register({
                username: input.username,
                password: input.password,
                deviceId: input.device_id,
                initialDeviceDisplayName: input.initial_device_display_name,
                inhibitLogin: input.inhibit_login,
              });
      uia.setRegisteredUser(session, result.userId);
      if (!result.session) return { user_id: result.userId, home_server: config.server_name };
      return sessionBody(result.session, config.server_name);
    });
    app.get(`${path}/available`, async ({ query }) => {
      if (typeof query.username !== "string") throw new MatrixError("M_MISSING_PARAM", "Missing parameter: username");
      await accounts.checkUsernameAvailable(query.username);
      return { available: true };
    });
  }

  for (const path of clientPaths("/login")) {
    app.get(path, () => ({ flows: [{ type: "m.login.password" }] }));
    app.post(path, async ({ body }) => {
      const input = validateBody(LoginBody, body);
      if (input.type !== "m.login.password") throw new MatrixError("M_UNKNOWN", `Unknown login type ${input.type}`, 400);
      if (input.identifier && input.identifier.type !== "m.id.user") throw new MatrixError("M_UNKNOWN", `Unknown identifier type ${input.identifier.type}`, 400);
      const user = input.identifier?.user ?? input.user;
      if (user === undefined) throw new MatrixError("M_MISSING_PARAM", "Missing parameter: identifier.user");
      if (input.password === undefined) throw new MatrixError("M_MISSING_PARAM", "Missing parameter: password");
      const session = await accounts.loginWithPassword(user, input.password, input.device_id, input.initial_device_display_name);
      return sessionBody(session, config.server_name);
    });
  }

  for (const path of clientPaths("/logout")) {
    app.post(path, async ({ request }) => {
      const me = await requireUser(accounts, request);
      await accounts.logout(me.accessToken);
      return {};
    });
    app.post(`${path}/all`, async ({ request }) => {
      const me = await requireUser(accounts, request);
      await accounts.logoutAll(me.userId);
      return {};
    });
  }

  for (const path of clientPaths("/account/whoami")) {
    app.get(path, async ({ request }) => {
      const me = await requireUser(accounts, request);
      return { user_id: me.userId, device_id: me.deviceId, is_guest: me.isGuest === true };
    });
  }
  return app;
}
