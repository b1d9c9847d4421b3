// The content repository's small parts: reading an image's format and size from its header,
// Content-Disposition both ways, mxc:// id checks, multipart/mixed both ways, which addresses a
// user-chosen URL may reach, the fetch that enforces it (only 127.0.0.1 is contacted, and only where
// a test allows it explicitly), OpenGraph parsing and URL previews, and the remote media client's
// fallback to the deprecated endpoint of an older server.
import { afterAll, describe, expect, test } from "bun:test";
import { readImageInfo } from "../../../src/services/media/image-format";
import { contentDisposition, filenameFromDisposition, isInlineSafe, normaliseContentType } from "../../../src/services/media/disposition";
import { checkMediaAddress, isValidMediaId, newMediaId } from "../../../src/services/media/media-ids";
import { boundaryOf, multipartMedia, parseMultipartMedia } from "../../../src/services/media/multipart";
import { isPublicAddress, safeFetch } from "../../../src/services/media/safe-fetch";
import { openGraphOf, UrlPreviewer } from "../../../src/services/media/url-preview";
import { FederationMediaClient } from "../../../src/services/media/remote-media";
import { renderThumbnail, thumbnailGeometry } from "../../../src/services/media/thumbnail-render";
import { ServerKeyService } from "../../../src/services/keys/server-keys";
import { resolveConfig } from "../../../src/config/loader";
import { signingKeyFromSeed } from "../../../src/protocol/signing/keys";
import { MatrixError } from "../../../src/protocol/errors";
import { makeAnimatedGif, makeImage } from "../../helpers/images";

const servers: { stop(force?: boolean): void }[] = [];
afterAll(() => servers.forEach((s) => s.stop(true)));
const serve = (fetch: (request: Request) => Response | Promise<Response>) => {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch });
  servers.push(server);
  return server;
};
const loopbackOnly = (address: string) => address === "127.0.0.1";

describe("image headers", () => {
  test("format and size of PNG, JPEG, GIF and WebP without decoding; anything else is not an image", async () => {
    expect(readImageInfo(await makeImage("png", 123, 45))).toEqual({ format: "png", width: 123, height: 45 });
    expect(readImageInfo(await makeImage("jpeg", 123, 45))).toEqual({ format: "jpeg", width: 123, height: 45 });
    expect(readImageInfo(await makeImage("gif", 123, 45))).toEqual({ format: "gif", width: 123, height: 45 });
    expect(readImageInfo(await makeImage("webp", 123, 45))).toEqual({ format: "webp", width: 123, height: 45 });
    expect(readImageInfo(await makeAnimatedGif(20, 10))).toEqual({ format: "gif", width: 20, height: 10 });
    for (const bytes of [new TextEncoder().encode("<svg xmlns='http://www.w3.org/2000/svg'/>"), new Uint8Array([0x89, 0x50]), new Uint8Array([0xff, 0xd8, 0xff, 0xd9]), new Uint8Array(0)]) {
      expect(readImageInfo(bytes)).toBeUndefined();
    }
    // A header declaring a huge image is read as such (and refused by the pixel limit, not decoded).
    const huge = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 1, 0, 0, 0, 1, 0, 0]);
    expect(readImageInfo(huge)).toEqual({ format: "png", width: 65536, height: 65536 });
  });

  test("thumbnail geometry: crop to the request, scale covering it, never upscaled", () => {
    expect(thumbnailGeometry(800, 600, { width: 96, height: 96, method: "crop" })).toEqual({ scaledWidth: 128, scaledHeight: 96, cropWidth: 96, cropHeight: 96 });
    expect(thumbnailGeometry(800, 600, { width: 320, height: 240, method: "scale" })).toEqual({ scaledWidth: 320, scaledHeight: 240, cropWidth: 320, cropHeight: 240 });
    expect(thumbnailGeometry(1000, 4000, { width: 320, height: 240, method: "scale" })).toEqual({ scaledWidth: 320, scaledHeight: 1280, cropWidth: 320, cropHeight: 1280 });
    expect(thumbnailGeometry(1000, 50, { width: 96, height: 96, method: "crop" })).toEqual({ scaledWidth: 1000, scaledHeight: 50, cropWidth: 96, cropHeight: 50 });
    expect(thumbnailGeometry(1000, 50, { width: 96, height: 96, method: "scale" })).toBeUndefined();
    expect(thumbnailGeometry(90, 90, { width: 96, height: 96, method: "crop" })).toBeUndefined();
  });

  test("a frame larger than the canvas its header declares is not decoded past max_image_pixels", async () => {
    // A GIF whose logical screen says 10x10 around a 600x400 frame: the header check lets it through.
    const gif = await makeImage("gif", 600, 400);
    const lying = Uint8Array.from(gif);
    lying.set([10, 0, 10, 0], 6);
    expect(readImageInfo(lying)).toEqual({ format: "gif", width: 10, height: 10 });
    const request = { bytes: lying, format: "gif" as const, width: 4, height: 4, method: "scale" as const };
    const refused = await renderThumbnail({ ...request, maxPixels: 10_000 });
    expect(refused.kind).toBe("undecodable");
    // Within the limit (exactly at it, too) the same bytes are thumbnailed.
    expect((await renderThumbnail({ ...request, maxPixels: 600 * 400 })).kind).toBe("thumbnail");
    // The limit was for that render only: a larger image still decodes afterwards.
    expect((await renderThumbnail({ ...request, bytes: gif, maxPixels: 1_000_000 })).kind).toBe("thumbnail");
  });
});

