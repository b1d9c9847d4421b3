// Registration's m.login.recaptcha stage against a fake siteverify API (the stage and its public key
// listed only when configured; a wrong answer refused with M_UNAUTHORIZED; a required captcha heads
// the flow), and password login with a 3PID bound to the account (m.id.thirdparty identifiers and
// the deprecated medium/address fields).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request, testServer } from "../../helpers/server";
import { registerUser } from "../../helpers/accounts";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { SqlThreepidBindingStore } from "../../../src/storage/tables/threepid-bindings";

const V3 = "/_matrix/client/v3";

/** Google's siteverify API as far as Portier uses it: a form POST of secret and response. */
class FakeSiteverify {
  readonly requests: Record<string, string>[] = [];
  /** Answers 500 while set. */
  broken = false;
  readonly server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (req) => {
      const form = Object.fromEntries(new URLSearchParams(await req.text()));
      this.requests.push(form);
      if (this.broken) return new Response("oops", { status: 500 });
      return Response.json({ success: form.secret === "private" && form.response === "good-response" });
    },
  });
  get url() {
    return `http://127.0.0.1:${this.server.port}/recaptcha/api/siteverify`;
  }
}

let siteverify: FakeSiteverify;
beforeAll(() => {
  siteverify = new FakeSiteverify();
});
afterAll(() => {
  siteverify.server.stop(true);
});

const register = (server: PortierServer, body: unknown) => request(server, "POST", `${V3}/register`, body);

