// The foundation endpoints' responses, successes and errors, checked against the spec's OpenAPI.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../src/app";
import { expectMatchesSpec, specOperation } from "../helpers/openapi";
import { request, testServer } from "../helpers/server";

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ server_name: "spec.example", well_known: { server: "spec.example:443", client: "https://spec.example" } });
});
afterAll(() => server.stop());

const cases: [api: "client-server" | "server-server" | "key-server" | undefined, method: string, path: string, body?: unknown][] = [
  ["client-server", "GET", "/_matrix/client/versions"],
  ["key-server", "GET", "/_matrix/key/v2/server"],
  ["key-server", "POST", "/_matrix/key/v2/query", { server_keys: { "spec.example": {} } }],
  ["key-server", "GET", "/_matrix/key/v2/query/spec.example"],
  ["server-server", "GET", "/_matrix/federation/v1/version"],
  [undefined, "GET", "/.well-known/matrix/client"],
  [undefined, "GET", "/.well-known/matrix/server"],
];

describe("responses match the spec's OpenAPI", () => {
  test.each(cases)("%s %s %s", async (api, method, path, body) => {
    expect(specOperation({ api, method, path })).toBeDefined();
    const r = await request(server, method, path, body);
    expect(r.status).toBe(200);
    expectMatchesSpec({ api, method, path, status: r.status, body: r.body });
  });
});
