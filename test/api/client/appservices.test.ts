// Application services end to end, with a fake service on 127.0.0.1: as_token authentication and
// user_id masquerading, m.login.application_service registration and login, exclusive namespaces,
// and events pushed in order with the hs_token — retried after the service answered 500, and
// delivered after a restart of the server.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { PortierServer } from "../../../src/app";
import { request, tempDir, testServer } from "../../helpers/server";
import { TestClient, V3, enc } from "../../helpers/rooms";

const SERVER = "as.example";
const AS_TOKEN = "as-secret-token";
const HS_TOKEN = "hs-secret-token";

interface Transaction {
  txnId: string;
  authorization: string | null;
  events: { type: string; event_id: string; sender: string; content: Record<string, unknown>; room_id: string }[];
}

/** A fake application service: records transactions (once per txnId, as a real one dedupes), answers 500 while `failing`. */
function fakeAppService() {
  const transactions: Transaction[] = [];
  const attempts: string[] = [];
  const state = {
    failing: 0,
    queries: [] as { path: string; authorization: string | null }[],
    /** Answers GET requests (queries, third party lookups); undefined: 404. */
    onGet: undefined as undefined | ((url: URL) => Promise<Response | undefined>),
  };
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch(req) {
      const url = new URL(req.url);
      const txn = /^\/_matrix\/app\/v1\/transactions\/([^/]+)$/.exec(url.pathname);
      if (txn && req.method === "PUT") {
        const body = (await req.json()) as { events: Transaction["events"] };
        attempts.push(txn[1]!);
        if (state.failing > 0) {
          state.failing--;
          return new Response("{}", { status: 500 });
        }
        if (!transactions.some((t) => t.txnId === txn[1])) transactions.push({ txnId: txn[1]!, authorization: req.headers.get("authorization"), events: body.events });
        return Response.json({});
      }
      state.queries.push({ path: `${url.pathname}${url.search}`, authorization: req.headers.get("authorization") });
      return (await state.onGet?.(url)) ?? Response.json({ errcode: "M_NOT_FOUND" }, { status: 404 });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    transactions,
    attempts,
    state,
    events: () => transactions.flatMap((t) => t.events),
    stop: () => server.stop(true),
  };
}

function writeRegistration(dir: string, url: string): string {
  const file = join(dir, "bridge.yaml");
  writeFileSync(
    file,
    `id: bridge
url: ${url}
as_token: ${AS_TOKEN}
hs_token: ${HS_TOKEN}
sender_localpart: bridgebot
namespaces:
  users:
    - regex: "@_bridge_.*:${SERVER.replace(".", "\\\\.")}"
      exclusive: true
  aliases:
    - regex: "#_bridge_.*"
      exclusive: true
  rooms: []
protocols: [chat]
`,
  );
  return file;
}

const asHeaders = { Authorization: `Bearer ${AS_TOKEN}` };
const asCall = (server: PortierServer, method: string, path: string, body?: unknown) => request(server, method, `${V3}${path}`, body, asHeaders);

async function until<T>(what: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = what();
    if (value) return value;
    if (Date.now() > end) throw new Error("timed out");
    await Bun.sleep(20);
  }
}

