// Email addresses validated by Portier itself, against a fake SMTP server: requestToken mails a
// link, following it validates the session; registration's m.login.email.identity stage and
// POST /account/3pid/add (and the deprecated POST /account/3pid) add the address to the account,
// which then logs in with it; addresses in use are refused; repeated requests follow send_attempt;
// bad input and a mail server that cannot be reached are clear Matrix errors; without `email`
// configured, nothing is offered.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request, testServer } from "../../helpers/server";
import { bearer, registerUser } from "../../helpers/accounts";
import { FakeSmtpServer } from "../../helpers/fake-smtp";
import { expectMatchesSpec } from "../../helpers/openapi";
import type { PortierServer } from "../../../src/app";

const V3 = "/_matrix/client/v3";

let smtp: FakeSmtpServer;
let server: PortierServer;

beforeAll(async () => {
  // HELO only, as sytest's mail server: Portier falls back from EHLO.
  smtp = new FakeSmtpServer({ heloOnly: true });
  server = await testServer({ registration: { enabled: true }, email: { smtp_host: "127.0.0.1", smtp_port: smtp.port, notif_from: "Portier <noreply@hs.example>" } });
});
afterAll(async () => {
  await server.stop();
  smtp.stop();
});

/** Requests a token, reads the mail and follows its link: the validated sid. */
async function validate(path: string, email: string, clientSecret: string, follow = true): Promise<string> {
  const r = await request(server, "POST", `${V3}${path}`, { client_secret: clientSecret, email, send_attempt: 1 });
  expect(r.status).toBe(200);
  expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}${path}`, status: 200, body: r.body });
  const mail = await smtp.nextMail();
  expect(mail.to).toBe(`<${email.toLowerCase()}>`);
  expect(mail.from).toBe("<noreply@hs.example>");
  const link = /(http\S*)/.exec(mail.text)![1]!;
  if (follow) {
    const url = new URL(link);
    const page = await request(server, "GET", `${url.pathname}${url.search}`);
    expect(page.status).toBe(200);
    expect(page.body).toContain("validated");
  }
  return r.body.sid;
}

describe("registering with an email address", () => {
  test("the flow is offered, and a validated address registers and logs in", async () => {
    const first = await request(server, "POST", `${V3}/register`, { username: "mailer", password: "pw", device_id: "DEV" });
    expect(first.status).toBe(401);
    expect(first.body.flows).toEqual([{ stages: ["m.login.dummy"] }, { stages: ["m.login.email.identity"] }]);

    const sid = await validate("/register/email/requestToken", "Mailer@Example.com", "secret-1");
    const done = await request(server, "POST", `${V3}/register`, {
      auth: { type: "m.login.email.identity", session: first.body.session, threepid_creds: { sid, client_secret: "secret-1" } },
      username: "mailer",
      password: "pw",
      device_id: "DEV",
    });
    expect(done.status).toBe(200);
    expect(done.body.user_id).toBe("@mailer:localhost");
    const listed = await request(server, "GET", `${V3}/account/3pid`, undefined, bearer(done.body.access_token));
    expect(listed.body.threepids.map((t: { medium: string; address: string }) => [t.medium, t.address])).toEqual([["email", "mailer@example.com"]]);

    const login = await request(server, "POST", `${V3}/login`, { type: "m.login.password", identifier: { type: "m.id.thirdparty", medium: "email", address: "MAILER@example.com" }, password: "pw" });
    expect(login.status).toBe(200);
    expect(login.body.user_id).toBe("@mailer:localhost");

    // The address is taken now.
    const again = await request(server, "POST", `${V3}/register/email/requestToken`, { client_secret: "secret-2", email: "mailer@example.com", send_attempt: 1 });
    expect([again.status, again.body.errcode]).toEqual([400, "M_THREEPID_IN_USE"]);
  });

  test("an address whose link was not followed does not complete the stage", async () => {
    const sid = await validate("/register/email/requestToken", "lazy@example.com", "secret-3", false);
    const r = await request(server, "POST", `${V3}/register`, { username: "lazy", password: "pw", auth: { type: "m.login.email.identity", threepid_creds: { sid, client_secret: "secret-3" } } });
    expect([r.status, r.body.errcode]).toEqual([401, "M_UNAUTHORIZED"]);
    // Nor does another client secret.
    const other = await request(server, "POST", `${V3}/register`, { username: "lazy", password: "pw", auth: { type: "m.login.email.identity", threepid_creds: { sid, client_secret: "guess" } } });
    expect([other.status, other.body.errcode]).toEqual([401, "M_UNAUTHORIZED"]);
    expect((await request(server, "GET", `${V3}/register/available?username=lazy`)).status).toBe(200);
  });

  test("a wrong token in the link validates nothing", async () => {
    await request(server, "POST", `${V3}/register/email/requestToken`, { client_secret: "secret-4", email: "tok@example.com", send_attempt: 1 });
    const link = new URL(/(http\S*)/.exec((await smtp.nextMail()).text)![1]!);
    link.searchParams.set("token", "wrong");
    const page = await request(server, "GET", `${link.pathname}${link.search}`);
    expect(page.status).toBe(400);
  });

  test("the same send_attempt gives the same sid without another email; a higher one mails again", async () => {
    const body = { client_secret: "secret-5", email: "twice@example.com", send_attempt: 1 };
    const a = await request(server, "POST", `${V3}/register/email/requestToken`, body);
    await smtp.nextMail();
    const count = smtp.mails.length;
    const b = await request(server, "POST", `${V3}/register/email/requestToken`, body);
    expect(b.body.sid).toBe(a.body.sid);
    expect(smtp.mails.length).toBe(count);
    const c = await request(server, "POST", `${V3}/register/email/requestToken`, { ...body, send_attempt: 2 });
    expect(c.body.sid).toBe(a.body.sid);
    await smtp.nextMail();
    expect(smtp.mails.length).toBe(count + 1);
  });

  test("bad input is a clear Matrix error", async () => {
    const cases: [unknown, string][] = [
      [{ client_secret: "bad secret!", email: "a@example.com", send_attempt: 1 }, "M_INVALID_PARAM"],
      [{ client_secret: "ok", email: "not-an-address", send_attempt: 1 }, "M_INVALID_PARAM"],
      [{ client_secret: "ok", email: "a@example.com" }, "M_MISSING_PARAM"],
      [{ client_secret: "ok", email: "a@example.com", send_attempt: 1, next_link: "javascript:alert(1)" }, "M_INVALID_PARAM"],
    ];
    for (const [body, errcode] of cases) {
      const r = await request(server, "POST", `${V3}/register/email/requestToken`, body);
      expect([r.status, r.body.errcode]).toEqual([400, errcode]);
    }
    const stage = await request(server, "POST", `${V3}/register`, { username: "x1", password: "pw", auth: { type: "m.login.email.identity" } });
    expect([stage.status, stage.body.errcode]).toEqual([401, "M_MISSING_PARAM"]);
  });
});

describe("adding an email address to an account", () => {
  test("POST /account/3pid/add asks for the password, then adds; the address is then in use", async () => {
    const gina = await registerUser(server, "gina", "gina-pw");
    const sid = await validate("/account/3pid/email/requestToken", "gina@example.com", "secret-6");
    const challenge = await request(server, "POST", `${V3}/account/3pid/add`, { client_secret: "secret-6", sid }, bearer(gina.token));
    expect(challenge.status).toBe(401);
    const added = await request(server, "POST", `${V3}/account/3pid/add`, { client_secret: "secret-6", sid, auth: { type: "m.login.password", session: challenge.body.session, identifier: { type: "m.id.user", user: "gina" }, password: "gina-pw" } }, bearer(gina.token));
    expect(added.status).toBe(200);
    expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/account/3pid/add`, status: 200, body: added.body });

    // Another account cannot take it, even with a validated session of its own.
    const hank = await registerUser(server, "hank", "hank-pw");
    const inUse = await request(server, "POST", `${V3}/account/3pid/email/requestToken`, { client_secret: "secret-7", email: "gina@example.com", send_attempt: 1 });
    expect([inUse.status, inUse.body.errcode]).toEqual([400, "M_THREEPID_IN_USE"]);
    const stolen = await request(server, "POST", `${V3}/account/3pid`, { three_pid_creds: { sid, client_secret: "secret-6", id_server: "id.example", id_access_token: "x" } }, bearer(hank.token));
    expect([stolen.status, stolen.body.errcode]).toEqual([400, "M_THREEPID_IN_USE"]);

    // Deleting frees it; logging in with it then fails.
    const deleted = await request(server, "POST", `${V3}/account/3pid/delete`, { medium: "email", address: "gina@example.com" }, bearer(gina.token));
    expect(deleted.status).toBe(200);
    expect((await request(server, "GET", `${V3}/account/3pid`, undefined, bearer(gina.token))).body.threepids).toEqual([]);
    const login = await request(server, "POST", `${V3}/login`, { type: "m.login.password", medium: "email", address: "gina@example.com", password: "gina-pw" });
    expect(login.status).toBe(403);
  });

  test("the deprecated POST /account/3pid adds a session this server validated; an unvalidated one is M_THREEPID_AUTH_FAILED", async () => {
    const ivy = await registerUser(server, "ivy", "ivy-pw");
    const sid = await validate("/account/3pid/email/requestToken", "ivy@example.com", "secret-8");
    const added = await request(server, "POST", `${V3}/account/3pid`, { three_pid_creds: { sid, client_secret: "secret-8", id_server: "id.example", id_access_token: "x" } }, bearer(ivy.token));
    expect(added.status).toBe(200);
    const login = await request(server, "POST", `${V3}/login`, { type: "m.login.password", medium: "email", address: "ivy@example.com", password: "ivy-pw" });
    expect(login.body.user_id).toBe("@ivy:localhost");

    const unknown = await request(server, "POST", `${V3}/account/3pid`, { three_pid_creds: { sid: "nope", client_secret: "secret-8" } }, bearer(ivy.token));
    expect([unknown.status, unknown.body.errcode]).toEqual([403, "M_THREEPID_AUTH_FAILED"]);
    const missing = await request(server, "POST", `${V3}/account/3pid`, {}, bearer(ivy.token));
    expect([missing.status, missing.body.errcode]).toEqual([400, "M_MISSING_PARAM"]);
  });

  test("deactivating the account frees its addresses", async () => {
    const jo = await registerUser(server, "jo", "jo-pw");
    const sid = await validate("/account/3pid/email/requestToken", "jo@example.com", "secret-9");
    expect((await request(server, "POST", `${V3}/account/3pid`, { three_pid_creds: { sid, client_secret: "secret-9" } }, bearer(jo.token))).status).toBe(200);
    const gone = await request(server, "POST", `${V3}/account/deactivate`, { auth: { type: "m.login.password", identifier: { type: "m.id.user", user: "jo" }, password: "jo-pw" } }, bearer(jo.token));
    expect(gone.status).toBe(200);
    const free = await request(server, "POST", `${V3}/account/3pid/email/requestToken`, { client_secret: "secret-10", email: "jo@example.com", send_attempt: 1 });
    expect(free.status).toBe(200);
    await smtp.nextMail();
  });
});

