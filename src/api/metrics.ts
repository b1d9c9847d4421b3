// GET /metrics on a listener of its own (as Synapse's metrics listener), in Prometheus' text format.
// Not on the main listener: that one faces clients and other servers, and metrics tell anyone who can
// read them how busy the server is and with whom it federates. Bind it where only Prometheus reaches.
import type { MetricsRegistry } from "../services/metrics/metrics";

export function metricsListener(metrics: MetricsRegistry, hostname: string, port: number): ReturnType<typeof Bun.serve> {
  return Bun.serve({
    hostname,
    port,
    async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path !== "/metrics" && path !== "/metrics/") return new Response("Not found: metrics are at /metrics\n", { status: 404 });
      if (request.method !== "GET" && request.method !== "HEAD") return new Response("Method not allowed\n", { status: 405, headers: { Allow: "GET, HEAD" } });
      return new Response(request.method === "HEAD" ? null : await metrics.render(), { headers: { "Content-Type": metrics.contentType } });
    },
  });
}
