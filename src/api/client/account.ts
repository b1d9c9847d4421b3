// Registration, login, logout and whoami (client-server-api "Account registration and management",
// "Login"), under /_matrix/client/v3 and the r0 paths older clients use.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { Config } from "../../config/schema";
import { MatrixError } from "../../protocol/errors";
import type { AccountService, Session } from "../../services/accounts/account-service";
import type { LoginTokens } from "../../services/accounts/login-tokens";
import type { RecaptchaVerifier } from "../../services/accounts/recaptcha";
import type { Flow, UserInteractiveAuth } from "../../services/accounts/user-interactive-auth";
import type { EmailValidation } from "../../services/identity/email-validation";
import type { ThirdPartyIds } from "../../services/identity/third-party-ids";
import { requireUser } from "../middleware/auth";
import { clientAddress } from "../middleware/rate-limit";
import { validateBody } from "../middleware/validate";
import { clientPaths } from "./paths";
import { uiaOperation } from "./uia-operation";

/** The stages registration accepts, whether or not a flow asks for them. */
const REGISTER_STAGES = new Set(["m.login.dummy", "m.login.recaptcha", "m.login.email.identity"]);

/**
 * Registration's flows: m.login.dummy, or an email address this server validated (with `email`
 * configured) as a flow of its own; a required captcha heads every flow and replaces the dummy.
 */
function registerFlows(captchaRequired: boolean, email: boolean): Flow[] {
  const flows: Flow[] = [{ stages: captchaRequired ? ["m.login.recaptcha"] : ["m.login.dummy"] }];
  if (email) flows.push({ stages: [...(captchaRequired ? ["m.login.recaptcha"] : []), "m.login.email.identity"] });
  return flows;
}

const RegisterBody = Type.Object({
  /** m.login.application_service: an application service registers a user of its namespace. */
  type: Type.Optional(Type.String()),
  username: Type.Optional(Type.String()),
  password: Type.Optional(Type.String({ maxLength: 512 })),
  device_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  initial_device_display_name: Type.Optional(Type.String({ maxLength: 512 })),
  inhibit_login: Type.Optional(Type.Boolean()),
  /** A guest's access token: the guest becomes a full account (client-server-api "Guest Access"). */
  guest_access_token: Type.Optional(Type.String()),
  auth: Type.Optional(Type.Object({
    type: Type.Optional(Type.String()),
    session: Type.Optional(Type.String()),
    /** m.login.recaptcha: the captcha's response token. */
    response: Type.Optional(Type.Unknown()),
    /** m.login.email.identity: the validation session (threepidCreds is its older spelling). */
    threepid_creds: Type.Optional(Type.Object({ sid: Type.String(), client_secret: Type.String() })),
    threepidCreds: Type.Optional(Type.Object({ sid: Type.String(), client_secret: Type.String() })),
  })),
});

const LoginBody = Type.Object({
  type: Type.String(),
  identifier: Type.Optional(Type.Object({
    type: Type.String(),
    user: Type.Optional(Type.String()),
    medium: Type.Optional(Type.String()),
    address: Type.Optional(Type.String()),
  })),
  /** Deprecated top-level user, still sent by older clients. */
  user: Type.Optional(Type.String()),
  /** Deprecated top-level 3PID (instead of an m.id.thirdparty identifier). */
  medium: Type.Optional(Type.String()),
  address: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
  /** m.login.token: a login token from single sign-on. */
  token: Type.Optional(Type.String()),
  device_id: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  initial_device_display_name: Type.Optional(Type.String({ maxLength: 512 })),
});

export interface AccountRouteDeps {
  config: Readonly<Config>;
  accounts: AccountService;
  uia: UserInteractiveAuth;
  /** Login with a 3PID bound to the account; absent: only user IDs log in. */
  thirdPartyIds?: Pick<ThirdPartyIds, "ownerOf" | "inUse" | "addValidated">;
  /** m.login.token (made by single sign-on); absent: not offered. */
  loginTokens?: LoginTokens;
  /** Single sign-on (CAS) is configured: GET /login lists m.login.sso, m.login.cas and m.login.token. */
  sso?: boolean;
  /** The m.login.recaptcha registration stage; `recaptchaRequired`: every flow asks for it. */
  recaptcha?: RecaptchaVerifier;
  recaptchaRequired?: boolean;
  /** Email addresses this server validates: registration's m.login.email.identity flow. */
  emailValidation?: EmailValidation;
}