describe("Content-Disposition", () => {
  test("inline only for the spec's safe types; file names as token, quoted string or RFC 5987", () => {
    expect(isInlineSafe("image/png")).toBe(true);
    expect(isInlineSafe("Text/Plain; charset=utf-8")).toBe(true);
    // Decided on the parsed type alone: a list (a browser may take its last entry) or any other
    // malformed value is not inline, whatever it starts with.
    for (const type of ["text/plain;charset=x,text/html", "text/plain, text/html", "image/png,text/html", 'text/plain; charset="x"y', "text/plain\u00a0", "text", "text/plain/html"]) {
      expect([type, isInlineSafe(type)]).toEqual([type, false]);
    }
    for (const type of ["text/html", "image/svg+xml", "application/javascript", "text/javascript", "application/xhtml+xml", "application/octet-stream", undefined]) expect(isInlineSafe(type)).toBe(false);
    expect(contentDisposition("inline", undefined)).toBe("inline");
    expect(contentDisposition("inline", "cat.png")).toBe("inline; filename=cat.png");
    expect(contentDisposition("attachment", 'my "big" file.txt')).toBe('attachment; filename="my \\"big\\" file.txt"');
    expect(contentDisposition("inline", "Ünïcödé 🐱.png")).toBe("inline; filename*=utf-8''%C3%9Cn%C3%AFc%C3%B6d%C3%A9%20%F0%9F%90%B1.png");
    // A header injection attempt stays inside one encoded parameter.
    expect(contentDisposition("inline", "a\r\nSet-Cookie: x=1")).toBe("inline; filename*=utf-8''a%0D%0ASet-Cookie%3A%20x%3D1");
  });

  test("a Content-Type is kept as type/subtype in lower case with a plain charset, or not at all", () => {
    expect(normaliseContentType("image/png")).toBe("image/png");
    expect(normaliseContentType(' Text/Plain ; Charset="UTF-8"; format=flowed')).toBe("text/plain; charset=utf-8");
    expect(normaliseContentType("text/plain;")).toBe("text/plain");
    expect(normaliseContentType('text/plain; charset="x,text/html"')).toBe("text/plain");
    expect(normaliseContentType("text/plain; charset=a'b")).toBe("text/plain");
    for (const value of [undefined, "", "text/plain;charset=x,text/html", "text/plain, text/html", "text/plain; charset", 'text/plain; charset="utf-8', "text/plain\r\nX: y", "tëxt/plain", "text/" + "x".repeat(300)]) {
      expect([value, normaliseContentType(value)]).toEqual([value, undefined]);
    }
  });

  test("the file name is read back from each form", () => {
    for (const name of ["cat.png", 'my "big" file.txt', "Ünïcödé 🐱.png", "it's (1).txt"]) expect(filenameFromDisposition(contentDisposition("inline", name))).toBe(name);
    expect(filenameFromDisposition('attachment; filename="fallback.txt"; filename*=UTF-8\'\'%E2%82%AC.txt')).toBe("€.txt");
    expect(filenameFromDisposition("inline")).toBeUndefined();
    expect(filenameFromDisposition(null)).toBeUndefined();
  });
});

