import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import tls from "node:tls";
import type { Config } from "../../../src/config/schema";
import { LosslessNumber, parseJson } from "../../../src/protocol/canonical-json";
import type { JsonValue } from "../../../src/protocol/json";
import { signingKeyFromSeed } from "../../../src/protocol/signing/keys";
import { parseXMatrix, verifyRequest } from "../../../src/protocol/x-matrix";
import { FederationUnreachableError, RemoteMatrixError } from "../../../src/services/federation/contracts";
import { ServerNameResolver, type ResolvedServer } from "../../../src/services/federation/discovery";
import { createHttpFederationClient, HttpFederationClient, type FederationTransportConfig } from "../../../src/services/federation/federation-client";
import { generateSelfSignedCertificate, generateTestCertificateAuthority, issueCertificate, type CertificateFiles } from "../../../src/services/federation/tls-certificate";
import { ServerKeyService } from "../../../src/services/keys/server-keys";
import { freePort } from "../../helpers/net";
import { tempDir } from "../../helpers/server";

const ORIGIN = "origin.test";
const key = signingKeyFromSeed("fed1", Uint8Array.from({ length: 32 }, (_, i) => (i * 13 + 5) & 0xff));
const keys = new ServerKeyService({ server_name: ORIGIN, key_valid_for_ms: 3600_000, old_signing_keys: {} } as unknown as Config, { now: () => 0 }, key);

interface Received {
  method: string;
  uri: string;
  host: string | null;
  contentType: string | null;
  authorization: string | null;
  userAgent: string | null;
  body: string;
}

/** A homeserver stand-in: records each request and answers by path. */
function peerHandler(received: Received[]) {
  return async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const body = await request.text();
    received.push({
      method: request.method,
      uri: url.pathname + url.search,
      host: request.headers.get("host"),
      contentType: request.headers.get("content-type"),
      authorization: request.headers.get("authorization"),
      userAgent: request.headers.get("user-agent"),
      body,
    });
    const path = url.pathname;
    if (path.startsWith("/_matrix/federation/v1/echo")) return Response.json({ ok: true, path });
    if (path === "/_matrix/federation/v1/forbidden") return Response.json({ errcode: "M_FORBIDDEN", error: "not allowed", retry_hint: 3 }, { status: 403 });
    if (path === "/_matrix/federation/v1/limited") return Response.json({ errcode: "M_LIMIT_EXCEEDED", error: "slow down", retry_after_ms: 1500 }, { status: 429 });
    if (path === "/_matrix/federation/v1/custom") return Response.json({ errcode: "ORG_EXAMPLE_CUSTOM" }, { status: 400 });
    if (path === "/_matrix/federation/v1/method") return new Response("Method Not Allowed", { status: 405 });
    if (path === "/_matrix/federation/v1/broken") return new Response("<html>oops</html>", { status: 502 });
    if (path === "/_matrix/federation/v1/errcode-not-string") return Response.json({ errcode: 7 }, { status: 400 });
    if (path === "/_matrix/federation/v1/not-json") return new Response("<html>hello</html>", { status: 200 });
    if (path === "/_matrix/federation/v1/send_join_v1") return Response.json([200, { state: [] }]);
    if (path === "/_matrix/federation/v1/float") return new Response('{"weight":1.0,"big":18446744073709551616,"n":3}', { headers: { "content-type": "application/json" } });
    if (path === "/_matrix/federation/v1/redirect") return new Response(null, { status: 302, headers: { location: "/_matrix/federation/v1/echo" } });
    if (path === "/_matrix/federation/v1/huge") return Response.json({ filler: "x".repeat(10_000) });
    if (path === "/_matrix/federation/v1/slow") {
      await Bun.sleep(3000);
      return Response.json({});
    }
    return new Response("", { status: 404 });
  };
}

const dir = tempDir("portier-fedclient-");
let ca: CertificateFiles;
let leaf: CertificateFiles;
let tlsServer: ReturnType<typeof Bun.serve>;
let plainServer: ReturnType<typeof Bun.serve>;
const tlsReceived: Received[] = [];
const plainReceived: Received[] = [];
let tlsName: string;
let plainName: string;

const baseConfig: FederationTransportConfig = {
  verify_tls: true,
  tls_skip_verify_servers: [],
  plain_http_servers: [],
  request_timeout_ms: 10_000,
};

