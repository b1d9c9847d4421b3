// The media store, on every engine of this run: uploads, ids created ahead of their content (one
// content each, counted while pending), cached remote media and thumbnails.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, testStores } from "../helpers/databases";
import type { Stores } from "../../src/storage/open";
import type { MediaContent } from "../../src/storage/tables/media";

const OURS = "media.example";
const content = (sha: string, overrides: Partial<MediaContent> = {}): MediaContent => ({ contentType: "image/png", uploadName: "cat é.png", size: 42, sha256: sha.repeat(64).slice(0, 64), uploadedTs: 2000, ...overrides });

describe.each(testDatabases.map((d) => [d.name] as const))("media store on %s", (name) => {
  let stores: Stores;
  beforeEach(async () => {
    stores = await testStores(name);
  });
  afterEach(async () => {
    await stores.db.close();
  });

  test("an upload is stored with its content; an id is never taken twice", async () => {
    const record = { serverName: OURS, mediaId: "abc", userId: "@u:media.example", createdTs: 1000, unusedExpiresTs: undefined, content: content("a") };
    expect(await stores.media.insertMedia(record)).toBe(true);
    expect(await stores.media.insertMedia({ ...record, userId: "@other:media.example", content: content("b") })).toBe(false);
    expect(await stores.media.getMedia(OURS, "abc")).toEqual(record);
    expect(await stores.media.getMedia(OURS, "nope")).toBeUndefined();
    expect(await stores.media.getMedia("other.example", "abc")).toBeUndefined();
  });

  test("a created id gets its content once, and counts as pending until then or until it expires", async () => {
    const user = "@u:media.example";
    for (const [id, expires] of [["p1", 5000], ["p2", 9000]] as const) {
      await stores.media.insertMedia({ serverName: OURS, mediaId: id, userId: user, createdTs: 1000, unusedExpiresTs: expires, content: undefined });
    }
    expect(await stores.media.countPendingUploads(user, 4000)).toBe(2);
    expect(await stores.media.countPendingUploads(user, 6000)).toBe(1);
    expect(await stores.media.countPendingUploads("@other:media.example", 4000)).toBe(0);
    expect((await stores.media.getMedia(OURS, "p1"))?.content).toBeUndefined();

    expect(await stores.media.completeUpload(OURS, "p1", content("c", { contentType: undefined, uploadName: undefined }))).toBe(true);
    expect(await stores.media.completeUpload(OURS, "p1", content("d"))).toBe(false);
    expect((await stores.media.getMedia(OURS, "p1"))?.content).toEqual(content("c", { contentType: undefined, uploadName: undefined }));
    expect(await stores.media.countPendingUploads(user, 4000)).toBe(1);
    expect(await stores.media.completeUpload(OURS, "missing", content("e"))).toBe(false);
  });

  test("remote media is cached and replaced when fetched again", async () => {
    await stores.media.putRemoteMedia("remote.example", "r1", content("a"));
    expect(await stores.media.getMedia("remote.example", "r1")).toEqual({ serverName: "remote.example", mediaId: "r1", userId: undefined, createdTs: 2000, unusedExpiresTs: undefined, content: content("a") });
    await stores.media.putRemoteMedia("remote.example", "r1", content("b", { uploadedTs: 3000 }));
    expect((await stores.media.getMedia("remote.example", "r1"))?.content).toEqual(content("b", { uploadedTs: 3000 }));
  });

  test("thumbnails by size and method; the first one stored stays", async () => {
    const thumb = { serverName: OURS, mediaId: "abc", width: 96, height: 96, method: "crop" as const, contentType: "image/png", size: 10, sha256: "f".repeat(64), createdTs: 1 };
    await stores.media.putThumbnail(thumb);
    await stores.media.putThumbnail({ ...thumb, sha256: "e".repeat(64) });
    expect(await stores.media.getThumbnail(OURS, "abc", 96, 96, "crop")).toEqual(thumb);
    expect(await stores.media.getThumbnail(OURS, "abc", 96, 96, "scale")).toBeUndefined();
    expect(await stores.media.getThumbnail(OURS, "abc", 32, 32, "crop")).toBeUndefined();
  });
});
