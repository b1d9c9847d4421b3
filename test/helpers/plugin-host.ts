// A PluginHost for unit tests of plugins: room state from a function the test gives, and everything
// the plugin registers, logs and reads kept for the test to look at.
import type { KnockPolicy, PluginHost, RateLimiter, SpamPolicy } from "../../src/extensions";

export type StateLookup = (roomId: string, type: string, stateKey: string | undefined) => Record<string, unknown> | undefined;

export function fakePluginHost(state: StateLookup = () => undefined) {
  const logs: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const reads: [string, string, string | undefined][] = [];
  const knockPolicies: KnockPolicy[] = [];
  const spamPolicies: SpamPolicy[] = [];
  const limiters: RateLimiter[] = [];
  const host: PluginHost = {
    serverName: "home.example",
    logger: { log: (level, message, fields) => logs.push({ level, message, fields }) },
    clock: { now: () => 0 },
    rooms: {
      state: async (roomId, type, stateKey) => (reads.push([roomId, type, stateKey]), state(roomId, type, stateKey)),
      membership: async () => undefined,
    },
    addKnockPolicy: (p) => knockPolicies.push(p),
    addSpamPolicy: (p) => spamPolicies.push(p),
    setRateLimiter: (l) => limiters.push(l),
  };
  return { host, logs, reads, knockPolicies, spamPolicies, limiters };
}