describe("mxc:// ids", () => {
  test("only A-Za-z0-9, _ and - in media ids, valid server names; new ids are 24 letters", () => {
    expect(isValidMediaId("abc_DEF-123")).toBe(true);
    for (const id of ["", "a.b", "../x", "a/b", "a%2F", "é", "a b"]) expect(isValidMediaId(id)).toBe(false);
    expect(() => checkMediaAddress("example.org:8448", "abc")).not.toThrow();
    expect(() => checkMediaAddress("../etc", "abc")).toThrow(MatrixError);
    const ids = new Set(Array.from({ length: 200 }, newMediaId));
    expect(ids.size).toBe(200);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z]{24}$/);
  });
});

describe("multipart/mixed", () => {
  test("our answer parses back: metadata part, then the bytes with their headers", async () => {
    const bytes = new Uint8Array(4096).map((_, i) => (i * 7) % 256);
    // Bytes that look like a delimiter line inside the content do not end it early.
    bytes.set(new TextEncoder().encode("\r\n--not-the-boundary\r\n"), 100);
    const { body, contentType } = multipartMedia({ contentType: "application/octet-stream", contentDisposition: "attachment; filename=x.bin", body: bytes });
    const boundary = boundaryOf(contentType)!;
    expect(contentType).toBe(`multipart/mixed; boundary=${boundary}`);
    const part = parseMultipartMedia(new Uint8Array(await body.arrayBuffer()), boundary);
    expect(part.kind).toBe("bytes");
    if (part.kind !== "bytes") return;
    expect(part.bytes).toEqual(bytes);
    expect(part.headers.get("content-disposition")).toBe("attachment; filename=x.bin");
  });

  test("a Location part, quoted boundaries, and malformed bodies", () => {
    const body = new TextEncoder().encode("preamble\r\n--b q\r\nContent-Type: application/json\r\n\r\n{}\r\n--b q\r\nLocation: https://cdn.example/x\r\n\r\n\r\n--b q--\r\n");
    expect(boundaryOf('multipart/mixed; boundary="b q"')).toBe("b q");
    expect(boundaryOf("multipart/mixed;boundary=xyz")).toBe("xyz");
    expect(boundaryOf("text/plain; boundary=xyz")).toBeUndefined();
    expect(parseMultipartMedia(body, "b q")).toEqual({ kind: "location", location: "https://cdn.example/x" });
    expect(() => parseMultipartMedia(new TextEncoder().encode("--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b--"), "b")).toThrow();
    expect(() => parseMultipartMedia(new TextEncoder().encode("nothing here"), "b")).toThrow();
  });
});

