// Erasure on deactivation, federation side: once a user is erased, /event, /backfill and
// /get_missing_events serve their events redacted (the room version's redaction algorithm) to other
// servers, as Synapse does (sytest "Inbound federation redacts events from erased users"); state
// and auth chains are served as stored, and other users' events stay whole.
//
// The routes are mounted with the server's own FederationRoomReader behind a fake X-Matrix check
// (the origin is the `X-Test-Origin` header), as in rooms.test.ts; the remote user joins through the
// PDU receiver with a member event signed by a test key of their server.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { createHttpApp } from "../../../src/api/middleware/http";
import { federationRoomRoutes } from "../../../src/api/federation/rooms";
import { MatrixError } from "../../../src/protocol/errors";
import { authEventsForEvent } from "../../../src/protocol/auth";
import { stateKey } from "../../../src/protocol/events";
import type { JsonObject } from "../../../src/protocol/json";
import { redactEvent } from "../../../src/protocol/signing/redaction";
import { testSigner } from "../../helpers/room-engine";
import { TestClient, enc } from "../../helpers/rooms";
import { silentLogger, testServer } from "../../helpers/server";

const SERVER = "resident.example";
const REMOTE = "remote.example";
const V1 = "/_matrix/federation/v1";
const remoteSigner = testSigner(REMOTE, 7);

let server: PortierServer;
let fed: { handle(request: Request): Promise<Response> };

beforeAll(async () => {
  server = await testServer({ server_name: SERVER, registration: { enabled: true } });
  const authenticate = async (request: Request) => {
    const origin = request.headers.get("X-Test-Origin");
    if (!origin) throw new MatrixError("M_UNAUTHORIZED", "Missing X-Test-Origin", 401);
    return origin;
  };
  fed = createHttpApp({ maxBodyBytes: 1 << 20, logger: silentLogger }).use(
    federationRoomRoutes({ authenticate, reader: resolve(server.container, Tokens.FederationRoomReader), serverName: SERVER, clock: { now: () => Date.now() } }),
  );
});
afterAll(() => server.stop());

async function fedOk(method: string, path: string, body?: unknown): Promise<any> {
  const headers: Record<string, string> = { "X-Test-Origin": REMOTE };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fed.handle(new Request(`http://localhost${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) }));
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

const store = () => resolve(server.container, Tokens.RoomEventStore);
const storedPdu = async (eventId: string): Promise<JsonObject> => JSON.parse((await store().getEvent(eventId))!.json);

/** A remote user's join, signed by their server and received as over federation. */
async function remoteJoin(roomId: string, userId: string): Promise<void> {
  const engine = resolve(server.container, Tokens.RoomEngine);
  const version = await engine.versionOf(roomId);
  const prevEvents = await store().forwardExtremities(roomId);
  let depth = 0;
  for (const id of prevEvents) depth = Math.max(depth, (await store().getEvent(id))!.depth);
  const event = { type: "m.room.member", sender: userId, state_key: userId, content: { membership: "join" } };
  const keys = authEventsForEvent(event, version);
  const current = await store().currentStateEvents(roomId, keys);
  const authEvents = keys.map(([t, k]) => current.get(stateKey(t, k))).filter((id): id is string => id !== undefined);
  const pdu = remoteSigner.signEvent({ room_id: roomId, ...event, origin: REMOTE, origin_server_ts: Date.now(), depth: depth + 1, prev_events: prevEvents, auth_events: authEvents }, version);
  const lookupKey = (name: string, keyId: string) => (name === REMOTE && keyId === remoteSigner.keyId ? remoteSigner.publicKey : undefined);
  const outcome = await resolve(server.container, Tokens.PduReceiver).receive(pdu, lookupKey);
  if (outcome.outcome !== "accepted") throw new Error(`remote join not accepted: ${JSON.stringify(outcome)}`);
}

describe("federation reads after an erasure", () => {
  test("/event, /backfill and /get_missing_events serve the erased user's events redacted; state as stored", async () => {
    const alice = await TestClient.register(server, "alice");
    const bob = await TestClient.register(server, "bob");
    const roomId = await bob.createRoom({ preset: "public_chat" });
    await alice.ok("POST", `/join/${enc(roomId)}`, {});
    await remoteJoin(roomId, `@remote:${REMOTE}`);
    const message = await alice.send(roomId, { msgtype: "m.text", body: "body1" });
    const other = await bob.send(roomId, { msgtype: "m.text", body: "stays" });
    const eventOf = async (id: string) => (await fedOk("GET", `${V1}/event/${enc(id)}`)).pdus[0];

    expect((await eventOf(message)).content.body).toBe("body1");

    const first = await alice.call("POST", "/account/deactivate", { erase: true });
    await alice.ok("POST", "/account/deactivate", { erase: true, auth: { type: "m.login.password", identifier: { type: "m.id.user", user: alice.userId }, password: "pw", session: first.body.session } });
    const last = await bob.send(roomId, { msgtype: "m.text", body: "after" });

    const version = await resolve(server.container, Tokens.RoomEngine).versionOf(roomId);
    const redacted = redactEvent(await storedPdu(message), version);
    expect(redacted.content).toEqual({});
    expect(await eventOf(message)).toEqual(redacted);
    expect(await eventOf(other)).toEqual(await storedPdu(other));

    const backfill = (await fedOk("GET", `${V1}/backfill/${enc(roomId)}?v=${enc(last)}&limit=20`)).pdus as JsonObject[];
    const missing = (await fedOk("POST", `${V1}/get_missing_events/${enc(roomId)}`, { earliest_events: [], latest_events: [last], limit: 20 })).events as JsonObject[];
    for (const pdus of [backfill, missing]) {
      expect(pdus).toContainEqual(redacted);
      expect(pdus).not.toContainEqual(await storedPdu(message));
      expect(pdus).toContainEqual(await storedPdu(other));
    }

    // The state at the last event holds alice's leave as stored (state is never redacted for erasure).
    const leaveId = (await store().currentStateEvent(roomId, "m.room.member", alice.userId))!;
    const state = (await fedOk("GET", `${V1}/state/${enc(roomId)}?event_id=${enc(last)}`)).pdus as JsonObject[];
    expect(state).toContainEqual(await storedPdu(leaveId));
  });
});
