// A gap in a room's history (a PDU whose prev_events we do not hold), filled as Synapse does where the
// spec leaves it open: /get_missing_events first; an event it brought whose own prev events are still
// missing is bridged with /state_ids at them, and only the events of that state we do not hold are
// fetched, one by one with /event. A live event whose prev events its server does not give at all is
// refused. The remote here is a fake that serves /get_missing_events, /state_ids and /event only
// (as another homeserver may, and as sytest's does): /state is never needed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../src/app";
import { Tokens, resolve } from "../../src/di/tokens";
import { FederationEventIngest } from "../../src/services/federation/event-ingest";
import { RemoteMatrixError, type FederationClient, type ServerKeyRing } from "../../src/services/federation/contracts";
import { authEventsForEvent } from "../../src/protocol/auth";
import { stateKey } from "../../src/protocol/events";
import type { JsonObject } from "../../src/protocol/json";
import { computeEventId } from "../../src/protocol/signing/event-id";
import { roomVersion } from "../../src/protocol/room-versions";
import { testSigner } from "../helpers/room-engine";
import { TestClient, enc } from "../helpers/rooms";
import { silentLogger, testServer } from "../helpers/server";

const SERVER = "resident.example";
const REMOTE = "remote.example";
const REX = `@rex:${REMOTE}`;
const version = roomVersion("10")!;
const remoteSigner = testSigner(REMOTE, 9);

let server: PortierServer;
let alice: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: SERVER, registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
});
afterAll(() => server.stop());

const store = () => resolve(server.container, Tokens.RoomEventStore);

/** The fake remote: answers from `events` (by ID) and `stateIds` (by event), records every request. */
function fakeRemote(events: Map<string, JsonObject>, stateIds: Map<string, { pdu_ids: string[]; auth_chain_ids: string[] }>, missingEvents: JsonObject[] = []) {
  const asked: string[] = [];
  const client: FederationClient = {
    async request(method, destination, path, options) {
      expect(destination).toBe(REMOTE);
      asked.push(`${method} ${path.split("/").slice(0, 5).join("/")}`);
      if (path.startsWith("/_matrix/federation/v1/get_missing_events/")) return { events: missingEvents };
      if (path.startsWith("/_matrix/federation/v1/state_ids/")) {
        const answer = stateIds.get(String(options?.query?.event_id));
        if (answer) return answer;
      }
      if (path.startsWith("/_matrix/federation/v1/event/")) {
        const pdu = events.get(decodeURIComponent(path.slice("/_matrix/federation/v1/event/".length)));
        if (pdu) return { origin: REMOTE, origin_server_ts: Date.now(), pdus: [pdu] };
      }
      throw new RemoteMatrixError(REMOTE, "M_NOT_FOUND", "not served here", 404);
    },
  };
  return { client, asked };
}

function ingestWith(client: FederationClient): FederationEventIngest {
  const keyRing: ServerKeyRing = {
    fetch: async () => {},
    cached: (name, keyId) => (name === REMOTE && keyId === remoteSigner.keyId ? remoteSigner.publicKey : undefined),
    responsesFor: async () => [],
  };
  return new FederationEventIngest({
    serverName: SERVER,
    receiver: resolve(server.container, Tokens.PduReceiver),
    engine: resolve(server.container, Tokens.RoomEngine),
    store: store(),
    keyRing,
    client,
    logger: silentLogger,
  });
}

/** An event of Rex, signed by his server, on the given prev events, with auth events from `state`. */
function rexEvent(roomId: string, fields: { type: string; content: JsonObject; state_key?: string }, prevEvents: string[], depth: number, state: ReadonlyMap<string, string>): JsonObject {
  const auth = authEventsForEvent({ type: fields.type, sender: REX, content: fields.content, state_key: fields.state_key }, version)
    .map(([t, k]) => state.get(stateKey(t, k)))
    .filter((id): id is string => id !== undefined);
  return remoteSigner.signEvent({ room_id: roomId, sender: REX, ...fields, origin_server_ts: Date.now(), depth, prev_events: prevEvents, auth_events: auth }, version);
}

