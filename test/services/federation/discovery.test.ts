import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import {
  chooseSrvRecord,
  httpsWellKnownFetcher,
  ServerNameResolutionError,
  ServerNameResolver,
  wellKnownCacheMs,
  type ServerNameResolverOptions,
  type SrvRecord,
  type WellKnownResponse,
} from "../../../src/services/federation/discovery";
import { generateTestCertificateAuthority, issueCertificate } from "../../../src/services/federation/tls-certificate";
import { tempDir } from "../../helpers/server";

const HOUR = 3600_000;

/** A fake network: well-known answers and SRV records by name, every lookup recorded. */
class FakeNetwork {
  readonly wellKnown = new Map<string, WellKnownResponse | (() => Promise<WellKnownResponse | undefined>)>();
  readonly srv = new Map<string, SrvRecord[] | Error>();
  readonly wellKnownCalls: string[] = [];
  readonly srvCalls: string[] = [];
  now = 1_700_000_000_000;

  resolver(options: ServerNameResolverOptions = {}): ServerNameResolver {
    return new ServerNameResolver({
      fetchWellKnown: async (hostname) => {
        this.wellKnownCalls.push(hostname);
        const answer = this.wellKnown.get(hostname);
        return typeof answer === "function" ? answer() : answer;
      },
      resolveSrv: async (name) => {
        this.srvCalls.push(name);
        const records = this.srv.get(name) ?? [];
        if (records instanceof Error) throw records;
        return records;
      },
      clock: { now: () => this.now },
      random: () => 0,
      ...options,
    });
  }

