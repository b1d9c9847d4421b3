// The content repository through the HTTP API: uploads (direct, and created first then uploaded),
// authenticated and deprecated downloads with their safe-serving headers, the size limit (nothing
// stored past it), thumbnails of every format, the freeze switch, URL previews (off by default;
// refused for loopback when on) and the config. Every JSON answer is checked against the spec.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdirSync, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { readImageInfo } from "../../../src/services/media/image-format";
import { MEDIA_CSP } from "../../../src/api/media/serving";
import { expectMatchesSpec } from "../../helpers/openapi";
import { bearer, registerUser, type TestUser } from "../../helpers/accounts";
import { tempDir, testServer } from "../../helpers/server";
import { generateSelfSignedCertificate } from "../../../src/services/federation/tls-certificate";
import { makeAnimatedGif, makeImage, middlePixel } from "../../helpers/images";

const SERVER = "media.example";
let server: PortierServer;
let alice: TestUser;
let bob: TestUser;

beforeAll(async () => {
  server = await testServer({ server_name: SERVER, registration: { enabled: true }, media: { max_upload_size: 2 * 1024 * 1024 } });
  alice = await registerUser(server, "alice");
  bob = await registerUser(server, "bob");
});
afterAll(() => server.stop());

interface Answer {
  status: number;
  headers: Headers;
  bytes: Uint8Array;
  json: any;
}

async function call(method: string, path: string, options: { token?: string; body?: string | Uint8Array | ReadableStream<Uint8Array>; headers?: Record<string, string>; target?: PortierServer } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(options.token ? bearer(options.token) : {}), ...options.headers };
  const response = await (options.target ?? server).app.handle(new Request(`http://localhost${path}`, { method, headers, body: options.body }));
  const bytes = new Uint8Array(await response.arrayBuffer());
  let json: unknown;
  if ((response.headers.get("content-type") ?? "").startsWith("application/json")) json = JSON.parse(new TextDecoder().decode(bytes));
  return { status: response.status, headers: response.headers, bytes, json };
}

/** Calls and checks a JSON answer against the spec. */
async function specCall(method: string, path: string, options: Parameters<typeof call>[2] = {}): Promise<Answer> {
  const answer = await call(method, path, options);
  if (answer.json !== undefined) expectMatchesSpec({ api: "client-server", method, path, status: answer.status, body: answer.json });
  return answer;
}

async function upload(bytes: Uint8Array | string, contentType: string | undefined, filename?: string, user = alice): Promise<string> {
  const query = filename === undefined ? "" : `?filename=${encodeURIComponent(filename)}`;
  const r = await specCall("POST", `/_matrix/media/v3/upload${query}`, { token: user.token, body: bytes, headers: contentType ? { "Content-Type": contentType } : {} });
  expect(r.status).toBe(200);
  expect(r.json.content_uri).toMatch(new RegExp(`^mxc://${SERVER}/[A-Za-z0-9_-]+$`));
  return r.json.content_uri.slice(`mxc://${SERVER}/`.length);
}

const mediaRows = async (target = server) => (await resolve(target.container, Tokens.Database).get<{ n: number }>("SELECT count(*) AS n FROM media"))!.n;
const filesUnder = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name) : []);

describe("config", () => {
  test("v1 and v3 config give the upload limit, and need a token", async () => {
    for (const path of ["/_matrix/client/v1/media/config", "/_matrix/media/v3/config"]) {
      const r = await specCall("GET", path, { token: alice.token });
      expect(r.status).toBe(200);
      expect(r.json).toEqual({ "m.upload.size": 2 * 1024 * 1024 });
      expect((await call("GET", path)).status).toBe(401);
    }
  });
});