describe("failures and configuration", () => {
  test("a mail server that cannot be reached is 502, and the session is not made", async () => {
    const broken = await testServer({ registration: { enabled: true }, email: { smtp_host: "127.0.0.1", smtp_port: 1 } });
    try {
      const r = await request(broken, "POST", `${V3}/register/email/requestToken`, { client_secret: "s", email: "a@example.com", send_attempt: 1 });
      expect([r.status, r.body.errcode]).toEqual([502, "M_UNKNOWN"]);
    } finally {
      await broken.stop();
    }
  });

  test("without email configured: no flow, and requestToken is M_THREEPID_MEDIUM_NOT_SUPPORTED", async () => {
    const plain = await testServer({ registration: { enabled: true } });
    try {
      const flows = await request(plain, "POST", `${V3}/register`, { username: "p", password: "pw" });
      expect(flows.body.flows).toEqual([{ stages: ["m.login.dummy"] }]);
      const r = await request(plain, "POST", `${V3}/register/email/requestToken`, { client_secret: "s", email: "a@example.com", send_attempt: 1 });
      expect([r.status, r.body.errcode]).toEqual([400, "M_THREEPID_MEDIUM_NOT_SUPPORTED"]);
      const stage = await request(plain, "POST", `${V3}/register`, { username: "p", password: "pw", auth: { type: "m.login.email.identity", threepid_creds: { sid: "x", client_secret: "y" } } });
      expect([stage.status, stage.body.errcode]).toEqual([401, "M_UNRECOGNIZED"]);
    } finally {
      await plain.stop();
    }
  });
});
