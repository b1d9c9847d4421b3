// The cost of the plugin hooks: per call with nothing registered and with the bundled defaults
// (the rate-limit plugin's buckets, the knock-policy plugin with an empty config), and sends over
// loopback HTTP with the rate-limit plugin on (limits raised so nothing is refused: this measures the
// step, not the limits) against off. Figures only.
import { PolicySet } from "../../src/services/plugins/policies";
import { PluginLoader, type PluginEntry } from "../../src/services/plugins/loader";
import { bundledPlugins } from "../../plugins";
import type { KnockRequest } from "../../src/extensions";
import { silentLogger, testServer } from "../helpers/server";
import { measure, report } from "./harness";
import { MatrixHttp, summary } from "./matrix-http";

const SENDS = Number(process.env.PLUGIN_BENCH_SENDS ?? 1000);

async function policiesWith(entries: PluginEntry[]): Promise<PolicySet> {
  const policies = new PolicySet(silentLogger);
  let now = 1_700_000_000_000;
  const loader = new PluginLoader(policies, {
    bundled: bundledPlugins,
    baseDir: process.cwd(),
    serverName: "bench.test",
    logger: silentLogger,
    clock: { now: () => (now += 1) },
    rooms: { state: async () => undefined, membership: async () => undefined },
  });
  await loader.load(entries);
  return policies;
}

async function measureAsync(name: string, fn: () => Promise<unknown>, count = 100_000) {
  for (let i = 0; i < 1000; i++) await fn();
  const start = Bun.nanoseconds();
  for (let i = 0; i < count; i++) await fn();
  const seconds = (Bun.nanoseconds() - start) / 1e9;
  return { name, ops: count, seconds, opsPerSecond: count / seconds, microsPerOp: (seconds * 1e6) / count };
}

const none = await policiesWith([]);
const defaults = await policiesWith(["rate-limit", "knock-policy"]);
const knock: KnockRequest = { roomId: "!r:bench.test", userId: "@u:bench.test", originServer: "bench.test", reason: "hello", local: true };
let k = 0;
report("Plugin hooks, per call", [
  measure("rate limit, no limiter", () => none.takeRateLimit({ bucket: "message", key: `@u${k++ % 1000}:bench.test` })),
  measure("rate limit, bundled rate-limit", () => defaults.takeRateLimit({ bucket: "message", key: `@u${k++ % 1000}:bench.test` })),
  await measureAsync("knock decision, no policy", () => none.decideKnock(knock)),
  await measureAsync("knock decision, bundled knock-policy", () => defaults.decideKnock(knock)),
  await measureAsync("spam check, no policy", () => none.spamCheck((p) => p.userMayCreateRoom?.("@u:bench.test"))),
]);

async function sends(plugins: unknown[]): Promise<{ perSecond: number; latencies: number[] }> {
  const server = await testServer({ server_name: "bench.test", registration: { enabled: true }, plugins });
  const { url } = await server.start();
  const http = new MatrixHttp(url);
  try {
    const user = await http.register("sender");
    const room = await http.createRoom(user, { preset: "private_chat" });
    for (let i = 0; i < 50; i++) await http.send(user, room, `warm-up ${i}`);
    const latencies: number[] = [];
    const start = performance.now();
    for (let i = 0; i < SENDS; i++) latencies.push(await http.timedSend(user, room, `message ${i}`));
    return { perSecond: SENDS / ((performance.now() - start) / 1000), latencies };
  } finally {
    await server.stop();
  }
}

const raised = { message: { per_second: 1_000_000, burst: 1_000_000 }, registration: false, room_creation: false };
const off = await sends([]);
const on = await sends([{ name: "rate-limit", config: raised }]);
const off2 = await sends([]);
const on2 = await sends([{ name: "rate-limit", config: raised }]);
console.log(`\n## ${SENDS} sequential sends over HTTP, rate-limit plugin off / on (twice each, interleaved)`);
console.log(`off: ${off.perSecond.toFixed(0)}/s (${summary(off.latencies)}); ${off2.perSecond.toFixed(0)}/s (${summary(off2.latencies)})`);
console.log(`on:  ${on.perSecond.toFixed(0)}/s (${summary(on.latencies)}); ${on2.perSecond.toFixed(0)}/s (${summary(on2.latencies)})`);
console.log(`on / off: ${((on.perSecond + on2.perSecond) / (off.perSecond + off2.perSecond)).toFixed(3)}`);
