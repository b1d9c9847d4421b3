// GET /admin/whois/{userId}: over a real port, the connections each device was used from (address,
// time, user agent); the user themselves or a server admin may ask, nobody else. The devices' stored
// last_seen_ip/last_seen_ts follow, and are what whois shows after a restart.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { registerAdmin, registerUser, type TestUser } from "../../helpers/accounts";
import { expectMatchesSpec } from "../../helpers/openapi";
import { tempDir, testServer } from "../../helpers/server";

const SECRET = "whois-secret";
let server: PortierServer;
let url: string;
let now = 1_000_000;
const dataDir = tempDir();
const config = { server_name: "whois.example", data_dir: dataDir, registration: { enabled: true, shared_secret: SECRET } };

beforeAll(async () => {
  server = await testServer(config, { clock: { now: () => now } });
  url = (await server.start()).url;
});
afterAll(() => server.stop());

async function get(path: string, token: string, userAgent = "whois-test/1.0") {
  const response = await fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${token}`, "User-Agent": userAgent } });
  return { status: response.status, body: (await response.json()) as any };
}
const whoisPath = (userId: string) => `/_matrix/client/v3/admin/whois/${encodeURIComponent(userId)}`;

describe("GET /admin/whois/{userId}", () => {
  let alice: TestUser;
  beforeAll(async () => {
    alice = await registerUser(server, "alice", "pw", "PHONE");
  });

  test("the user themselves sees each device with the address, time and user agent of its requests", async () => {
    now = 2_000_000;
    expect((await get("/_matrix/client/v3/account/whoami", alice.token, "phone-client/2")).status).toBe(200);
    now = 2_000_500;
    const r = await get(whoisPath(alice.userId), alice.token);
    expect(r.status).toBe(200);
    expectMatchesSpec({ api: "client-server", method: "GET", path: "/_matrix/client/v3/admin/whois/@alice:whois.example", status: 200, body: r.body });
    expect(r.body.user_id).toBe(alice.userId);
    expect(Object.keys(r.body.devices)).toEqual(["PHONE"]);
    const connections = r.body.devices.PHONE.sessions[0].connections;
    // Newest first: the whois request itself, then the whoami before it.
    expect(connections).toEqual([
      { ip: "127.0.0.1", last_seen: 2_000_500, user_agent: "whois-test/1.0" },
      { ip: "127.0.0.1", last_seen: 2_000_000, user_agent: "phone-client/2" },
    ]);
  });

  test("another user is refused (403); a server admin may look anyone up; remote users are 400", async () => {
    const bob = await registerUser(server, "bob", "pw");
    const refused = await get(whoisPath(alice.userId), bob.token);
    expect(refused.status).toBe(403);
    expect(refused.body.errcode).toBe("M_FORBIDDEN");
    const admin = await registerAdmin(server, "boss", SECRET);
    const allowed = await get(whoisPath(alice.userId), admin.token);
    expect(allowed.status).toBe(200);
    expect(Object.keys(allowed.body.devices)).toEqual(["PHONE"]);
    const remote = await get(whoisPath("@someone:elsewhere.example"), admin.token);
    expect(remote.status).toBe(400);
  });

  test("the device's last_seen_ip and last_seen_ts are stored, and whois shows them after a restart", async () => {
    now = 3_000_000;
    await get("/_matrix/client/v3/account/whoami", alice.token);
    const devices = await get("/_matrix/client/v3/devices", alice.token);
    const phone = devices.body.devices.find((d: { device_id: string }) => d.device_id === "PHONE");
    expect(phone.last_seen_ip).toBe("127.0.0.1");
    expect(phone.last_seen_ts).toBeGreaterThanOrEqual(2_000_000);

    await server.stop();
    server = await testServer(config, { clock: { now: () => now } });
    url = (await server.start()).url;
    // Read in-process, so that the lookup itself is not a connection.
    const { Tokens, resolve } = await import("../../../src/di/tokens");
    const after = await resolve(server.container, Tokens.ClientConnections).whois(alice.userId);
    const stored = await resolve(server.container, Tokens.Accounts).device(alice.userId, "PHONE");
    expect([2_000_000, 3_000_000]).toContain(stored!.lastSeenTs!);
    expect(after.devices.PHONE.sessions[0].connections).toEqual([{ ip: "127.0.0.1", last_seen: stored!.lastSeenTs! }]);
  });
});
