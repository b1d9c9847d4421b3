// The read-only federation room endpoints, resident side: /state, /state_ids, /event, /event_auth,
// /backfill, /get_missing_events — answers checked against the stored DAG and the spec's OpenAPI.
//
// The routes are mounted on a small app of their own (createHttpApp + federationRoomRoutes) with a
// fake X-Matrix check: the origin is whatever the test puts in the `X-Test-Origin` header, and a
// request without it is 401 M_UNAUTHORIZED. Remote users join rooms the way they would over
// federation: their member events are signed by a test key of their server and go through the
// PDU receiver.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { createHttpApp } from "../../../src/api/middleware/http";
import { federationRoomRoutes } from "../../../src/api/federation/rooms";
import { FederationRoomReader, MAX_BACKFILL_LIMIT } from "../../../src/services/federation/room-reader";
import { MatrixError } from "../../../src/protocol/errors";
import { authEventsForEvent } from "../../../src/protocol/auth";
import { stateKey } from "../../../src/protocol/events";
import { LosslessNumber, type JsonObject } from "../../../src/protocol/json";
import { eventReference } from "../../../src/protocol/signing/event-id";
import { expectMatchesSpec, specOperation } from "../../helpers/openapi";
import { testSigner } from "../../helpers/room-engine";
import { TestClient, enc } from "../../helpers/rooms";
import { silentLogger, testServer } from "../../helpers/server";

const SERVER = "resident.example";
const REMOTE = "remote.example";
const STRANGER = "stranger.example";
const V1 = "/_matrix/federation/v1";
const NOW = 1_750_000_000_000;

let server: PortierServer;
let alice: TestClient;
let fed: ReturnType<typeof federationApp>;
const remoteSigner = testSigner(REMOTE, 42);

/** The stand-in for X-Matrix verification: the origin comes from a test header. */
async function fakeAuthenticate(request: Request): Promise<string> {
  const origin = request.headers.get("X-Test-Origin");
  if (!origin) throw new MatrixError("M_UNAUTHORIZED", "Missing X-Test-Origin", 401);
  return origin;
}

function federationApp() {
  const reader = new FederationRoomReader(resolve(server.container, Tokens.RoomEngine), resolve(server.container, Tokens.RoomEventStore));
  return createHttpApp({ maxBodyBytes: 1 << 20, logger: silentLogger }).use(
    federationRoomRoutes({ authenticate: fakeAuthenticate, reader, serverName: SERVER, clock: { now: () => NOW } }),
  );
}

async function call(method: string, path: string, origin: string | undefined, body?: unknown) {
  const headers: Record<string, string> = {};
  if (origin) headers["X-Test-Origin"] = origin;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fed.handle(
    new Request(`http://localhost${path}`, { method, headers, body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body) }),
  );
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, text };
}

/** Expects a 200 that matches the spec, and returns the body. */
async function ok(method: string, path: string, origin: string, body?: unknown): Promise<any> {
  return (await okText(method, path, origin, body)).body;
}

/** ok(), with the response text as sent. */
async function okText(method: string, path: string, origin: string, body?: unknown) {
  const r = await call(method, path, origin, body);
  if (r.status !== 200) throw new Error(`${method} ${path} as ${origin}: ${r.status} ${JSON.stringify(r.body)}`);
  expectMatchesSpec({ api: "server-server", method, path, status: 200, body: r.body });
  return r;
}

/** Expects an error; checks it against the spec when the spec documents that status. */
async function fails(method: string, path: string, origin: string | undefined, status: number, errcode: string, body?: unknown) {
  const r = await call(method, path, origin, body);
  expect({ status: r.status, errcode: r.body?.errcode }).toEqual({ status, errcode });
  if (specOperation({ api: "server-server", method, path })?.statuses.includes(String(status))) {
    expectMatchesSpec({ api: "server-server", method, path, status, body: r.body });
  }
}

const store = () => resolve(server.container, Tokens.RoomEventStore);
const storedPdu = async (eventId: string) => JSON.parse((await store().getEvent(eventId))!.json);