  serveWellKnown(hostname: string, body: unknown, init: { status?: number; headers?: Record<string, string> } = {}): void {
    this.wellKnown.set(hostname, {
      status: init.status ?? 200,
      headers: new Headers(init.headers ?? {}),
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  }
}

const srv = (name: string, port: number, priority = 10, weight = 0): SrvRecord => ({ name, port, priority, weight });

describe("ServerNameResolver: the spec's steps", () => {
  test("1. an IPv4 literal: that address, the port or 8448, Host = the server name, no lookups", async () => {
    const net = new FakeNetwork();
    const resolver = net.resolver();
    expect(await resolver.resolve("192.0.2.7")).toEqual({ serverName: "192.0.2.7", host: "192.0.2.7", port: 8448, hostHeader: "192.0.2.7", tlsServerName: "192.0.2.7" });
    expect(await resolver.resolve("192.0.2.7:8008")).toEqual({
      serverName: "192.0.2.7:8008",
      host: "192.0.2.7",
      port: 8008,
      hostHeader: "192.0.2.7:8008",
      tlsServerName: "192.0.2.7",
    });
    expect(net.wellKnownCalls).toEqual([]);
    expect(net.srvCalls).toEqual([]);
  });

  test("1. an IPv6 literal: the address without brackets to connect to, Host as written", async () => {
    const net = new FakeNetwork();
    const resolver = net.resolver();
    expect(await resolver.resolve("[2001:db8::1]:8449")).toEqual({
      serverName: "[2001:db8::1]:8449",
      host: "2001:db8::1",
      port: 8449,
      hostHeader: "[2001:db8::1]:8449",
      tlsServerName: "2001:db8::1",
    });
    expect((await resolver.resolve("[::1]")).port).toBe(8448);
    expect(net.wellKnownCalls).toEqual([]);
  });

  test("2. a hostname with an explicit port: no well-known, no SRV; Host with the port, certificate for the hostname", async () => {
    const net = new FakeNetwork();
    net.serveWellKnown("matrix.example.org", { "m.server": "elsewhere.example.org:443" });
    expect(await net.resolver().resolve("matrix.example.org:8449")).toEqual({
      serverName: "matrix.example.org:8449",
      host: "matrix.example.org",
      port: 8449,
      hostHeader: "matrix.example.org:8449",
      tlsServerName: "matrix.example.org",
    });
    expect(net.wellKnownCalls).toEqual([]);
    expect(net.srvCalls).toEqual([]);
  });

  test("3.1 well-known delegating to an IP literal: that address; Host is the delegated IP (with its port if given)", async () => {
    const net = new FakeNetwork();
    net.serveWellKnown("a.example", { "m.server": "198.51.100.4:8443" });
    net.serveWellKnown("b.example", { "m.server": "198.51.100.5" });
    net.serveWellKnown("c.example", { "m.server": "[2001:db8::5]:9000" });
    const resolver = net.resolver();
    expect(await resolver.resolve("a.example")).toEqual({ serverName: "a.example", host: "198.51.100.4", port: 8443, hostHeader: "198.51.100.4:8443", tlsServerName: "198.51.100.4" });
    expect(await resolver.resolve("b.example")).toEqual({ serverName: "b.example", host: "198.51.100.5", port: 8448, hostHeader: "198.51.100.5", tlsServerName: "198.51.100.5" });
    expect(await resolver.resolve("c.example")).toEqual({ serverName: "c.example", host: "2001:db8::5", port: 9000, hostHeader: "[2001:db8::5]:9000", tlsServerName: "2001:db8::5" });
    expect(net.wellKnownCalls).toEqual(["a.example", "b.example", "c.example"]);
    expect(net.srvCalls).toEqual([]);
  });

  test("3.2 well-known delegating to a hostname with a port: Host <delegated>:<port>, certificate for the delegated hostname, no SRV", async () => {
    const net = new FakeNetwork();
    net.serveWellKnown("example.org", { "m.server": "matrix.example.net:443" });
    net.srv.set("_matrix-fed._tcp.matrix.example.net", [srv("wrong.example.net", 1)]);
    expect(await net.resolver().resolve("example.org")).toEqual({
      serverName: "example.org",
      host: "matrix.example.net",
      port: 443,
      hostHeader: "matrix.example.net:443",
      tlsServerName: "matrix.example.net",
    });
    expect(net.srvCalls).toEqual([]);
  });

  test("3.3 delegated hostname without a port: _matrix-fed._tcp.<delegated> SRV; Host and certificate are the delegated hostname", async () => {
    const net = new FakeNetwork();
    net.serveWellKnown("example.org", { "m.server": "matrix.example.net" });
    net.srv.set("_matrix-fed._tcp.matrix.example.net", [srv("fed1.example.net.", 8500)]);
    net.srv.set("_matrix._tcp.matrix.example.net", [srv("old.example.net", 8600)]);
    expect(await net.resolver().resolve("example.org")).toEqual({
      serverName: "example.org",
      host: "fed1.example.net",
      port: 8500,
      hostHeader: "matrix.example.net",
      tlsServerName: "matrix.example.net",
    });
    expect(net.srvCalls).toEqual(["_matrix-fed._tcp.matrix.example.net"]);
  });

  test("3.4 (deprecated) no _matrix-fed record: _matrix._tcp.<delegated>", async () => {
    const net = new FakeNetwork();
    net.serveWellKnown("example.org", { "m.server": "matrix.example.net" });
    net.srv.set("_matrix._tcp.matrix.example.net", [srv("old.example.net", 8600)]);
    expect(await net.resolver().resolve("example.org")).toEqual({
      serverName: "example.org",
      host: "old.example.net",
      port: 8600,
      hostHeader: "matrix.example.net",
      tlsServerName: "matrix.example.net",
    });
    expect(net.srvCalls).toEqual(["_matrix-fed._tcp.matrix.example.net", "_matrix._tcp.matrix.example.net"]);
  });

  test("3.5 delegated hostname without SRV records: the delegated hostname on 8448", async () => {
    const net = new FakeNetwork();
    net.serveWellKnown("example.org", { "m.server": "matrix.example.net" });
    // Records for the original hostname must not be used once a delegation exists.
    net.srv.set("_matrix-fed._tcp.example.org", [srv("wrong.example.org", 1)]);
    expect(await net.resolver().resolve("example.org")).toEqual({
      serverName: "example.org",
      host: "matrix.example.net",
      port: 8448,
      hostHeader: "matrix.example.net",
      tlsServerName: "matrix.example.net",
    });
    expect(net.srvCalls).toEqual(["_matrix-fed._tcp.matrix.example.net", "_matrix._tcp.matrix.example.net"]);
  });

  test("4. no well-known: _matrix-fed._tcp.<hostname> SRV; Host and certificate stay <hostname>", async () => {
    const net = new FakeNetwork();
    net.srv.set("_matrix-fed._tcp.example.org", [srv("fed.example.org", 8450)]);
    net.srv.set("_matrix._tcp.example.org", [srv("old.example.org", 8600)]);
    expect(await net.resolver().resolve("example.org")).toEqual({
      serverName: "example.org",
      host: "fed.example.org",
      port: 8450,
      hostHeader: "example.org",
      tlsServerName: "example.org",
    });
    expect(net.wellKnownCalls).toEqual(["example.org"]);
    expect(net.srvCalls).toEqual(["_matrix-fed._tcp.example.org"]);
  });

  test("5. (deprecated) no well-known, no _matrix-fed record: _matrix._tcp.<hostname>", async () => {
    const net = new FakeNetwork();
    net.srv.set("_matrix._tcp.example.org", [srv("old.example.org", 8600)]);
    expect(await net.resolver().resolve("example.org")).toEqual({
      serverName: "example.org",
      host: "old.example.org",
      port: 8600,
      hostHeader: "example.org",
      tlsServerName: "example.org",
    });
    expect(net.srvCalls).toEqual(["_matrix-fed._tcp.example.org", "_matrix._tcp.example.org"]);
  });

  test("6. nothing at all: the hostname on 8448", async () => {
    const net = new FakeNetwork();
    expect(await net.resolver().resolve("example.org")).toEqual({ serverName: "example.org", host: "example.org", port: 8448, hostHeader: "example.org", tlsServerName: "example.org" });
  });

  test.each([
    ["a 404", { status: 404, body: { "m.server": "d.example:1" } }],
    ["a 500", { status: 500, body: "" }],
    ["a 301 that was not followed", { status: 301, body: "" }],
    ["a body that is not JSON", { status: 200, body: "<html>" }],
    ["a JSON array", { status: 200, body: [{ "m.server": "d.example:1" }] }],
    ["no m.server", { status: 200, body: { "m.homeserver": "d.example:1" } }],
    ["an m.server that is not a string", { status: 200, body: { "m.server": 8448 } }],
    ["an m.server that is not a server name", { status: 200, body: { "m.server": "https://d.example/" } }],
    ["an m.server with a port out of range", { status: 200, body: { "m.server": "d.example:70000" } }],
  ])("an invalid well-known answer (%s) goes on to step 4", async (_label, answer) => {
    const net = new FakeNetwork();
    net.serveWellKnown("example.org", answer.body, { status: answer.status });
    net.srv.set("_matrix-fed._tcp.example.org", [srv("fed.example.org", 8450)]);
    const resolved = await net.resolver().resolve("example.org");
    expect(resolved).toMatchObject({ host: "fed.example.org", port: 8450, hostHeader: "example.org" });
  });

  test("no well-known answer at all, or a fetcher that throws, goes on to step 4", async () => {
    const net = new FakeNetwork();
    net.wellKnown.set("a.example", async () => undefined);
    net.wellKnown.set("b.example", async () => {
      throw new Error("boom");
    });
    const resolver = net.resolver();
    expect(await resolver.resolve("a.example")).toMatchObject({ host: "a.example", port: 8448 });
    expect(await resolver.resolve("b.example")).toMatchObject({ host: "b.example", port: 8448 });
  });

  test("a well-known body is read as JSON whatever its Content-Type", async () => {
    const net = new FakeNetwork();
    net.serveWellKnown("example.org", { "m.server": "d.example:1" }, { headers: { "content-type": "text/plain" } });
    expect(await net.resolver().resolve("example.org")).toMatchObject({ host: "d.example", port: 1 });
  });

  test("an SRV lookup that fails (SERVFAIL) counts as no records and is asked again next time", async () => {
    const net = new FakeNetwork();
    net.srv.set("_matrix-fed._tcp.example.org", Object.assign(new Error("queryServfail"), { code: "ESERVFAIL" }));
    const resolver = net.resolver();
    expect(await resolver.resolve("example.org")).toMatchObject({ host: "example.org", port: 8448 });
    net.srv.set("_matrix-fed._tcp.example.org", [srv("fed.example.org", 8450)]);
    expect(await resolver.resolve("example.org")).toMatchObject({ host: "fed.example.org", port: 8450 });
  });

  test("an invalid server name is refused before any lookup", async () => {
    const net = new FakeNetwork();
    const resolver = net.resolver();
    for (const name of ["", "bad name", "example.org:99999", "[::1", "300.1.1.1"]) {
      await expect(resolver.resolve(name)).rejects.toBeInstanceOf(ServerNameResolutionError);
    }
    expect(net.wellKnownCalls).toEqual([]);
    expect(net.srvCalls).toEqual([]);
  });
});

describe("ServerNameResolver: caching", () => {
  test("a well-known answer without cache headers is kept 24 hours", async () => {
    const net = new FakeNetwork();
    net.serveWellKnown("example.org", { "m.server": "d.example:1" });
    const resolver = net.resolver();
    await resolver.resolve("example.org");
    net.now += 24 * HOUR - 1;
    await resolver.resolve("example.org");
    expect(net.wellKnownCalls).toHaveLength(1);
    net.serveWellKnown("example.org", { "m.server": "e.example:2" });
    net.now += 2;
    expect(await resolver.resolve("example.org")).toMatchObject({ host: "e.example", port: 2 });
    expect(net.wellKnownCalls).toHaveLength(2);
  });

  test("Cache-Control max-age decides, capped at 48 hours and floored at 5 minutes", async () => {
    const cases: [string, number][] = [
      ["max-age=3600", HOUR],
      ["public, max-age=7200", 2 * HOUR],
      ["max-age=604800", 48 * HOUR],
      ["max-age=0", 5 * 60_000],
      ["no-store", 5 * 60_000],
    ];
    for (const [cacheControl, expected] of cases) {
      const net = new FakeNetwork();
      net.serveWellKnown("example.org", { "m.server": "d.example:1" }, { headers: { "cache-control": cacheControl } });
      const resolver = net.resolver();
      await resolver.resolve("example.org");
      net.now += expected - 1;
      await resolver.resolve("example.org");
      expect(net.wellKnownCalls).toHaveLength(1);
      net.now += 1;
      await resolver.resolve("example.org");
      expect(net.wellKnownCalls).toHaveLength(2);
    }
  });

  test("Expires is used when there is no max-age, measured from the Date header", async () => {
    const net = new FakeNetwork();
    const date = new Date(net.now - 10 * HOUR); // the remote clock is 10 h behind ours: the difference counts
    const expires = new Date(date.getTime() + 3 * HOUR);
    net.serveWellKnown("example.org", { "m.server": "d.example:1" }, { headers: { date: date.toUTCString(), expires: expires.toUTCString() } });
    const resolver = net.resolver();
    await resolver.resolve("example.org");
    net.now += 3 * HOUR - 1;
    await resolver.resolve("example.org");
    expect(net.wellKnownCalls).toHaveLength(1);
    net.now += 1;
    await resolver.resolve("example.org");
    expect(net.wellKnownCalls).toHaveLength(2);
  });

  test("wellKnownCacheMs: header forms", () => {
    const policy = { defaultMs: 24 * HOUR, maxMs: 48 * HOUR, minMs: 5 * 60_000 };
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(wellKnownCacheMs(new Headers(), now, policy)).toBe(24 * HOUR);
    expect(wellKnownCacheMs(new Headers({ "cache-control": "MAX-AGE=600" }), now, policy)).toBe(600_000);
    expect(wellKnownCacheMs(new Headers({ "cache-control": "max-age=600", expires: "Thu, 01 Jan 2026 05:00:00 GMT" }), now, policy)).toBe(600_000);
    expect(wellKnownCacheMs(new Headers({ expires: "Thu, 01 Jan 2026 05:00:00 GMT" }), now, policy)).toBe(5 * HOUR);
    expect(wellKnownCacheMs(new Headers({ expires: "0" }), now, policy)).toBe(5 * 60_000);
    expect(wellKnownCacheMs(new Headers({ "cache-control": "private" }), now, policy)).toBe(24 * HOUR);
  });

  test("a failed lookup is kept an hour, then asked again", async () => {
    const net = new FakeNetwork();
    net.serveWellKnown("example.org", "", { status: 404, headers: { "cache-control": "max-age=172800" } });
    const resolver = net.resolver();
    expect(await resolver.resolve("example.org")).toMatchObject({ host: "example.org", port: 8448 });
    net.serveWellKnown("example.org", { "m.server": "d.example:1" });
    net.now += HOUR - 1;
    expect(await resolver.resolve("example.org")).toMatchObject({ host: "example.org", port: 8448 });
    expect(net.wellKnownCalls).toHaveLength(1);
    net.now += 1;
    expect(await resolver.resolve("example.org")).toMatchObject({ host: "d.example", port: 1 });
    expect(net.wellKnownCalls).toHaveLength(2);
  });

  test("no response at all is cached like an error response", async () => {
    const net = new FakeNetwork();
    const resolver = net.resolver({ wellKnownFailureCacheMs: 10 * 60_000 });
    await resolver.resolve("example.org");
    net.now += 10 * 60_000 - 1;
    await resolver.resolve("example.org");
    expect(net.wellKnownCalls).toHaveLength(1);
    net.now += 1;
    await resolver.resolve("example.org");
    expect(net.wellKnownCalls).toHaveLength(2);
  });

  test("concurrent resolutions of one name share one well-known request", async () => {
    const net = new FakeNetwork();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    net.wellKnown.set("example.org", async () => {
      await gate;
      return { status: 200, headers: new Headers(), body: JSON.stringify({ "m.server": "d.example:1" }) };
    });
    const resolver = net.resolver();
    const all = Promise.all([resolver.resolve("example.org"), resolver.resolve("example.org"), resolver.resolve("example.org")]);
    release();
    expect((await all).map((r) => r.host)).toEqual(["d.example", "d.example", "d.example"]);
    expect(net.wellKnownCalls).toEqual(["example.org"]);
  });

  test("SRV answers (and their absence) are kept for srvCacheMs", async () => {
    const net = new FakeNetwork();
    net.srv.set("_matrix-fed._tcp.example.org", [srv("fed.example.org", 8450)]);
    const resolver = net.resolver({ srvCacheMs: 60_000 });
    await resolver.resolve("example.org");
    await resolver.resolve("example.org");
    expect(net.srvCalls).toEqual(["_matrix-fed._tcp.example.org"]);
    net.now += 60_000;
    net.srv.delete("_matrix-fed._tcp.example.org");
    expect(await resolver.resolve("example.org")).toMatchObject({ host: "example.org", port: 8448 });
    expect(net.srvCalls).toEqual(["_matrix-fed._tcp.example.org", "_matrix-fed._tcp.example.org", "_matrix._tcp.example.org"]);
  });

  test("the cache is bounded: the oldest entry goes first", async () => {
    const net = new FakeNetwork();
    const resolver = net.resolver({ maxCacheEntries: 2 });
    for (const name of ["a.example", "b.example", "c.example", "a.example", "c.example"]) await resolver.resolve(name);
    expect(net.wellKnownCalls).toEqual(["a.example", "b.example", "c.example", "a.example"]);
  });
});

describe("chooseSrvRecord (RFC 2782)", () => {
  test("the lowest priority wins", () => {
    const records = [srv("b.example", 8448, 20), srv("a.example", 8448, 10), srv("c.example", 8448, 30)];
    expect(chooseSrvRecord(records, () => 0.99)?.name).toBe("a.example");
  });

  test("among one priority, the pick is weighted", () => {
    const records = [srv("light.example", 1, 10, 1), srv("heavy.example", 2, 10, 3)];
    expect(chooseSrvRecord(records, () => 0)?.name).toBe("light.example");
    expect(chooseSrvRecord(records, () => 0.24)?.name).toBe("light.example");
    expect(chooseSrvRecord(records, () => 0.26)?.name).toBe("heavy.example");
    expect(chooseSrvRecord(records, () => 0.999)?.name).toBe("heavy.example");
  });

  test("zero weights: a uniform pick; a zero weight loses to any positive one", () => {
    expect(chooseSrvRecord([srv("a.example", 1), srv("b.example", 2)], () => 0.6)?.name).toBe("b.example");
    expect(chooseSrvRecord([srv("zero.example", 1, 10, 0), srv("one.example", 2, 10, 1)], () => 0)?.name).toBe("one.example");
  });

  test("'.' (no service) and bad ports are skipped; none left is undefined", () => {
    expect(chooseSrvRecord([srv(".", 8448), srv("", 8448)], () => 0)).toBeUndefined();
    expect(chooseSrvRecord([srv("a.example", 0, 1), srv("b.example.", 8448, 5)], () => 0)?.name).toBe("b.example");
    expect(chooseSrvRecord([], () => 0)).toBeUndefined();
  });
});

describe("httpsWellKnownFetcher (over a real TLS server on 127.0.0.1)", () => {
  const dir = tempDir("portier-wellknown-");
  let server: ReturnType<typeof Bun.serve>;
  let ca: string;
  let authority: string;

  beforeAll(() => {
    const testCa = generateTestCertificateAuthority(dir);
    const leaf = issueCertificate(testCa, dir, "wk", { ipAddresses: ["127.0.0.1"] });
    ca = readFileSync(testCa.certificatePath, "utf8");
    server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: readFileSync(leaf.certificatePath, "utf8"), key: readFileSync(leaf.privateKeyPath, "utf8") },
      async fetch(request) {
        const path = new URL(request.url).pathname;
        if (path === "/.well-known/matrix/server") {
          const mode = request.headers.get("x-test-mode");
          if (mode === "redirect") return new Response(null, { status: 302, headers: { location: "/moved" } });
          if (mode === "loop") return new Response(null, { status: 302, headers: { location: "/.well-known/matrix/server" } });
          if (mode === "slow") await Bun.sleep(2000);
          if (mode === "huge") return new Response("x".repeat(100_000));
          return Response.json({ "m.server": "direct.example:1" }, { headers: { "cache-control": "max-age=60" } });
        }
        if (path === "/moved") return Response.json({ "m.server": "moved.example:2" });
        return new Response("not found", { status: 404 });
      },
    });
    authority = `127.0.0.1:${server.port}`;
  });

