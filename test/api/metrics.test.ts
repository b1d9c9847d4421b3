// /metrics end to end: off by default, on a listener of its own bound to 127.0.0.1, valid Prometheus
// text, and counts that follow what the server did (requests by route template, events persisted,
// /sync long-polls, database time).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../src/app";
import { Tokens, resolve } from "../../src/di/tokens";
import { testServer } from "../helpers/server";
import { TestClient, V3, enc } from "../helpers/rooms";
import { sampleValue, scrape, type Exposition } from "../helpers/prometheus";

describe("metrics off (the default)", () => {
  test("no metrics listener, nothing registered, and no /metrics on the main listener", async () => {
    const server = await testServer();
    try {
      expect(server.config.metrics).toEqual({ enabled: false, bind_address: "127.0.0.1", port: 9000 });
      const started = await server.start();
      expect(started.metricsUrl).toBeUndefined();
      expect(started.metricsPort).toBeUndefined();
      expect(resolve(server.container, Tokens.Metrics)).toBeUndefined();
      for (const path of ["/metrics", "/_portier/metrics"]) expect((await fetch(`${started.url}${path}`)).status).toBe(404);
    } finally {
      await server.stop();
    }
  });
});

describe("metrics on", () => {
  let server: PortierServer;
  let url: string;
  let metricsUrl: string;
  let alice: TestClient;
  let roomId: string;

  beforeAll(async () => {
    server = await testServer({ server_name: "metrics.example", registration: { enabled: true }, metrics: { enabled: true, port: 0 } });
    const started = await server.start();
    url = started.url;
    metricsUrl = started.metricsUrl!;
    alice = await TestClient.register(server, "alice");
    roomId = await alice.createRoom({ preset: "private_chat" });
  });
  afterAll(() => server.stop());

  const get = (path: string, token?: string) => fetch(`${url}${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  const requests = (m: Exposition, method: string, route: string, status: number) => sampleValue(m, "portier_http_requests_total", { method, route, status: String(status) });

  test("listens on 127.0.0.1, on a port of its own, serving only /metrics", async () => {
    const listener = new URL(metricsUrl);
    expect(listener.hostname).toBe("127.0.0.1");
    expect(listener.port).not.toBe(new URL(url).port);
    expect((await fetch(`${metricsUrl}/`)).status).toBe(404);
    expect((await fetch(`${metricsUrl}/metrics`, { method: "POST" })).status).toBe(405);
    // Not on the client and federation listener.
    expect((await get("/metrics")).status).toBe(404);
  });

  test("valid exposition text, with the process metrics (RSS, CPU, event-loop lag)", async () => {
    const m = await scrape(metricsUrl);
    expect(m.types.get("process_resident_memory_bytes")).toBe("gauge");
    expect(sampleValue(m, "process_resident_memory_bytes")).toBeGreaterThan(0);
    expect(m.types.get("process_cpu_seconds_total")).toBe("counter");
    expect(m.types.get("nodejs_eventloop_lag_seconds")).toBe("gauge");
    for (const [name, type] of [
      ["portier_http_requests_total", "counter"],
      ["portier_http_request_duration_seconds", "histogram"],
      ["portier_events_persisted_total", "counter"],
      ["portier_sync_long_polls_in_flight", "gauge"],
      ["portier_sync_long_polls_ended_total", "counter"],
      ["portier_room_write_queue_tasks", "gauge"],
      ["portier_room_write_queue_max_depth", "gauge"],
      ["portier_db_statement_seconds", "histogram"],
      ["portier_db_commit_seconds", "histogram"],
    ]) {
      expect({ name, type: m.types.get(name!) }).toEqual({ name, type });
      expect(m.help.get(name!)?.length).toBeGreaterThan(0);
    }
    // Federation is off in this server: its metrics are not made.
    expect(m.types.has("portier_federation_queued_units")).toBe(false);
  });

  test("N requests to a route raise its counter by N, under the route template, never the raw path", async () => {
    const before = await scrape(metricsUrl);
    const n = 5;
    for (let i = 0; i < n; i++) expect((await get("/_matrix/client/versions")).status).toBe(200);
    for (let i = 0; i < n; i++) expect((await get(`${V3}/profile/${enc(alice.userId)}`)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await get(`${V3}/profile/${enc("@nobody:metrics.example")}`)).status).toBe(404);
    for (let i = 0; i < 3; i++) expect((await get(`/_matrix/client/v3/no/such/${i}`)).status).toBe(404);
    const after = await scrape(metricsUrl);

    expect(requests(after, "GET", "/_matrix/client/versions", 200) - requests(before, "GET", "/_matrix/client/versions", 200)).toBe(n);
    expect(requests(after, "GET", "/_matrix/client/v3/profile/:userId", 200) - requests(before, "GET", "/_matrix/client/v3/profile/:userId", 200)).toBe(n);
    expect(requests(after, "GET", "/_matrix/client/v3/profile/:userId", 404) - requests(before, "GET", "/_matrix/client/v3/profile/:userId", 404)).toBe(2);
    expect(requests(after, "GET", "unmatched", 404) - requests(before, "GET", "unmatched", 404)).toBe(3);
    // The latency histogram counts the same requests.
    const count = (m: Exposition) => sampleValue(m, "portier_http_request_duration_seconds_count", { method: "GET", route: "/_matrix/client/versions" });
    expect(count(after) - count(before)).toBe(n);

    // No label value carries a user id, a room id or a path outside the route table.
    const values = after.samples.flatMap((s) => Object.values(s.labels));
    expect(values.some((v) => v.includes("@") || v.includes("!") || v.includes("no/such"))).toBe(false);
  });

  test("M events sent raise events persisted by M", async () => {
    const before = sampleValue(await scrape(metricsUrl), "portier_events_persisted_total");
    const m = 4;
    for (let i = 0; i < m; i++) await alice.send(roomId, { msgtype: "m.text", body: `hello ${i}` });
    expect(sampleValue(await scrape(metricsUrl), "portier_events_persisted_total") - before).toBe(m);
  });

  test("a waiting /sync shows in the in-flight gauge; the message that wakes it is counted", async () => {
    const first = (await (await get(`${V3}/sync`, alice.token)).json()) as { next_batch: string };
    const before = await scrape(metricsUrl);
    expect(sampleValue(before, "portier_sync_long_polls_in_flight")).toBe(0);
    const woken = (m: Exposition) => sampleValue(m, "portier_sync_long_polls_ended_total", { outcome: "woken" });

    const pending = get(`${V3}/sync?since=${enc(first.next_batch)}&timeout=20000`, alice.token);
    let during = await scrape(metricsUrl);
    for (let i = 0; i < 100 && sampleValue(during, "portier_sync_long_polls_in_flight") === 0; i++) {
      await Bun.sleep(20);
      during = await scrape(metricsUrl);
    }
    expect(sampleValue(during, "portier_sync_long_polls_in_flight")).toBe(1);

    await alice.send(roomId, { msgtype: "m.text", body: "wake up" });
    const answer = await pending;
    expect(answer.status).toBe(200);
    const after = await scrape(metricsUrl);
    expect(woken(after) - woken(before)).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, "portier_sync_long_polls_in_flight")).toBe(0);
    expect(requests(after, "GET", "/_matrix/client/v3/sync", 200) - requests(before, "GET", "/_matrix/client/v3/sync", 200)).toBe(1);
  });

  test("database statements and commits are timed", async () => {
    const before = await scrape(metricsUrl);
    await alice.send(roomId, { msgtype: "m.text", body: "timed" });
    // A send reads nothing the caches do not hold; listing devices reads them.
    await alice.ok("GET", `${V3}/devices`);
    const after = await scrape(metricsUrl);
    const rise = (name: string, labels: Record<string, string> = {}) => sampleValue(after, name, labels) - sampleValue(before, name, labels);
    expect(rise("portier_db_statement_seconds_count", { kind: "read" })).toBeGreaterThan(0);
    expect(rise("portier_db_statement_seconds_count", { kind: "write" })).toBeGreaterThan(0);
    expect(rise("portier_db_commit_seconds_count")).toBeGreaterThan(0);
    expect(rise("portier_db_commit_seconds_sum")).toBeGreaterThan(0);
  });

  test("the room write queue gauges read the queue at scrape time", async () => {
    const queue = resolve(server.container, Tokens.RoomEngine).queue;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held = [queue.run("!a:metrics.example", () => gate), queue.run("!a:metrics.example", () => {}), queue.run("!b:metrics.example", () => gate)];
    const during = await scrape(metricsUrl);
    release();
    await Promise.all(held);
    await queue.drain();
    expect(sampleValue(during, "portier_room_write_queue_tasks")).toBe(3);
    expect(sampleValue(during, "portier_room_write_queue_busy_rooms")).toBe(2);
    expect(sampleValue(during, "portier_room_write_queue_max_depth")).toBe(2);
    const after = await scrape(metricsUrl);
    expect(sampleValue(after, "portier_room_write_queue_tasks")).toBe(0);
    expect(sampleValue(after, "portier_room_write_queue_max_depth")).toBe(0);
  });
});

describe("metrics with federation on", () => {
  test("the outbound federation queue metrics are there", async () => {
    const server = await testServer({ server_name: "metrics-fed.example", federation: { enabled: true }, metrics: { enabled: true, port: 0 } });
    try {
      const { metricsUrl } = await server.start();
      const m = await scrape(metricsUrl!);
      expect(sampleValue(m, "portier_federation_queued_units")).toBe(0);
      expect(sampleValue(m, "portier_federation_destinations_pending", { state: "sending" })).toBe(0);
      expect(sampleValue(m, "portier_federation_destinations_pending", { state: "backing_off" })).toBe(0);
      expect(m.types.get("portier_federation_transactions_total")).toBe("counter");
    } finally {
      await server.stop();
    }
  });
});