describe("a gap bridged with /state_ids and /event", () => {
  test("three events of Rex that A never saw: the last arrives, /get_missing_events brings the one before it, and the state before that comes from /state_ids", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", room_version: "10" });
    const ingest = ingestWith(fakeRemote(new Map(), new Map()).client);
    // Rex joins as over federation (A holds the join).
    const state = new Map(await store().currentState(roomId));
    const extremities = await store().forwardExtremities(roomId);
    const depth = (await store().getEvent(extremities[0]!))!.depth;
    const join = rexEvent(roomId, { type: "m.room.member", state_key: REX, content: { membership: "join", displayname: "Rex" } }, extremities, depth + 1, state);
    expect((await ingest.receiveFrom(REMOTE, join)).outcome).toBe("accepted");
    const joinId = computeEventId(join, version);
    state.set(stateKey("m.room.member", REX), joinId);

    // On the remote, unseen by A: Rex renames himself (state), then two messages.
    const rename = rexEvent(roomId, { type: "m.room.member", state_key: REX, content: { membership: "join", displayname: "Rex the Second" } }, [joinId], depth + 2, state);
    const renameId = computeEventId(rename, version);
    const stateAfterRename = new Map(state).set(stateKey("m.room.member", REX), renameId);
    const m1 = rexEvent(roomId, { type: "m.room.message", content: { msgtype: "m.text", body: "one" } }, [renameId], depth + 3, stateAfterRename);
    const m1Id = computeEventId(m1, version);
    const m2 = rexEvent(roomId, { type: "m.room.message", content: { msgtype: "m.text", body: "two" } }, [m1Id], depth + 4, stateAfterRename);
    const m2Id = computeEventId(m2, version);

    // /get_missing_events gives m1 only; the state before the rename (what A holds) as the remote
    // tells it, and the rename itself, A fetches.
    const stateIds = new Map([[renameId, { pdu_ids: [...state.values()], auth_chain_ids: [...state.values()] }]]);
    const remote = fakeRemote(new Map([[renameId, rename]]), stateIds, [m1]);
    const outcome = await ingestWith(remote.client).receiveFrom(REMOTE, m2);
    expect(outcome).toMatchObject({ outcome: "accepted", eventId: m2Id });

    expect(remote.asked).toContain("GET /_matrix/federation/v1/state_ids");
    expect(remote.asked).not.toContain("GET /_matrix/federation/v1/state");
    // Only the one event A did not hold was fetched.
    expect(remote.asked.filter((r) => r === "GET /_matrix/federation/v1/event").length).toBe(1);
    expect((await store().getEvent(renameId))?.outlier).toBe(true);
    // The state at m2 has Rex's new name, learnt through the gap.
    const atM2 = await store().stateAt((await store().getEvent(m2Id))!.stateSnapshot!);
    expect(atM2.get(stateKey("m.room.member", REX))).toBe(renameId);
    const messages = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=3`);
    expect(messages.chunk.slice(0, 2).map((e: JsonObject) => e.event_id)).toEqual([m2Id, m1Id]);
  }, 20_000);

  test("a live event whose prev events its server does not give: dropped with the reason, nothing stored, no state asked", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", room_version: "10" });
    const state = new Map(await store().currentState(roomId));
    const extremities = await store().forwardExtremities(roomId);
    const depth = (await store().getEvent(extremities[0]!))!.depth;
    const join = rexEvent(roomId, { type: "m.room.member", state_key: REX, content: { membership: "join" } }, extremities, depth + 1, state);
    const joinId = computeEventId(join, version);
    const remote = fakeRemote(new Map(), new Map());
    const ingest = ingestWith(remote.client);
    expect((await ingest.receiveFrom(REMOTE, join)).outcome).toBe("accepted");
    state.set(stateKey("m.room.member", REX), joinId);
    const unseen = rexEvent(roomId, { type: "m.room.message", content: { body: "unseen" } }, [joinId], depth + 2, state);
    const after = rexEvent(roomId, { type: "m.room.message", content: { body: "after" } }, [computeEventId(unseen, version)], depth + 3, state);
    const outcome = await ingest.receiveFrom(REMOTE, after);
    expect(outcome).toMatchObject({ outcome: "dropped", reason: expect.stringContaining("did not give them") });
    expect(await store().getEvent(computeEventId(after, version))).toBeUndefined();
    expect(remote.asked).toContain("POST /_matrix/federation/v1/get_missing_events");
    expect(remote.asked).not.toContain("GET /_matrix/federation/v1/state_ids");
  }, 20_000);

  test("an outlier whose auth events include one of another room is stored rejected", async () => {
    const one = await alice.createRoom({ preset: "public_chat", room_version: "10" });
    const two = await alice.createRoom({ preset: "private_chat", room_version: "10" });
    const ingest = ingestWith(fakeRemote(new Map(), new Map()).client);
    // Rex is joined to room one only.
    const stateOne = new Map(await store().currentState(one));
    const extremities = await store().forwardExtremities(one);
    const join = rexEvent(one, { type: "m.room.member", state_key: REX, content: { membership: "join" } }, extremities, 10, stateOne);
    expect((await ingest.receiveFrom(REMOTE, join)).outcome).toBe("accepted");
    const joinInOne = computeEventId(join, version);
    // His "join" of room two (invite only) cites his membership of room one as its auth event.
    const stateTwo = new Map(await store().currentState(two));
    const auth = [stateKey("m.room.create", ""), stateKey("m.room.power_levels", ""), stateKey("m.room.join_rules", "")].map((k) => stateTwo.get(k)!);
    const sneaky = remoteSigner.signEvent({
      room_id: two, sender: REX, type: "m.room.member", state_key: REX, content: { membership: "join" }, origin_server_ts: Date.now(), depth: 10,
      prev_events: await store().forwardExtremities(two), auth_events: [...auth, joinInOne],
    }, version);
    // The import is bulk work (a join's whole state): it asks for a database transaction of its own.
    const events = store();
    const atomically = events.atomically.bind(events);
    const asked: unknown[] = [];
    events.atomically = (fn, options) => (asked.push(options), atomically(fn, options));
    let imported;
    try {
      imported = await ingest.importOutliers(two, version, [sneaky]);
    } finally {
      events.atomically = atomically;
    }
    expect(asked).toContainEqual({ alone: true });
    const sneakyId = computeEventId(sneaky, version);
    expect(imported.get(sneakyId)?.rejected).toBe(true);
    expect((await store().getEvent(sneakyId))?.rejectedReason).toContain("another room");
  }, 20_000);
});