  afterAll(() => {
    server.stop(true);
    rmSync(dir, { recursive: true, force: true });
  });

  // The fetcher is given "127.0.0.1:PORT" as its hostname, so that it reaches the ephemeral port.
  const fetcher = (mode: string, extra: Parameters<typeof httpsWellKnownFetcher>[0] = {}) =>
    httpsWellKnownFetcher({
      tls: () => ({ ca: [ca] }),
      fetch: (url, init) => fetch(url, { ...init, headers: { "x-test-mode": mode } } as RequestInit),
      ...extra,
    });

  test("GETs /.well-known/matrix/server over https with the given TLS settings", async () => {
    const answer = await fetcher("plain")(authority);
    expect(answer?.status).toBe(200);
    expect(answer?.headers.get("cache-control")).toBe("max-age=60");
    expect(JSON.parse(answer!.body)).toEqual({ "m.server": "direct.example:1" });
  });

  test("follows redirects", async () => {
    expect(JSON.parse((await fetcher("redirect")(authority))!.body)).toEqual({ "m.server": "moved.example:2" });
  });

  test("a redirect loop, an untrusted certificate or a timeout give no answer", async () => {
    expect(await fetcher("loop")(authority)).toBeUndefined();
    expect(await fetcher("plain", { tls: () => undefined })(authority)).toBeUndefined();
    const started = Date.now();
    expect(await fetcher("slow", { timeoutMs: 200 })(authority)).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(1500);
  });

  test("an oversized answer is not read", async () => {
    const answer = await fetcher("huge", { maxBytes: 1000 })(authority);
    expect(answer?.status).toBe(200);
    expect(answer?.body).toBe("");
  });

  test("through the resolver: the delegation is used and kept for its max-age", async () => {
    let now = 0;
    let fetches = 0;
    const viaHttps = fetcher("plain");
    // A DNS-shaped server name whose well-known lookup is sent to the test server.
    const resolver = new ServerNameResolver({
      fetchWellKnown: (hostname) => {
        fetches++;
        return hostname === "wk.test" ? viaHttps(authority) : Promise.resolve(undefined);
      },
      resolveSrv: async () => [],
      clock: { now: () => now },
      wellKnownMinCacheMs: 0,
    });
    expect(await resolver.resolve("wk.test")).toMatchObject({ host: "direct.example", port: 1, hostHeader: "direct.example:1" });
    now += 59_999;
    await resolver.resolve("wk.test");
    expect(fetches).toBe(1);
    now += 1;
    expect(await resolver.resolve("wk.test")).toMatchObject({ host: "direct.example" });
    expect(fetches).toBe(2);
  });
});
