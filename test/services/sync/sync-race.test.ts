// A /sync answer reads its token's positions first and its data after, with awaits in between: a
// membership change landing meanwhile must reach the client exactly once, in this answer or the next.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import type { RoomEventStore } from "../../../src/storage/stores";
import { silentLogger, testServer } from "../../helpers/server";
import { TestClient } from "../../helpers/rooms";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "race.example", registration: { enabled: true } }, { logger: silentLogger });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
});
afterAll(() => server.stop());

/** Runs `write` at the next call of a store method whose arguments match, just before that call reads. */
function duringNextCall<K extends "roomsOfMember" | "currentStateEvent">(
  method: K,
  matches: (...args: Parameters<RoomEventStore[K]>) => boolean,
  write: () => Promise<unknown>,
): { done: Promise<void> } {
  const store = resolve(server.container, Tokens.RoomEventStore);
  const original = store[method] as (...args: unknown[]) => Promise<unknown>;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  (store as unknown as Record<string, unknown>)[method] = async (...args: Parameters<RoomEventStore[K]>) => {
    if (matches(...args)) {
      (store as unknown as Record<string, unknown>)[method] = original;
      await write();
      resolveDone();
    }
    return original.apply(store, args);
  };
  return { done };
}

/** Runs `write` the first time the sync asks for a user's rooms: after it read its positions, before its data. */
const duringNextRoomListRead = (write: () => Promise<unknown>) => duringNextCall("roomsOfMember", () => true, write);

async function syncTwice(since: string) {
  // Something moves first: a token still at every stream's head is answered without the room lists.
  await alice.send(await alice.createRoom({ preset: "private_chat" }));
  const sync = resolve(server.container, Tokens.Sync);
  const first = await sync.sync({ userId: bob.userId, deviceId: bob.deviceId, since });
  const second = await sync.sync({ userId: bob.userId, deviceId: bob.deviceId, since: first.next_batch });
  return [first, second];
}

type SyncedEvent = { type: string; state_key?: string; content: Record<string, unknown> };
/** The user's member events a room's entry carries, in its state or timeline. */
const memberEvents = (room: { state: { events: SyncedEvent[] }; timeline: { events: SyncedEvent[] } } | undefined, userId: string) =>
  [...(room?.state.events ?? []), ...(room?.timeline.events ?? [])].filter((e) => e.type === "m.room.member" && e.state_key === userId).map((e) => e.content.membership);

describe("a membership change while a sync computes", () => {
  test("a join is listed once", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const sync = resolve(server.container, Tokens.Sync);
    const start = await sync.sync({ userId: bob.userId, deviceId: bob.deviceId });
    const membership = resolve(server.container, Tokens.Membership);
    const { done } = duringNextRoomListRead(() => membership.join(roomId, bob.userId));
    const answers = await syncTwice(start.next_batch);
    await done;
    const listed = answers.map((a) => memberEvents(a.rooms.join[roomId], bob.userId));
    expect(listed.flat()).toEqual(["join"]);
  });

  test("a leave is listed once", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${encodeURIComponent(roomId)}`, {});
    const sync = resolve(server.container, Tokens.Sync);
    const start = await sync.sync({ userId: bob.userId, deviceId: bob.deviceId });
    expect(start.rooms.join[roomId]).toBeDefined();
    const membership = resolve(server.container, Tokens.Membership);
    const { done } = duringNextRoomListRead(() => membership.leave(roomId, bob.userId));
    const answers = await syncTwice(start.next_batch);
    await done;
    expect(answers.map((a) => memberEvents(a.rooms.leave[roomId], bob.userId)).flat()).toEqual(["leave"]);
    expect(answers.map((a) => memberEvents(a.rooms.join[roomId], bob.userId)).flat()).toEqual([]);
  });

  test("a rejoin after the room lists were read is not shown as a leave", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const membership = resolve(server.container, Tokens.Membership);
    await membership.join(roomId, bob.userId);
    await membership.leave(roomId, bob.userId);
    const sync = resolve(server.container, Tokens.Sync);
    const start = await sync.sync({ userId: bob.userId, deviceId: bob.deviceId });
    // The sync has listed the room as left (as of its position) when it looks up bob's member event.
    const { done } = duringNextCall("currentStateEvent", (room, type, key) => room === roomId && type === "m.room.member" && key === bob.userId, () => membership.join(roomId, bob.userId));
    const answers = await syncTwice(start.next_batch);
    await done;
    expect(answers.map((a) => a.rooms.leave[roomId] !== undefined)).toEqual([false, false]);
    // The next answer has the room as newly joined: whole, its timeline ending with the rejoin.
    expect(answers.map((a) => a.rooms.join[roomId] !== undefined)).toEqual([false, true]);
    expect(memberEvents(answers[1]!.rooms.join[roomId], bob.userId).at(-1)).toBe("join");
  });
});
