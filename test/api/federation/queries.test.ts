// Federation queries about this server's users and rooms: /query/directory, /query/profile,
// GET/POST /publicRooms, /user/devices/{userId}, /user/keys/query and /user/keys/claim — answers
// checked against what the client API set up and against the spec's OpenAPI.
//
// The routes are mounted on a small app of their own (createHttpApp + federationQueryRoutes) with a
// fake X-Matrix check: the origin is whatever the test puts in the `X-Test-Origin` header, and a
// request without it is 401 M_UNAUTHORIZED.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { createHttpApp } from "../../../src/api/middleware/http";
import { federationQueryRoutes } from "../../../src/api/federation/queries";
import { FederationQueries, type DeviceKeySource } from "../../../src/services/federation/queries";
import { MatrixError } from "../../../src/protocol/errors";
import type { JsonObject } from "../../../src/protocol/json";
import { expectMatchesSpec, specOperation } from "../../helpers/openapi";
import { TestClient, enc } from "../../helpers/rooms";
import { silentLogger, testServer } from "../../helpers/server";

const SERVER = "queries.example";
const REMOTE = "remote.example";
const V1 = "/_matrix/federation/v1";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let fed: ReturnType<typeof federationApp>;

async function fakeAuthenticate(request: Request): Promise<string> {
  const origin = request.headers.get("X-Test-Origin");
  if (!origin) throw new MatrixError("M_UNAUTHORIZED", "Missing X-Test-Origin", 401);
  return origin;
}

function federationApp(options: { deviceKeys?: DeviceKeySource; shareDeviceNames?: boolean } = {}) {
  const queries = new FederationQueries({
    serverName: SERVER,
    directory: resolve(server.container, Tokens.Directory),
    profiles: resolve(server.container, Tokens.Profiles),
    accounts: resolve(server.container, Tokens.Accounts),
    ...options,
  });
  return createHttpApp({ maxBodyBytes: 1 << 20, logger: silentLogger }).use(federationQueryRoutes({ authenticate: fakeAuthenticate, queries }));
}

async function call(method: string, path: string, body?: unknown, options: { origin?: string | null; app?: ReturnType<typeof federationApp> } = {}) {
  const headers: Record<string, string> = {};
  const origin = options.origin === undefined ? REMOTE : options.origin;
  if (origin) headers["X-Test-Origin"] = origin;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await (options.app ?? fed).handle(
    new Request(`http://localhost${path}`, { method, headers, body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body) }),
  );
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

async function ok(method: string, path: string, body?: unknown, app?: ReturnType<typeof federationApp>): Promise<any> {
  const r = await call(method, path, body, { app });
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  expectMatchesSpec({ api: "server-server", method, path, status: 200, body: r.body });
  return r.body;
}

async function fails(method: string, path: string, body: unknown, status: number, errcode: string) {
  const r = await call(method, path, body);
  expect({ status: r.status, errcode: r.body?.errcode }).toEqual({ status, errcode });
  if (specOperation({ api: "server-server", method, path })?.statuses.includes(String(status))) {
    expectMatchesSpec({ api: "server-server", method, path, status, body: r.body });
  }
}

