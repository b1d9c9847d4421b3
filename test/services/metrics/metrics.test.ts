// The metrics registry and what it reads from the services: the route template tree, the notifier's
// wait outcomes, the room write queue's depths, the federation sender's destinations (bounded series).
import { describe, expect, test } from "bun:test";
import { MAX_DESTINATION_SERIES, MetricsRegistry, type FederationSenderSource } from "../../../src/services/metrics/metrics";
import { RouteTemplates, UNMATCHED_ROUTE, instrumentRequests } from "../../../src/api/middleware/http-metrics";
import { SyncNotifier } from "../../../src/services/sync/notifier";
import { RoomWriteQueue } from "../../../src/services/rooms/room-write-queue";
import { FastCounter, FastHistogram } from "../../../src/services/metrics/series";
import { Registry } from "prom-client";
import { parseExposition, sampleValue } from "../../helpers/prometheus";

const render = async (metrics: MetricsRegistry) => parseExposition(await metrics.render());

describe("hot-path series", () => {
  test("a histogram puts a value in the first bucket whose bound it does not exceed (le), cumulative in the output", async () => {
    const registry = new Registry();
    const h = new FastHistogram("probe_seconds", "Probe.", ["kind"], [1, 0.1, 0.5]).register(registry);
    const read = h.labels("read");
    for (const v of [0.05, 0.1, 0.2, 0.5, 0.7, 3]) read.observe(v);
    expect(h.labels("read")).toBe(read);
    h.labels("write");
    const m = parseExposition(await registry.metrics());
    const bucket = (kind: string, le: string) => sampleValue(m, "probe_seconds_bucket", { kind, le });
    expect([bucket("read", "0.1"), bucket("read", "0.5"), bucket("read", "1"), bucket("read", "+Inf")]).toEqual([2, 4, 5, 6]);
    expect(sampleValue(m, "probe_seconds_sum", { kind: "read" })).toBeCloseTo(4.55, 10);
    expect(sampleValue(m, "probe_seconds_count", { kind: "read" })).toBe(6);
    expect(sampleValue(m, "probe_seconds_count", { kind: "write" })).toBe(0);
    expect(m.types.get("probe_seconds")).toBe("histogram");
    expect(() => h.labels("read", "extra")).toThrow("expected 1 label values");
  });

  test("a counter adds up per label set; label values are escaped in the output", async () => {
    const registry = new Registry();
    const c = new FastCounter("probe_total", "Probe.", ["route"]).register(registry);
    c.labels('/a/"b"\\c').inc();
    c.labels('/a/"b"\\c').inc(2);
    c.labels("/d").inc();
    const m = parseExposition(await registry.metrics());
    expect(sampleValue(m, "probe_total", { route: '/a/"b"\\c' })).toBe(3);
    expect(sampleValue(m, "probe_total", { route: "/d" })).toBe(1);
    expect(m.types.get("probe_total")).toBe("counter");
  });
});

