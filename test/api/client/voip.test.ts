// GET /voip/turnServer: {} without TURN servers (as Synapse answers); time-limited credentials from
// a shared secret (the TURN REST API scheme coturn checks); fixed ones otherwise; a token needed.
import { afterAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { request, testServer } from "../../helpers/server";
import { bearer, registerUser } from "../../helpers/accounts";
import { expectMatchesSpec } from "../../helpers/openapi";
import type { PortierServer } from "../../../src/app";

const started: PortierServer[] = [];
afterAll(async () => {
  for (const s of started) await s.stop();
});

async function serverWith(voip: Record<string, unknown>): Promise<{ server: PortierServer; token: string; userId: string }> {
  const server = await testServer({ registration: { enabled: true }, voip });
  started.push(server);
  const user = await registerUser(server, "caller");
  return { server, token: user.token, userId: user.userId };
}

describe("GET /voip/turnServer", () => {
  test("no TURN server configured: {}", async () => {
    const { server, token } = await serverWith({});
    const r = await request(server, "GET", "/_matrix/client/v3/voip/turnServer", undefined, bearer(token));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({});
    expect((await request(server, "GET", "/_matrix/client/v3/voip/turnServer")).status).toBe(401);
  });

  test("a shared secret: username <expiry>:<user id>, password its HMAC-SHA1, ttl from the lifetime", async () => {
    const uris = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"];
    const { server, token, userId } = await serverWith({ turn_uris: uris, turn_shared_secret: "s3cret", turn_user_lifetime_ms: 3_600_000 });
    const r = await request(server, "GET", "/_matrix/client/r0/voip/turnServer", undefined, bearer(token));
    expect(r.status).toBe(200);
    expectMatchesSpec({ api: "client-server", method: "GET", path: "/_matrix/client/v3/voip/turnServer", status: 200, body: r.body });
    expect(r.body.uris).toEqual(uris);
    expect(r.body.ttl).toBe(3600);
    const [expiry, who] = [r.body.username.slice(0, r.body.username.indexOf(":")), r.body.username.slice(r.body.username.indexOf(":") + 1)];
    expect(who).toBe(userId);
    expect(Math.abs(Number(expiry) - (Date.now() / 1000 + 3600))).toBeLessThan(60);
    expect(r.body.password).toBe(createHmac("sha1", "s3cret").update(r.body.username).digest("base64"));
  });

  test("fixed credentials", async () => {
    const { server, token } = await serverWith({ turn_uris: ["turn:t.example"], turn_username: "u", turn_password: "p" });
    const r = await request(server, "GET", "/_matrix/client/v3/voip/turnServer", undefined, bearer(token));
    expect(r.body).toEqual({ username: "u", password: "p", uris: ["turn:t.example"], ttl: 86400 });
  });
});