/** Step 1 only (IP literals): any well-known or SRV lookup is a test failure. */
const ipOnlyResolver = () =>
  new ServerNameResolver({
    fetchWellKnown: async (hostname) => {
      throw new Error(`unexpected well-known lookup of ${hostname}`);
    },
    resolveSrv: async (name) => {
      throw new Error(`unexpected SRV lookup of ${name}`);
    },
  });

function client(config: Partial<FederationTransportConfig> = {}, extra: { resolver?: { resolve(name: string): Promise<ResolvedServer> }; maxResponseBytes?: number } = {}) {
  return new HttpFederationClient({
    serverName: ORIGIN,
    signer: keys,
    config: { ...baseConfig, ...config },
    resolver: extra.resolver ?? ipOnlyResolver(),
    maxResponseBytes: extra.maxResponseBytes,
  });
}

const trusted = () => client({ tls_trusted_ca_path: ca.certificatePath });

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the request to fail");
}

beforeAll(() => {
  ca = generateTestCertificateAuthority(dir);
  leaf = issueCertificate(ca, dir, "peer", { ipAddresses: ["127.0.0.1"], dnsNames: ["peer.test"] });
  const tlsOptions = { cert: readFileSync(leaf.certificatePath, "utf8"), key: readFileSync(leaf.privateKeyPath, "utf8") };
  tlsServer = Bun.serve({ hostname: "127.0.0.1", port: 0, tls: tlsOptions, fetch: peerHandler(tlsReceived) });
  plainServer = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: peerHandler(plainReceived) });
  tlsName = `127.0.0.1:${tlsServer.port}`;
  plainName = `127.0.0.1:${plainServer.port}`;
});

