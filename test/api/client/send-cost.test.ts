// What a message send (PUT /rooms/{roomId}/send/{type}/{txnId}) costs the database: one read for
// the access token, one for the transaction id, one for the auth events (which brings the create
// event and the room's m.room.policy with them), then the event's own writes. A bound on
// statements per send, with the event checked to be stored and served.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { TestClient, enc } from "../../helpers/rooms";
import { testServer } from "../../helpers/server";
import { statementsDuring } from "../../helpers/statements";

let server: PortierServer;

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
});

afterAll(async () => {
  await server?.stop();
});

for (const roomVersion of ["10", "12"]) {
  test(`a message in a room of version ${roomVersion} costs at most 9 statements, and is stored`, async () => {
    const alice = await TestClient.register(server, `alice${roomVersion}`);
    const roomId = await alice.createRoom({ preset: "private_chat", room_version: roomVersion });
    // Warm: the room's record, snapshot and extremities are cached as on any busy server.
    for (let i = 0; i < 3; i++) await alice.send(roomId, { msgtype: "m.text", body: `warm ${i}` });
    const { value: eventId, statements } = await statementsDuring(server, () => alice.send(roomId, { msgtype: "m.text", body: "counted" }));
    const event = await alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(eventId)}`);
    expect(event.content).toEqual({ msgtype: "m.text", body: "counted" });
    // Before: the create event and m.room.policy were each read by a query of their own: 11.
    expect(statements).toBeLessThanOrEqual(9);
  });
}

test("a refused send stores nothing and costs no write", async () => {
  const owner = await TestClient.register(server, "owner");
  const outsider = await TestClient.register(server, "outsider");
  const roomId = await owner.createRoom({ preset: "public_chat" });
  await owner.send(roomId);
  const writes = await statementsDuring(server, () => outsider.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: "m.text", body: "no" }, 403, "M_FORBIDDEN"), "INSERT");
  expect(writes.statements).toBe(0);
  // The transaction id was not taken either: after joining, the same txnId sends a new event.
  await outsider.ok("POST", `/join/${enc(roomId)}`, {});
  const { event_id } = await outsider.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: "m.text", body: "yes" });
  expect((await owner.ok("GET", `/rooms/${enc(roomId)}/event/${enc(event_id)}`)).content.body).toBe("yes");
});