/** A membership of a remote user, signed by its server and received as over federation. */
async function remoteMembership(
  roomId: string,
  userId: string,
  membership: string,
  type = "m.room.member",
  content: JsonObject = { membership },
  prevEvents?: string[],
): Promise<{ eventId: string; outcome: string }> {
  const engine = resolve(server.container, Tokens.RoomEngine);
  const version = await engine.versionOf(roomId);
  prevEvents ??= await store().forwardExtremities(roomId);
  let depth = 0;
  for (const id of prevEvents) depth = Math.max(depth, (await store().getEvent(id))!.depth);
  const isState = type === "m.room.member";
  const event = { type, sender: userId, content, ...(isState ? { state_key: userId } : {}) };
  const keys = authEventsForEvent(event, version);
  const current = await store().currentStateEvents(roomId, keys);
  const authEvents = keys.map(([t, k]) => current.get(stateKey(t, k))).filter((id): id is string => id !== undefined);
  // v1/v2 rooms reference events by [event ID, reference hash] and carry their own event ID.
  const serverChosen = version.eventIdFormat === "server-chosen";
  const reference = async (id: string) => (serverChosen ? eventReference((await engine.loadEvent(id))!.pdu, version) : id);
  const unsigned: JsonObject = {
    room_id: roomId,
    ...event,
    origin: REMOTE,
    origin_server_ts: Date.now(),
    depth: depth + 1,
    prev_events: await Promise.all(prevEvents.map(reference)),
    auth_events: await Promise.all(authEvents.map(reference)),
  };
  if (serverChosen) unsigned.event_id = `$${crypto.randomUUID()}:${REMOTE}`;
  const pdu = remoteSigner.signEvent(unsigned, version);
  const lookupKey = (name: string, keyId: string) => (name === REMOTE && keyId === remoteSigner.keyId ? remoteSigner.publicKey : undefined);
  const outcome = await resolve(server.container, Tokens.PduReceiver).receive(pdu, lookupKey);
  if (outcome.eventId === undefined) throw new Error(`remote event dropped: ${JSON.stringify(outcome)}`);
  return { eventId: outcome.eventId, outcome: outcome.outcome };
}

const stateEvent = async (c: TestClient, roomId: string, type: string, content: JsonObject, key = "") =>
  (await c.ok("PUT", `/rooms/${enc(roomId)}/state/${enc(type)}/${enc(key)}`, content)).event_id as string;