describe("application services", () => {
  const appService = fakeAppService();
  let server: PortierServer;
  let dataDir: string;
  let registrationFile: string;
  const config = () => ({ server_name: SERVER, data_dir: dataDir, registration: { enabled: true }, app_services: [registrationFile] });

  beforeAll(async () => {
    dataDir = tempDir();
    registrationFile = writeRegistration(tempDir(), appService.url);
    server = await testServer(config(), { appServiceRetryBaseMs: 30 });
    await server.start();
  });
  afterAll(async () => {
    await server.stop();
    appService.stop();
  });
  afterEach(() => {
    appService.state.failing = 0;
    appService.state.onGet = undefined;
  });

  test("the as_token acts as the sender user, or as a registered user of its namespace", async () => {
    const whoami = await asCall(server, "GET", "/account/whoami");
    expect(whoami.status).toBe(200);
    expect(whoami.body.user_id).toBe(`@bridgebot:${SERVER}`);
    // No device named: none shown.
    expect(whoami.body.device_id).toBeUndefined();

    const registered = await asCall(server, "POST", "/register", { type: "m.login.application_service", username: "_bridge_alice" });
    expect(registered.status).toBe(200);
    expect(registered.body.user_id).toBe(`@_bridge_alice:${SERVER}`);
    expect(typeof registered.body.access_token).toBe("string");

    const masked = await asCall(server, "GET", `/account/whoami?user_id=${enc(`@_bridge_alice:${SERVER}`)}`);
    expect(masked.status).toBe(200);
    expect(masked.body.user_id).toBe(`@_bridge_alice:${SERVER}`);
    const withDevice = await asCall(server, "GET", `/account/whoami?user_id=${enc(`@_bridge_alice:${SERVER}`)}&device_id=${enc(registered.body.device_id)}`);
    expect(withDevice.body).toMatchObject({ user_id: `@_bridge_alice:${SERVER}`, device_id: registered.body.device_id });
  });

  test("masquerading outside the namespace, as an unregistered user, or with a foreign device is refused", async () => {
    const human = await TestClient.register(server, "human1");
    const outside = await asCall(server, "GET", `/account/whoami?user_id=${enc(human.userId)}`);
    expect({ status: outside.status, errcode: outside.body.errcode }).toEqual({ status: 403, errcode: "M_EXCLUSIVE" });
    const unregistered = await asCall(server, "GET", `/account/whoami?user_id=${enc(`@_bridge_nobody:${SERVER}`)}`);
    expect({ status: unregistered.status, errcode: unregistered.body.errcode }).toEqual({ status: 403, errcode: "M_FORBIDDEN" });
    const device = await asCall(server, "GET", `/account/whoami?device_id=${enc(human.deviceId)}`);
    expect({ status: device.status, errcode: device.body.errcode }).toEqual({ status: 400, errcode: "M_UNKNOWN_DEVICE" });
    // The user_id parameter means nothing to an ordinary token.
    const own = await request(server, "GET", `${V3}/account/whoami?user_id=${enc(`@bridgebot:${SERVER}`)}`, undefined, { Authorization: `Bearer ${human.token}` });
    expect(own.body.user_id).toBe(human.userId);
  });

  test("registration: the service only inside its namespace, everyone else not inside an exclusive one", async () => {
    const outside = await asCall(server, "POST", "/register", { type: "m.login.application_service", username: "not_bridged" });
    expect({ status: outside.status, errcode: outside.body.errcode }).toEqual({ status: 400, errcode: "M_EXCLUSIVE" });
    const inhibited = await asCall(server, "POST", "/register", { type: "m.login.application_service", username: "_bridge_quiet", inhibit_login: true });
    expect(inhibited.status).toBe(200);
    expect(inhibited.body.access_token).toBeUndefined();

    const human = await request(server, "POST", `${V3}/register`, { username: "_bridge_mallory", password: "pw", auth: { type: "m.login.dummy" } });
    expect({ status: human.status, errcode: human.body.errcode }).toEqual({ status: 400, errcode: "M_EXCLUSIVE" });
    const available = await request(server, "GET", `${V3}/register/available?username=_bridge_mallory`);
    expect(available.body.errcode).toBe("M_EXCLUSIVE");
    const sender = await request(server, "POST", `${V3}/register`, { username: "bridgebot", password: "pw", auth: { type: "m.login.dummy" } });
    expect(sender.body.errcode).toBe("M_EXCLUSIVE");

    // m.login.application_service without an as_token.
    const anonymous = await request(server, "POST", `${V3}/register`, { type: "m.login.application_service", username: "_bridge_x" });
    expect({ status: anonymous.status, errcode: anonymous.body.errcode }).toEqual({ status: 401, errcode: "M_MISSING_TOKEN" });
    const client = await TestClient.register(server, "human2");
    const byUser = await request(server, "POST", `${V3}/register`, { type: "m.login.application_service", username: "_bridge_y" }, { Authorization: `Bearer ${client.token}` });
    expect(byUser.status).toBe(401);
  });

  test("login with m.login.application_service", async () => {
    expect((await request(server, "GET", `${V3}/login`)).body.flows).toContainEqual({ type: "m.login.application_service" });
    const login = await asCall(server, "POST", "/login", { type: "m.login.application_service", identifier: { type: "m.id.user", user: "_bridge_alice" } });
    expect(login.status).toBe(200);
    expect(login.body.user_id).toBe(`@_bridge_alice:${SERVER}`);
    const me = await request(server, "GET", `${V3}/account/whoami`, undefined, { Authorization: `Bearer ${login.body.access_token}` });
    expect(me.body.user_id).toBe(`@_bridge_alice:${SERVER}`);
    const outside = await asCall(server, "POST", "/login", { type: "m.login.application_service", identifier: { type: "m.id.user", user: "human1" } });
    expect({ status: outside.status, errcode: outside.body.errcode }).toEqual({ status: 403, errcode: "M_EXCLUSIVE" });
    const anonymous = await request(server, "POST", `${V3}/login`, { type: "m.login.application_service", identifier: { type: "m.id.user", user: "_bridge_alice" } });
    expect(anonymous.status).toBe(401);
  });

  test("events of rooms with a namespaced member are pushed in order with the hs_token, others not", async () => {
    const human = await TestClient.register(server, "human3");
    const quiet = await human.createRoom();
    await human.send(quiet, { msgtype: "m.text", body: "nobody bridged here" });
    const roomId = await human.createRoom();
    await human.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: `@_bridge_alice:${SERVER}` });
    const joined = await asCall(server, "POST", `/rooms/${enc(roomId)}/join?user_id=${enc(`@_bridge_alice:${SERVER}`)}`, {});
    expect(joined.status).toBe(200);
    for (let i = 0; i < 5; i++) await human.send(roomId, { msgtype: "m.text", body: `m${i}` });
    const bodies = () => appService.events().filter((e) => e.room_id === roomId && e.type === "m.room.message").map((e) => e.content.body);
    await until(() => bodies().length >= 5);
    expect(bodies()).toEqual(["m0", "m1", "m2", "m3", "m4"]);
    // The invite and the join (the namespaced user is the state key) went too, before the messages.
    const members = appService.events().filter((e) => e.room_id === roomId && e.type === "m.room.member").map((e) => e.content.membership);
    expect(members).toEqual(["invite", "join"]);
    expect(appService.events().some((e) => e.room_id === quiet)).toBe(false);
    expect(appService.transactions.every((t) => t.authorization === `Bearer ${HS_TOKEN}`)).toBe(true);
    expect(appService.transactions.every((t) => /^\d+$/.test(t.txnId))).toBe(true);
  });

  test("a transaction the service answered 500 is retried with the same id until accepted", async () => {
    const human = await TestClient.register(server, "human4");
    const roomId = await human.createRoom();
    await human.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: `@_bridge_alice:${SERVER}` });
    await until(() => appService.events().some((e) => e.room_id === roomId));
    const before = appService.attempts.length;
    appService.state.failing = 2;
    await human.send(roomId, { msgtype: "m.text", body: "after failures" });
    await until(() => appService.events().some((e) => e.room_id === roomId && e.content.body === "after failures"));
    const tries = appService.attempts.slice(before);
    expect(tries.length).toBeGreaterThanOrEqual(3);
    expect(new Set(tries.slice(0, 3)).size).toBe(1);
  });

  test("events queued while the service is down are delivered after a restart", async () => {
    const human = await TestClient.register(server, "human5");
    const roomId = await human.createRoom();
    await human.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: `@_bridge_alice:${SERVER}` });
    await until(() => appService.events().some((e) => e.room_id === roomId));
    appService.state.failing = 1_000_000;
    for (let i = 0; i < 3; i++) await human.send(roomId, { msgtype: "m.text", body: `down${i}` });
    const attempts = appService.attempts.length;
    await until(() => appService.attempts.length > attempts);
    await server.stop();
    appService.state.failing = 0;
    server = await testServer(config(), { appServiceRetryBaseMs: 30 });
    await server.start();
    const bodies = () => appService.events().filter((e) => e.room_id === roomId && e.type === "m.room.message").map((e) => e.content.body);
    await until(() => bodies().length >= 3);
    expect(bodies()).toEqual(["down0", "down1", "down2"]);
  });

  test("an unknown user of the namespace is asked of the service, which may create it (an invite)", async () => {
    const human = await TestClient.register(server, "human6");
    const roomId = await human.createRoom();
    const ghost = `@_bridge_ghost:${SERVER}`;
    appService.state.onGet = async (url) => {
      if (url.pathname !== `/_matrix/app/v1/users/${enc(ghost)}`) return undefined;
      const made = await asCall(server, "POST", "/register", { type: "m.login.application_service", username: "_bridge_ghost", inhibit_login: true });
      return made.status === 200 ? Response.json({}) : undefined;
    };
    await human.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: ghost });
    expect(appService.state.queries).toContainEqual({ path: `/_matrix/app/v1/users/${enc(ghost)}`, authorization: `Bearer ${HS_TOKEN}` });
    // A user the service does not make stays unknown; one outside its namespace is never asked about.
    appService.state.onGet = undefined;
    await human.fails("POST", `/rooms/${enc(roomId)}/invite`, { user_id: `@_bridge_never:${SERVER}` }, 404, "M_NOT_FOUND");
    const asked = appService.state.queries.length;
    await human.fails("POST", `/rooms/${enc(roomId)}/invite`, { user_id: `@stranger:${SERVER}` }, 404, "M_NOT_FOUND");
    expect(appService.state.queries.length).toBe(asked);
  });

  test("aliases: the service's own without membership, others' exclusive ones refused, unknown ones asked of it", async () => {
    const human = await TestClient.register(server, "human7");
    const roomId = await human.createRoom();
    const alias = `#_bridge_room:${SERVER}`;
    const made = await asCall(server, "PUT", `/directory/room/${enc(alias)}`, { room_id: roomId });
    expect(made.status).toBe(200);
    const outside = await asCall(server, "PUT", `/directory/room/${enc(`#other:${SERVER}`)}`, { room_id: roomId });
    expect({ status: outside.status, errcode: outside.body.errcode }).toEqual({ status: 400, errcode: "M_EXCLUSIVE" });
    await human.fails("PUT", `/directory/room/${enc(`#_bridge_mine:${SERVER}`)}`, { room_id: roomId }, 400, "M_EXCLUSIVE");
    await human.ok("PUT", `/directory/room/${enc(`#mine:${SERVER}`)}`, { room_id: roomId });

    const lazy = `#_bridge_lazy:${SERVER}`;
    appService.state.onGet = async (url) => {
      if (url.pathname !== `/_matrix/app/v1/rooms/${enc(lazy)}`) return undefined;
      const put = await asCall(server, "PUT", `/directory/room/${enc(lazy)}`, { room_id: roomId });
      return put.status === 200 ? Response.json({}) : undefined;
    };
    expect((await human.ok("GET", `/directory/room/${enc(lazy)}`)).room_id).toBe(roomId);
    appService.state.onGet = undefined;
    await human.fails("GET", `/directory/room/${enc(`#_bridge_none:${SERVER}`)}`, undefined, 404, "M_NOT_FOUND");
  });

  test("third party protocols and lookups are answered by the service, with the hs_token and the client's fields", async () => {
    const human = await TestClient.register(server, "human8");
    appService.state.onGet = async (url) => {
      if (url.pathname === "/_matrix/app/v1/thirdparty/protocol/chat") {
        return Response.json({ user_fields: ["nick"], location_fields: ["channel"], icon: "mxc://example.org/icon", field_types: {}, instances: [{ desc: "Net", network_id: "net1", fields: {} }] });
      }
      if (url.pathname === "/_matrix/app/v1/thirdparty/user/chat") return Response.json([{ userid: "@_bridge_x:as.example", protocol: "chat", fields: { nick: url.searchParams.get("nick") } }]);
      if (url.pathname === "/_matrix/app/v1/thirdparty/location") return Response.json([{ alias: url.searchParams.get("alias"), protocol: "chat", fields: {} }]);
      return undefined;
    };
    const protocols = await human.ok("GET", "/thirdparty/protocols");
    expect(Object.keys(protocols)).toEqual(["chat"]);
    expect(protocols.chat.instances).toEqual([{ desc: "Net", network_id: "net1", fields: {}, instance_id: "bridge|net1" }]);
    expect((await human.ok("GET", "/thirdparty/protocol/chat")).user_fields).toEqual(["nick"]);
    await human.fails("GET", "/thirdparty/protocol/nope", undefined, 404, "M_NOT_FOUND");
    const users = await human.ok("GET", "/thirdparty/user/chat?nick=bob");
    expect(users).toEqual([{ userid: "@_bridge_x:as.example", protocol: "chat", fields: { nick: "bob" } }]);
    // The client's token is not passed on; the service gets the hs_token.
    const lookup = appService.state.queries.find((q) => q.path.startsWith("/_matrix/app/v1/thirdparty/user/chat"))!;
    expect(lookup).toEqual({ path: "/_matrix/app/v1/thirdparty/user/chat?nick=bob", authorization: `Bearer ${HS_TOKEN}` });
    expect(await human.ok("GET", `/thirdparty/location?alias=${enc("#x:chat.example")}`)).toEqual([{ alias: "#x:chat.example", protocol: "chat", fields: {} }]);
    expect(await human.ok("GET", "/thirdparty/user/other")).toEqual([]);
  });

  test("the service's network room list is apart from the server's, and joined with include_all_networks", async () => {
    const human = await TestClient.register(server, "human9");
    const roomId = await human.createRoom({ preset: "public_chat" });
    const path = `/directory/list/appservice/net1/${enc(roomId)}`;
    await human.fails("PUT", path, { visibility: "public" }, 403, "M_FORBIDDEN");
    expect((await asCall(server, "PUT", path, { visibility: "public" })).status).toBe(200);
    const list = async (body: Record<string, unknown>) => ((await human.ok("POST", "/publicRooms", body)).chunk as { room_id: string }[]).map((r) => r.room_id);
    expect(await list({})).not.toContain(roomId);
    expect(await list({ third_party_instance_id: "bridge|net1" })).toContain(roomId);
    expect(await list({ third_party_instance_id: "bridge|net2" })).not.toContain(roomId);
    expect(await list({ include_all_networks: true })).toContain(roomId);
    expect((await asCall(server, "DELETE", path)).status).toBe(200);
    expect(await list({ third_party_instance_id: "bridge|net1" })).not.toContain(roomId);
  });

  test("the service deactivates its users without a password", async () => {
    const made = await asCall(server, "POST", "/register", { type: "m.login.application_service", username: "_bridge_gone" });
    const userId = `@_bridge_gone:${SERVER}`;
    const gone = await asCall(server, "POST", `/account/deactivate?user_id=${enc(userId)}`, {});
    expect(gone.status).toBe(200);
    const me = await request(server, "GET", `${V3}/account/whoami`, undefined, { Authorization: `Bearer ${made.body.access_token}` });
    expect(me.status).toBe(401);
  });
});

describe("application services and rate limits", () => {
  test("a service registered with rate_limited: false is spared; one with the default is limited", async () => {
    const dir = tempDir();
    const registration = (id: string, token: string, sender: string, rateLimited: boolean) => {
      const file = join(dir, `${id}.yaml`);
      writeFileSync(file, `id: ${id}\nurl: null\nas_token: ${token}\nhs_token: hs-${id}\nsender_localpart: ${sender}\nrate_limited: ${rateLimited}\nnamespaces: {}\n`);
      return file;
    };
    const server = await testServer({
      server_name: SERVER,
      registration: { enabled: true },
      app_services: [registration("free", "free-token", "freebot", false), registration("limited", "limited-token", "limitedbot", true)],
      plugins: [{ name: "rate-limit", config: { room_creation: { burst: 2, per_second: 0.001 } } }],
    });
    await server.start();
    try {
      const createRooms = async (token: string) => {
        const statuses: number[] = [];
        for (let i = 0; i < 4; i++) statuses.push((await request(server, "POST", `${V3}/createRoom`, {}, { Authorization: `Bearer ${token}` })).status);
        return statuses;
      };
      expect(await createRooms("free-token")).toEqual([200, 200, 200, 200]);
      expect(await createRooms("limited-token")).toEqual([200, 200, 429, 429]);
    } finally {
      await server.stop();
    }
  });
});