describe("which addresses a user-chosen URL may reach", () => {
  test("public unicast only", () => {
    for (const address of ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "64:ff9b::808:808", "::ffff:8.8.8.8"]) expect([address, isPublicAddress(address)]).toEqual([address, true]);
    for (const address of [
      "127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "239.255.255.250",
      "255.255.255.255", "198.18.0.1", "192.0.2.1", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1",
      "2002:7f00:1::", "2001:db8::1", "fe80::1%eth0", "not an address", "localhost",
      // IPv4-compatible (deprecated) ::/96, SIIT ::ffff:0:0:0/96, local-use NAT64 64:ff9b:1::/48,
      // the well-known NAT64 prefix around a private address, unallocated and documentation space.
      "::7f00:1", "::127.0.0.1", "::808:808", "::ffff:0:7f00:1", "::ffff:0:808:808", "64:ff9b:1::a00:1", "64:ff9b:1:ffff::808:808",
      "64:ff9b::7f00:1", "64:ff9b::127.0.0.1", "64:ff9b::c0a8:101", "64:ff9b::a9fe:a9fe", "100::1", "4000::1", "3fff::1",
    ]) {
      expect([address, isPublicAddress(address)]).toEqual([address, false]);
    }
  });

  test("safeFetch refuses loopback by address and by name, and redirects into it, without connecting", async () => {
    let hits = 0;
    const page = serve(() => (hits++, new Response("secret")));
    const limits = { maxBytes: 1024, timeoutMs: 2000 };
    for (const url of [`http://127.0.0.1:${page.port}/`, `http://localhost:${page.port}/`, `http://[::1]:${page.port}/`]) {
      const error = await safeFetch(url, limits).catch((e) => e);
      expect([url, error instanceof MatrixError && error.status, error.errcode]).toEqual([url, 403, "M_FORBIDDEN"]);
    }
    // A name whose addresses include a private one is refused even when another is public.
    const mixed = await safeFetch("http://mixed.example/", { ...limits, resolve: async () => ["93.184.216.34", "127.0.0.1"] }).catch((e) => e);
    expect(mixed.status).toBe(403);
    expect(hits).toBe(0);

    // Allowed (explicitly, for this test) to reach 127.0.0.1 only: a redirect elsewhere is refused.
    const redirecting = serve(() => new Response(null, { status: 302, headers: { Location: `http://localhost:${page.port}/` } }));
    const redirected = await safeFetch(`http://127.0.0.1:${redirecting.port}/`, { ...limits, allowAddress: loopbackOnly, resolve: async () => ["::1"] }).catch((e) => e);
    expect(redirected.status).toBe(403);
    expect(hits).toBe(0);
    const fetched = await safeFetch(`http://127.0.0.1:${page.port}/`, { ...limits, allowAddress: loopbackOnly });
    expect([fetched.status, new TextDecoder().decode(fetched.bytes)]).toEqual([200, "secret"]);
    expect(hits).toBe(1);
  });

  test("size and time limits", async () => {
    const big = serve(() => new Response(new Uint8Array(5000)));
    const tooBig = await safeFetch(`http://127.0.0.1:${big.port}/`, { maxBytes: 1000, timeoutMs: 2000, allowAddress: loopbackOnly }).catch((e) => e);
    expect([tooBig.status, tooBig.errcode]).toEqual([502, "M_TOO_LARGE"]);
    const streamed = serve(() => new Response(new ReadableStream({ pull: (c) => c.enqueue(new Uint8Array(600)) })));
    const endless = await safeFetch(`http://127.0.0.1:${streamed.port}/`, { maxBytes: 1000, timeoutMs: 2000, allowAddress: loopbackOnly }).catch((e) => e);
    expect(endless.errcode).toBe("M_TOO_LARGE");
    const slow = serve(async () => (await Bun.sleep(1500), new Response("late")));
    const late = await safeFetch(`http://127.0.0.1:${slow.port}/`, { maxBytes: 1000, timeoutMs: 200, allowAddress: loopbackOnly }).catch((e) => e);
    expect(late.status).toBe(504);
  });
});

