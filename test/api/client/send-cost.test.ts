// What a message send (PUT /rooms/{roomId}/send/{type}/{txnId}) costs the database: one read for
// the access token, one for the auth events (which brings the create event and the room's
// m.room.policy with them), then the event's own writes, the transaction id among them (not looked
// up first: a retry finds it taken when recording it). A bound on
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
  test(`a message in a room of version ${roomVersion} costs at most 8 statements, and is stored`, async () => {
    const alice = await TestClient.register(server, `alice${roomVersion}`);
    const roomId = await alice.createRoom({ preset: "private_chat", room_version: roomVersion });
    // Warm: the room's record, snapshot and extremities are cached as on any busy server.
    for (let i = 0; i < 3; i++) await alice.send(roomId, { msgtype: "m.text", body: `warm ${i}` });
    const { value: eventId, statements } = await statementsDuring(server, () => alice.send(roomId, { msgtype: "m.text", body: "counted" }));
    const event = await alice.ok("GET", `/rooms/${enc(roomId)}/event/${enc(eventId)}`);
    expect(event.content).toEqual({ msgtype: "m.text", body: "counted" });
    // Before: the create event and m.room.policy were each read by a query of their own, and the
    // transaction id looked up before the send: 11.
    expect(statements).toBeLessThanOrEqual(8);
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

test("a retried transaction id answers with its first event, even once the sender could no longer send it", async () => {
  const owner = await TestClient.register(server, "retry-owner");
  const member = await TestClient.register(server, "retry-member");
  const roomId = await owner.createRoom({ preset: "public_chat" });
  await member.ok("POST", `/join/${enc(roomId)}`, {});
  const first = await member.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/r1`, { msgtype: "m.text", body: "once" });
  const again = await member.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/r1`, { msgtype: "m.text", body: "once" });
  expect(again.event_id).toBe(first.event_id);
  // Kicked: a new send is refused, the retry still gets the event the id made.
  await owner.ok("POST", `/rooms/${enc(roomId)}/kick`, { user_id: member.userId });
  await member.fails("PUT", `/rooms/${enc(roomId)}/send/m.room.message/r2`, { msgtype: "m.text", body: "no" }, 403, "M_FORBIDDEN");
  expect((await member.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/r1`, { msgtype: "m.text", body: "once" })).event_id).toBe(first.event_id);
  const bodies = (await owner.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`)).chunk.filter((e: { type: string }) => e.type === "m.room.message").map((e: { content: { body: string } }) => e.content.body);
  expect(bodies.filter((b: string) => b === "once")).toHaveLength(1);
});
