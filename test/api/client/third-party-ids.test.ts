// Third-party identifiers bound through an identity server: POST /account/3pid/bind proxies to the
// identity server's /3pid/bind and records the binding (listed by GET /account/3pid);
// /account/3pid/unbind and /delete call its /3pid/unbind, signed with the server key, on the given
// or the recorded server; deactivation unbinds everything; bad input and identity-server failures
// are Matrix errors; an identity server on a loopback address is refused unless configured.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request, testServer } from "../../helpers/server";
import { TestClient, V3 } from "../../helpers/rooms";
import { expectMatchesSpec } from "../../helpers/openapi";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { decodeBase64 } from "../../../src/protocol/base64";
import { parseXMatrix, verifyRequest } from "../../../src/protocol/x-matrix";

const ID_ACCESS_TOKEN = "swordfish";

/** A fake identity server, as sytest's: validated sessions, bindings, and a log of the requests. */
class FakeIdentityServer {
  readonly sessions = new Map<string, { medium: string; address: string }>();
  readonly bindings = new Map<string, string>();
  readonly requests: { path: string; authorization: string | null; body: any }[] = [];
  /** Set by a test: the next answer to /3pid/unbind is this status (with an M_UNKNOWN body). */
  unbindFailure: number | undefined;
  /** Checks the X-Matrix signature of unbind requests when set. */
  verifier: ((authorization: string | null, body: unknown) => boolean) | undefined;
  private nextSid = 0;
  readonly server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: async (req) => {
      const path = new URL(req.url).pathname;
      const body: any = await req.json().catch(() => undefined);
      const authorization = req.headers.get("authorization");
      this.requests.push({ path, authorization, body });
      if (path === "/_matrix/identity/v2/3pid/bind") {
        if (authorization !== `Bearer ${ID_ACCESS_TOKEN}`) return Response.json({ errcode: "M_UNAUTHORIZED", error: "Unauthorized" }, { status: 401 });
        const session = this.sessions.get(body?.sid);
        if (!session) return Response.json({ errcode: "M_NO_VALID_SESSION", error: "No valid session" }, { status: 400 });
        this.bindings.set(`${session.medium}\0${session.address}`, body.mxid);
        return Response.json({ ...session, mxid: body.mxid, not_before: 0, not_after: 4582425849161, ts: 1_700_000_000_000, signatures: {} });
      }
      if (path === "/_matrix/identity/v2/3pid/unbind") {
        if (this.unbindFailure !== undefined) return Response.json({ errcode: "M_UNKNOWN", error: "broken" }, { status: this.unbindFailure });
        if (this.verifier && !this.verifier(authorization, body)) return Response.json({ errcode: "M_UNAUTHORIZED", error: "bad signature" }, { status: 403 });
        const key = `${body?.threepid?.medium}\0${body?.threepid?.address}`;
        if (this.bindings.get(key) !== body?.mxid) return new Response(null, { status: 404 });
        this.bindings.delete(key);
        return Response.json({});
      }
      return new Response(null, { status: 404 });
    },
  });
  readonly name = `127.0.0.1:${this.server.port}`;

  validate(medium: string, address: string): string {
    const sid = `session_${this.nextSid++}`;
    this.sessions.set(sid, { medium, address });
    return sid;
  }

  lookup(medium: string, address: string): string | undefined {
    return this.bindings.get(`${medium}\0${address}`);
  }
}

let ids: FakeIdentityServer;
let server: PortierServer;
beforeAll(async () => {
  ids = new FakeIdentityServer();
  server = await testServer({ registration: { enabled: true }, identity: { plain_http_servers: [ids.name], allow_loopback: true } });
  const keys = resolve(server.container, Tokens.ServerKeys);
  ids.verifier = (authorization, body) => {
    const header = authorization === null ? undefined : parseXMatrix(authorization);
    if (header === undefined || header.origin !== server.config.server_name || header.key !== keys.keyId) return false;
    return verifyRequest({ header, method: "POST", uri: "/_matrix/identity/v2/3pid/unbind", serverName: ids.name, content: body as never, publicKey: decodeBase64(keys.publicKeyBase64) }).valid;
  };
});
afterAll(async () => {
  await server.stop();
  ids.server.stop(true);
});

async function bind(client: TestClient, address: string, prefix = V3) {
  const sid = ids.validate("email", address);
  return client.call("POST", `${prefix}/account/3pid/bind`, { id_server: ids.name, id_access_token: ID_ACCESS_TOKEN, sid, client_secret: "0123456789Az.=_-" });
}