beforeAll(async () => {
  server = await testServer({ server_name: SERVER, registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
  fed = federationApp();
});
afterAll(() => server.stop());

describe("every query needs an authenticated origin", () => {
  test.each([
    ["GET", `${V1}/query/directory?room_alias=${enc(`#x:${SERVER}`)}`],
    ["GET", `${V1}/query/profile?user_id=${enc(`@alice:${SERVER}`)}`],
    ["GET", `${V1}/publicRooms`],
    ["POST", `${V1}/publicRooms`, {}],
    ["GET", `${V1}/user/devices/${enc(`@alice:${SERVER}`)}`],
    ["POST", `${V1}/user/keys/query`, { device_keys: {} }],
    ["POST", `${V1}/user/keys/claim`, { one_time_keys: {} }],
  ] as [string, string, unknown?][])("%s %s", async (method, path, body) => {
    const r = await call(method, path, body, { origin: null });
    expect({ status: r.status, errcode: r.body?.errcode }).toEqual({ status: 401, errcode: "M_UNAUTHORIZED" });
  });
});

describe("GET /query/directory", () => {
  test("a local alias resolves to its room and the servers in it", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", room_alias_name: "lobby" });
    expect(await ok("GET", `${V1}/query/directory?room_alias=${enc(`#lobby:${SERVER}`)}`)).toEqual({ room_id: roomId, servers: [SERVER] });
  });

  test("unknown aliases are 404; other servers' and malformed aliases 400; a missing parameter 400", async () => {
    await fails("GET", `${V1}/query/directory?room_alias=${enc(`#nothing:${SERVER}`)}`, undefined, 404, "M_NOT_FOUND");
    await fails("GET", `${V1}/query/directory?room_alias=${enc(`#lobby:${REMOTE}`)}`, undefined, 400, "M_INVALID_PARAM");
    await fails("GET", `${V1}/query/directory?room_alias=lobby`, undefined, 400, "M_INVALID_PARAM");
    await fails("GET", `${V1}/query/directory`, undefined, 400, "M_MISSING_PARAM");
    await fails("GET", `${V1}/query/directory?room_alias=`, undefined, 400, "M_MISSING_PARAM");
  });
});

describe("GET /query/profile", () => {
  beforeAll(async () => {
    await alice.ok("PUT", `/profile/${enc(alice.userId)}/displayname`, { displayname: "Alice A." });
    await alice.ok("PUT", `/profile/${enc(alice.userId)}/avatar_url`, { avatar_url: "mxc://queries.example/alice" });
    await alice.ok("PUT", `/profile/${enc(alice.userId)}/m.tz`, { "m.tz": "Europe/Paris" });
  });

  test("the whole profile, or only the field asked for", async () => {
    const path = `${V1}/query/profile?user_id=${enc(alice.userId)}`;
    expect(await ok("GET", path)).toEqual({ displayname: "Alice A.", avatar_url: "mxc://queries.example/alice", "m.tz": "Europe/Paris" });
    expect(await ok("GET", `${path}&field=displayname`)).toEqual({ displayname: "Alice A." });
    expect(await ok("GET", `${path}&field=avatar_url`)).toEqual({ avatar_url: "mxc://queries.example/alice" });
    expect(await ok("GET", `${path}&field=m.tz`)).toEqual({ "m.tz": "Europe/Paris" });
  });

  test("a field the user has not set is left out", async () => {
    expect(await ok("GET", `${V1}/query/profile?user_id=${enc(bob.userId)}&field=avatar_url`)).toEqual({});
    expect(await ok("GET", `${V1}/query/profile?user_id=${enc(bob.userId)}`)).not.toHaveProperty("avatar_url");
  });

  test("unknown local users are 404; other servers' users and bad input 400", async () => {
    await fails("GET", `${V1}/query/profile?user_id=${enc(`@nobody:${SERVER}`)}`, undefined, 404, "M_NOT_FOUND");
    await fails("GET", `${V1}/query/profile?user_id=${enc(`@alice:${REMOTE}`)}`, undefined, 400, "M_INVALID_PARAM");
    await fails("GET", `${V1}/query/profile?user_id=alice`, undefined, 400, "M_INVALID_PARAM");
    await fails("GET", `${V1}/query/profile`, undefined, 400, "M_MISSING_PARAM");
    await fails("GET", `${V1}/query/profile?user_id=${enc(alice.userId)}&field=${enc("Not A Field")}`, undefined, 400, "M_INVALID_PARAM");
  });
});

describe("GET and POST /publicRooms", () => {
  let big: string;
  let small: string;
  beforeAll(async () => {
    big = await alice.createRoom({ visibility: "public", preset: "public_chat", name: "Big Coffee Room" });
    await bob.ok("POST", `/join/${enc(big)}`, {});
    small = await bob.createRoom({ visibility: "public", preset: "public_chat", name: "Small Tea Room", topic: "leaves" });
    // Unpublished rooms never show.
    await alice.createRoom({ preset: "public_chat", name: "Hidden Coffee" });
  });

  test("GET: the published rooms, most members first; no limit means all of them", async () => {
    const body = await ok("GET", `${V1}/publicRooms`);
    expect(body.chunk.map((r: any) => r.room_id)).toEqual([big, small]);
    expect(body.chunk[0]).toMatchObject({ room_id: big, name: "Big Coffee Room", num_joined_members: 2, join_rule: "public" });
    expect(body.total_room_count_estimate).toBe(2);
    expect(body.next_batch).toBeUndefined();
    expect((await ok("GET", `${V1}/publicRooms?limit=0`)).chunk).toHaveLength(2);
  });

  test("GET: limit and since page through the list", async () => {
    const first = await ok("GET", `${V1}/publicRooms?limit=1`);
    expect(first.chunk.map((r: any) => r.room_id)).toEqual([big]);
    expect(typeof first.next_batch).toBe("string");
    const second = await ok("GET", `${V1}/publicRooms?limit=1&since=${enc(first.next_batch)}`);
    expect(second.chunk.map((r: any) => r.room_id)).toEqual([small]);
    expect(second.next_batch).toBeUndefined();
    expect(typeof second.prev_batch).toBe("string");
  });

  test("POST: the filter's generic_search_term, limit and since", async () => {
    expect((await ok("POST", `${V1}/publicRooms`, { filter: { generic_search_term: "tea" } })).chunk.map((r: any) => r.room_id)).toEqual([small]);
    expect((await ok("POST", `${V1}/publicRooms`, { filter: { generic_search_term: "leaves" } })).chunk.map((r: any) => r.room_id)).toEqual([small]);
    expect((await ok("POST", `${V1}/publicRooms`, { filter: { generic_search_term: "coffee" } })).chunk.map((r: any) => r.room_id)).toEqual([big]);
    expect((await ok("POST", `${V1}/publicRooms`, {})).chunk).toHaveLength(2);
    expect((await ok("POST", `${V1}/publicRooms`, { include_all_networks: true, limit: 0 })).chunk).toHaveLength(2);
    const first = await ok("POST", `${V1}/publicRooms`, { limit: 1 });
    expect((await ok("POST", `${V1}/publicRooms`, { limit: 1, since: first.next_batch })).chunk.map((r: any) => r.room_id)).toEqual([small]);
    // This server bridges no third-party networks: asking for one finds nothing.
    expect((await ok("POST", `${V1}/publicRooms`, { third_party_instance_id: "irc-freenode" })).chunk).toEqual([]);
  });

  test("bad parameters are 400", async () => {
    await fails("GET", `${V1}/publicRooms?limit=many`, undefined, 400, "M_INVALID_PARAM");
    await fails("GET", `${V1}/publicRooms?since=garbage`, undefined, 400, "M_INVALID_PARAM");
    await fails("GET", `${V1}/publicRooms?include_all_networks=maybe`, undefined, 400, "M_INVALID_PARAM");
    await fails("GET", `${V1}/publicRooms?include_all_networks=true&third_party_instance_id=irc`, undefined, 400, "M_INVALID_PARAM");
    await fails("POST", `${V1}/publicRooms`, { include_all_networks: true, third_party_instance_id: "irc" }, 400, "M_INVALID_PARAM");
    await fails("POST", `${V1}/publicRooms`, { limit: "ten" }, 400, "M_BAD_JSON");
    await fails("POST", `${V1}/publicRooms`, { filter: { generic_search_term: 5 } }, 400, "M_BAD_JSON");
    await fails("POST", `${V1}/publicRooms`, { since: "garbage" }, 400, "M_INVALID_PARAM");
    await fails("POST", `${V1}/publicRooms`, "[not json", 400, "M_NOT_JSON");
    await fails("POST", `${V1}/publicRooms`, undefined, 400, "M_NOT_JSON");
  });
});

/** A device key store standing in for the client API's /keys/upload, which Portier does not have yet. */
function fakeDeviceKeys(userId: string, deviceId: string): DeviceKeySource & { claimed: string[] } {
  const keys: JsonObject = {
    user_id: userId,
    device_id: deviceId,
    algorithms: ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
    keys: { [`curve25519:${deviceId}`]: "curve", [`ed25519:${deviceId}`]: "ed" },
    signatures: { [userId]: { [`ed25519:${deviceId}`]: "sig" } },
  };
  const master: JsonObject = { user_id: userId, usage: ["master"], keys: { "ed25519:master": "master" } };
  const oneTime = [{ "signed_curve25519:AAAAAQ": { key: "otk1", signatures: { [userId]: { [`ed25519:${deviceId}`]: "s1" } } } }];
  const claimed: string[] = [];
  return {
    claimed,
    deviceKeys: async (user, ids) => (user === userId && (!ids?.length || ids.includes(deviceId)) ? { [deviceId]: keys } : {}),
    crossSigningKeys: async (user) => (user === userId ? { master } : {}),
    claimOneTimeKey: async (user, device, algorithm) => {
      if (user !== userId || device !== deviceId || algorithm !== "signed_curve25519") return undefined;
      const next = oneTime.shift();
      if (next) claimed.push(Object.keys(next)[0]!);
      return next;
    },
    deviceListStreamId: async () => 7,
  };
}

describe("GET /user/devices/{userId}", () => {
  test("without stored E2EE keys: no device is listed (every listed device must carry keys)", async () => {
    expect(await ok("GET", `${V1}/user/devices/${enc(alice.userId)}`)).toEqual({ user_id: alice.userId, stream_id: 0, devices: [] });
  });

  test("with device keys: the devices that have keys, names only when the server shares them", async () => {
    const second = await alice.login("SECONDDEV");
    await second.ok("PUT", `/devices/SECONDDEV`, { display_name: "Alice's phone" });
    const source = fakeDeviceKeys(alice.userId, "SECONDDEV");
    const hidden = await ok("GET", `${V1}/user/devices/${enc(alice.userId)}`, undefined, federationApp({ deviceKeys: source }));
    expect(hidden.stream_id).toBe(7);
    expect(hidden.devices).toEqual([{ device_id: "SECONDDEV", keys: (await source.deviceKeys(alice.userId))["SECONDDEV"] }]);
    expect(hidden.master_key).toMatchObject({ usage: ["master"] });
    const shown = await ok("GET", `${V1}/user/devices/${enc(alice.userId)}`, undefined, federationApp({ deviceKeys: source, shareDeviceNames: true }));
    expect(shown.devices).toEqual([{ device_id: "SECONDDEV", device_display_name: "Alice's phone", keys: expect.any(Object) }]);
  });

  test("unknown local users are 404; other servers' users and malformed IDs 400", async () => {
    await fails("GET", `${V1}/user/devices/${enc(`@nobody:${SERVER}`)}`, undefined, 404, "M_NOT_FOUND");
    await fails("GET", `${V1}/user/devices/${enc(`@alice:${REMOTE}`)}`, undefined, 400, "M_INVALID_PARAM");
    await fails("GET", `${V1}/user/devices/alice`, undefined, 400, "M_INVALID_PARAM");
  });
});

describe("POST /user/keys/query and /user/keys/claim", () => {
  test("without stored E2EE keys: an empty map per local user; claims find nothing", async () => {
    const query = await ok("POST", `${V1}/user/keys/query`, { device_keys: { [alice.userId]: [], [bob.userId]: ["SOMEDEVICE"], [`@carol:${REMOTE}`]: [], [`@nobody:${SERVER}`]: [] } });
    expect(query).toEqual({ device_keys: { [alice.userId]: {}, [bob.userId]: {} } });
    expect(await ok("POST", `${V1}/user/keys/claim`, { one_time_keys: { [alice.userId]: { [alice.deviceId]: "signed_curve25519" } } })).toEqual({ one_time_keys: {} });
  });

  test("with keys: the device keys asked for and cross-signing keys; each one-time key claimed once", async () => {
    const source = fakeDeviceKeys(alice.userId, "KEYDEV");
    const app = federationApp({ deviceKeys: source });
    const all = await ok("POST", `${V1}/user/keys/query`, { device_keys: { [alice.userId]: [] } }, app);
    expect(Object.keys(all.device_keys[alice.userId])).toEqual(["KEYDEV"]);
    expect(all.master_keys[alice.userId]).toMatchObject({ usage: ["master"] });
    const other = await ok("POST", `${V1}/user/keys/query`, { device_keys: { [alice.userId]: ["OTHERDEV"] } }, app);
    expect(other.device_keys).toEqual({ [alice.userId]: {} });

    const claim = { one_time_keys: { [alice.userId]: { KEYDEV: "signed_curve25519" }, [`@carol:${REMOTE}`]: { X: "signed_curve25519" } } };
    const first = await ok("POST", `${V1}/user/keys/claim`, claim, app);
    expect(Object.keys(first.one_time_keys[alice.userId].KEYDEV)).toEqual(["signed_curve25519:AAAAAQ"]);
    expect(first.one_time_keys[`@carol:${REMOTE}`]).toBeUndefined();
    expect(await ok("POST", `${V1}/user/keys/claim`, claim, app)).toEqual({ one_time_keys: {} });
    expect(source.claimed).toEqual(["signed_curve25519:AAAAAQ"]);
  });

  test("bad bodies are 400", async () => {
    await fails("POST", `${V1}/user/keys/query`, {}, 400, "M_MISSING_PARAM");
    await fails("POST", `${V1}/user/keys/query`, { device_keys: { [alice.userId]: "all" } }, 400, "M_BAD_JSON");
    await fails("POST", `${V1}/user/keys/query`, { device_keys: [] }, 400, "M_BAD_JSON");
    await fails("POST", `${V1}/user/keys/claim`, {}, 400, "M_MISSING_PARAM");
    await fails("POST", `${V1}/user/keys/claim`, { one_time_keys: { [alice.userId]: { DEV: 5 } } }, 400, "M_BAD_JSON");
    await fails("POST", `${V1}/user/keys/claim`, "nope", 400, "M_NOT_JSON");
  });
});
