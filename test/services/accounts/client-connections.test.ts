// ClientConnections: what whois reports, and how often a device's last-seen row is written.
import { expect, test } from "bun:test";
import { ClientConnections } from "../../../src/services/accounts/client-connections";

function setup() {
  let now = 1_000;
  const writes: [string, string, number, string | undefined][] = [];
  const connections = new ClientConnections({
    devices: async () => [
      { deviceId: "A", lastSeenTs: 500, lastSeenIp: "10.0.0.9" },
      { deviceId: "B", lastSeenTs: undefined, lastSeenIp: undefined },
    ],
    touchDevice: async (userId, deviceId, ts, ip) => void writes.push([userId, deviceId, ts, ip]),
    clock: { now: () => now },
  });
  return { connections, writes, at: (ts: number) => (now = ts) };
}

test("the row is written on the first request, on a new address, and then at most once a minute", () => {
  const { connections, writes, at } = setup();
  connections.record("@u:x", "A", "10.0.0.1", "ua");
  at(2_000);
  connections.record("@u:x", "A", "10.0.0.1", "ua");
  at(3_000);
  connections.record("@u:x", "A", "10.0.0.2", "ua");
  at(62_999);
  connections.record("@u:x", "A", "10.0.0.2", "ua");
  at(63_000);
  connections.record("@u:x", "A", "10.0.0.2", "ua");
  expect(writes).toEqual([
    ["@u:x", "A", 1_000, "10.0.0.1"],
    ["@u:x", "A", 3_000, "10.0.0.2"],
    ["@u:x", "A", 63_000, "10.0.0.2"],
  ]);
});

test("whois: connections newest first, one per address and user agent, at most ten; stored values for a device not seen since start", async () => {
  const { connections, at } = setup();
  for (let i = 0; i < 12; i++) {
    at(10_000 + i);
    connections.record("@u:x", "B", `10.0.1.${i}`, i % 2 ? "odd" : undefined);
  }
  at(20_000);
  connections.record("@u:x", "B", "10.0.1.11", "odd");
  const answer = await connections.whois("@u:x");
  expect(answer.user_id).toBe("@u:x");
  expect(answer.devices.A.sessions).toEqual([{ connections: [{ ip: "10.0.0.9", last_seen: 500 }] }]);
  const b = answer.devices.B.sessions[0].connections;
  expect(b).toHaveLength(10);
  expect(b[0]).toEqual({ ip: "10.0.1.11", last_seen: 20_000, user_agent: "odd" });
  expect(b[1]).toEqual({ ip: "10.0.1.10", last_seen: 10_010, user_agent: "" });
  expect(b.map((c) => c.ip)).not.toContain("10.0.1.0");
  expect(b.map((c) => c.ip)).not.toContain("10.0.1.1");
});

test("a failed write is reported, not thrown", async () => {
  const errors: unknown[] = [];
  const connections = new ClientConnections({
    devices: async () => [],
    touchDevice: async () => {
      throw new Error("disk full");
    },
    clock: { now: () => 1 },
    onError: (error) => errors.push(error),
  });
  connections.record("@u:x", "A", "10.0.0.1", undefined);
  await Bun.sleep(0);
  expect(String(errors[0])).toContain("disk full");
});