function sessionBody(session: Session, serverName: string) {
  // home_server is deprecated but still read by older clients (matrix-nio).
  return { user_id: session.userId, access_token: session.accessToken, device_id: session.deviceId, home_server: serverName };
}

export function accountRoutes({ config, accounts, uia, thirdPartyIds, loginTokens, sso = false, recaptcha, recaptchaRequired = false, emailValidation }: AccountRouteDeps) {
  const app = new Elysia({ name: "client-account" });
  const REGISTER_FLOWS = registerFlows(recaptcha !== undefined && recaptchaRequired, emailValidation !== undefined && thirdPartyIds !== undefined);
  // The stage's params carry the site key the client shows the captcha with ("Google ReCaptcha").
  const registerParams: Record<string, unknown> = recaptcha ? { "m.login.recaptcha": { public_key: recaptcha.publicKey } } : {};
  const trustedProxies = new Set(config.trusted_proxies);
  const loginFlows = [
    { type: "m.login.password" },
    // m.login.cas is the deprecated name of the same flow (sso_login.md); sytest and older clients look for it.
    ...(sso && loginTokens ? [{ type: "m.login.sso", identity_providers: [{ id: "cas", name: "CAS" }] }, { type: "m.login.cas" }, { type: "m.login.token" }] : []),
  ];

  /** The user a password login names: a user ID or localpart, or a 3PID bound to the account. */
  async function loginUser(input: ReturnType<typeof validateBody<typeof LoginBody>>): Promise<string> {
    const identifier = input.identifier;
    if (identifier === undefined || identifier.type === "m.id.user") {
      const user = identifier?.user ?? input.user;
      if (user !== undefined) return user;
      if (identifier === undefined && (input.medium !== undefined || input.address !== undefined)) return threepidUser(input.medium, input.address);
      throw new MatrixError("M_MISSING_PARAM", "Missing parameter: identifier.user");
    }
    if (identifier.type === "m.id.thirdparty") return threepidUser(identifier.medium, identifier.address);
    throw new MatrixError("M_UNKNOWN", `Unknown identifier type ${identifier.type}`, 400);
  }

  async function threepidUser(medium: string | undefined, address: string | undefined): Promise<string> {
    if (medium === undefined) throw new MatrixError("M_MISSING_PARAM", "Missing parameter: medium");
    if (address === undefined) throw new MatrixError("M_MISSING_PARAM", "Missing parameter: address");
    const owner = await thirdPartyIds?.ownerOf(medium, address);
    // The same answer as a wrong password: a login must not tell which addresses have accounts.
    if (owner === undefined) throw new MatrixError("M_FORBIDDEN", "Invalid username or password", 403);
    return owner;
  }

  /**
   * POST /register with type m.login.application_service (application-service-api "Server admin
   * style permissions"): the service's as_token, no user-interactive auth, a user ID inside the
   * service's namespace (400 M_EXCLUSIVE otherwise). Allowed whatever registration.enabled says, as
   * in Synapse: the operator registered the service.
   */
  async function registerForAppService(request: Request, input: ReturnType<typeof validateBody<typeof RegisterBody>>) {
    const me = await requireUser(accounts, request);
    if (me.appServiceId === undefined) throw new MatrixError("M_FORBIDDEN", "m.login.application_service needs an application service's as_token", 401);
    if (input.username === undefined) throw new MatrixError("M_MISSING_PARAM", "Missing parameter: username");
    const result = await accounts.register({
      username: input.username,
      deviceId: input.device_id,
      initialDeviceDisplayName: input.initial_device_display_name,
      inhibitLogin: input.inhibit_login,
      appServiceId: me.appServiceId,
    });
    if (!result.session) return { user_id: result.userId, home_server: config.server_name };
    return sessionBody(result.session, config.server_name);
  }

  for (const path of clientPaths("/register")) {
    app.post(path, async ({ body, query, request, server }) => {
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
      if (given.type === "m.login.application_service") return registerForAppService(request, given);
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
      if (auth?.type !== undefined && (!REGISTER_STAGES.has(auth.type) || (auth.type === "m.login.recaptcha" && !recaptcha) || (auth.type === "m.login.email.identity" && !(emailValidation && thirdPartyIds)))) {
        throw uia.challenge(REGISTER_FLOWS, session, new MatrixError("M_UNRECOGNIZED", `Unknown auth stage ${auth.type}`), registerParams);
      }
      if (auth?.type === "m.login.recaptcha") {
        // As Synapse, the stage is accepted even when no flow asks for it (sytest relies on that).
        const address = clientAddress(server, request, trustedProxies);
        try {
          await recaptcha!.verify(auth.response, address === "unknown" || address.includes("/") ? undefined : address);
        } catch (error) {
          if (error instanceof MatrixError && error.status < 500) throw uia.challenge(REGISTER_FLOWS, session, error, registerParams);
          throw error;
        }
      }
      if (auth?.type === "m.login.email.identity") {
        const creds = auth.threepid_creds ?? auth.threepidCreds;
        if (!creds) throw uia.challenge(REGISTER_FLOWS, session, new MatrixError("M_MISSING_PARAM", "Missing parameter: threepid_creds"), registerParams);
        const threepid = emailValidation!.validated(creds.sid, creds.client_secret);
        if (!threepid) throw uia.challenge(REGISTER_FLOWS, session, new MatrixError("M_UNAUTHORIZED", "The email address has not been validated: follow the link in the email first"), registerParams);
        uia.setThreepid(session, threepid);
      }
      // No auth at all is always a 401 (the spec's note); a dict with only the session asks whether the flow is done.
      if (auth === undefined || !uia.complete(REGISTER_FLOWS, session, auth.type, true)) throw uia.challenge(REGISTER_FLOWS, session, undefined, registerParams);
      // The proved address must still be free: checked before the account is made.
      const threepid = registered === undefined ? uia.threepid(session) : undefined;
      if (threepid && (await thirdPartyIds!.inUse(threepid.medium, threepid.address))) throw new MatrixError("M_THREEPID_IN_USE", "The email address is already in use", 400);
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
      if (threepid) await thirdPartyIds!.addValidated(result.userId, threepid);
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
    // m.login.application_service is offered where application services are registered (Synapse offers it always).
    app.get(path, () => ({ flows: accounts.hasAppServices ? [...loginFlows, { type: "m.login.application_service" }] : loginFlows }));
    app.post(path, async ({ body, request }) => {
      const input = validateBody(LoginBody, body);
      if (input.type === "m.login.application_service") {
        // client-server-api "Appservice Login": the as_token, and a user of the service's namespace.
        const me = await requireUser(accounts, request);
        if (me.appServiceId === undefined) throw new MatrixError("M_FORBIDDEN", "m.login.application_service needs an application service's as_token", 403);
        const userId = accounts.userIdFor(await loginUser(input));
        if (userId === undefined) throw new MatrixError("M_EXCLUSIVE", "The user is not in the application service's namespace", 403);
        return sessionBody(await accounts.loginAsForAppService(me.appServiceId, userId, input.device_id, input.initial_device_display_name), config.server_name);
      }
      if (input.type === "m.login.token" && sso && loginTokens) {
        if (input.token === undefined) throw new MatrixError("M_MISSING_PARAM", "Missing parameter: token");
        const userId = loginTokens.redeem(input.token);
        return sessionBody(await accounts.loginAs(userId, input.device_id, input.initial_device_display_name), config.server_name);
      }
      if (input.type !== "m.login.password") throw new MatrixError("M_UNKNOWN", `Unknown login type ${input.type}`, 400);
      const user = await loginUser(input);
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
      // An application service acting without a device has none to show (device_id is optional).
      return { user_id: me.userId, ...(me.deviceId !== "" ? { device_id: me.deviceId } : {}), is_guest: me.isGuest === true };
    });
  }
  return app;
}
