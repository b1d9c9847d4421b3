// /sync puts several joined rooms together at the same time (their reads overlap on PostgreSQL),
// and what they share is read once: the user's whole account data, which every newly joined room
// of an incremental sync asks for.
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { resolve, Tokens } from "../../../src/di/tokens";
import { TestClient, enc } from "../../helpers/rooms";
import { testServer } from "../../helpers/server";
import { statementsDuring } from "../../helpers/statements";

const ROOMS = 6;

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
});
afterAll(async () => {
  await server?.stop();
});

test("an incremental sync with several newly joined rooms: each has its account data, read once for all of them, and the rooms are put together at once", async () => {
  const alice = await TestClient.register(server, "alice");
  const bob = await TestClient.register(server, "bob");
  const rooms: string[] = [];
  for (let i = 0; i < ROOMS; i++) {
    const roomId = await bob.createRoom({ preset: "public_chat" });
    // Room account data set before joining: it comes with the room once joined.
    await alice.ok("PUT", `/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/org.example.note`, { room: i });
    rooms.push(roomId);
  }
  const first = await alice.ok("GET", "/sync?timeout=0");
  for (const roomId of rooms) await alice.ok("POST", `/join/${enc(roomId)}`, {});

  // How many room reads (the current state of a room) are waiting at the same time.
  const db = resolve(server.container, Tokens.Database) as unknown as { query: (sql: string, call: unknown) => Promise<unknown> };
  const original = db.query;
  let waiting = 0;
  let mostWaiting = 0;
  db.query = async function (this: unknown, sql: string, call: unknown) {
    if (!sql.startsWith("SELECT type, state_key, event_id FROM current_state WHERE room_id = ?")) return original.call(this, sql, call);
    mostWaiting = Math.max(mostWaiting, ++waiting);
    try {
      await Promise.resolve();
      return await original.call(this, sql, call);
    } finally {
      waiting--;
    }
  };
  let sync: any;
  let reads: number;
  try {
    ({ value: sync, statements: reads } = await statementsDuring(server, () => alice.ok("GET", `/sync?timeout=0&since=${enc(first.next_batch)}`), "FROM account_data WHERE user_id = ? AND stream_position > ?"));
  } finally {
    db.query = original;
  }
  for (const [i, roomId] of rooms.entries()) {
    expect(sync.rooms.join[roomId].account_data.events).toEqual([{ type: "org.example.note", content: { room: i } }]);
  }
  // What changed since the token, and everything once for the newly joined rooms (not once each).
  expect(reads).toBe(2);
  expect(mostWaiting).toBeGreaterThan(1);
});
