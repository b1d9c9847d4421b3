// The content repository over real HTTP: a Portier on an ephemeral loopback port (temporary
// data_dir, file-backed SQLite), driven with fetch. Figures:
//   - upload throughput: POST /_matrix/media/v3/upload of 20 MB bodies (random bytes, so no two
//     share a file), one after another, MB/s (each answer means the file is flushed and its row committed);
//   - download throughput: GET /_matrix/client/v1/media/download of the same files, MB/s;
//   - thumbnails of a 4,000 x 3,000 JPEG through the API: each standard size the first time (the
//     render, in the thumbnail worker; the very first also starts the worker and loads ImageMagick)
//     and again (served from the thumbnail cache); then the render alone, on this thread, median of 5;
//   - the process's resident memory after the run.
// The server runs in this process, on the same event loop as the client: the figures include the
// client's side of HTTP. Figures only; nothing asserts on time.
import type { PortierServer } from "../../src/app";
import { renderThumbnail } from "../../src/services/media/thumbnail-render";
import { testServer } from "../helpers/server";
import { makeImage } from "../helpers/images";
import { median, ms, now, rss } from "./matrix-http";

const FILE_MB = Number(process.env.MEDIA_FILE_MB ?? 20);
const FILES = Number(process.env.MEDIA_FILES ?? 5);

const server: PortierServer = await testServer({ registration: { enabled: true }, media: { max_upload_size: (FILE_MB + 1) * 1024 * 1024 } });
const { url } = await server.start();
const registered = (await (await fetch(`${url}/_matrix/client/v3/register`, { method: "POST", body: JSON.stringify({ username: "bench", password: "bench password", auth: { type: "m.login.dummy" } }) })).json()) as { access_token: string };
const auth = { Authorization: `Bearer ${registered.access_token}` };
const mbps = (bytes: number, msTaken: number) => `${((bytes / 1024 / 1024) / (msTaken / 1000)).toFixed(1)} MB/s`;

async function upload(bytes: Uint8Array, type: string): Promise<string> {
  const response = await fetch(`${url}/_matrix/media/v3/upload`, { method: "POST", body: bytes, headers: { ...auth, "Content-Type": type } });
  if (response.status !== 200) throw new Error(`upload: ${response.status} ${await response.text()}`);
  return ((await response.json()) as { content_uri: string }).content_uri.slice("mxc://".length);
}

console.log(`\n## media (${FILES} files of ${FILE_MB} MB; thumbnails of a 4,000 x 3,000 JPEG)`);

const files = Array.from({ length: FILES }, () => {
  const bytes = new Uint8Array(FILE_MB * 1024 * 1024);
  for (let offset = 0; offset < bytes.length; offset += 65536) crypto.getRandomValues(bytes.subarray(offset, Math.min(offset + 65536, bytes.length)));
  return bytes;
});
const uploadTimes: number[] = [];
const uris: string[] = [];
let start = now();
for (const bytes of files) {
  const t = now();
  uris.push(await upload(bytes, "application/octet-stream"));
  uploadTimes.push(now() - t);
}
const uploadTotal = now() - start;
console.log(`upload:    ${mbps(FILES * FILE_MB * 1024 * 1024, uploadTotal)} (${FILES} x ${FILE_MB} MB in ${ms(uploadTotal)}; median ${ms(median(uploadTimes))} per file)`);

const downloadTimes: number[] = [];
start = now();
for (const uri of uris) {
  const t = now();
  const response = await fetch(`${url}/_matrix/client/v1/media/download/${uri}`, { headers: auth });
  const size = (await response.arrayBuffer()).byteLength;
  if (response.status !== 200 || size !== FILE_MB * 1024 * 1024) throw new Error(`download: ${response.status}, ${size} bytes`);
  downloadTimes.push(now() - t);
}
const downloadTotal = now() - start;
console.log(`download:  ${mbps(FILES * FILE_MB * 1024 * 1024, downloadTotal)} (${FILES} x ${FILE_MB} MB in ${ms(downloadTotal)}; median ${ms(median(downloadTimes))} per file)`);

const jpeg = await makeImage("jpeg", 4000, 3000);
const photo = await upload(jpeg, "image/jpeg");
console.log(`thumbnails of a 4,000 x 3,000 JPEG (${(jpeg.byteLength / 1024 / 1024).toFixed(1)} MB), through the API:`);
const sizes = [
  [32, 32, "crop"],
  [96, 96, "crop"],
  [320, 240, "scale"],
  [640, 480, "scale"],
  [800, 600, "scale"],
] as const;
for (const [width, height, method] of sizes) {
  const path = `${url}/_matrix/client/v1/media/thumbnail/${photo}?width=${width}&height=${height}&method=${method}`;
  const timed = async () => {
    const t = now();
    const response = await fetch(path, { headers: auth });
    const size = (await response.arrayBuffer()).byteLength;
    if (response.status !== 200) throw new Error(`thumbnail: ${response.status}`);
    return { time: now() - t, size };
  };
  const first = await timed();
  const again = await timed();
  console.log(`  ${`${width}x${height} ${method}`.padEnd(16)} made ${ms(first.time).padStart(10)}   cached ${ms(again.time).padStart(8)}   (${(first.size / 1024).toFixed(1)} KB)`);
}
console.log("the render alone, on this thread (median of 5, after one warm-up):");
for (const [width, height, method] of [[96, 96, "crop"], [800, 600, "scale"]] as const) {
  await renderThumbnail({ bytes: jpeg, format: "jpeg", width, height, method });
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = now();
    const result = await renderThumbnail({ bytes: jpeg, format: "jpeg", width, height, method });
    if (result.kind !== "thumbnail") throw new Error(`render: ${result.kind}`);
    times.push(now() - t);
  }
  console.log(`  ${`${width}x${height} ${method}`.padEnd(16)} ${ms(median(times))}`);
}
console.log(`resident memory after the run: ${rss()}`);
await server.stop();