beforeAll(async () => {
  server = await testServer({ server_name: SERVER, registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  fed = federationApp();
});
afterAll(() => server.stop());

describe("the fake X-Matrix check", () => {
  test("a request without an origin is 401 before anything else is looked at", async () => {
    await fails("GET", `${V1}/state_ids/${enc("!nowhere:x")}?event_id=${enc("$x")}`, undefined, 401, "M_UNAUTHORIZED");
    await fails("GET", `${V1}/event/${enc("$nothing")}`, undefined, 401, "M_UNAUTHORIZED");
    await fails("POST", `${V1}/get_missing_events/${enc("!nowhere:x")}`, undefined, 401, "M_UNAUTHORIZED", { earliest_events: [], latest_events: [] });
  });
});

describe("GET /state and /state_ids", () => {
  let roomId: string;
  let name1: string;
  let name2: string;
  let message: string;
  let rexJoin: string;
  beforeAll(async () => {
    roomId = await alice.createRoom({ preset: "public_chat" });
    rexJoin = (await remoteMembership(roomId, `@rex:${REMOTE}`, "join")).eventId;
    name1 = await stateEvent(alice, roomId, "m.room.name", { name: "one" });
    name2 = await stateEvent(alice, roomId, "m.room.name", { name: "two" });
    message = await alice.send(roomId);
  });

  test("state_ids at a message: the state before it (here the current state) and the auth chain of that state", async () => {
    const body = await ok("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(message)}`, REMOTE);
    const current = [...(await store().currentState(roomId)).values()];
    expect(new Set(body.pdu_ids)).toEqual(new Set(current));
    expect(body.pdu_ids).toHaveLength(current.length);
    expect(body.pdu_ids).toContain(rexJoin);
    expect(body.pdu_ids).toContain(name2);
    expect(body.pdu_ids).not.toContain(message);
    expect(new Set(body.auth_chain_ids)).toEqual(await store().authChain(current));
  });

  test("at a state event, the state is the one before it: the entry it replaced, not itself", async () => {
    const ids = (await ok("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(name2)}`, REMOTE)).pdu_ids;
    expect(ids).toContain(name1);
    expect(ids).not.toContain(name2);
    // Before the first m.room.name there was no name at all.
    const before1 = (await ok("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(name1)}`, REMOTE)).pdu_ids;
    expect(before1).not.toContain(name1);
    expect(before1).not.toContain(name2);
    expect(before1).toContain(rexJoin);
    // Before rex's own join, rex was not in the state.
    expect((await ok("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(rexJoin)}`, REMOTE)).pdu_ids).not.toContain(rexJoin);
    // The create event has nothing before it.
    const create = (await store().currentStateEvent(roomId, "m.room.create", ""))!;
    expect(await ok("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(create)}`, REMOTE)).toEqual({ pdu_ids: [], auth_chain_ids: [] });
  });

  test("at a state event with several prev events, the entry it replaced is the one state resolution picks", async () => {
    const fork = await alice.createRoom({ preset: "public_chat" });
    const rex = `@rex:${REMOTE}`;
    const join = (await remoteMembership(fork, rex, "join")).eventId;
    // Two branches from the join: rex renames himself on one, talks on the other; then one event merges them.
    const renamed = await remoteMembership(fork, rex, "join", "m.room.member", { membership: "join", displayname: "Rex A" }, [join]);
    const talked = await remoteMembership(fork, rex, "", "m.room.message", { msgtype: "m.text", body: "hi" }, [join]);
    expect([renamed.outcome, talked.outcome]).toEqual(["accepted", "accepted"]);
    expect(new Set(await store().forwardExtremities(fork))).toEqual(new Set([renamed.eventId, talked.eventId]));
    const merged = await remoteMembership(fork, rex, "join", "m.room.member", { membership: "join", displayname: "Rex C" }, [renamed.eventId, talked.eventId]);
    expect(merged.outcome).toBe("accepted");

    const ids = (await ok("GET", `${V1}/state_ids/${enc(fork)}?event_id=${enc(merged.eventId)}`, REMOTE)).pdu_ids;
    // The branches disagree on rex's membership (the rename on one, the join on the other): resolution keeps the rename.
    expect(ids).toContain(renamed.eventId);
    expect(ids).not.toContain(join);
    expect(ids).not.toContain(merged.eventId);
    // At the message on the second branch (not a state event) the state is that branch's: the join.
    const atTalk = (await ok("GET", `${V1}/state_ids/${enc(fork)}?event_id=${enc(talked.eventId)}`, REMOTE)).pdu_ids;
    expect(atTalk).toContain(join);
    expect(atTalk).not.toContain(renamed.eventId);
  });

  test("state: the PDUs exactly as stored, the same sets as state_ids, the auth chain oldest first", async () => {
    const ids = await ok("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(name2)}`, REMOTE);
    const body = await ok("GET", `${V1}/state/${enc(roomId)}?event_id=${enc(name2)}`, REMOTE);
    expect(body.pdus).toHaveLength(ids.pdu_ids.length);
    for (let i = 0; i < ids.pdu_ids.length; i++) expect(body.pdus[i]).toEqual(await storedPdu(ids.pdu_ids[i]));
    expect(body.auth_chain).toHaveLength(ids.auth_chain_ids.length);
    for (let i = 0; i < ids.auth_chain_ids.length; i++) expect(body.auth_chain[i]).toEqual(await storedPdu(ids.auth_chain_ids[i]));
    const depths = body.auth_chain.map((e: any) => e.depth);
    expect(depths).toEqual([...depths].sort((a: number, b: number) => a - b));
    expect(body.auth_chain[0].type).toBe("m.room.create");
  });

  test("a server with no user in the room is 403, also for events that do not exist; bad parameters are 400", async () => {
    await fails("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(message)}`, STRANGER, 403, "M_FORBIDDEN");
    await fails("GET", `${V1}/state/${enc(roomId)}?event_id=${enc(message)}`, STRANGER, 403, "M_FORBIDDEN");
    await fails("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc("$unknown")}`, STRANGER, 403, "M_FORBIDDEN");
    // The port is part of a server name: remote.example:8448 is another server than remote.example.
    await fails("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(message)}`, `${REMOTE}:8448`, 403, "M_FORBIDDEN");

    await fails("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc("$unknown")}`, REMOTE, 404, "M_NOT_FOUND");
    await fails("GET", `${V1}/state/${enc(roomId)}?event_id=${enc("$unknown")}`, REMOTE, 404, "M_NOT_FOUND");
    await fails("GET", `${V1}/state_ids/${enc(`!unknown:${SERVER}`)}?event_id=${enc(message)}`, REMOTE, 404, "M_NOT_FOUND");
    // An event of another room is not found in this one.
    const other = await alice.createRoom({ preset: "public_chat" });
    await remoteMembership(other, `@rex:${REMOTE}`, "join");
    await fails("GET", `${V1}/state_ids/${enc(other)}?event_id=${enc(message)}`, REMOTE, 404, "M_NOT_FOUND");

    await fails("GET", `${V1}/state_ids/${enc(roomId)}`, REMOTE, 400, "M_MISSING_PARAM");
    await fails("GET", `${V1}/state/${enc(roomId)}?event_id=`, REMOTE, 400, "M_MISSING_PARAM");
    await fails("GET", `${V1}/state_ids/${enc(roomId)}?event_id=notanevent`, REMOTE, 400, "M_INVALID_PARAM");
    await fails("GET", `${V1}/state_ids/notaroom?event_id=${enc(message)}`, REMOTE, 400, "M_INVALID_PARAM");
  });
});

describe("a server that has left", () => {
  test("may still read the state at events from while it was joined, not before it joined", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const before = await alice.send(roomId);
    await remoteMembership(roomId, `@rex:${REMOTE}`, "join");
    const during = await alice.send(roomId);
    expect((await remoteMembership(roomId, `@rex:${REMOTE}`, "leave")).outcome).toBe("accepted");
    const after = await alice.send(roomId);

    expect((await ok("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(during)}`, REMOTE)).pdu_ids.length).toBeGreaterThan(0);
    await ok("GET", `${V1}/event_auth/${enc(roomId)}/${enc(during)}`, REMOTE);
    await ok("GET", `${V1}/event/${enc(during)}`, REMOTE);
    for (const id of [before, after]) {
      await fails("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(id)}`, REMOTE, 403, "M_FORBIDDEN");
      await fails("GET", `${V1}/event/${enc(id)}`, REMOTE, 403, "M_FORBIDDEN");
    }
    // Walking the DAG needs a server in the room now.
    await fails("GET", `${V1}/backfill/${enc(roomId)}?v=${enc(during)}&limit=5`, REMOTE, 403, "M_FORBIDDEN");
    await fails("POST", `${V1}/get_missing_events/${enc(roomId)}`, REMOTE, 403, "M_FORBIDDEN", { earliest_events: [], latest_events: [after] });
  });
});

describe("server ACLs", () => {
  test("a server the room's m.room.server_acl denies is 403 on every endpoint, though its users are joined", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await remoteMembership(roomId, `@rex:${REMOTE}`, "join");
    await remoteMembership(roomId, `@sam:other.example`, "join");
    const message = await alice.send(roomId);
    await ok("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(message)}`, REMOTE);

    await stateEvent(alice, roomId, "m.room.server_acl", { allow: ["*"], deny: ["remote.*", "OTHER.example"] });
    const paths: [string, string, unknown?][] = [
      ["GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(message)}`],
      ["GET", `${V1}/state/${enc(roomId)}?event_id=${enc(message)}`],
      ["GET", `${V1}/event/${enc(message)}`],
      ["GET", `${V1}/event_auth/${enc(roomId)}/${enc(message)}`],
      ["GET", `${V1}/backfill/${enc(roomId)}?v=${enc(message)}&limit=10`],
      ["POST", `${V1}/get_missing_events/${enc(roomId)}`, { earliest_events: [], latest_events: [message] }],
    ];
    for (const [method, path, body] of paths) {
      await fails(method, path, REMOTE, 403, "M_FORBIDDEN", body);
      await fails(method, path, "other.example", 403, "M_FORBIDDEN", body);
    }

    // Narrow the ACL: remote.example is allowed again, other.example stays denied.
    await stateEvent(alice, roomId, "m.room.server_acl", { allow: ["remote.*", SERVER] });
    for (const [method, path, body] of paths) await fails(method, path, "other.example", 403, "M_FORBIDDEN", body);
    await ok("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(message)}`, REMOTE);
    await ok("GET", `${V1}/backfill/${enc(roomId)}?v=${enc(message)}&limit=10`, REMOTE);
  });
});

describe("GET /event/{eventId}", () => {
  test("a transaction with the one PDU, exactly as stored", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await remoteMembership(roomId, `@rex:${REMOTE}`, "join");
    const message = await alice.send(roomId, { msgtype: "m.text", body: "hello there" });
    const body = await ok("GET", `${V1}/event/${enc(message)}`, REMOTE);
    expect(body).toEqual({ origin: SERVER, origin_server_ts: NOW, pdus: [await storedPdu(message)] });
    expect(body.pdus[0].content.body).toBe("hello there");

    await fails("GET", `${V1}/event/${enc("$doesnotexist")}`, REMOTE, 404, "M_NOT_FOUND");
    await fails("GET", `${V1}/event/${enc(message)}`, STRANGER, 403, "M_FORBIDDEN");
    await fails("GET", `${V1}/event/notanevent`, REMOTE, 400, "M_INVALID_PARAM");
  });

  test("a rejected event is not served", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await remoteMembership(roomId, `@rex:${REMOTE}`, "join");
    // Mallory never joined: her message fails the auth rules and is stored as rejected.
    const rejected = await remoteMembership(roomId, `@mallory:${REMOTE}`, "", "m.room.message", { msgtype: "m.text", body: "sneaky" });
    expect(rejected.outcome).toBe("rejected");
    await fails("GET", `${V1}/event/${enc(rejected.eventId)}`, REMOTE, 404, "M_NOT_FOUND");
  });

  test("/state and /state_ids at a rejected event (message or state) are 404, as at an unknown one", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await remoteMembership(roomId, `@rex:${REMOTE}`, "join");
    const message = await remoteMembership(roomId, `@mallory:${REMOTE}`, "", "m.room.message", { msgtype: "m.text", body: "sneaky" });
    // Mallory's membership is refused too: a state event, stored rejected with the state before it.
    const state = await remoteMembership(roomId, `@mallory:${REMOTE}`, "ban", "m.room.member", { membership: "ban" });
    for (const rejected of [message, state]) {
      expect(rejected.outcome).toBe("rejected");
      expect((await store().getEvent(rejected.eventId))?.stateSnapshot).toBeDefined();
      await fails("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(rejected.eventId)}`, REMOTE, 404, "M_NOT_FOUND");
      await fails("GET", `${V1}/state/${enc(roomId)}?event_id=${enc(rejected.eventId)}`, REMOTE, 404, "M_NOT_FOUND");
    }
  });

  test("history_visibility joined: events from before the origin's users joined are served redacted", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", initial_state: [{ type: "m.room.history_visibility", state_key: "", content: { history_visibility: "joined" } }] });
    const secret = await alice.send(roomId, { msgtype: "m.text", body: "secret" });
    const join = (await remoteMembership(roomId, `@rex:${REMOTE}`, "join")).eventId;
    const visible = await alice.send(roomId, { msgtype: "m.text", body: "visible" });

    const hidden = (await ok("GET", `${V1}/event/${enc(secret)}`, REMOTE)).pdus[0];
    const stored = await storedPdu(secret);
    expect(hidden.content).toEqual({});
    // The redacted form keeps what the signatures and the DAG need.
    expect(hidden.signatures).toEqual(stored.signatures);
    expect(hidden.hashes).toEqual(stored.hashes);
    expect(hidden.prev_events).toEqual(stored.prev_events);
    expect((await ok("GET", `${V1}/event/${enc(visible)}`, REMOTE)).pdus[0]).toEqual(await storedPdu(visible));
    // The origin's own member events are always visible.
    expect((await ok("GET", `${V1}/event/${enc(join)}`, REMOTE)).pdus[0]).toEqual(await storedPdu(join));

    // Backfill redacts the same way.
    const pdus = (await ok("GET", `${V1}/backfill/${enc(roomId)}?v=${enc(visible)}&limit=3`, REMOTE)).pdus;
    expect(pdus.map((p: any) => p.content.body ?? p.content.membership ?? null)).toEqual(["visible", "join", null]);
  });
});

describe("GET /event_auth/{roomId}/{eventId}", () => {
  test("the full auth chain of the event, oldest first, as stored", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await remoteMembership(roomId, `@rex:${REMOTE}`, "join");
    const message = await alice.send(roomId);
    const body = await ok("GET", `${V1}/event_auth/${enc(roomId)}/${enc(message)}`, REMOTE);
    const chain = await store().authChain([message]);
    expect(body.auth_chain).toHaveLength(chain.size);
    const ids = [...chain];
    const pdus = await Promise.all(ids.map(storedPdu));
    expect(new Set(body.auth_chain.map((p: any) => JSON.stringify(p)))).toEqual(new Set(pdus.map((p) => JSON.stringify(p))));
    const types = body.auth_chain.map((p: any) => p.type);
    expect(types[0]).toBe("m.room.create");
    expect(types).toContain("m.room.power_levels");
    expect(types).toContain("m.room.member");
    const depths = body.auth_chain.map((p: any) => p.depth);
    expect(depths).toEqual([...depths].sort((a: number, b: number) => a - b));

    // The create event has an empty auth chain.
    const create = (await store().currentStateEvent(roomId, "m.room.create", ""))!;
    expect(await ok("GET", `${V1}/event_auth/${enc(roomId)}/${enc(create)}`, REMOTE)).toEqual({ auth_chain: [] });

    await fails("GET", `${V1}/event_auth/${enc(roomId)}/${enc("$nope")}`, REMOTE, 404, "M_NOT_FOUND");
    await fails("GET", `${V1}/event_auth/${enc(roomId)}/${enc(message)}`, STRANGER, 403, "M_FORBIDDEN");
    await fails("GET", `${V1}/event_auth/${enc(`!nope:${SERVER}`)}/${enc(message)}`, REMOTE, 404, "M_NOT_FOUND");
  });
});

describe("GET /backfill and POST /get_missing_events", () => {
  let roomId: string;
  let messages: string[];
  beforeAll(async () => {
    roomId = await alice.createRoom({ preset: "public_chat" });
    await remoteMembership(roomId, `@rex:${REMOTE}`, "join");
    messages = [];
    for (let i = 0; i < 8; i++) messages.push(await alice.send(roomId, { msgtype: "m.text", body: `m${i}` }));
  });

  const bodies = (pdus: any[]) => pdus.map((p) => p.content.body);

  test("backfill: the given events and those before them, most recent first, up to limit", async () => {
    const body = await ok("GET", `${V1}/backfill/${enc(roomId)}?v=${enc(messages[5]!)}&limit=3`, REMOTE);
    expect(body.origin).toBe(SERVER);
    expect(body.origin_server_ts).toBe(NOW);
    expect(bodies(body.pdus)).toEqual(["m5", "m4", "m3"]);
    expect(body.pdus[0]).toEqual(await storedPdu(messages[5]!));

    // Several starting points; repeated `v`.
    const two = await ok("GET", `${V1}/backfill/${enc(roomId)}?v=${enc(messages[7]!)}&v=${enc(messages[2]!)}&limit=4`, REMOTE);
    expect(bodies(two.pdus)).toEqual(["m7", "m6", "m5", "m4"]);

    // Walks back to the create event, and no further.
    const all = await ok("GET", `${V1}/backfill/${enc(roomId)}?v=${enc(messages[1]!)}&limit=50`, REMOTE);
    expect(all.pdus[all.pdus.length - 1].type).toBe("m.room.create");
    expect(all.pdus.map((p: any) => p.depth)).toEqual([...all.pdus.map((p: any) => p.depth)].sort((a: number, b: number) => b - a));
    expect(new Set(all.pdus.map((p: any) => JSON.stringify(p))).size).toBe(all.pdus.length);

    expect((await ok("GET", `${V1}/backfill/${enc(roomId)}?v=${enc(messages[5]!)}&limit=0`, REMOTE)).pdus).toEqual([]);
    // Unknown starting events are skipped.
    expect((await ok("GET", `${V1}/backfill/${enc(roomId)}?v=${enc("$unknown")}&limit=5`, REMOTE)).pdus).toEqual([]);
    expect(bodies((await ok("GET", `${V1}/backfill/${enc(roomId)}?v=${enc("$unknown")}&v=${enc(messages[3]!)}&limit=1`, REMOTE)).pdus)).toEqual(["m3"]);
  });

  test("backfill: at most MAX_BACKFILL_LIMIT events, whatever limit asks", async () => {
    const big = await alice.createRoom({ preset: "public_chat" });
    await remoteMembership(big, `@rex:${REMOTE}`, "join");
    let last = "";
    for (let i = 0; i < MAX_BACKFILL_LIMIT + 5; i++) last = await alice.send(big, { msgtype: "m.text", body: `b${i}` });
    const body = await ok("GET", `${V1}/backfill/${enc(big)}?v=${enc(last)}&limit=100000`, REMOTE);
    expect(body.pdus).toHaveLength(MAX_BACKFILL_LIMIT);
  });

  test("backfill: bad parameters are 400; strangers 403; unknown rooms 404", async () => {
    const path = `${V1}/backfill/${enc(roomId)}`;
    await fails("GET", `${path}?limit=5`, REMOTE, 400, "M_MISSING_PARAM");
    await fails("GET", `${path}?v=${enc(messages[1]!)}`, REMOTE, 400, "M_MISSING_PARAM");
    await fails("GET", `${path}?v=${enc(messages[1]!)}&limit=abc`, REMOTE, 400, "M_INVALID_PARAM");
    await fails("GET", `${path}?v=${enc(messages[1]!)}&limit=-1`, REMOTE, 400, "M_INVALID_PARAM");
    await fails("GET", `${path}?v=notanevent&limit=5`, REMOTE, 400, "M_INVALID_PARAM");
    await fails("GET", `${path}?v=${enc(messages[1]!)}&limit=5`, STRANGER, 403, "M_FORBIDDEN");
    await fails("GET", `${V1}/backfill/${enc(`!nope:${SERVER}`)}?v=${enc(messages[1]!)}&limit=5`, REMOTE, 404, "M_NOT_FOUND");
  });

  test("get_missing_events: the events between earliest and latest, oldest first, latest and earliest left out", async () => {
    const path = `${V1}/get_missing_events/${enc(roomId)}`;
    const body = await ok("POST", path, REMOTE, { earliest_events: [messages[1]], latest_events: [messages[6]] });
    expect(bodies(body.events)).toEqual(["m2", "m3", "m4", "m5"]);
    expect(body.events[0]).toEqual(await storedPdu(messages[2]!));

    // limit keeps the events nearest to latest_events (the walk starts there).
    expect(bodies((await ok("POST", path, REMOTE, { earliest_events: [messages[1]], latest_events: [messages[6]], limit: 2 })).events)).toEqual(["m4", "m5"]);
    // The default limit is 10.
    const open = await ok("POST", path, REMOTE, { earliest_events: [], latest_events: [messages[7]] });
    expect(open.events).toHaveLength(10);
    expect(bodies(open.events.slice(-3))).toEqual(["m4", "m5", "m6"]);
    // min_depth stops the walk.
    const depth3 = (await store().getEvent(messages[3]!))!.depth;
    expect(bodies((await ok("POST", path, REMOTE, { earliest_events: [], latest_events: [messages[6]], min_depth: depth3 })).events)).toEqual(["m3", "m4", "m5"]);
    // Unknown latest events give nothing; nothing is missing between neighbours.
    expect((await ok("POST", path, REMOTE, { earliest_events: [], latest_events: ["$unknown"] })).events).toEqual([]);
    expect((await ok("POST", path, REMOTE, { earliest_events: [messages[5]], latest_events: [messages[6]] })).events).toEqual([]);
  });

  test("get_missing_events: bad bodies are 400; strangers 403; unknown rooms 404", async () => {
    const path = `${V1}/get_missing_events/${enc(roomId)}`;
    await fails("POST", path, REMOTE, 400, "M_MISSING_PARAM", { earliest_events: [] });
    await fails("POST", path, REMOTE, 400, "M_MISSING_PARAM", { latest_events: [] });
    await fails("POST", path, REMOTE, 400, "M_BAD_JSON", { earliest_events: "x", latest_events: [] });
    await fails("POST", path, REMOTE, 400, "M_BAD_JSON", { earliest_events: [], latest_events: [], limit: "ten" });
    await fails("POST", path, REMOTE, 400, "M_BAD_JSON", { earliest_events: [], latest_events: [], limit: -1 });
    await fails("POST", path, REMOTE, 400, "M_NOT_JSON", "{not json");
    await fails("POST", path, STRANGER, 403, "M_FORBIDDEN", { earliest_events: [], latest_events: [messages[3]] });
    await fails("POST", `${V1}/get_missing_events/${enc(`!nope:${SERVER}`)}`, REMOTE, 404, "M_NOT_FOUND", { earliest_events: [], latest_events: [] });
  });
});

describe("room versions", () => {
  test.each(["1", "3", "11", "12"])("v%s: event IDs of every format in paths, PDUs served as stored", async (versionId) => {
    const roomId = await alice.createRoom({ preset: "public_chat", room_version: versionId });
    const join = (await remoteMembership(roomId, `@rex:${REMOTE}`, "join")).eventId;
    const message = await alice.send(roomId, { msgtype: "m.text", body: "hi" });
    // v1..v5 allow floats; they are stored and served with the exact text they were signed with.
    const floatContent: JsonObject = versionId === "1" ? { msgtype: "m.text", body: "float", weight: new LosslessNumber("1.0") } : { msgtype: "m.text", body: "float" };
    const remote = await remoteMembership(roomId, `@rex:${REMOTE}`, "", "m.room.message", floatContent);
    expect(remote.outcome).toBe("accepted");

    for (const id of [join, message, remote.eventId]) {
      const r = await okText("GET", `${V1}/event/${enc(id)}`, REMOTE);
      expect(r.body.pdus[0]).toEqual(await storedPdu(id));
    }
    if (versionId === "1") {
      const r = await okText("GET", `${V1}/event/${enc(remote.eventId)}`, REMOTE);
      expect(r.text).toContain('"weight":1.0');
      expect((await store().getEvent(remote.eventId))!.json).toContain('"weight":1.0');
    }
    const ids = await ok("GET", `${V1}/state_ids/${enc(roomId)}?event_id=${enc(remote.eventId)}`, REMOTE);
    expect(new Set(ids.pdu_ids)).toEqual(new Set((await store().currentState(roomId)).values()));
    expect((await ok("GET", `${V1}/event_auth/${enc(roomId)}/${enc(remote.eventId)}`, REMOTE)).auth_chain.length).toBeGreaterThan(0);
    const back = await ok("GET", `${V1}/backfill/${enc(roomId)}?v=${enc(remote.eventId)}&limit=3`, REMOTE);
    expect(back.pdus.map((p: any) => p.content.body ?? p.content.membership)).toEqual(["float", "hi", "join"]);
    const missing = await ok("POST", `${V1}/get_missing_events/${enc(roomId)}`, REMOTE, { earliest_events: [join], latest_events: [remote.eventId] });
    expect(missing.events).toEqual([await storedPdu(message)]);
  });
});