describe("m.login.recaptcha, required", () => {
  let server: PortierServer;
  beforeAll(async () => {
    server = await testServer({ registration: { enabled: true, recaptcha: { public_key: "public", private_key: "private", siteverify_api: siteverify.url } } });
  });
  afterAll(() => server.stop());

  test("the flow asks for the captcha and gives the public key", async () => {
    const r = await register(server, { username: "cap1", password: "pw" });
    expect(r.status).toBe(401);
    expect(r.body.flows).toEqual([{ stages: ["m.login.recaptcha"] }]);
    expect(r.body.params).toEqual({ "m.login.recaptcha": { public_key: "public" } });
    // The dummy stage alone no longer registers anyone.
    const dummy = await register(server, { username: "cap1", password: "pw", auth: { type: "m.login.dummy", session: r.body.session } });
    expect(dummy.status).toBe(401);
  });

  test("a wrong answer is M_UNAUTHORIZED and registers nobody; the right one registers", async () => {
    const first = await register(server, { username: "cap2", password: "pw" });
    const wrong = await register(server, { username: "cap2", password: "pw", auth: { type: "m.login.recaptcha", response: "bad", session: first.body.session } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.errcode).toBe("M_UNAUTHORIZED");
    expect(wrong.body.completed).toEqual([]);
    expect(siteverify.requests.at(-1)).toMatchObject({ secret: "private", response: "bad" });
    expect((await request(server, "GET", `${V3}/register/available?username=cap2`)).status).toBe(200);

    const right = await register(server, { auth: { type: "m.login.recaptcha", response: "good-response", session: first.body.session } });
    expect(right.status).toBe(200);
    expect(right.body.user_id).toBe("@cap2:localhost");
  });

  test("a missing response is M_MISSING_PARAM; a broken captcha service is 502", async () => {
    const first = await register(server, { username: "cap3", password: "pw" });
    const missing = await register(server, { auth: { type: "m.login.recaptcha", session: first.body.session } });
    expect([missing.status, missing.body.errcode]).toEqual([401, "M_MISSING_PARAM"]);
    siteverify.broken = true;
    try {
      const broken = await register(server, { auth: { type: "m.login.recaptcha", response: "good-response", session: first.body.session } });
      expect([broken.status, broken.body.errcode]).toEqual([502, "M_UNKNOWN"]);
    } finally {
      siteverify.broken = false;
    }
    expect((await request(server, "GET", `${V3}/register/available?username=cap3`)).status).toBe(200);
  });
});

describe("m.login.recaptcha, not required", () => {
  test("the stage is accepted (and listed as completed) but the dummy flow still registers", async () => {
    const server = await testServer({ registration: { enabled: true, recaptcha: { public_key: "public", private_key: "private", siteverify_api: siteverify.url, required: false } } });
    try {
      const r = await register(server, { username: "opt1", password: "pw", auth: { type: "m.login.recaptcha", response: "good-response" } });
      expect(r.status).toBe(401);
      expect(r.body.completed).toEqual(["m.login.recaptcha"]);
      expect(r.body.flows).toEqual([{ stages: ["m.login.dummy"] }]);
      expect(r.body.params["m.login.recaptcha"].public_key).toBe("public");
      const done = await register(server, { auth: { type: "m.login.dummy", session: r.body.session } });
      expect(done.status).toBe(200);
    } finally {
      await server.stop();
    }
  });

  test("without recaptcha configured the stage is unknown and no params are given", async () => {
    const server = await testServer({ registration: { enabled: true } });
    try {
      const r = await register(server, { username: "opt2", password: "pw", auth: { type: "m.login.recaptcha", response: "good-response" } });
      expect([r.status, r.body.errcode]).toEqual([401, "M_UNRECOGNIZED"]);
      expect(r.body.params).toEqual({});
      expect(siteverify.requests.filter((q) => q.response === "good-response" && q.secret !== "private")).toEqual([]);
    } finally {
      await server.stop();
    }
  });
});

describe("login with a 3PID", () => {
  let server: PortierServer;
  beforeAll(async () => {
    server = await testServer({ registration: { enabled: true } });
    const erin = await registerUser(server, "erin", "erin's password");
    await registerUser(server, "frank", "frank's password");
    const bindings = new SqlThreepidBindingStore(resolve(server.container, Tokens.Database));
    await bindings.addBinding({ userId: erin.userId, medium: "email", address: "erin@example.com", idServer: "id.example", validatedAt: 1, addedAt: 1 });
    // One address bound to two accounts: which one is meant cannot be told.
    for (const userId of [erin.userId, "@frank:localhost"]) {
      await bindings.addBinding({ userId, medium: "email", address: "shared@example.com", idServer: "id.example", validatedAt: 1, addedAt: 1 });
    }
  });
  afterAll(() => server.stop());

  const login = (body: Record<string, unknown>) => request(server, "POST", `${V3}/login`, { type: "m.login.password", ...body });

  test("with an m.id.thirdparty identifier, the address in any case", async () => {
    const r = await login({ identifier: { type: "m.id.thirdparty", medium: "email", address: "Erin@Example.com" }, password: "erin's password" });
    expect(r.status).toBe(200);
    expect(r.body.user_id).toBe("@erin:localhost");
  });

  test("with the deprecated medium and address", async () => {
    const r = await login({ medium: "email", address: "erin@example.com", password: "erin's password" });
    expect(r.status).toBe(200);
    expect(r.body.user_id).toBe("@erin:localhost");
  });

  test("a wrong password, an unknown or shared address: 403 M_FORBIDDEN alike", async () => {
    for (const body of [
      { identifier: { type: "m.id.thirdparty", medium: "email", address: "erin@example.com" }, password: "wrong" },
      { identifier: { type: "m.id.thirdparty", medium: "email", address: "nobody@example.com" }, password: "erin's password" },
      { identifier: { type: "m.id.thirdparty", medium: "email", address: "shared@example.com" }, password: "erin's password" },
    ]) {
      const r = await login(body);
      expect([r.status, r.body.errcode]).toEqual([403, "M_FORBIDDEN"]);
    }
  });

  test("missing medium or address is M_MISSING_PARAM; an unknown identifier type M_UNKNOWN", async () => {
    const noAddress = await login({ identifier: { type: "m.id.thirdparty", medium: "email" }, password: "x" });
    expect([noAddress.status, noAddress.body.errcode]).toEqual([400, "M_MISSING_PARAM"]);
    const noMedium = await login({ address: "erin@example.com", password: "x" });
    expect([noMedium.status, noMedium.body.errcode]).toEqual([400, "M_MISSING_PARAM"]);
    const unknown = await login({ identifier: { type: "m.id.carrier_pigeon" }, password: "x" });
    expect([unknown.status, unknown.body.errcode]).toEqual([400, "M_UNKNOWN"]);
  });
});