describe("RouteTemplates", () => {
  const routes = new RouteTemplates([
    "/_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId",
    "/_matrix/client/v3/rooms/:roomId/state",
    "/_matrix/client/v3/rooms/:roomId/state/:eventType",
    "/_matrix/client/v3/user/:userId/filter/:filterId",
    "/_matrix/client/v3/user/:userId/filter",
    "/_matrix/client/v3/profile/:userId",
    "/_matrix/client/v3/profile/:userId/displayname",
    "/_matrix/client/v3/profile/:userId/:keyName",
    "/_matrix/media/v3/download/*",
    "/",
  ]);
  const t = (path: string) => routes.match(path).template;

  test("a path matches its template, a literal segment before a parameter", () => {
    expect(t("/_matrix/client/v3/rooms/!abc%3Ax.org/send/m.room.message/txn1")).toBe("/_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId");
    expect(t("/_matrix/client/v3/rooms/!abc:x.org/state")).toBe("/_matrix/client/v3/rooms/:roomId/state");
    expect(t("/_matrix/client/v3/rooms/!abc:x.org/state/m.room.name")).toBe("/_matrix/client/v3/rooms/:roomId/state/:eventType");
    expect(t("/_matrix/client/v3/profile/@a:x")).toBe("/_matrix/client/v3/profile/:userId");
    expect(t("/_matrix/client/v3/profile/@a:x/displayname")).toBe("/_matrix/client/v3/profile/:userId/displayname");
    expect(t("/_matrix/client/v3/profile/@a:x/m.tz")).toBe("/_matrix/client/v3/profile/:userId/:keyName");
    expect(t("/_matrix/client/v3/user/@a:x/filter")).toBe("/_matrix/client/v3/user/:userId/filter");
    expect(t("/")).toBe("/");
  });

  test("a wildcard takes the rest of the path; anything else is unmatched", () => {
    expect(t("/_matrix/media/v3/download/x.org/abc")).toBe("/_matrix/media/v3/download/*");
    expect(t("/_matrix/media/v3/download/x.org/abc/name.png")).toBe("/_matrix/media/v3/download/*");
    expect(t("/_matrix/client/v3/rooms/!abc:x.org/nothing")).toBe(UNMATCHED_ROUTE);
    expect(t("/_matrix/client/v3/profile/")).toBe(UNMATCHED_ROUTE);
    expect(t("/_matrix/client/v3/profile/@a:x/m.tz/more")).toBe(UNMATCHED_ROUTE);
    expect(t("/favicon.ico")).toBe(UNMATCHED_ROUTE);
  });
});

describe("instrumentRequests", () => {
  test("counts each request under its method, template and real status, and times it", async () => {
    const metrics = new MetricsRegistry({ processMetrics: false });
    const routes = [{ path: "/things/:id" }];
    const handle = instrumentRequests(
      async (request) => {
        if (request.url.includes("boom")) throw new Error("boom");
        return new Response(null, { status: request.url.endsWith("/missing") ? 404 : 200 });
      },
      () => routes,
      metrics,
    );
    for (const id of ["1", "2", "3"]) await handle(new Request(`http://localhost/things/${id}?q=1`));
    await handle(new Request("http://localhost/things/missing", { method: "DELETE" }));
    await handle(new Request("http://localhost/other", { method: "PROPFIND" }));
    await expect(handle(new Request("http://localhost/things/boom"))).rejects.toThrow("boom");
    // Routes added later are picked up.
    routes.push({ path: "/later" });
    await handle(new Request("http://localhost/later"));
    const m = await render(metrics);
    const count = (method: string, route: string, status: string) => sampleValue(m, "portier_http_requests_total", { method, route, status });
    expect(count("GET", "/things/:id", "200")).toBe(3);
    expect(count("DELETE", "/things/:id", "404")).toBe(1);
    expect(count("OTHER", UNMATCHED_ROUTE, "200")).toBe(1);
    expect(count("GET", "/things/:id", "500")).toBe(1);
    expect(count("GET", "/later", "200")).toBe(1);
    expect(sampleValue(m, "portier_http_request_duration_seconds_count", { method: "GET", route: "/things/:id" })).toBe(4);
  });
});

