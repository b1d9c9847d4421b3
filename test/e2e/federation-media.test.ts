// Media across two Portier servers federating over TLS on loopback: a user of one server downloads
// and thumbnails the other's media through its own server, which fetches it once over
// /_matrix/federation/v1/media/download (multipart/mixed, X-Matrix signed) and caches it. The
// federation endpoints refuse unsigned requests and serve only their own server's media.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { federatedServer, type FederatedServer } from "../helpers/federation";
import { bearer, registerUser, type TestUser } from "../helpers/accounts";
import { makeImage } from "../helpers/images";
import { readImageInfo } from "../../src/services/media/image-format";
import { boundaryOf, parseMultipartMedia } from "../../src/services/media/multipart";
import { signRequest } from "../../src/protocol/x-matrix";
import { Tokens, resolve } from "../../src/di/tokens";

let origin: FederatedServer;
let viewer: FederatedServer;
let olive: TestUser;
let victor: TestUser;

beforeAll(async () => {
  origin = await federatedServer({ registration: { enabled: true } });
  viewer = await federatedServer({ registration: { enabled: true } });
  olive = await registerUser(origin.server, "olive");
  victor = await registerUser(viewer.server, "victor");
}, 30_000);
afterAll(async () => {
  await viewer?.server.stop();
  await origin?.server.stop();
});

const get = (base: FederatedServer, path: string, headers: Record<string, string> = {}) => fetch(`${base.url}${path}`, { headers, signal: AbortSignal.timeout(20_000), tls: { rejectUnauthorized: false } } as RequestInit);

async function upload(bytes: Uint8Array, type: string, filename: string): Promise<string> {
  const r = await fetch(`${origin.url}/_matrix/media/v3/upload?filename=${encodeURIComponent(filename)}`, { method: "POST", body: bytes, headers: { ...bearer(olive.token), "Content-Type": type }, tls: { rejectUnauthorized: false } } as RequestInit);
  expect(r.status).toBe(200);
  return ((await r.json()) as { content_uri: string }).content_uri.split("/").pop()!;
}

describe("remote media over federation", () => {
  test("downloaded through the viewer's server, with the origin's type and file name, then served from its cache", async () => {
    const png = await makeImage("png", 300, 200);
    const id = await upload(png, "image/png", "map é.png");
    const path = `/_matrix/client/v1/media/download/${origin.serverName}/${id}`;
    const first = await get(viewer, path, bearer(victor.token));
    expect(first.status).toBe(200);
    expect(new Uint8Array(await first.arrayBuffer()) as Uint8Array).toEqual(png);
    expect(first.headers.get("content-type")).toBe("image/png");
    expect(first.headers.get("content-disposition")).toBe("inline; filename*=utf-8''map%20%C3%A9.png");
    const cached = await resolve(viewer.server.container, Tokens.Database).get<{ sha256: string }>("SELECT sha256 FROM media WHERE server_name = ? AND media_id = ?", origin.serverName, id);
    expect(cached?.sha256).toBe(new Bun.CryptoHasher("sha256").update(png).digest("hex"));

    // The deprecated endpoint with allow_remote=false serves the cached copy, never asks the origin.
    const legacy = await get(viewer, `/_matrix/media/v3/download/${origin.serverName}/${id}?allow_remote=false`);
    expect(legacy.status).toBe(200);
    expect(new Uint8Array(await legacy.arrayBuffer()) as Uint8Array).toEqual(png);
    const notCached = await get(viewer, `/_matrix/media/v3/download/${origin.serverName}/neverFetched?allow_remote=false`);
    expect(notCached.status).toBe(404);
    // Without a token, allow_remote or not, the deprecated endpoints never make the viewer fetch
    // (only a cached copy is served): the origin's other media is not found there, and not fetched.
    const other = await upload(await makeImage("png", 64, 64), "image/png", "other.png");
    for (const legacyPath of [
      `/_matrix/media/v3/download/${origin.serverName}/${other}`,
      `/_matrix/media/r0/download/${origin.serverName}/${other}/other.png?allow_remote=true`,
      `/_matrix/media/v3/thumbnail/${origin.serverName}/${other}?width=32&height=32&method=crop`,
    ]) {
      const r = await get(viewer, legacyPath);
      expect([legacyPath, r.status, ((await r.json()) as { errcode: string }).errcode]).toEqual([legacyPath, 404, "M_NOT_FOUND"]);
    }
    const db = resolve(viewer.server.container, Tokens.Database);
    expect(await db.get("SELECT media_id FROM media WHERE server_name = ? AND media_id = ?", origin.serverName, other)).toBeUndefined();
    expect((await get(viewer, `/_matrix/client/v1/media/download/${origin.serverName}/${other}`, bearer(victor.token))).status).toBe(200);
    expect((await get(viewer, `/_matrix/media/v3/download/${origin.serverName}/${other}`)).status).toBe(200);

    const thumbnail = await get(viewer, `/_matrix/client/v1/media/thumbnail/${origin.serverName}/${id}?width=96&height=96&method=crop`, bearer(victor.token));
    expect(thumbnail.status).toBe(200);
    expect(readImageInfo(new Uint8Array(await thumbnail.arrayBuffer()))).toEqual({ format: "png", width: 96, height: 96 });

    const missing = await get(viewer, `/_matrix/client/v1/media/download/${origin.serverName}/doesNotExist`, bearer(victor.token));
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { errcode: string }).errcode).toBe("M_NOT_FOUND");
  }, 30_000);

  test("the federation endpoints answer multipart/mixed to signed requests only", async () => {
    const bytes = new TextEncoder().encode("plain text over federation");
    const id = await upload(bytes, "text/plain", "notes.txt");
    const keys = resolve(viewer.server.container, Tokens.ServerKeys);
    const signedGet = async (path: string) => {
      const authorization = signRequest({ method: "GET", uri: path, origin: viewer.serverName, destination: origin.serverName }, keys);
      return get(origin, path, { Authorization: authorization });
    };

    const download = await signedGet(`/_matrix/federation/v1/media/download/${id}`);
    expect(download.status).toBe(200);
    const boundary = boundaryOf(download.headers.get("content-type"));
    expect(boundary).toBeDefined();
    const part = parseMultipartMedia(new Uint8Array(await download.arrayBuffer()), boundary!);
    expect(part.kind).toBe("bytes");
    if (part.kind !== "bytes") return;
    expect(new TextDecoder().decode(part.bytes)).toBe("plain text over federation");
    expect(part.headers.get("content-type")).toBe("text/plain");
    expect(part.headers.get("content-disposition")).toBe("inline; filename=notes.txt");

    const png = await upload(await makeImage("png", 200, 200), "image/png", "p.png");
    const thumb = await signedGet(`/_matrix/federation/v1/media/thumbnail/${png}?width=32&height=32&method=crop`);
    expect(thumb.status).toBe(200);
    const thumbPart = parseMultipartMedia(new Uint8Array(await thumb.arrayBuffer()), boundaryOf(thumb.headers.get("content-type"))!);
    expect(thumbPart.kind === "bytes" && readImageInfo(thumbPart.bytes)).toEqual({ format: "png", width: 32, height: 32 });

    expect((await get(origin, `/_matrix/federation/v1/media/download/${id}`)).status).toBe(401);
    expect((await signedGet(`/_matrix/federation/v1/media/download/unknownMedia`)).status).toBe(404);
  }, 30_000);
});