describe("POST /account/3pid/bind", () => {
  test("binds on the identity server, with the access token and the user's ID, and lists the 3PID", async () => {
    const alice = await TestClient.register(server, "binder");
    expect((await alice.ok("GET", "/account/3pid")).threepids).toEqual([]);
    const sid = ids.validate("email", "alice@example.com");
    const bound = await alice.call("POST", "/_matrix/client/unstable/account/3pid/bind", { id_server: ids.name, id_access_token: ID_ACCESS_TOKEN, sid, client_secret: "secret" });
    expect(bound).toMatchObject({ status: 200, body: {} });
    expect(ids.requests.at(-1)).toEqual({ path: "/_matrix/identity/v2/3pid/bind", authorization: `Bearer ${ID_ACCESS_TOKEN}`, body: { sid, client_secret: "secret", mxid: alice.userId } });
    expect(ids.lookup("email", "alice@example.com")).toBe(alice.userId);
    const listed = await alice.call("GET", "/account/3pid");
    expect(listed.body.threepids).toEqual([{ medium: "email", address: "alice@example.com", validated_at: 1_700_000_000_000, added_at: expect.any(Number) }]);
    expectMatchesSpec({ api: "client-server", method: "GET", path: `${V3}/account/3pid`, status: 200, body: listed.body });
  });

  test("missing and invalid parameters are refused before the identity server is asked", async () => {
    const bob = await TestClient.register(server, "badbinder");
    const before = ids.requests.length;
    const missing = await bob.call("POST", "/account/3pid/bind", { id_server: ids.name, sid: "x", client_secret: "s" });
    expect({ status: missing.status, errcode: missing.body.errcode }).toEqual({ status: 400, errcode: "M_MISSING_PARAM" });
    const badSecret = await bob.call("POST", "/account/3pid/bind", { id_server: ids.name, id_access_token: ID_ACCESS_TOKEN, sid: "x", client_secret: "no spaces" });
    expect({ status: badSecret.status, errcode: badSecret.body.errcode }).toEqual({ status: 400, errcode: "M_INVALID_PARAM" });
    const badServer = await bob.call("POST", "/account/3pid/bind", { id_server: "https://id.example", id_access_token: ID_ACCESS_TOKEN, sid: "x", client_secret: "s" });
    expect({ status: badServer.status, errcode: badServer.body.errcode }).toEqual({ status: 400, errcode: "M_INVALID_PARAM" });
    expect(ids.requests.length).toBe(before);
    expect((await bob.ok("GET", "/account/3pid")).threepids).toEqual([]);
    const unauthenticated = await request(server, "POST", `${V3}/account/3pid/bind`, { id_server: ids.name, id_access_token: ID_ACCESS_TOKEN, sid: "x", client_secret: "s" });
    expect(unauthenticated.status).toBe(401);
  });

  test("the identity server's errors are passed through, and nothing is recorded", async () => {
    const carol = await TestClient.register(server, "refused");
    const wrongToken = await carol.call("POST", "/account/3pid/bind", { id_server: ids.name, id_access_token: "wrong", sid: ids.validate("email", "c@example.com"), client_secret: "s" });
    expect({ status: wrongToken.status, errcode: wrongToken.body.errcode }).toEqual({ status: 401, errcode: "M_UNAUTHORIZED" });
    const noSession = await carol.call("POST", "/account/3pid/bind", { id_server: ids.name, id_access_token: ID_ACCESS_TOKEN, sid: "nope", client_secret: "s" });
    expect({ status: noSession.status, errcode: noSession.body.errcode }).toEqual({ status: 400, errcode: "M_NO_VALID_SESSION" });
    expect((await carol.ok("GET", "/account/3pid")).threepids).toEqual([]);
  });
});

