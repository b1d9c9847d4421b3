// Bodies with a declared Content-Length are read in one go: the limit still holds when the
// declaration understates the body, and an honest one is parsed as before.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { PortierServer } from "../../src/app";
import { testServer } from "../helpers/server";

let server: PortierServer;

beforeAll(async () => {
  server = await testServer({ max_request_body_bytes: 1024 });
});

afterAll(async () => {
  await server?.stop();
});

const post = (body: string, length: number) =>
  server.app.handle(new Request("http://localhost/_matrix/client/v3/login", { method: "POST", headers: { "Content-Type": "application/json", "Content-Length": String(length) }, body }));

test("a body past the limit under a Content-Length that says less: 413 M_TOO_LARGE", async () => {
  const big = JSON.stringify({ type: "m.login.password", pad: "a".repeat(4096) });
  const response = await post(big, 100);
  expect([response.status, ((await response.json()) as { errcode: string }).errcode]).toEqual([413, "M_TOO_LARGE"]);
});

test("a body within the limit with its Content-Length: parsed", async () => {
  const body = JSON.stringify({ type: "m.login.unknown" });
  const response = await post(body, Buffer.byteLength(body));
  // Parsed, so the login type itself is what is refused.
  expect([response.status, ((await response.json()) as { errcode: string }).errcode]).toEqual([400, "M_UNKNOWN"]);
});
