// Percent-escapes that do not decode, in every route's path parameters and in a query: decided in
// one place (the request pipeline), 400 M_INVALID_PARAM, never a 500. The sweep reads the routes
// from the running app, so a route added later is covered too.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request, testServer } from "../helpers/server";
import { TestClient } from "../helpers/rooms";
import { badPercentEncoding } from "../../src/api/middleware/http";
import type { PortierServer } from "../../src/app";

const BAD = ["%", "%zz", "%FF", "%E2%82", "%ED%A0%80"];

let server: PortierServer;
let token: string;

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
  token = (await TestClient.register(server, "escapes")).token;
});

afterAll(async () => {
  await server?.stop();
});

describe("badPercentEncoding", () => {
  test("finds what does not decode in the path or the query, and nothing else", () => {
    expect(badPercentEncoding("http://h/_matrix/client/v3/rooms/%21a%3Ab/join")).toBeUndefined();
    expect(badPercentEncoding("http://h/_matrix/client/v3/rooms/!a:b/messages?from=s1&dir=b&filter=%7B%7D")).toBeUndefined();
    expect(badPercentEncoding("http://h/p/%E2%82%AC?q=100%25")).toBeUndefined();
    for (const bad of BAD) {
      expect(badPercentEncoding(`http://h/_matrix/client/v3/rooms/${bad}/join`)).toBe("path");
      expect(badPercentEncoding(`http://h/_matrix/client/v3/sync?since=${bad}`)).toBe("query");
      expect(badPercentEncoding(`http://h/_matrix/client/v3/sync?${bad}=1`)).toBe("query");
    }
  });
});

describe("every route", () => {
  test("a path parameter that does not decode is 400 M_INVALID_PARAM, on every route that has one", async () => {
    const routes = (server.app.routes as { method: string; path: string }[]).filter((r) => r.path.includes(":") && r.method !== "OPTIONS");
    expect(routes.length).toBeGreaterThan(50);
    const failures: string[] = [];
    for (const route of routes) {
      for (const bad of BAD) {
        // Each parameter in turn gets the bad escape; the others a plausible value.
        const params = route.path.split("/").filter((s) => s.startsWith(":"));
        for (const target of params) {
          const path = route.path
            .split("/")
            .map((s) => (s === target ? bad : s.startsWith(":") ? "x" : s === "*" ? "x" : s))
            .join("/");
          const method = route.method === "ALL" ? "GET" : route.method;
          const r = await request(server, method, path, method === "GET" || method === "DELETE" || method === "HEAD" ? undefined : {}, { Authorization: `Bearer ${token}` });
          if (r.status !== 400 || r.body?.errcode !== "M_INVALID_PARAM") failures.push(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
        }
      }
    }
    expect(failures).toEqual([]);
  }, 60_000);

  test("a query that does not decode is 400 M_INVALID_PARAM; well-formed escapes still work", async () => {
    for (const bad of BAD) {
      const r = await request(server, "GET", `/_matrix/client/v3/sync?since=${bad}`, undefined, { Authorization: `Bearer ${token}` });
      expect({ status: r.status, errcode: r.body.errcode }).toEqual({ status: 400, errcode: "M_INVALID_PARAM" });
    }
    const ok = await request(server, "GET", `/_matrix/client/v3/profile/${encodeURIComponent("@escapes:" + server.config.server_name)}`, undefined, { Authorization: `Bearer ${token}` });
    expect(ok.status).toBe(200);
  });
});
