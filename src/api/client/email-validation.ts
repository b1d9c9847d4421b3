// Email addresses validated by this homeserver (client-server-api "Adding Account Administrative
// Contact Information", registration.yaml): POST /register/email/requestToken and
// /account/3pid/email/requestToken mail a link (GET submit_token, below) that validates the
// session; POST /account/3pid/add (UIA) and the deprecated POST /account/3pid add a validated
// address to the account. Registration's m.login.email.identity stage is in account.ts.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { Config } from "../../config/schema";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { PasswordConfirmation } from "../../services/accounts/password-confirmation";
import { SUBMIT_TOKEN_PATH, canonicalEmail, type EmailValidation } from "../../services/identity/email-validation";
import type { ThirdPartyIds } from "../../services/identity/third-party-ids";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { AuthData } from "./devices";
import { clientPaths } from "./paths";
import { uiaOperation } from "./uia-operation";

const RequestTokenBody = Type.Object({
  client_secret: Type.String(),
  email: Type.String(),
  send_attempt: Type.Integer(),
  next_link: Type.Optional(Type.String()),
  // id_server and id_access_token are ignored: this server validates the address itself.
});

const AddBody = Type.Object({ client_secret: Type.String(), sid: Type.String(), auth: Type.Optional(AuthData) });

const Creds = Type.Object({ client_secret: Type.String(), sid: Type.String(), id_server: Type.Optional(Type.String()), id_access_token: Type.Optional(Type.String()) });
const LegacyAddBody = Type.Object({ three_pid_creds: Type.Optional(Creds), threePidCreds: Type.Optional(Creds) });

export interface EmailValidationRouteDeps {
  config: Readonly<Config>;
  accounts: AccountService;
  thirdPartyIds: ThirdPartyIds;
  passwordConfirmation: PasswordConfirmation;
  /** Absent when `email` is not configured: requesting a token is M_THREEPID_MEDIUM_NOT_SUPPORTED. */
  validation: EmailValidation | undefined;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
const page = (text: string, status = 200) =>
  new Response(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>Email validation</title></head><body><p>${escapeHtml(text)}</p></body></html>`, {
    status,
    headers: { "Content-Type": "text/html; charset=utf-8", "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'", "Cache-Control": "no-store" },
  });

/** next_link must be a web page: the browser is sent there after validating (never to a script URL). */
function checkNextLink(nextLink: string | undefined): string | undefined {
  if (nextLink === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(nextLink);
  } catch {
    throw new MatrixError("M_INVALID_PARAM", "next_link must be an absolute URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new MatrixError("M_INVALID_PARAM", "next_link must be an http or https URL");
  return nextLink;
}

export function emailValidationRoutes({ config, accounts, thirdPartyIds, passwordConfirmation, validation }: EmailValidationRouteDeps) {
  const app = new Elysia({ name: "client-email-validation" });
  const linkBase = (request: Request) => config.public_baseurl ?? new URL(request.url).origin;

  const requestToken = async (request: Request, body: unknown, purpose: string) => {
    const input = validateBody(RequestTokenBody, body);
    if (!validation) throw new MatrixError("M_THREEPID_MEDIUM_NOT_SUPPORTED", "This server does not validate email addresses", 400);
    const nextLink = checkNextLink(input.next_link);
    // The spec: the address must not be on an account already (checked again when it is added).
    if (await thirdPartyIds.inUse("email", canonicalEmail(input.email))) throw new MatrixError("M_THREEPID_IN_USE", "The email address is already in use", 400);
    const sid = await validation.requestToken({ email: input.email, clientSecret: input.client_secret, sendAttempt: input.send_attempt, nextLink, linkBase: linkBase(request), purpose });
    return { sid };
  };

  for (const path of clientPaths("/register/email/requestToken")) {
    app.post(path, async ({ request, body }) => {
      if (!config.registration.enabled) throw new MatrixError("M_FORBIDDEN", "Registration has been disabled", 403);
      return requestToken(request, body, "to register an account");
    });
  }
  for (const path of clientPaths("/account/3pid/email/requestToken")) {
    app.post(path, ({ request, body }) => requestToken(request, body, "on an account"));
  }

  app.get(SUBMIT_TOKEN_PATH, ({ query }) => {
    const { sid, client_secret: clientSecret, token } = query as Record<string, string | undefined>;
    if (!sid || !clientSecret || !token) return page("This link is incomplete.", 400);
    if (!validation) return page("This server does not validate email addresses.", 404);
    try {
      const { nextLink } = validation.submitToken(sid, clientSecret, token);
      if (nextLink) return new Response(null, { status: 302, headers: { Location: nextLink } });
      return page("Your email address has been validated. Return to your application to continue.");
    } catch (error) {
      if (error instanceof MatrixError) return page(error.message, 400);
      throw error;
    }
  });

  const validatedOrFail = (sid: string, clientSecret: string) => {
    const found = validation?.validated(sid, clientSecret);
    if (!found) throw new MatrixError("M_THREEPID_AUTH_FAILED", "No validated email address for this session: follow the link in the email first", 403);
    return found;
  };

  for (const path of [...clientPaths("/account/3pid/add"), "/_matrix/client/unstable/account/3pid/add"]) {
    app.post(path, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(AddBody, body);
      await passwordConfirmation.confirm(input.auth, me.userId, uiaOperation(request));
      await thirdPartyIds.addValidated(me.userId, validatedOrFail(input.sid, input.client_secret));
      return {};
    });
  }

  // Deprecated, and "equivalent to /3pid/bind": a session this server validated adds the address
  // (as Synapse does); one of an identity server is bound there.
  for (const path of [...clientPaths("/account/3pid"), "/_matrix/client/unstable/account/3pid"]) {
    app.post(path, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(LegacyAddBody, body);
      const creds = input.three_pid_creds ?? input.threePidCreds;
      if (!creds) throw new MatrixError("M_MISSING_PARAM", "Missing parameter: three_pid_creds");
      const ours = validation?.validated(creds.sid, creds.client_secret);
      if (ours) {
        await thirdPartyIds.addValidated(me.userId, ours);
        return {};
      }
      if (creds.id_server !== undefined && creds.id_access_token !== undefined) {
        await thirdPartyIds.bind(me.userId, { clientSecret: creds.client_secret, idServer: creds.id_server, idAccessToken: creds.id_access_token, sid: creds.sid });
        return {};
      }
      validatedOrFail(creds.sid, creds.client_secret);
      return {};
    });
  }
  return app;
}
