// Redactions that point back at themselves. In v1/v2 rooms the sending server chooses event IDs, so
// another server can send a redaction that redacts itself, or two that redact each other. Neither
// may redact anything (the event is served as sent), and serving them must not loop: before this,
// formatting the event's `redacted_because` formatted the redaction's own `redacted_because`, without
// end, and the server stopped answering.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { roomVersion } from "../../../src/protocol/room-versions";
import type { JsonObject } from "../../../src/protocol/json";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";

const SERVER = "cycles.example";
let server: PortierServer;
let alice: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: SERVER, registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
});
afterAll(() => server.stop());

/**
 * A redaction by Alice with a chosen event ID and target, built on the room's tip and signed by the
 * server as another server would send it, then received through the PDU pipeline.
 */
async function receiveRedaction(roomId: string, eventId: string, redacts: string): Promise<void> {
  const engine = resolve(server.container, Tokens.RoomEngine);
  const keys = resolve(server.container, Tokens.ServerKeys);
  const version = roomVersion("1")!;
  const { pdu } = await engine.prepareEvent(roomId, version, { type: "m.room.redaction", sender: alice.userId, content: {}, redacts });
  const signed = keys.signEvent({ ...pdu, event_id: eventId } as JsonObject, version);
  const outcome = await resolve(server.container, Tokens.PduReceiver).receive(signed, (name, keyId) => (name === SERVER ? keys.publicKey(keyId) : undefined));
  expect(outcome.outcome).toBe("accepted");
}

/** A request that must answer within a few seconds (a loop would never answer). */
async function promptly<T>(what: string, call: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not answer`)), 5_000)));
  try {
    return await Promise.race([call(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe("redaction cycles in a v1 room", () => {
  test("a redaction that redacts itself is served unredacted, by /event, /messages and /sync", async () => {
    const roomId = await alice.createRoom({ room_version: "1" });
    const eventId = `$inception-${crypto.randomUUID().slice(0, 8)}:${SERVER}`;
    await receiveRedaction(roomId, eventId, eventId);

    const event = await promptly("/event", () => alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(eventId)}`));
    expect(event.redacts).toBe(eventId);
    expect(event.unsigned?.redacted_because).toBeUndefined();
    const messages = await promptly("/messages", () => alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=5`));
    expect((messages.chunk as JsonObject[]).find((e) => e.event_id === eventId)).toMatchObject({ redacts: eventId });
    const sync = await promptly("/sync", () => alice.ok("GET", "/sync"));
    const timeline = sync.rooms.join[roomId].timeline.events as JsonObject[];
    expect(timeline.find((e) => e.event_id === eventId)).toMatchObject({ type: "m.room.redaction", redacts: eventId });
  }, 20_000);

  test("two redactions that redact each other: the first is redacted by the second, whose own redaction is not followed", async () => {
    const roomId = await alice.createRoom({ room_version: "1" });
    const first = `$first-${crypto.randomUUID().slice(0, 8)}:${SERVER}`;
    const second = `$second-${crypto.randomUUID().slice(0, 8)}:${SERVER}`;
    await receiveRedaction(roomId, first, second);
    await receiveRedaction(roomId, second, first);

    const one = await promptly("/event", () => alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(first)}`));
    const two = await promptly("/event", () => alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(second)}`));
    // Each is the other's redaction: each is served pruned with the other as its redacted_because,
    // and that nested event carries no redacted_because of its own.
    for (const [event, other] of [[one, second], [two, first]] as const) {
      expect(event.unsigned.redacted_because.event_id).toBe(other);
      expect(event.unsigned.redacted_because.unsigned?.redacted_because).toBeUndefined();
    }
    const sync = await promptly("/sync", () => alice.ok("GET", "/sync"));
    const ids = (sync.rooms.join[roomId].timeline.events as JsonObject[]).map((e) => e.event_id);
    expect(ids).toContain(first);
    expect(ids).toContain(second);
  }, 20_000);
});
