// The /sync response cache: one computation per request while it runs and for a while after, keyed
// by the whole request; failures not kept; off when its time is 0. Then through HTTP: a retry with
// the same since gets the same answer, the next since moves on.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SyncResponseCache } from "../../../src/services/sync/sync-response-cache";
import type { SyncRequest, SyncResponse } from "../../../src/services/sync/sync-service";
import type { PortierServer } from "../../../src/app";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";

function fakeSync() {
  const calls: SyncRequest[] = [];
  let fail = false;
  let release: (() => void) | undefined;
  const inner = {
    hold: false,
    async sync(request: SyncRequest): Promise<SyncResponse> {
      calls.push(request);
      if (inner.hold) await new Promise<void>((resolve) => (release = resolve));
      if (fail) throw new Error("failed");
      return { next_batch: `answer ${calls.length}` } as unknown as SyncResponse;
    },
  };
  return { inner, calls, failNext: (v: boolean) => (fail = v), release: () => release?.() };
}

const request = (over: Partial<SyncRequest> = {}): SyncRequest => ({ userId: "@a:x", deviceId: "D", since: "s1", timeoutMs: 0, ...over }) as SyncRequest;

describe("SyncResponseCache", () => {
  test("the same request within the time gets the same answer without a second computation; after it, a new one", async () => {
    let now = 1_000;
    const fake = fakeSync();
    const cache = new SyncResponseCache(fake.inner, { now: () => now }, 120_000);
    const first = await cache.sync(request());
    expect(await cache.sync(request())).toBe(first);
    expect(fake.calls).toHaveLength(1);
    now += 119_999;
    expect(await cache.sync(request())).toBe(first);
    now += 2;
    expect(await cache.sync(request())).not.toBe(first);
    expect(fake.calls).toHaveLength(2);
  });

  test("every part of the request is in the key", async () => {
    const fake = fakeSync();
    const cache = new SyncResponseCache(fake.inner, { now: () => 0 }, 120_000);
    const variants: Partial<SyncRequest>[] = [{}, { userId: "@b:x" }, { deviceId: "E" }, { since: "s2" }, { filter: "7" }, { filter: { room: { timeline: { limit: 1 } } } }, { fullState: true }, { timeoutMs: 30_000 }, { setPresence: "offline" }];
    for (const [i, v] of variants.entries()) {
      // A new key each time (computed), and the same request again at once is the kept answer.
      await cache.sync(request(v));
      expect(fake.calls).toHaveLength(i + 1);
      await cache.sync(request(v));
      expect(fake.calls).toHaveLength(i + 1);
    }
  });

  test("an answer that moved nothing (next_batch is the since) is not kept: a client polling with it sees what comes next", async () => {
    const fake = fakeSync();
    const cache = new SyncResponseCache({ sync: async (r) => { fake.calls.push(r); return { next_batch: fake.calls.length === 1 ? "s1" : "s2" } as unknown as SyncResponse; } }, { now: () => 0 }, 120_000);
    expect((await cache.sync(request({ since: "s1" }))).next_batch).toBe("s1");
    expect((await cache.sync(request({ since: "s1" }))).next_batch).toBe("s2");
    expect((await cache.sync(request({ since: "s1" }))).next_batch).toBe("s2");
    expect(fake.calls).toHaveLength(2);
  });

  test("a device's last two answers are kept, older ones dropped (a client retries what it last asked)", async () => {
    const fake = fakeSync();
    const cache = new SyncResponseCache(fake.inner, { now: () => 0 }, 120_000);
    for (const since of ["s1", "s2", "s3"]) await cache.sync(request({ since }));
    await cache.sync(request({ since: "s1", deviceId: "OTHER" }));
    expect(cache.size).toBe(3);
    await cache.sync(request({ since: "s3" }));
    await cache.sync(request({ since: "s2" }));
    expect(fake.calls).toHaveLength(4);
    await cache.sync(request({ since: "s1" }));
    expect(fake.calls).toHaveLength(5);
  });

  test("an initial sync (no since) is never kept: asked again, it is computed again", async () => {
    const fake = fakeSync();
    const cache = new SyncResponseCache(fake.inner, { now: () => 0 }, 120_000);
    await cache.sync(request({ since: undefined }));
    await cache.sync(request({ since: undefined }));
    expect(fake.calls).toHaveLength(2);
    expect(cache.size).toBe(0);
  });

  test("a retry while the first is still waiting joins it; no caller's signal reaches the computation", async () => {
    const fake = fakeSync();
    fake.inner.hold = true;
    const cache = new SyncResponseCache(fake.inner, { now: () => 0 }, 120_000);
    const aborted = new AbortController();
    aborted.abort();
    const first = cache.sync(request({ timeoutMs: 30_000, signal: aborted.signal }));
    const retry = cache.sync(request({ timeoutMs: 30_000 }));
    fake.release();
    expect(await retry).toBe(await first);
    expect(fake.calls).toHaveLength(1);
    expect(fake.calls[0]!.signal).toBeUndefined();
  });

  test("a failure is not kept; with no time (0) nothing is kept; the number of entries is bounded", async () => {
    const fake = fakeSync();
    const cache = new SyncResponseCache(fake.inner, { now: () => 0 }, 120_000, 3);
    fake.failNext(true);
    await expect(cache.sync(request())).rejects.toThrow("failed");
    fake.failNext(false);
    await cache.sync(request());
    expect(fake.calls).toHaveLength(2);
    for (let i = 0; i < 10; i++) await cache.sync(request({ since: `s${i + 10}`, deviceId: `D${i}` }));
    expect(cache.size).toBe(3);
    const off = new SyncResponseCache(fake.inner, { now: () => 0 }, 0);
    const before = fake.calls.length;
    await off.sync(request());
    await off.sync(request());
    expect(fake.calls.length - before).toBe(2);
  });
});

describe("GET /sync with the response cache on", () => {
  let server: PortierServer;
  beforeAll(async () => {
    server = await testServer({ registration: { enabled: true }, sync: { response_cache_ms: 120_000 } });
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("a retry with the same since gets the same answer; the next_batch it gave moves on", async () => {
    const alice = await TestClient.register(server, "alice");
    const roomId = await alice.createRoom({ preset: "private_chat" });
    const since = (await alice.ok("GET", "/sync")).next_batch as string;
    await alice.send(roomId, { msgtype: "m.text", body: "one" });
    const first = await alice.ok("GET", `/sync?since=${enc(since)}&timeout=0`);
    await alice.send(roomId, { msgtype: "m.text", body: "two" });
    const retry = await alice.ok("GET", `/sync?since=${enc(since)}&timeout=0`);
    expect(retry).toEqual(first);
    const bodies = (sync: any) => (sync.rooms?.join?.[roomId]?.timeline.events ?? []).map((e: { content: { body?: string } }) => e.content.body);
    expect(bodies(first)).toEqual(["one"]);
    const next = await alice.ok("GET", `/sync?since=${enc(first.next_batch)}&timeout=0`);
    expect(bodies(next)).toEqual(["two"]);
  });
});
