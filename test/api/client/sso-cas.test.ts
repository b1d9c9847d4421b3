// Single sign-on through CAS, against a fake CAS server: GET /login lists m.login.sso, m.login.cas
// and m.login.token only when `cas` is configured; /login/sso/redirect and /login/cas/redirect send
// the browser to the CAS server's /login with a service URL back to /login/cas/ticket; the ticket is
// checked at /proxyValidate, a new user is registered on first login (an existing one of the same
// name logged in), and the confirmation page carries a one-use, short-lived login token that
// POST /login with m.login.token exchanges; the m.login.sso UIA stage through the same ticket endpoint.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request, testServer } from "../../helpers/server";
import { bearer, registerUser } from "../../helpers/accounts";
import { expectMatchesSpec } from "../../helpers/openapi";
import type { PortierServer } from "../../../src/app";
import { LOGIN_TOKEN_LIFETIME_MS } from "../../../src/services/accounts/login-tokens";
import { mapToLocalpart, parseCasResponse } from "../../../src/services/accounts/cas";
import { withLoginToken } from "../../../src/api/client/sso";

const V3 = "/_matrix/client/v3";
const REDIRECT = "https://client.example?p=http%3A%2F%2Fserver&loginToken=stale";

const casSuccess = (user: string, attributes = "") =>
  `<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'><cas:authenticationSuccess><cas:user>${user}</cas:user><cas:attributes>${attributes}</cas:attributes></cas:authenticationSuccess></cas:serviceResponse>`;
const CAS_FAILURE = `<cas:serviceResponse xmlns:cas='http://www.yale.edu/tp/cas'><cas:authenticationFailure code="INVALID_TICKET">Ticket not recognized</cas:authenticationFailure></cas:serviceResponse>`;

/** A CAS server that knows a few tickets, each for one service URL, and logs what it was asked. */
class FakeCas {
  readonly tickets = new Map<string, { service?: string; xml: string }>();
  readonly validations: { ticket: string | null; service: string | null }[] = [];
  readonly server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) => {
      const url = new URL(req.url);
      if (url.pathname !== "/cas/proxyValidate") return new Response("not found", { status: 404 });
      const ticket = url.searchParams.get("ticket");
      const service = url.searchParams.get("service");
      this.validations.push({ ticket, service });
      const known = ticket === null ? undefined : this.tickets.get(ticket);
      const ok = known && (known.service === undefined || known.service === service);
      if (known && ok) this.tickets.delete(ticket!);
      return new Response(ok ? known.xml : CAS_FAILURE, { headers: { "Content-Type": "text/xml" } });
    },
  });
  get url() {
    return `http://127.0.0.1:${this.server.port}/cas`;
  }
}

let now = 1_700_000_000_000;
const clock = { now: () => now };
let cas: FakeCas;
let server: PortierServer;

beforeAll(async () => {
  cas = new FakeCas();
  server = await testServer(
    { registration: { enabled: true }, cas: { server_url: cas.url, displayname_attribute: "displayName", required_attributes: {} }, public_baseurl: "https://hs.example" },
    { clock },
  );
});
afterAll(async () => {
  await server.stop();
  cas.server.stop(true);
});

/** The service URL the browser was sent to CAS with, from /login/sso/redirect's Location. */
async function startLogin(path = `${V3}/login/sso/redirect`, redirectUrl = REDIRECT): Promise<string> {
  const r = await request(server, "GET", `${path}?redirectUrl=${encodeURIComponent(redirectUrl)}`);
  expect(r.status).toBe(302);
  const location = new URL(r.headers.get("location")!);
  expect(`${location.origin}${location.pathname}`).toBe(`${cas.url}/login`);
  return location.searchParams.get("service")!;
}

/** Comes back from CAS with a ticket: the confirmation page's link, or the error. */
async function comeBack(service: string, ticket: string) {
  const url = new URL(`${service}&ticket=${ticket}`);
  return request(server, "GET", `${url.pathname}${url.search}`);
}