describe("unbinding", () => {
  test("/unbind without id_server unbinds from the recorded server, signed by the homeserver", async () => {
    const dave = await TestClient.register(server, "unbinder");
    expect((await bind(dave, "dave@example.com")).status).toBe(200);
    const unbound = await dave.call("POST", "/_matrix/client/unstable/account/3pid/unbind", { medium: "email", address: "dave@example.com" });
    expect(unbound).toMatchObject({ status: 200, body: { id_server_unbind_result: "success" } });
    expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/account/3pid/unbind`, status: 200, body: unbound.body });
    const sent = ids.requests.at(-1)!;
    expect(sent.path).toBe("/_matrix/identity/v2/3pid/unbind");
    expect(sent.body).toEqual({ mxid: dave.userId, threepid: { medium: "email", address: "dave@example.com" } });
    expect(sent.authorization).toStartWith("X-Matrix ");
    expect(ids.lookup("email", "dave@example.com")).toBeUndefined();
    expect((await dave.ok("GET", "/account/3pid")).threepids).toEqual([]);
    // Nothing recorded any more, and no server named: nothing to unbind from.
    const again = await dave.call("POST", "/account/3pid/unbind", { medium: "email", address: "dave@example.com" });
    expect(again.body).toEqual({ id_server_unbind_result: "no-support" });
  });

  test("/unbind and /delete with id_server unbind there, even what was bound out of band", async () => {
    const erin = await TestClient.register(server, "outofband");
    ids.bindings.set("email\0erin@example.com", erin.userId);
    const deleted = await erin.call("POST", "/account/3pid/delete", { medium: "email", address: "erin@example.com", id_server: ids.name });
    expect(deleted).toMatchObject({ status: 200, body: { id_server_unbind_result: "success" } });
    expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/account/3pid/delete`, status: 200, body: deleted.body });
    expect(ids.lookup("email", "erin@example.com")).toBeUndefined();

    expect((await bind(erin, "erin2@example.com")).status).toBe(200);
    const unbound = await erin.call("POST", "/account/3pid/unbind", { medium: "email", address: "erin2@example.com", id_server: ids.name });
    expect(unbound.body).toEqual({ id_server_unbind_result: "success" });
    expect(ids.lookup("email", "erin2@example.com")).toBeUndefined();
    expect((await erin.ok("GET", "/account/3pid")).threepids).toEqual([]);
    // An identity server that holds no such binding (404) does not support it: no-support.
    const unknown = await erin.call("POST", "/account/3pid/unbind", { medium: "email", address: "never@example.com", id_server: ids.name });
    expect(unknown.body).toEqual({ id_server_unbind_result: "no-support" });
  });

  test("/delete without id_server uses the recorded server", async () => {
    const fay = await TestClient.register(server, "deleter");
    expect((await bind(fay, "fay@example.com")).status).toBe(200);
    const deleted = await fay.call("POST", "/account/3pid/delete", { medium: "email", address: "fay@example.com" });
    expect(deleted.body).toEqual({ id_server_unbind_result: "success" });
    expect(ids.lookup("email", "fay@example.com")).toBeUndefined();
  });

  test("bad input, and an identity server that fails: Matrix errors, the binding kept", async () => {
    const gus = await TestClient.register(server, "failing");
    expect((await bind(gus, "gus@example.com")).status).toBe(200);
    const noMedium = await gus.call("POST", "/account/3pid/unbind", { address: "gus@example.com" });
    expect({ status: noMedium.status, errcode: noMedium.body.errcode }).toEqual({ status: 400, errcode: "M_MISSING_PARAM" });
    const badMedium = await gus.call("POST", "/account/3pid/delete", { medium: "pigeon", address: "gus@example.com" });
    expect({ status: badMedium.status, errcode: badMedium.body.errcode }).toEqual({ status: 400, errcode: "M_INVALID_PARAM" });
    ids.unbindFailure = 500;
    try {
      const failed = await gus.call("POST", "/account/3pid/unbind", { medium: "email", address: "gus@example.com" });
      expect({ status: failed.status, errcode: failed.body.errcode }).toEqual({ status: 502, errcode: "M_UNKNOWN" });
    } finally {
      ids.unbindFailure = undefined;
    }
    expect(ids.lookup("email", "gus@example.com")).toBe(gus.userId);
    expect((await gus.ok("GET", "/account/3pid")).threepids.map((t: { address: string }) => t.address)).toEqual(["gus@example.com"]);
  });
});

describe("account deactivation", () => {
  test("unbinds every bound 3PID", async () => {
    const hal = await TestClient.register(server, "deactivated");
    expect((await bind(hal, "hal@example.com")).status).toBe(200);
    expect((await bind(hal, "hal2@example.com")).status).toBe(200);
    const first = await hal.call("POST", "/account/deactivate", {});
    const auth = { type: "m.login.password", identifier: { type: "m.id.user", user: hal.userId }, password: "pw", session: first.body.session };
    const done = await hal.call("POST", "/account/deactivate", { auth });
    expect(done).toMatchObject({ status: 200, body: { id_server_unbind_result: "success" } });
    expect(ids.lookup("email", "hal@example.com")).toBeUndefined();
    expect(ids.lookup("email", "hal2@example.com")).toBeUndefined();
  });
});

describe("identity servers on loopback", () => {
  test("are refused by default", async () => {
    const strict = await testServer({ registration: { enabled: true }, identity: { plain_http_servers: [ids.name] } });
    try {
      const ivy = await TestClient.register(strict, "strict");
      const before = ids.requests.length;
      const refused = await bind(ivy, "ivy@example.com");
      expect({ status: refused.status, errcode: refused.body.errcode }).toEqual({ status: 400, errcode: "M_SERVER_NOT_TRUSTED" });
      const unbind = await ivy.call("POST", "/account/3pid/unbind", { medium: "email", address: "ivy@example.com", id_server: "localhost:1" });
      expect({ status: unbind.status, errcode: unbind.body.errcode }).toEqual({ status: 400, errcode: "M_SERVER_NOT_TRUSTED" });
      expect(ids.requests.length).toBe(before);
      expect((await ivy.ok("GET", "/account/3pid")).threepids).toEqual([]);
    } finally {
      await strict.stop();
    }
  });
});
