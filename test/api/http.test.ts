import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../src/app";
import { request, testServer } from "../helpers/server";

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ max_request_body_bytes: 2048, well_known: { server: "matrix.example.org:443", client: "https://matrix.example.org" } });
});
afterAll(() => server.stop());

describe("HTTP conventions", () => {
  test("GET /_matrix/client/versions lists r0 and v1 versions, with CORS headers", async () => {
    const r = await request(server, "GET", "/_matrix/client/versions");
    expect(r.status).toBe(200);
    expect(r.body.versions).toContain("r0.6.1");
    expect(r.body.versions).toContain("v1.1");
    expect(typeof r.body.unstable_features).toBe("object");
    expect(r.headers.get("access-control-allow-origin")).toBe("*");
    expect(r.headers.get("content-type")).toContain("application/json");
  });

  test("CORS preflight is answered on any path", async () => {
    const r = await request(server, "OPTIONS", "/_matrix/client/v3/rooms/!a:b/send/m.room.message/1");
    expect(r.status).toBeLessThan(300);
    expect(r.headers.get("access-control-allow-methods")).toContain("PUT");
    expect(r.headers.get("access-control-allow-headers")).toContain("Authorization");
  });

  test("unknown endpoint: 404 M_UNRECOGNIZED", async () => {
    const r = await request(server, "GET", "/_matrix/client/v3/no/such/thing");
    expect(r.status).toBe(404);
    expect(r.body).toEqual({ errcode: "M_UNRECOGNIZED", error: expect.any(String) });
    expect(r.headers.get("access-control-allow-origin")).toBe("*");
  });

  test("known path, wrong method: 405 M_UNRECOGNIZED", async () => {
    const r = await request(server, "DELETE", "/_matrix/client/versions");
    expect(r.status).toBe(405);
    expect(r.body.errcode).toBe("M_UNRECOGNIZED");
    expect(r.headers.get("allow")).toContain("GET");
    const r2 = await request(server, "GET", "/_matrix/key/v2/query");
    expect(r2.status).toBe(405);
  });

  test("a body that is not JSON: 400 M_NOT_JSON", async () => {
    for (const body of ["{not json", "", "\u00ff"]) {
      const r = await request(server, "POST", "/_matrix/key/v2/query", body === "" ? "   " : body);
      expect(r.status).toBe(400);
      expect(r.body.errcode).toBe("M_NOT_JSON");
    }
  });

  test("invalid UTF-8 is M_NOT_JSON", async () => {
    const r = await request(server, "POST", "/_matrix/key/v2/query", new Uint8Array([0x7b, 0xff, 0x7d]));
    expect(r.status).toBe(400);
    expect(r.body.errcode).toBe("M_NOT_JSON");
  });

  test("JSON of the wrong shape: 400 M_BAD_JSON or M_MISSING_PARAM, never 500", async () => {
    const missing = await request(server, "POST", "/_matrix/key/v2/query", {});
    expect(missing.status).toBe(400);
    expect(missing.body.errcode).toBe("M_MISSING_PARAM");
    const wrong = await request(server, "POST", "/_matrix/key/v2/query", { server_keys: 5 });
    expect(wrong.status).toBe(400);
    expect(wrong.body.errcode).toBe("M_BAD_JSON");
    const array = await request(server, "POST", "/_matrix/key/v2/query", [1, 2]);
    expect(array.status).toBe(400);
  });

  test("a body past the configured size: 413 M_TOO_LARGE", async () => {
    const big = JSON.stringify({ server_keys: { x: { y: { pad: "a".repeat(4096) } } } });
    const r = await request(server, "POST", "/_matrix/key/v2/query", big);
    expect(r.status).toBe(413);
    expect(r.body.errcode).toBe("M_TOO_LARGE");
  });

  test("a chunked body (no Content-Length) is read only up to the limit: 413 M_TOO_LARGE, the rest never read", async () => {
    for (const path of ["/_matrix/client/v3/login", "/_matrix/client/v3/register"]) {
      // 32 MiB offered in 64 KiB chunks ("{" then spaces), counted as the server pulls them.
      let pulled = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (pulled >= 32 * 1024 * 1024) return controller.close();
          const chunk = new Uint8Array(65536).fill(0x20);
          if (pulled === 0) chunk[0] = 0x7b;
          pulled += chunk.byteLength;
          controller.enqueue(chunk);
        },
      });
      const request = new Request(`http://localhost${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body });
      expect(request.headers.get("content-length")).toBeNull();
      const response = await server.app.handle(request);
      expect([path, response.status, ((await response.json()) as { errcode: string }).errcode]).toEqual([path, 413, "M_TOO_LARGE"]);
      expect(pulled).toBeLessThan(1024 * 1024);
    }
  });

  test("well-known documents when configured", async () => {
    expect((await request(server, "GET", "/.well-known/matrix/server")).body).toEqual({ "m.server": "matrix.example.org:443" });
    expect((await request(server, "GET", "/.well-known/matrix/client")).body).toEqual({ "m.homeserver": { base_url: "https://matrix.example.org" } });
  });

  test("well-known documents are 404 when not configured", async () => {
    const bare = await testServer();
    try {
      expect((await request(bare, "GET", "/.well-known/matrix/server")).status).toBe(404);
      expect((await request(bare, "GET", "/.well-known/matrix/client")).status).toBe(404);
    } finally {
      await bare.stop();
    }
  });

  test("federation version names Portier", async () => {
    const r = await request(server, "GET", "/_matrix/federation/v1/version");
    expect(r.status).toBe(200);
    expect(r.body.server.name).toBe("Portier");
    expect(r.body.server.version).toMatch(/^\d+\.\d+\.\d+/);
  });
});