describe("upload and download", () => {
  test("an upload comes back byte for byte, with its type, its file name and the safe-serving headers", async () => {
    const png = await makeImage("png", 64, 48);
    const id = await upload(png, "image/png", "cat.png");
    const r = await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}`, { token: bob.token });
    expect(r.status).toBe(200);
    expect(r.bytes).toEqual(png);
    expect(r.headers.get("content-type")).toBe("image/png");
    expect(r.headers.get("content-disposition")).toBe("inline; filename=cat.png");
    expect(r.headers.get("content-security-policy")).toBe(MEDIA_CSP);
    expect(r.headers.get("content-security-policy")).toStartWith("sandbox; default-src 'none'; script-src 'none';");
    expect(r.headers.get("cross-origin-resource-policy")).toBe("cross-origin");
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
    expect(r.headers.get("cache-control")).toBe("private, max-age=31536000, immutable");
    expect(r.headers.get("content-length")).toBe(String(png.byteLength));
    expect(r.headers.get("access-control-allow-origin")).toBe("*");

    // The file name in the path replaces the stored one; a non-ASCII one is RFC 5987-encoded.
    const named = await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}/${encodeURIComponent("chat noir é.png")}`, { token: bob.token });
    expect(named.headers.get("content-disposition")).toBe("inline; filename*=utf-8''chat%20noir%20%C3%A9.png");
    expect(named.bytes).toEqual(png);

    // The deprecated endpoint serves without a token, cacheable by shared caches.
    const legacy = await call("GET", `/_matrix/media/v3/download/${SERVER}/${id}`);
    expect(legacy.status).toBe(200);
    expect(legacy.bytes).toEqual(png);
    expect(legacy.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect((await call("GET", `/_matrix/media/v3/download/${SERVER}/${id}/other.png`)).headers.get("content-disposition")).toBe("inline; filename=other.png");

    // The authenticated endpoints need a token.
    const anonymous = await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.json.errcode).toBe("M_MISSING_TOKEN");

    // The ETag lets a client revalidate without downloading again.
    const again = await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}`, { token: bob.token, headers: { "If-None-Match": r.headers.get("etag")! } });
    expect(again.status).toBe(304);
    expect(again.bytes.byteLength).toBe(0);
  });

  test("HTML, SVG and JavaScript are never served inline: attachment, their type kept, sandboxed", async () => {
    const cases: [string, string, string][] = [
      ["text/html; charset=utf-8", "<html><script>alert(document.cookie)</script></html>", "page.html"],
      ["image/svg+xml", '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "pic.svg"],
      ["application/javascript", "alert(1)", "x.js"],
      ["text/xml", "<x/>", "x.xml"],
    ];
    for (const [type, body, name] of cases) {
      const id = await upload(body, type, name);
      for (const path of [`/_matrix/client/v1/media/download/${SERVER}/${id}`, `/_matrix/media/v3/download/${SERVER}/${id}`, `/_matrix/client/v1/media/download/${SERVER}/${id}/evil.html`]) {
        const r = await call("GET", path, { token: alice.token });
        expect(r.status).toBe(200);
        expect(r.headers.get("content-type")).toBe(type);
        expect(r.headers.get("content-disposition")!).toStartWith("attachment");
        expect(r.headers.get("content-security-policy")).toBe(MEDIA_CSP);
        expect(r.headers.get("x-content-type-options")).toBe("nosniff");
        expect(new TextDecoder().decode(r.bytes)).toBe(body);
      }
    }
    // Plain text is safe inline; no Content-Type at all is served as application/octet-stream, as an attachment.
    const text = await upload("hello", "text/plain", "a b.txt");
    expect((await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${text}`, { token: alice.token })).headers.get("content-disposition")).toBe('inline; filename="a b.txt"');
    const untyped = await upload(new Uint8Array([1, 2, 3]), undefined);
    const r = await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${untyped}`, { token: alice.token });
    expect(r.headers.get("content-type")).toBe("application/octet-stream");
    expect(r.headers.get("content-disposition")).toBe("attachment");
  });

  test("a Content-Type is stored parsed: a list or other malformed value is not kept, so it is never inline", async () => {
    // A browser reads the last type of a list: this one is HTML to it, whatever it starts with.
    for (const type of ["text/plain;charset=x,text/html", "text/plain, text/html", 'text/plain; charset="utf-8'] ) {
      const id = await upload("<script>alert(1)</script>", type, "x.txt");
      for (const path of [`/_matrix/client/v1/media/download/${SERVER}/${id}`, `/_matrix/media/v3/download/${SERVER}/${id}`]) {
        const r = await call("GET", path, { token: alice.token });
        expect([type, r.headers.get("content-type"), r.headers.get("content-disposition")]).toEqual([type, "application/octet-stream", "attachment; filename=x.txt"]);
      }
    }
    // A well-formed one is kept as type/subtype in lower case, with its charset and nothing else.
    const id = await upload("hello", ' Text/Plain ; Charset="UTF-8"; format=flowed', "y.txt");
    const r = await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}`, { token: alice.token });
    expect([r.headers.get("content-type"), r.headers.get("content-disposition")]).toEqual(["text/plain; charset=utf-8", "inline; filename=y.txt"]);
  });

  test("a body that is JSON-looking or large is stored as bytes, not parsed", async () => {
    const json = '{"not": "parsed", "n": 1.0}';
    const id = await upload(json, "application/json");
    expect(new TextDecoder().decode((await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}`, { token: alice.token })).bytes)).toBe(json);
    // Larger than max_request_body_bytes' JSON limit would allow is fine up to the media limit.
    const big = new Uint8Array(1_500_000).map((_, i) => i % 251);
    const bigId = await upload(big, "application/octet-stream");
    expect((await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${bigId}`, { token: alice.token })).bytes).toEqual(big);
  });

  test("the same content uploaded twice is one file", async () => {
    const bytes = new TextEncoder().encode(`same content ${Math.random()}`);
    const hash = new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
    const before = filesUnder(join(server.config.data_dir, "media", "content")).filter((n) => n === hash).length;
    expect(before).toBe(0);
    const [a, b] = [await upload(bytes, "text/plain"), await upload(bytes, "text/plain")];
    expect(a).not.toBe(b);
    expect(filesUnder(join(server.config.data_dir, "media", "content")).filter((n) => n === hash)).toEqual([hash]);
  });

  test("uploads need a token; unknown and malformed media ids are 404", async () => {
    expect((await call("POST", "/_matrix/media/v3/upload", { body: "x", headers: { "Content-Type": "text/plain" } })).status).toBe(401);
    for (const id of ["doesNotExist", "a.b", "a%2Fb", "a%00"]) {
      // (The spec documents no 404 for downloads, so this answer is not checked against it.)
      const r = await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}`, { token: alice.token });
      expect([r.status, r.json?.errcode]).toEqual([404, "M_NOT_FOUND"]);
    }
    const badServer = await call("GET", `/_matrix/client/v1/media/download/bad..name/abc`, { token: alice.token });
    expect([badServer.status, badServer.json.errcode]).toEqual([404, "M_NOT_FOUND"]);
    // Another server's media, with federation off: not found (and never looked up).
    const remote = await call("GET", `/_matrix/client/v1/media/download/remote.example/abc`, { token: alice.token });
    expect([remote.status, remote.json.errcode]).toEqual([404, "M_NOT_FOUND"]);
  });
});

describe("the size limit", () => {
  test("a declared Content-Length over the limit is refused at once: 413 M_TOO_LARGE, nothing stored", async () => {
    const rows = await mediaRows();
    const files = filesUnder(join(server.config.data_dir, "media")).length;
    const tooBig = new Uint8Array(2 * 1024 * 1024 + 1);
    const r = await specCall("POST", "/_matrix/media/v3/upload?filename=big.bin", { token: alice.token, body: tooBig, headers: { "Content-Type": "application/octet-stream" } });
    expect([r.status, r.json.errcode]).toEqual([413, "M_TOO_LARGE"]);
    expect(await mediaRows()).toBe(rows);
    expect(filesUnder(join(server.config.data_dir, "media")).length).toBe(files);
  });

  test("a streamed body without a length is cut off past the limit, nothing stored; exactly the limit is fine", async () => {
    const rows = await mediaRows();
    const stream = (size: number) => {
      let sent = 0;
      return new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= size) return controller.close();
          const chunk = new Uint8Array(Math.min(65536, size - sent)).fill(7);
          sent += chunk.byteLength;
          controller.enqueue(chunk);
        },
      });
    };
    const r = await call("POST", "/_matrix/media/v3/upload", { token: alice.token, body: stream(3 * 1024 * 1024), headers: { "Content-Type": "application/octet-stream" } });
    expect([r.status, r.json.errcode]).toEqual([413, "M_TOO_LARGE"]);
    expect(await mediaRows()).toBe(rows);
    expect(filesUnder(join(server.config.data_dir, "media", "tmp"))).toEqual([]);
    const ok = await call("POST", "/_matrix/media/v3/upload", { token: alice.token, body: stream(2 * 1024 * 1024), headers: { "Content-Type": "application/octet-stream" } });
    expect(ok.status).toBe(200);
    expect(await mediaRows()).toBe(rows + 1);
  });
});

describe("create, then upload", () => {
  test("an id made by /create takes one upload, from its creator, and downloads wait for it", async () => {
    const created = await specCall("POST", "/_matrix/media/v1/create", { token: alice.token });
    expect(created.status).toBe(200);
    expect(created.json.unused_expires_at).toBeGreaterThan(Date.now() + 23 * 3600_000);
    const id = created.json.content_uri.slice(`mxc://${SERVER}/`.length);
    const path = `/_matrix/media/v3/upload/${SERVER}/${id}`;

    // Not uploaded yet: a download that will not wait is told so.
    const early = await specCall("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}?timeout_ms=0`, { token: bob.token });
    expect([early.status, early.json.errcode]).toEqual([504, "M_NOT_YET_UPLOADED"]);
    // One that waits gets the content once it arrives.
    const waiting = call("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}?timeout_ms=10000`, { token: bob.token });

    const notYours = await specCall("PUT", path, { token: bob.token, body: "bob's", headers: { "Content-Type": "text/plain" } });
    expect([notYours.status, notYours.json.errcode]).toEqual([403, "M_FORBIDDEN"]);
    const first = await specCall("PUT", `${path}?filename=notes.txt`, { token: alice.token, body: "alice's notes", headers: { "Content-Type": "text/plain" } });
    expect([first.status, first.json]).toEqual([200, {}]);
    const second = await specCall("PUT", path, { token: alice.token, body: "again", headers: { "Content-Type": "text/plain" } });
    expect([second.status, second.json.errcode]).toEqual([409, "M_CANNOT_OVERWRITE_MEDIA"]);

    const waited = await waiting;
    expect(waited.status).toBe(200);
    expect(new TextDecoder().decode(waited.bytes)).toBe("alice's notes");
    expect(waited.headers.get("content-disposition")).toBe("inline; filename=notes.txt");

    const unknown = await specCall("PUT", `/_matrix/media/v3/upload/${SERVER}/neverCreated`, { token: alice.token, body: "x" });
    expect([unknown.status, unknown.json.errcode]).toEqual([404, "M_NOT_FOUND"]);
    // An uploaded (not created) id cannot be uploaded to.
    const uploaded = await upload("x", "text/plain");
    expect((await specCall("PUT", `/_matrix/media/v3/upload/${SERVER}/${uploaded}`, { token: alice.token, body: "y" })).status).toBe(404);
  });

  test("a created id expires, and a user holds only a few pending ones", async () => {
    let now = Date.now();
    const clocked = await testServer({ server_name: SERVER, registration: { enabled: true }, media: { max_pending_uploads: 2, unused_expiration_ms: 60_000 } }, { clock: { now: () => now } });
    try {
      const carol = await registerUser(clocked, "carol");
      const create = () => specCall("POST", "/_matrix/media/v1/create", { token: carol.token, target: clocked });
      const first = await create();
      expect((await create()).status).toBe(200);
      const third = await create();
      expect([third.status, third.json.errcode]).toEqual([429, "M_LIMIT_EXCEEDED"]);
      now += 61_000;
      // Expired: the id takes no upload any more, and no longer counts.
      const id = first.json.content_uri.slice(`mxc://${SERVER}/`.length);
      const late = await specCall("PUT", `/_matrix/media/v3/upload/${SERVER}/${id}`, { token: carol.token, body: "late", target: clocked });
      expect([late.status, late.json.errcode]).toEqual([404, "M_NOT_FOUND"]);
      expect((await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}`, { token: carol.token, target: clocked })).status).toBe(404);
      expect((await create()).status).toBe(200);
    } finally {
      await clocked.stop();
    }
  });
});

describe("thumbnails", () => {
  // Decoding and scaling images takes a moment on a busy machine.
  const SLOW = { timeout: 30_000 };
  const thumb = (id: string, query: string, token: string | undefined = bob.token) => call("GET", `/_matrix/client/v1/media/thumbnail/${SERVER}/${id}?${query}`, { token });

  test("crop gives the requested size, scale keeps the aspect and covers the request; never upscaled", async () => {
    const id = await upload(await makeImage("png", 800, 600), "image/png", "big.png");
    const crop = await thumb(id, "width=96&height=96&method=crop");
    expect(crop.status).toBe(200);
    expect(crop.headers.get("content-type")).toBe("image/png");
    expect(crop.headers.get("content-disposition")).toBe("inline; filename=thumbnail.png");
    expect(crop.headers.get("content-security-policy")).toBe(MEDIA_CSP);
    expect(readImageInfo(crop.bytes)).toEqual({ format: "png", width: 96, height: 96 });
    // Asked for 50x40: served from the standard 96x96 crop (never smaller than asked).
    expect(readImageInfo((await thumb(id, "width=50&height=40&method=crop")).bytes)).toEqual({ format: "png", width: 96, height: 96 });
    const scale = await thumb(id, "width=320&height=240&method=scale");
    expect(readImageInfo(scale.bytes)).toEqual({ format: "png", width: 320, height: 240 });
    // Larger than the image: the image itself.
    const original = await thumb(id, "width=1000&height=1000");
    expect(readImageInfo(original.bytes)).toEqual({ format: "png", width: 800, height: 600 });
    // Made once: the second request is the same file.
    expect((await thumb(id, "width=96&height=96&method=crop")).headers.get("etag")).toBe(crop.headers.get("etag"));
    // Sizes no standard size covers are served the closest standard one (or the image itself when
    // it is no larger than asked for): never rendered or stored at the size the client picked.
    for (const size of [97, 98, 99, 150]) {
      const r = await thumb(id, `width=${size}&height=${size}&method=crop`);
      expect([size, r.headers.get("etag")]).toEqual([size, crop.headers.get("etag")]);
    }
    for (const query of ["width=700&height=500&method=scale", "width=801&height=601&method=scale", "width=900&height=10&method=scale"]) {
      expect([query, readImageInfo((await thumb(id, query)).bytes)]).toEqual([query, { format: "png", width: 800, height: 600 }]);
    }
    const rows = await resolve(server.container, Tokens.Database).all<{ width: number; method: string }>("SELECT width, method FROM media_thumbnails WHERE media_id = ? ORDER BY width", id);
    expect(rows).toEqual([{ width: 96, method: "crop" }, { width: 320, method: "scale" }]);
  }, SLOW);

  test("JPEG stays JPEG; WebP and a GIF's first frame become PNG; the deprecated endpoint works too", async () => {
    const jpeg = await upload(await makeImage("jpeg", 1200, 900), "image/jpeg");
    const j = await thumb(jpeg, "width=320&height=240&method=scale");
    expect(j.headers.get("content-type")).toBe("image/jpeg");
    expect(readImageInfo(j.bytes)).toEqual({ format: "jpeg", width: 320, height: 240 });
    const webp = await upload(await makeImage("webp", 500, 500), "image/webp");
    expect(readImageInfo((await thumb(webp, "width=96&height=96&method=crop")).bytes)).toEqual({ format: "png", width: 96, height: 96 });
    const gif = await upload(await makeAnimatedGif(200, 200), "image/gif");
    const g = await thumb(gif, "width=96&height=96&method=crop");
    expect(readImageInfo(g.bytes)).toEqual({ format: "png", width: 96, height: 96 });
    expect(await middlePixel(g.bytes)).toEqual([255, 0, 0]);
    const legacy = await call("GET", `/_matrix/media/v3/thumbnail/${SERVER}/${jpeg}?width=32&height=32&method=crop`);
    expect(legacy.status).toBe(200);
    expect(readImageInfo(legacy.bytes)).toEqual({ format: "jpeg", width: 32, height: 32 });
  }, SLOW);

  test("what cannot be thumbnailed is a 400, never a 500; a too large image is 413", async () => {
    const text = await upload("not an image", "image/png");
    const broken = await upload(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 1, 0, 0, 0, 1, 0, 8, 2, 0, 0, 0, 1, 2, 3]), "image/png");
    const truncated = await upload((await makeImage("jpeg", 400, 300)).subarray(0, 300), "image/jpeg");
    for (const id of [text, broken, truncated]) {
      const r = await thumb(id, "width=32&height=32&method=crop");
      expectMatchesSpec({ api: "client-server", method: "GET", path: `/_matrix/client/v1/media/thumbnail/${SERVER}/${id}`, status: r.status, body: r.json });
      expect([r.status, r.json.errcode]).toEqual([400, "M_UNKNOWN"]);
    }
    const image = await upload(await makeImage("png", 100, 100), "image/png");
    for (const query of ["height=32", "width=32", "width=0&height=32", "width=-1&height=32", "width=1.5&height=32", "width=32&height=32&method=stretch"]) {
      expect((await thumb(image, query)).status).toBe(400);
    }
    expect((await thumb("nothing", "width=32&height=32")).status).toBe(404);
    expect((await thumb(image, "width=32&height=32", "")).status).toBe(401);

    const small = await testServer({ server_name: SERVER, registration: { enabled: true }, media: { max_image_pixels: 10_000 } });
    try {
      const dave = await registerUser(small, "dave");
      const r = await call("POST", "/_matrix/media/v3/upload", { token: dave.token, body: await makeImage("png", 101, 100), headers: { "Content-Type": "image/png" }, target: small });
      const id = r.json.content_uri.slice(`mxc://${SERVER}/`.length);
      const big = await call("GET", `/_matrix/client/v1/media/thumbnail/${SERVER}/${id}?width=32&height=32`, { token: dave.token, target: small });
      expect([big.status, big.json.errcode]).toEqual([413, "M_TOO_LARGE"]);
    } finally {
      await small.stop();
    }
  }, SLOW);
});

describe("media.freeze_unauthenticated", () => {
  test("freezes the deprecated download and thumbnail endpoints (404); the authenticated ones still serve", async () => {
    const frozen = await testServer({ server_name: SERVER, registration: { enabled: true }, media: { freeze_unauthenticated: true } });
    try {
      const erin = await registerUser(frozen, "erin");
      const r = await call("POST", "/_matrix/media/v3/upload", { token: erin.token, body: await makeImage("png", 64, 64), headers: { "Content-Type": "image/png" }, target: frozen });
      const id = r.json.content_uri.slice(`mxc://${SERVER}/`.length);
      for (const path of [`/_matrix/media/v3/download/${SERVER}/${id}`, `/_matrix/media/v3/download/${SERVER}/${id}/x.png`, `/_matrix/media/v3/thumbnail/${SERVER}/${id}?width=32&height=32`]) {
        const answer = await call("GET", path, { token: erin.token, target: frozen });
        expect([answer.status, answer.json.errcode]).toEqual([404, "M_NOT_FOUND"]);
      }
      expect((await call("GET", `/_matrix/client/v1/media/download/${SERVER}/${id}`, { token: erin.token, target: frozen })).status).toBe(200);
      expect((await call("GET", `/_matrix/client/v1/media/thumbnail/${SERVER}/${id}?width=32&height=32`, { token: erin.token, target: frozen })).status).toBe(200);
    } finally {
      await frozen.stop();
    }
  });
});

describe("URL previews", () => {
  test("off by default: 404 M_UNRECOGNIZED", async () => {
    for (const path of ["/_matrix/client/v1/media/preview_url", "/_matrix/media/v3/preview_url"]) {
      const r = await call("GET", `${path}?url=${encodeURIComponent("https://matrix.org")}`, { token: alice.token });
      expect([r.status, r.json.errcode]).toEqual([404, "M_UNRECOGNIZED"]);
    }
  });

  test("on: loopback and other private addresses are refused, by address and by name", async () => {
    // A page on loopback that must never be fetched: the test fails if it is.
    let fetched = 0;
    const page = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => (fetched++, new Response('<meta property="og:title" content="secret">', { headers: { "Content-Type": "text/html" } })) });
    const previews = await testServer({ server_name: SERVER, registration: { enabled: true }, media: { url_preview_enabled: true, url_preview_timeout_ms: 2000 } });
    try {
      const frank = await registerUser(previews, "frank");
      for (const url of [`http://127.0.0.1:${page.port}/`, `http://localhost:${page.port}/`, `http://[::1]:${page.port}/`, `http://127.1:${page.port}/`, `http://[::ffff:127.0.0.1]:${page.port}/`, `http://[::127.0.0.1]:${page.port}/`, `http://[::ffff:0:7f00:1]:${page.port}/`, `http://[64:ff9b::7f00:1]:${page.port}/`, `http://[64:ff9b:1::7f00:1]:${page.port}/`, "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://0.0.0.0/"]) {
        const r = await call("GET", `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`, { token: frank.token, target: previews });
        expect([url, r.status, r.json.errcode]).toEqual([url, 403, "M_FORBIDDEN"]);
      }
      const missing = await call("GET", "/_matrix/client/v1/media/preview_url", { token: frank.token, target: previews });
      expect([missing.status, missing.json.errcode]).toEqual([400, "M_MISSING_PARAM"]);
      const notHttp = await call("GET", `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent("file:///etc/passwd")}`, { token: frank.token, target: previews });
      expect(notHttp.status).toBe(400);
      expect((await call("GET", `/_matrix/client/v1/media/preview_url?url=x`, { target: previews })).status).toBe(401);
      expect(fetched).toBe(0);
    } finally {
      await previews.stop();
      page.stop(true);
    }
  });

  test("on, with media.url_preview_ip_range_whitelist: a page in an allowed range is previewed; other private addresses stay refused", async () => {
    const page = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response('<html><head><meta property="og:title" content="Intranet page"></head></html>', { headers: { "Content-Type": "text/html" } }) });
    const previews = await testServer({ server_name: SERVER, registration: { enabled: true }, media: { url_preview_enabled: true, url_preview_timeout_ms: 2000, url_preview_ip_range_whitelist: ["127.0.0.1/32"] } });
    try {
      const gina = await registerUser(previews, "gina");
      const ok = await call("GET", `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(`http://127.0.0.1:${page.port}/`)}`, { token: gina.token, target: previews });
      expect([ok.status, ok.json["og:title"]]).toEqual([200, "Intranet page"]);
      for (const url of [`http://127.0.0.2:${page.port}/`, `http://[::1]:${page.port}/`, "http://10.0.0.1/"]) {
        const r = await call("GET", `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`, { token: gina.token, target: previews });
        expect([url, r.status, r.json.errcode]).toEqual([url, 403, "M_FORBIDDEN"]);
      }
    } finally {
      await previews.stop();
      page.stop(true);
    }
  });

  test("an https page with a self-signed certificate: refused by default, previewed with media.url_preview_verify_tls off", async () => {
    const cert = generateSelfSignedCertificate(tempDir(), "127.0.0.1", { ipAddresses: ["127.0.0.1"] });
    const page = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      tls: { cert: readFileSync(cert.certificatePath, "utf8"), key: readFileSync(cert.privateKeyPath, "utf8") },
      fetch: () => new Response('<meta property="og:title" content="Self-signed">', { headers: { "Content-Type": "text/html" } }),
    });
    const url = `https://127.0.0.1:${page.port}/`;
    const media = (verify: boolean) => ({ url_preview_enabled: true, url_preview_timeout_ms: 2000, url_preview_ip_range_whitelist: ["127.0.0.1/32"], url_preview_verify_tls: verify });
    const verifying = await testServer({ server_name: SERVER, registration: { enabled: true }, media: media(true) });
    const trusting = await testServer({ server_name: SERVER, registration: { enabled: true }, media: media(false) });
    try {
      const one = await registerUser(verifying, "hugo");
      const refused = await call("GET", `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`, { token: one.token, target: verifying });
      expect(refused.status).toBe(502);
      const two = await registerUser(trusting, "hugo");
      const ok = await call("GET", `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`, { token: two.token, target: trusting });
      expect([ok.status, ok.json["og:title"]]).toEqual([200, "Self-signed"]);
    } finally {
      await verifying.stop();
      await trusting.stop();
      page.stop(true);
    }
  });
});