afterAll(() => {
  tlsServer.stop(true);
  plainServer.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

describe("HttpFederationClient: TLS", () => {
  test("a certificate issued by the CA in tls_trusted_ca_path is accepted", async () => {
    expect(await trusted().request("GET", tlsName, "/_matrix/federation/v1/echo")).toEqual({ ok: true, path: "/_matrix/federation/v1/echo" });
  });

  test("without that CA the certificate is refused: FederationUnreachableError, nothing sent", async () => {
    const before = tlsReceived.length;
    const error = await rejection(client().request("GET", tlsName, "/_matrix/federation/v1/echo"));
    expect(error).toBeInstanceOf(FederationUnreachableError);
    expect((error as FederationUnreachableError).destination).toBe(tlsName);
    expect((error as FederationUnreachableError).status).toBe(502);
    expect((error as Error).message).toContain(tlsName);
    expect(tlsReceived.length).toBe(before);
  });

  test("tls_skip_verify_servers skips the check for the servers it names only", async () => {
    expect(await client({ tls_skip_verify_servers: [tlsName] }).request("GET", tlsName, "/_matrix/federation/v1/echo")).toMatchObject({ ok: true });
    expect(await rejection(client({ tls_skip_verify_servers: ["other.test"] }).request("GET", tlsName, "/_matrix/federation/v1/echo"))).toBeInstanceOf(
      FederationUnreachableError,
    );
  });

  test("verify_tls: false skips the check for every server", async () => {
    expect(await client({ verify_tls: false }).request("GET", tlsName, "/_matrix/federation/v1/echo")).toMatchObject({ ok: true });
  });

  test("a self-signed certificate named in tls_trusted_ca_path is trusted", async () => {
    const selfSigned = generateSelfSignedCertificate(dir, "self", { ipAddresses: ["127.0.0.1"] });
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: readFileSync(selfSigned.certificatePath, "utf8"), key: readFileSync(selfSigned.privateKeyPath, "utf8") },
      fetch: peerHandler([]),
    });
    try {
      const name = `127.0.0.1:${server.port}`;
      expect(await client({ tls_trusted_ca_path: selfSigned.certificatePath }).request("GET", name, "/_matrix/federation/v1/echo")).toMatchObject({ ok: true });
      expect(await rejection(trusted().request("GET", name, "/_matrix/federation/v1/echo"))).toBeInstanceOf(FederationUnreachableError);
    } finally {
      server.stop(true);
    }
  });

  test("a delegated name: the certificate is checked against tlsServerName from the resolver", async () => {
    const resolverTo = (tlsServerName: string) => ({
      resolve: async (serverName: string): Promise<ResolvedServer> => ({ serverName, host: "127.0.0.1", port: tlsServer.port!, hostHeader: "peer.test", tlsServerName }),
    });
    const ok = client({ tls_trusted_ca_path: ca.certificatePath }, { resolver: resolverTo("peer.test") });
    expect(await ok.request("GET", "peer.test", "/_matrix/federation/v1/echo")).toMatchObject({ ok: true });
    expect(tlsReceived.at(-1)?.host).toBe("peer.test");
    const wrongName = client({ tls_trusted_ca_path: ca.certificatePath }, { resolver: resolverTo("wrong.test") });
    const error = await rejection(wrongName.request("GET", "peer.test", "/_matrix/federation/v1/echo"));
    expect(error).toBeInstanceOf(FederationUnreachableError);
  });

  test("SNI: sent for a hostname, not for an IP literal (spec 'TLS')", async () => {
    const seen: (string | false)[] = [];
    const server = tls.createServer({ cert: readFileSync(leaf.certificatePath, "utf8"), key: readFileSync(leaf.privateKeyPath, "utf8") }, (socket) => {
      seen.push((socket as tls.TLSSocket & { servername?: string | false }).servername ?? false);
      socket.on("data", () => socket.end('HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}'));
      socket.on("error", () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const byName = {
        resolve: async (serverName: string): Promise<ResolvedServer> => ({ serverName, host: "127.0.0.1", port, hostHeader: serverName, tlsServerName: "peer.test" }),
      };
      expect(await client({ tls_trusted_ca_path: ca.certificatePath }, { resolver: byName }).request("GET", "peer.test", "/_matrix/federation/v1/version")).toEqual({});
      expect(await trusted().request("GET", `127.0.0.1:${port}`, "/_matrix/federation/v1/version")).toEqual({});
      expect(seen).toEqual(["peer.test", false]);
    } finally {
      server.close();
    }
  });

  test("an unreadable tls_trusted_ca_path fails at construction", () => {
    expect(() => client({ tls_trusted_ca_path: `${dir}/missing.pem` })).toThrow("tls_trusted_ca_path");
    expect(() => client({ tls_trusted_ca_path: leaf.privateKeyPath })).toThrow("no PEM certificate");
  });
});

describe("HttpFederationClient: plain HTTP", () => {
  test("plain_http_servers are reached over http", async () => {
    expect(await client({ plain_http_servers: [plainName] }).request("GET", plainName, "/_matrix/federation/v1/echo")).toMatchObject({ ok: true });
    expect(plainReceived.at(-1)?.host).toBe(plainName);
  });

  test("anyone else over https: a plain listener does not answer", async () => {
    expect(await rejection(trusted().request("GET", plainName, "/_matrix/federation/v1/echo"))).toBeInstanceOf(FederationUnreachableError);
  });
});

describe("HttpFederationClient: the request", () => {
  test("carries an X-Matrix header that verifies against our public key for the exact uri, query and body", async () => {
    const body = { pdus: [], edus: [{ edu_type: "m.typing", content: { room_id: "!r:origin.test", typing: true } }], note: "é ü 😀" };
    const path = "/_matrix/federation/v1/echo/%21room%3Aorigin.test/%24event";
    const query = { ver: ["10", "11"], q: "it's a test/ü&=?#", empty: "" };
    await trusted().request("PUT", tlsName, path, { body, query });
    const seen = tlsReceived.at(-1)!;
    expect(seen.method).toBe("PUT");
    expect(seen.uri.startsWith(`${path}?ver=10&ver=11&q=`)).toBe(true);
    expect(seen.uri).toContain("&empty=");
    expect(new URL(`https://x${seen.uri}`).searchParams.getAll("ver")).toEqual(["10", "11"]);
    expect(new URL(`https://x${seen.uri}`).searchParams.get("q")).toBe("it's a test/ü&=?#");
    expect(seen.host).toBe(tlsName);
    expect(seen.contentType).toBe("application/json");
    expect(JSON.parse(seen.body)).toEqual(body);

    const header = parseXMatrix(seen.authorization!)!;
    expect(header).toEqual({ origin: ORIGIN, destination: tlsName, key: "ed25519:fed1", sig: header.sig });
    const input = { header, method: seen.method, uri: seen.uri, serverName: tlsName, content: parseJson(seen.body), publicKey: key.publicKey };
    expect(verifyRequest(input)).toEqual({ valid: true });
    // The signature covers what was sent: another uri, body or method does not verify.
    expect(verifyRequest({ ...input, uri: path }).valid).toBe(false);
    expect(verifyRequest({ ...input, content: {} }).valid).toBe(false);
    expect(verifyRequest({ ...input, method: "POST" }).valid).toBe(false);
  });

  test("User-Agent: 'Portier' unless given", async () => {
    await trusted().request("GET", tlsName, "/_matrix/federation/v1/echo");
    expect(tlsReceived.at(-1)!.userAgent).toBe("Portier");
    const { client: wired } = createHttpFederationClient({ serverName: ORIGIN, signer: keys, config: { ...baseConfig, tls_trusted_ca_path: ca.certificatePath }, userAgent: "Portier/9.9" });
    expect(await wired.request("GET", tlsName, "/_matrix/federation/v1/echo")).toMatchObject({ ok: true });
    expect(tlsReceived.at(-1)!.userAgent).toBe("Portier/9.9");
    expect(verifyRequest({ header: parseXMatrix(tlsReceived.at(-1)!.authorization!)!, method: "GET", uri: "/_matrix/federation/v1/echo", serverName: tlsName, publicKey: key.publicKey }).valid).toBe(true);
  });

  test("a GET has no body and signs no content", async () => {
    await trusted().request("GET", tlsName, "/_matrix/federation/v1/echo", { query: { user_id: "@alice:origin.test" } });
    const seen = tlsReceived.at(-1)!;
    expect(seen.body).toBe("");
    expect(seen.contentType).toBeNull();
    expect(seen.uri).toBe("/_matrix/federation/v1/echo?user_id=%40alice%3Aorigin.test");
    const header = parseXMatrix(seen.authorization!)!;
    expect(verifyRequest({ header, method: "GET", uri: seen.uri, serverName: tlsName, publicKey: key.publicKey })).toEqual({ valid: true });
  });

  test("a POST without a body sends (and signs) an empty JSON object", async () => {
    await trusted().request("POST", tlsName, "/_matrix/federation/v1/echo");
    const seen = tlsReceived.at(-1)!;
    expect(seen.body).toBe("{}");
    const header = parseXMatrix(seen.authorization!)!;
    expect(verifyRequest({ header, method: "POST", uri: seen.uri, serverName: tlsName, content: {}, publicKey: key.publicKey })).toEqual({ valid: true });
  });

  test("signed: false sends no Authorization header (key requests)", async () => {
    await trusted().request("GET", tlsName, "/_matrix/federation/v1/echo", { signed: false });
    expect(tlsReceived.at(-1)!.authorization).toBeNull();
  });

  test("a query added to a path that has one already joins with '&'", async () => {
    await trusted().request("GET", tlsName, "/_matrix/federation/v1/echo?a=1", { query: { b: "2" } });
    expect(tlsReceived.at(-1)!.uri).toBe("/_matrix/federation/v1/echo?a=1&b=2");
  });

  test("misuse is a TypeError: a path without '/', a GET with a body", async () => {
    expect(await rejection(trusted().request("GET", tlsName, "_matrix/federation/v1/echo"))).toBeInstanceOf(TypeError);
    expect(await rejection(trusted().request("GET", tlsName, "/_matrix/federation/v1/echo", { body: {} }))).toBeInstanceOf(TypeError);
  });
});

describe("HttpFederationClient: answers", () => {
  test("a 2xx answer is parsed JSON: arrays too, numbers losslessly", async () => {
    expect(await trusted().request("PUT", tlsName, "/_matrix/federation/v1/send_join_v1", { body: {} })).toEqual([200, { state: [] }]);
    const floats = (await trusted().request("GET", tlsName, "/_matrix/federation/v1/float")) as Record<string, JsonValue>;
    expect(floats.weight).toBeInstanceOf(LosslessNumber);
    expect(String(floats.weight)).toBe("1.0");
    expect(String(floats.big)).toBe("18446744073709551616");
    expect(floats.n).toBe(3);
  });

  test("a Matrix error is a RemoteMatrixError with the remote errcode, message, status and extra fields", async () => {
    const error = (await rejection(trusted().request("GET", tlsName, "/_matrix/federation/v1/forbidden"))) as RemoteMatrixError;
    expect(error).toBeInstanceOf(RemoteMatrixError);
    expect([error.errcode, error.status, error.message, error.destination]).toEqual(["M_FORBIDDEN", 403, "not allowed", tlsName]);
    expect(error.extra).toEqual({ retry_hint: 3 });
    const limited = (await rejection(trusted().request("GET", tlsName, "/_matrix/federation/v1/limited"))) as RemoteMatrixError;
    expect(limited.toJSON()).toEqual({ errcode: "M_LIMIT_EXCEEDED", error: "slow down", retry_after_ms: 1500 });
    expect(limited.status).toBe(429);
  });

  test("an errcode we do not know is passed on as it came", async () => {
    const error = (await rejection(trusted().request("GET", tlsName, "/_matrix/federation/v1/custom"))) as RemoteMatrixError;
    expect([error.errcode, error.status]).toEqual(["ORG_EXAMPLE_CUSTOM" as RemoteMatrixError["errcode"], 400]);
  });

  test("without a Matrix error body: M_UNRECOGNIZED for 404/405, M_UNKNOWN otherwise, with the status", async () => {
    const cases: [string, string, number][] = [
      ["/_matrix/federation/v1/nowhere", "M_UNRECOGNIZED", 404],
      ["/_matrix/federation/v1/method", "M_UNRECOGNIZED", 405],
      ["/_matrix/federation/v1/broken", "M_UNKNOWN", 502],
      ["/_matrix/federation/v1/errcode-not-string", "M_UNKNOWN", 400],
      ["/_matrix/federation/v1/redirect", "M_UNKNOWN", 302],
    ];
    for (const [path, errcode, status] of cases) {
      const error = (await rejection(trusted().request("GET", tlsName, path))) as RemoteMatrixError;
      expect(error).toBeInstanceOf(RemoteMatrixError);
      expect([path, error.errcode, error.status]).toEqual([path, errcode, status]);
    }
  });

  test("a 2xx that is not JSON is FederationUnreachableError", async () => {
    const error = await rejection(trusted().request("GET", tlsName, "/_matrix/federation/v1/not-json"));
    expect(error).toBeInstanceOf(FederationUnreachableError);
    expect((error as Error).message).toContain("not JSON");
  });

  test("an answer over maxResponseBytes is FederationUnreachableError", async () => {
    const small = new HttpFederationClient({ serverName: ORIGIN, signer: keys, config: { ...baseConfig, tls_trusted_ca_path: ca.certificatePath }, resolver: ipOnlyResolver(), maxResponseBytes: 1000 });
    expect(await rejection(small.request("GET", tlsName, "/_matrix/federation/v1/huge"))).toBeInstanceOf(FederationUnreachableError);
    expect(await small.request("GET", tlsName, "/_matrix/federation/v1/echo")).toMatchObject({ ok: true });
  });

  test("no answer within the timeout (options.timeoutMs, else request_timeout_ms) is FederationUnreachableError", async () => {
    let started = Date.now();
    const error = await rejection(trusted().request("GET", tlsName, "/_matrix/federation/v1/slow", { timeoutMs: 200 }));
    expect(error).toBeInstanceOf(FederationUnreachableError);
    expect((error as Error).message).toContain("200 ms");
    expect(Date.now() - started).toBeLessThan(2000);

    started = Date.now();
    const viaConfig = client({ tls_trusted_ca_path: ca.certificatePath, request_timeout_ms: 1000 });
    expect(await rejection(viaConfig.request("GET", tlsName, "/_matrix/federation/v1/slow"))).toBeInstanceOf(FederationUnreachableError);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(Date.now() - started).toBeLessThan(2900);
  });

  test("a refused connection, an invalid server name or a failing resolver is FederationUnreachableError", async () => {
    const closedPort = await freePort();
    expect(await rejection(trusted().request("GET", `127.0.0.1:${closedPort}`, "/_matrix/federation/v1/echo"))).toBeInstanceOf(FederationUnreachableError);
    expect(await rejection(trusted().request("GET", "not a server name", "/_matrix/federation/v1/echo"))).toBeInstanceOf(FederationUnreachableError);
    const failing = client({}, { resolver: { resolve: async () => Promise.reject(new Error("dns down")) } });
    const error = await rejection(failing.request("GET", "example.org", "/_matrix/federation/v1/echo"));
    expect(error).toBeInstanceOf(FederationUnreachableError);
    expect((error as Error).message).toContain("dns down");
  });
});