describe("sources read at scrape time", () => {
  test("the notifier counts how its waits end", async () => {
    const rooms: ((roomId: string) => void)[] = [];
    const notifier = new SyncNotifier({ onEvent: () => {}, onTyping: (l) => rooms.push(l), onReceipt: () => {}, onAccountData: () => {}, memberships: async () => new Map([["@a", "join"]]) });
    const metrics = new MetricsRegistry({ processMetrics: false });
    metrics.watchSync(notifier);
    const woken = notifier.waitFor("@a", 5000);
    const timedOut = notifier.waitFor("@b", 1);
    const aborted = notifier.waitFor("@c", 5000);
    const stopped = notifier.waitFor("@d", 5000);
    let m = await render(metrics);
    expect(sampleValue(m, "portier_sync_long_polls_in_flight")).toBe(4);
    rooms[0]!("!r");
    expect(await woken.promise).toBe("woken");
    expect(await timedOut.promise).toBe("timeout");
    aborted.cancel();
    notifier.stop();
    expect(await stopped.promise).toBe("stopped");
    m = await render(metrics);
    expect(notifier.outcomes).toEqual({ woken: 1, timeout: 1, aborted: 1, stopped: 1 });
    for (const outcome of ["woken", "timeout", "aborted", "stopped"]) expect(sampleValue(m, "portier_sync_long_polls_ended_total", { outcome })).toBe(1);
    expect(sampleValue(m, "portier_sync_long_polls_in_flight")).toBe(0);
  });

  test("the room write queue keeps its depth per room and in all, failed tasks included", async () => {
    const queue = new RoomWriteQueue();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const tasks = [
      queue.run("!a", () => gate),
      queue.run("!a", () => Promise.reject(new Error("no"))).catch(() => "failed"),
      queue.run("!a", () => {}),
      queue.run("!b", () => {}),
    ];
    expect({ tasks: queue.queuedTasks, deepest: queue.deepestQueue(), rooms: queue.busyRooms }).toEqual({ tasks: 4, deepest: 3, rooms: 2 });
    await tasks[3];
    await Bun.sleep(0);
    expect({ tasks: queue.queuedTasks, deepest: queue.deepestQueue(), rooms: queue.busyRooms }).toEqual({ tasks: 3, deepest: 3, rooms: 1 });
    release();
    await Promise.all(tasks);
    await queue.drain();
    await Bun.sleep(0);
    expect({ tasks: queue.queuedTasks, deepest: queue.deepestQueue(), rooms: queue.busyRooms }).toEqual({ tasks: 0, deepest: 0, rooms: 0 });
  });

  test("federation: destinations by state, queued units, and per-destination series only for the worst few", async () => {
    const backingOff = Array.from({ length: MAX_DESTINATION_SERIES + 5 }, (_, i) => ({ destination: `s${i}.example`, failures: i + 1 }));
    const queued = new Map(backingOff.map((d, i) => [d.destination, 100 + i]));
    const source: FederationSenderSource = {
      destinationCounts: () => ({ sending: 2, backingOff: backingOff.length }),
      backingOff: () => backingOff,
      counters: { transactionsSent: 7, transactionsRefused: 1, failedAttempts: 3, pdusSent: 20, edusSent: 5 },
      queuedUnits: async (destination) => (destination === undefined ? 9999 : queued.get(destination)!),
    };
    const metrics = new MetricsRegistry({ processMetrics: false });
    metrics.watchFederationSender(source);
    let m = await render(metrics);
    expect(sampleValue(m, "portier_federation_destinations_pending", { state: "sending" })).toBe(2);
    expect(sampleValue(m, "portier_federation_destinations_pending", { state: "backing_off" })).toBe(15);
    expect(sampleValue(m, "portier_federation_queued_units")).toBe(9999);
    const perDestination = m.samples.filter((s) => s.name === "portier_federation_destination_queued_units");
    expect(perDestination.length).toBe(MAX_DESTINATION_SERIES);
    // The ones with the most failures: s14 .. s5.
    expect(perDestination.map((s) => s.labels.destination).sort()).toEqual(backingOff.slice(5).map((d) => d.destination).sort());
    expect(sampleValue(m, "portier_federation_destination_queued_units", { destination: "s14.example" })).toBe(114);
    expect(sampleValue(m, "portier_federation_transactions_total", { result: "sent" })).toBe(7);
    expect(sampleValue(m, "portier_federation_transactions_total", { result: "failed" })).toBe(3);
    expect(sampleValue(m, "portier_federation_units_sent_total", { kind: "pdu" })).toBe(20);

    // Destinations that recovered lose their series.
    backingOff.splice(0, backingOff.length, { destination: "s3.example", failures: 1 });
    m = await render(metrics);
    expect(m.samples.filter((s) => s.name === "portier_federation_destination_queued_units").map((s) => s.labels.destination)).toEqual(["s3.example"]);
  });
});
