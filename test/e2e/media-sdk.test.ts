// Media end to end with matrix-js-sdk against a real Portier on a loopback port: the SDK uploads an
// image and a file (uploadContent), reads the media config, and the URLs it builds with
// mxcUrlToHttp for authenticated media (download and thumbnail) are fetched with the access token,
// as a client does. Every JSON exchange the SDK made is checked against the spec; no 5xx.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createClient, type MatrixClient } from "matrix-js-sdk";
import type { PortierServer } from "../../src/app";
import { readImageInfo } from "../../src/services/media/image-format";
import { specMismatches, specOperation } from "../helpers/openapi";
import { testServer } from "../helpers/server";
import { makeImage } from "../helpers/images";
import { muteSdkGlobalLogger, quietLogger, recordingFetch, type Exchange } from "./helpers/sdk";

const SERVER_NAME = "media-sdk.test";
const exchanges: Exchange[] = [];
const sdkLog: string[] = [];
let server: PortierServer;
let baseUrl: string;
let client: MatrixClient;
let unmute: () => void;

beforeAll(async () => {
  unmute = muteSdkGlobalLogger(sdkLog);
  server = await testServer({ server_name: SERVER_NAME, registration: { enabled: true } });
  baseUrl = (await server.start()).url;
  const anon = createClient({ baseUrl, fetchFn: recordingFetch("anon", exchanges), logger: quietLogger(sdkLog) });
  const registered = await anon.registerRequest({ username: "pat", password: "correct horse battery", auth: { type: "m.login.dummy" } });
  client = createClient({ baseUrl, userId: registered.user_id, accessToken: registered.access_token, deviceId: registered.device_id, fetchFn: recordingFetch("pat", exchanges), logger: quietLogger(sdkLog) });
});
afterAll(async () => {
  client?.stopClient();
  await server?.stop();
  unmute?.();
});

const authorized = (url: string) => fetch(url, { headers: { Authorization: `Bearer ${client.getAccessToken()}` }, signal: AbortSignal.timeout(20_000) });

describe("media through matrix-js-sdk", () => {
  test("uploadContent, then download and thumbnail through mxcUrlToHttp with authenticated media", async () => {
    const jpeg = await makeImage("jpeg", 640, 480);
    const uploaded = await client.uploadContent(new Blob([jpeg], { type: "image/jpeg" }), { name: "holiday photo.jpg", type: "image/jpeg" });
    expect(uploaded.content_uri).toMatch(new RegExp(`^mxc://${SERVER_NAME}/[A-Za-z0-9_-]+$`));

    const downloadUrl = client.mxcUrlToHttp(uploaded.content_uri, undefined, undefined, undefined, false, true, true)!;
    expect(downloadUrl).toContain("/_matrix/client/v1/media/download/");
    const download = await authorized(downloadUrl);
    expect(download.status).toBe(200);
    expect(new Uint8Array(await download.arrayBuffer()) as Uint8Array).toEqual(jpeg);
    expect(download.headers.get("content-type")).toBe("image/jpeg");
    expect(download.headers.get("content-disposition")).toBe('inline; filename="holiday photo.jpg"');
    // Without the token the authenticated URL is refused.
    expect((await fetch(downloadUrl)).status).toBe(401);

    const thumbnailUrl = client.mxcUrlToHttp(uploaded.content_uri, 96, 96, "crop", false, true, true)!;
    expect(thumbnailUrl).toContain("/_matrix/client/v1/media/thumbnail/");
    const thumbnail = await authorized(thumbnailUrl);
    expect(thumbnail.status).toBe(200);
    expect(thumbnail.headers.get("content-disposition")).toStartWith("inline");
    expect(readImageInfo(new Uint8Array(await thumbnail.arrayBuffer()))).toEqual({ format: "jpeg", width: 96, height: 96 });
  }, 30_000);

  test("an HTML file uploaded through the SDK is downloaded as an attachment, sandboxed", async () => {
    const html = "<!doctype html><script>parent.postMessage(document.cookie, '*')</script>";
    const uploaded = await client.uploadContent(new Blob([html], { type: "text/html" }), { name: "page.html", type: "text/html" });
    const response = await authorized(client.mxcUrlToHttp(uploaded.content_uri, undefined, undefined, undefined, false, true, true)!);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(html);
    expect(response.headers.get("content-type")).toBe("text/html");
    expect(response.headers.get("content-disposition")).toBe("attachment; filename=page.html");
    expect(response.headers.get("content-security-policy")).toStartWith("sandbox;");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
  });

  test("the media config, and every JSON answer the SDK got matches the spec", async () => {
    const config = await client.getMediaConfig(true);
    expect(config["m.upload.size"]).toBe(server.config.media.max_upload_size);
    const checked = exchanges.filter((e) => e.status > 0 && e.contentType?.startsWith("application/json") && specOperation({ method: e.method, path: e.path }));
    expect(checked.some((e) => e.path === "/_matrix/media/v3/upload")).toBe(true);
    const problems = checked.flatMap((e) => specMismatches({ method: e.method, path: e.path, status: e.status, body: e.body }));
    expect(problems).toEqual([]);
    expect(exchanges.filter((e) => e.status >= 500)).toEqual([]);
  });
});
