// Single sign-on through CAS (client-server-api "SSO client login/authentication"):
// GET /login/sso/redirect[/{idpId}] and the deprecated /login/cas/redirect send the browser to the
// CAS server; GET /login/cas/ticket is where the CAS server sends it back, with a ticket; and
// GET /auth/m.login.sso/fallback/web is the fallback page of the m.login.sso UIA stage. Mounted only
// when `cas` is configured (otherwise these paths are unknown, 404 M_UNRECOGNIZED).
import { Elysia } from "elysia";
import type { Config } from "../../config/schema";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import { mapToLocalpart, type CasClient } from "../../services/accounts/cas";
import type { LoginTokens } from "../../services/accounts/login-tokens";
import type { UserInteractiveAuth } from "../../services/accounts/user-interactive-auth";
import { clientPaths } from "./paths";

export interface SsoRouteDeps {
  config: Readonly<Config>;
  accounts: AccountService;
  /** Absent when `cas` is not configured: no routes. */
  cas: CasClient | undefined;
  loginTokens: LoginTokens;
  uia: UserInteractiveAuth;
}

/** The one identity provider, as listed in GET /login's m.login.sso flow. */
export const CAS_IDP_ID = "cas";

/** Schemes a browser would run rather than open: never a place to send a login token. */
const UNSAFE_SCHEMES = new Set(["javascript:", "data:", "vbscript:", "blob:", "file:"]);

function requireRedirectUrl(value: unknown): string {
  if (typeof value !== "string" || value === "") throw new MatrixError("M_MISSING_PARAM", "Missing parameter: redirectUrl");
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new MatrixError("M_INVALID_PARAM", "redirectUrl must be an absolute URL");
  }
  if (UNSAFE_SCHEMES.has(url.protocol)) throw new MatrixError("M_INVALID_PARAM", `redirectUrl may not use ${url.protocol}`);
  return value;
}

/**
 * redirectUrl with loginToken added as its last query parameter, any loginToken it had removed
 * (sso_login.md step 4). The rest of the URL is kept as the client wrote it.
 */
export function withLoginToken(redirectUrl: string, token: string): string {
  const hash = redirectUrl.indexOf("#");
  const fragment = hash >= 0 ? redirectUrl.slice(hash) : "";
  const base = hash >= 0 ? redirectUrl.slice(0, hash) : redirectUrl;
  const q = base.indexOf("?");
  const path = q >= 0 ? base.slice(0, q) : base;
  const kept = q >= 0 ? base.slice(q + 1).split("&").filter((p) => p !== "" && !/^loginToken(=|$)/.test(p)) : [];
  return `${path}?${[...kept, `loginToken=${encodeURIComponent(token)}`].join("&")}${fragment}`;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

function htmlPage(title: string, body: string, script = ""): Response {
  const html = `<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title></head><body>${body}${script ? `<script>${script}</script>` : ""}</body></html>`;
  return new Response(html, {
    status: 200,
    headers: {
      "Content-Type": "text/html; charset=utf-8",
      // The confirmation must not be framed and clicked through by another site.
      "X-Frame-Options": "DENY",
      "Content-Security-Policy": `default-src 'none'; frame-ancestors 'none'${script ? "; script-src 'unsafe-inline'" : ""}`,
      "Cache-Control": "no-store",
    },
  });
}

const redirect = (location: string) => new Response(null, { status: 302, headers: { Location: location, "Cache-Control": "no-store" } });

export function ssoRoutes({ config, accounts, cas, loginTokens, uia }: SsoRouteDeps) {
  const app = new Elysia({ name: "client-sso" });
  if (!cas) return app;
  /** Where this server's client API is, for the service URL: public_baseurl, else where the request came to. */
  const baseUrl = (request: Request) => config.public_baseurl ?? new URL(request.url).origin;

  const toCas = (request: Request, redirectUrl: unknown) => {
    const target = requireRedirectUrl(redirectUrl);
    return redirect(cas.loginUrl(cas.serviceUrl(baseUrl(request), { redirectUrl: target })));
  };

  for (const path of clientPaths("/login/sso/redirect")) {
    app.get(path, ({ request, query }) => toCas(request, query.redirectUrl));
    app.get(`${path}/:idpId`, ({ request, query, params }) => {
      if (params.idpId !== CAS_IDP_ID) throw new MatrixError("M_NOT_FOUND", "Unknown identity provider", 404);
      return toCas(request, query.redirectUrl);
    });
  }
  for (const path of clientPaths("/login/cas/redirect")) app.get(path, ({ request, query }) => toCas(request, query.redirectUrl));

  for (const path of clientPaths("/auth/m.login.sso/fallback/web")) {
    app.get(path, ({ request, query }) => {
      if (typeof query.session !== "string" || query.session === "") throw new MatrixError("M_MISSING_PARAM", "Missing parameter: session");
      return redirect(cas.loginUrl(cas.serviceUrl(baseUrl(request), { session: query.session })));
    });
  }

  for (const path of clientPaths("/login/cas/ticket")) {
    app.get(path, async ({ request, query }) => {
      const ticket = query.ticket;
      if (typeof ticket !== "string" || ticket === "") throw new MatrixError("M_MISSING_PARAM", "Missing parameter: ticket");
      if (typeof query.session === "string" && query.session !== "") {
        // The m.login.sso stage of a UIA session: who the CAS server says the user is is recorded;
        // the operation, retried with the session, checks it is the requester.
        const session = query.session;
        const casUser = await cas.validate(ticket, cas.serviceUrl(baseUrl(request), { session }));
        const userId = `@${mapToLocalpart(casUser.user)}:${config.server_name}`;
        if (!uia.completeSso(session, userId)) throw new MatrixError("M_INVALID_PARAM", "No such user-interactive authentication session", 400);
        return htmlPage(
          "Authentication complete",
          "<p>Authentication complete. You may close this window and return to the application.</p>",
          // The fallback's end (client-server-api "Fallback"): tell the page's opener.
          'if (window.onAuthDone) window.onAuthDone(); else if (window.opener && window.opener.postMessage) window.opener.postMessage("authDone", "*");',
        );
      }
      const redirectUrl = requireRedirectUrl(query.redirectUrl);
      const casUser = await cas.validate(ticket, cas.serviceUrl(baseUrl(request), { redirectUrl }));
      const userId = await accounts.ssoUser(mapToLocalpart(casUser.user), cas.displayName(casUser));
      const target = withLoginToken(redirectUrl, loginTokens.issue(userId));
      // The spec's security considerations: the user confirms before a login token goes to the
      // site named in redirectUrl (as Synapse, after the login rather than before).
      const host = (() => {
        try {
          return new URL(redirectUrl).host || redirectUrl;
        } catch {
          return redirectUrl;
        }
      })();
      return htmlPage(
        "Continue to your application",
        `<p>You are signed in as ${escapeHtml(userId)}.</p><p>Continue only if you trust <strong>${escapeHtml(host)}</strong>: it will get access to your account.</p><p><a href="${escapeHtml(target)}">Continue to ${escapeHtml(host)}</a></p>`,
      );
    });
  }
  return app;
}