describe("URL previews", () => {
  test("OpenGraph tags, with <title> and description as fallbacks and og:image made absolute", () => {
    const html = `<html><head><title> A &amp; B </title>
      <meta name="description" content="plain description">
      <meta property="og:type" content='article'>
      <meta content="Caf&eacute; &#x263A; &quot;q&quot;" property="og:description" />
      <meta property="og:image" content="/img/cover.png">
      <meta property="og:type" content="ignored second value">
      </head><body><meta property="og:title" content="late title"></body></html>`;
    expect(openGraphOf(html, "https://site.example/blog/post")).toEqual({
      "og:type": "article",
      "og:description": 'Caf&eacute; ☺ "q"',
      "og:image": "https://site.example/img/cover.png",
      "og:title": "late title",
    });
    expect(openGraphOf("<title>Only a title</title><meta name=description content=short>", "https://x.example/")).toEqual({ "og:title": "Only a title", "og:description": "short" });
  });

  test("a page's preview stores its image as media; answers are cached", async () => {
    const png = await makeImage("png", 40, 30);
    let pageHits = 0;
    const site = serve((request) => {
      const path = new URL(request.url).pathname;
      if (path === "/cover.png") return new Response(png, { headers: { "Content-Type": "image/png" } });
      pageHits++;
      return new Response(`<meta property="og:title" content="Hello"><meta property="og:image" content="/cover.png">`, { headers: { "Content-Type": "text/html; charset=utf-8" } });
    });
    const stored: { bytes: Uint8Array; userId: string }[] = [];
    const previewer = new UrlPreviewer({
      fetch: (url) => safeFetch(url, { maxBytes: 100_000, timeoutMs: 2000, allowAddress: loopbackOnly }),
      storeImage: async (bytes, _type, userId) => (stored.push({ bytes, userId }), "mxc://preview.example/stored"),
      clock: { now: () => 1000 },
    });
    const url = `http://127.0.0.1:${site.port}/post`;
    const expected = { "og:title": "Hello", "og:image": "mxc://preview.example/stored", "og:image:type": "image/png", "og:image:width": 40, "og:image:height": 30, "matrix:image:size": png.byteLength };
    expect(await previewer.preview(url, "@u:preview.example")).toEqual(expected);
    expect(stored.map((s) => [s.bytes.byteLength, s.userId])).toEqual([[png.byteLength, "@u:preview.example"]]);
    expect(await previewer.preview(url, "@u:preview.example")).toEqual(expected);
    expect(pageHits).toBe(1);
    await expect(previewer.preview("ftp://x.example/", "@u:preview.example")).rejects.toThrow(MatrixError);
  });
});

describe("remote media from an older server", () => {
  test("without the federation media endpoint, the deprecated download with allow_remote=false is used", async () => {
    const seen: string[] = [];
    const remote = serve((request) => {
      const url = new URL(request.url);
      seen.push(`${url.pathname}${url.search} ${request.headers.get("authorization")?.startsWith("X-Matrix ") ? "signed" : "unsigned"}`);
      if (url.pathname.startsWith("/_matrix/federation/")) return Response.json({ errcode: "M_UNRECOGNIZED", error: "Unrecognized request" }, { status: 404 });
      return new Response("old server's bytes", { headers: { "Content-Type": "text/plain", "Content-Disposition": "inline; filename=old.txt" } });
    });
    const name = `127.0.0.1:${remote.port}`;
    const config = resolveConfig({ server_name: "us.example", federation: { plain_http_servers: [name] } });
    const keys = new ServerKeyService(config, { now: () => Date.now() }, signingKeyFromSeed("a", new Uint8Array(32).fill(1)));
    const client = new FederationMediaClient({ serverName: "us.example", signer: keys, config: config.federation });
    const media = await client.download(name, "abcDEF", 1000);
    expect([new TextDecoder().decode(media.bytes), media.contentType, media.filename]).toEqual(["old server's bytes", "text/plain", "old.txt"]);
    expect(seen).toEqual([`/_matrix/federation/v1/media/download/abcDEF?timeout_ms=20000 signed`, `/_matrix/media/v3/download/${encodeURIComponent(name)}/abcDEF?allow_remote=false unsigned`]);
    const tooLarge = await client.download(name, "abcDEF", 5).catch((e) => e);
    expect([tooLarge.status, tooLarge.errcode]).toEqual([502, "M_TOO_LARGE"]);
  });
});