const tokenIn = (html: string) => /loginToken=([^"&]+)/.exec(html)?.[1];

describe("CAS login", () => {
  test("GET /login lists m.login.sso, m.login.cas and m.login.token", async () => {
    const r = await request(server, "GET", `${V3}/login`);
    expect(r.status).toBe(200);
    expect(r.body.flows.map((f: { type: string }) => f.type)).toEqual(["m.login.password", "m.login.sso", "m.login.cas", "m.login.token"]);
    expect(r.body.flows[1].identity_providers).toEqual([{ id: "cas", name: "CAS" }]);
    expectMatchesSpec({ api: "client-server", method: "GET", path: `${V3}/login`, status: 200, body: r.body });
  });

  test("a new user logs in through CAS and exchanges the login token once", async () => {
    const service = await startLogin();
    expect(service).toBe(`https://hs.example/_matrix/client/r0/login/cas/ticket?redirectUrl=${encodeURIComponent(REDIRECT)}`);
    cas.tickets.set("ST-1", { service, xml: casSuccess("New User!", "<cas:displayName>Newt &amp; Co</cas:displayName>") });
    const page = await comeBack(service, "ST-1");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    expect(cas.validations.at(-1)).toEqual({ ticket: "ST-1", service });
    // The stale loginToken of the redirect URL is gone; the new one is last.
    expect(page.body).toContain("https://client.example?p=http%3A%2F%2Fserver&amp;loginToken=");
    expect(page.body).not.toContain("stale");
    const token = tokenIn(page.body)!;

    const login = await request(server, "POST", `${V3}/login`, { type: "m.login.token", token, device_id: "CASDEV", initial_device_display_name: "cas device" });
    expect(login.status).toBe(200);
    expect(login.body.user_id).toBe("@new=20user=21:localhost");
    expect(login.body.device_id).toBe("CASDEV");
    expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/login`, status: 200, body: login.body });
    const profile = await request(server, "GET", `${V3}/profile/${encodeURIComponent("@new=20user=21:localhost")}/displayname`, undefined, bearer(login.body.access_token));
    expect(profile.body.displayname).toBe("Newt & Co");

    // One use only.
    const again = await request(server, "POST", `${V3}/login`, { type: "m.login.token", token });
    expect(again.status).toBe(403);
    expect(again.body.errcode).toBe("M_FORBIDDEN");
  });

  test("the deprecated /login/cas/redirect and an existing user of the same name", async () => {
    const alice = await registerUser(server, "alice");
    const service = await startLogin(`${V3}/login/cas/redirect`);
    cas.tickets.set("ST-2", { service, xml: casSuccess("Alice") });
    const token = tokenIn((await comeBack(service, "ST-2")).body)!;
    const login = await request(server, "POST", `${V3}/login`, { type: "m.login.token", token });
    expect(login.status).toBe(200);
    expect(login.body.user_id).toBe(alice.userId);
  });

  test("a login token expires", async () => {
    const service = await startLogin(`/_matrix/client/r0/login/sso/redirect/cas`);
    cas.tickets.set("ST-3", { service, xml: casSuccess("late") });
    const token = tokenIn((await comeBack(service, "ST-3")).body)!;
    now += LOGIN_TOKEN_LIFETIME_MS + 1;
    const login = await request(server, "POST", `${V3}/login`, { type: "m.login.token", token });
    expect(login.status).toBe(403);
    expect(login.body.errcode).toBe("M_FORBIDDEN");
  });

  test("a ticket the CAS server refuses is 403, and nothing is registered", async () => {
    const service = await startLogin();
    const page = await comeBack(service, "ST-unknown");
    expect(page.status).toBe(403);
    expect(page.body.errcode).toBe("M_FORBIDDEN");
    // A ticket issued for another service URL is refused too.
    cas.tickets.set("ST-4", { service: "https://elsewhere.example/", xml: casSuccess("mallory") });
    expect((await comeBack(service, "ST-4")).status).toBe(403);
    const available = await request(server, "GET", `${V3}/register/available?username=mallory`);
    expect(available.status).toBe(200);
  });

  test("bad input is a clear Matrix error", async () => {
    const noRedirect = await request(server, "GET", `${V3}/login/sso/redirect`);
    expect([noRedirect.status, noRedirect.body.errcode]).toEqual([400, "M_MISSING_PARAM"]);
    const script = await request(server, "GET", `${V3}/login/sso/redirect?redirectUrl=${encodeURIComponent("javascript:alert(1)")}`);
    expect([script.status, script.body.errcode]).toEqual([400, "M_INVALID_PARAM"]);
    const idp = await request(server, "GET", `${V3}/login/sso/redirect/github?redirectUrl=${encodeURIComponent(REDIRECT)}`);
    expect([idp.status, idp.body.errcode]).toEqual([404, "M_NOT_FOUND"]);
    const noTicket = await request(server, "GET", `/_matrix/client/r0/login/cas/ticket?redirectUrl=${encodeURIComponent(REDIRECT)}`);
    expect([noTicket.status, noTicket.body.errcode]).toEqual([400, "M_MISSING_PARAM"]);
    const noToken = await request(server, "POST", `${V3}/login`, { type: "m.login.token" });
    expect([noToken.status, noToken.body.errcode]).toEqual([400, "M_MISSING_PARAM"]);
    const badToken = await request(server, "POST", `${V3}/login`, { type: "m.login.token", token: "made-up" });
    expect([badToken.status, badToken.body.errcode]).toEqual([403, "M_FORBIDDEN"]);
  });

  test("a CAS server that cannot be reached is 502, not a 500", async () => {
    const other = await testServer({ cas: { server_url: "http://127.0.0.1:1/cas" } });
    try {
      const r = await request(other, "GET", `/_matrix/client/r0/login/cas/ticket?ticket=ST-9&redirectUrl=${encodeURIComponent(REDIRECT)}`);
      expect(r.status).toBe(502);
      expect(r.body.errcode).toBe("M_UNKNOWN");
    } finally {
      await other.stop();
    }
  });
});

describe("m.login.sso in user-interactive auth", () => {
  async function deleteDevice(user: { token: string }, deviceId: string, auth?: unknown) {
    return request(server, "POST", `${V3}/delete_devices`, { devices: [deviceId], ...(auth ? { auth } : {}) }, bearer(user.token));
  }

  test("the flow is offered, and SSO as the requester completes it", async () => {
    const bob = await registerUser(server, "bob", "pw", "BOBDEV");
    const first = await deleteDevice(bob, "BOBDEV");
    expect(first.status).toBe(401);
    expect(first.body.flows).toEqual([{ stages: ["m.login.password"] }, { stages: ["m.login.sso"] }]);
    const session = first.body.session as string;
    // Before SSO, the session alone does not do.
    expect((await deleteDevice(bob, "BOBDEV", { session })).status).toBe(401);

    const fallback = await request(server, "GET", `${V3}/auth/m.login.sso/fallback/web?session=${session}`);
    expect(fallback.status).toBe(302);
    const service = new URL(fallback.headers.get("location")!).searchParams.get("service")!;
    expect(service).toBe(`https://hs.example/_matrix/client/r0/login/cas/ticket?session=${session}`);
    cas.tickets.set("ST-UIA", { service, xml: casSuccess("bob") });
    const done = await comeBack(service, "ST-UIA");
    expect(done.status).toBe(200);
    expect(done.body).toContain("authDone");

    const deleted = await deleteDevice(bob, "BOBDEV", { session });
    expect(deleted.status).toBe(200);
  });

  test("SSO as another user is 403 and the operation is not done", async () => {
    const carol = await registerUser(server, "carol", "pw", "CAROLDEV");
    const other = await registerUser(server, "carol2", "pw", "KEEP");
    const session = (await deleteDevice(other, "KEEP")).body.session as string;
    const service = `https://hs.example/_matrix/client/r0/login/cas/ticket?session=${session}`;
    cas.tickets.set("ST-WRONG", { service, xml: casSuccess("carol") });
    expect((await comeBack(service, "ST-WRONG")).status).toBe(200);
    const refused = await deleteDevice(other, "KEEP", { session });
    expect([refused.status, refused.body.errcode]).toEqual([403, "M_FORBIDDEN"]);
    expect((await request(server, "GET", `${V3}/devices/KEEP`, undefined, bearer(other.token))).status).toBe(200);
    expect(carol.userId).toBe("@carol:localhost");
  });

  test("an unknown session is refused at the ticket endpoint", async () => {
    const service = "https://hs.example/_matrix/client/r0/login/cas/ticket?session=nope";
    cas.tickets.set("ST-NOSESSION", { service, xml: casSuccess("bob") });
    const r = await comeBack(service, "ST-NOSESSION");
    expect([r.status, r.body.errcode]).toEqual([400, "M_INVALID_PARAM"]);
  });
});

describe("without cas configured", () => {
  test("only m.login.password, and the SSO paths are unknown", async () => {
    const plain = await testServer({ registration: { enabled: true } });
    try {
      expect((await request(plain, "GET", `${V3}/login`)).body.flows).toEqual([{ type: "m.login.password" }]);
      const r = await request(plain, "GET", `${V3}/login/sso/redirect?redirectUrl=${encodeURIComponent(REDIRECT)}`);
      expect(r.status).toBe(404);
      const token = await request(plain, "POST", `${V3}/login`, { type: "m.login.token", token: "x" });
      expect([token.status, token.body.errcode]).toEqual([400, "M_UNKNOWN"]);
      const uia = await request(plain, "POST", `${V3}/delete_devices`, { devices: ["ANY"] }, bearer((await registerUserOn(plain)).token));
      expect(uia.body.flows).toEqual([{ stages: ["m.login.password"] }]);
    } finally {
      await plain.stop();
    }
  });
});

async function registerUserOn(s: PortierServer) {
  const r = await request(s, "POST", "/_matrix/client/v3/register", { username: "dave", password: "pw", auth: { type: "m.login.dummy" } });
  return { token: r.body.access_token as string };
}

describe("CAS helpers", () => {
  test("names map to localparts by the appendices' rules", () => {
    expect(mapToLocalpart("cas_user!")).toBe("cas_user=21");
    expect(mapToLocalpart("Alice.Smith")).toBe("alice.smith");
    expect(mapToLocalpart("_svc")).toBe("=5fsvc");
    expect(mapToLocalpart("a=b")).toBe("a=3db");
    expect(mapToLocalpart("jörg")).toBe("j=c3=b6rg");
  });

  test("CAS answers are parsed whatever their prefix; failures are undefined", () => {
    expect(parseCasResponse(casSuccess("u1", "<cas:mail>a@b</cas:mail><cas:mail>c@d</cas:mail>"))).toEqual({ user: "u1", attributes: { mail: ["a@b", "c@d"] } });
    expect(parseCasResponse(`<serviceResponse><authenticationSuccess><user><![CDATA[x<y]]></user></authenticationSuccess></serviceResponse>`)?.user).toBe("x<y");
    expect(parseCasResponse(CAS_FAILURE)).toBeUndefined();
    expect(parseCasResponse("not xml")).toBeUndefined();
  });

  test("loginToken replaces the redirect URL's own and keeps the fragment", () => {
    expect(withLoginToken("https://c.example/#/home", "T")).toBe("https://c.example/?loginToken=T#/home");
    expect(withLoginToken("https://c.example/?a=1&loginToken=old&b=2", "T")).toBe("https://c.example/?a=1&b=2&loginToken=T");
  });
});
