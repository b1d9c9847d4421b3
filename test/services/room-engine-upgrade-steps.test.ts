// What a room upgrade needs of the room engine: a room ID chosen before the room exists, and a step
// between building a local event and storing it (beforePersist) that holds the room's write queue.
import { describe, expect, test } from "bun:test";
import { testEngine } from "../helpers/room-engine";
import { createRoom } from "../../src/services/rooms/room-creation";
import type { JsonObject } from "../../src/protocol/json";

const ALICE = "@alice:example.org";

describe("room engine: steps of a room upgrade", () => {
  test("a room made with a room ID chosen beforehand has that ID; a v12 room cannot be given one", async () => {
    const { engine, store } = await testEngine();
    const chosen = engine.newRoomId();
    expect(chosen).toMatch(/^![A-Za-z0-9]+:example\.org$/);
    expect(await createRoom(engine, { creator: ALICE, roomVersion: "11", roomId: chosen })).toBe(chosen);
    expect((await store.getRoom(chosen))?.roomVersion).toBe("11");
    await expect(createRoom(engine, { creator: ALICE, roomVersion: "12", roomId: engine.newRoomId() })).rejects.toThrow("takes its room ID from the create event");
  });

  test("beforePersist gets the built event's ID before it is stored, with the room's queue held; when it throws, nothing is stored or announced", async () => {
    const { engine, store } = await testEngine();
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "10" });
    const heard: string[] = [];
    engine.onEvent((_roomId, stored) => {
      heard.push(stored.eventId);
    });
    const before = await store.maxStreamOrdering();

    let seen: { eventId: string; stored: boolean } | undefined;
    const failing = engine.sendEvent(roomId, {
      type: "m.room.topic",
      sender: ALICE,
      stateKey: "",
      content: { topic: "never" },
      beforePersist: async (eventId) => {
        seen = { eventId, stored: (await store.getEvent(eventId)) !== undefined };
        throw new Error("the other room could not be made");
      },
    });
    await expect(failing).rejects.toThrow("the other room could not be made");
    expect(seen?.stored).toBe(false);
    expect(await store.getEvent(seen!.eventId)).toBeUndefined();
    expect(await store.maxStreamOrdering()).toBe(before);
    expect(heard).toEqual([]);

    // A send queued while beforePersist runs waits for it, and follows the event it let through.
    let later: Promise<{ eventId: string }> | undefined;
    const first = await engine.sendEvent(roomId, {
      type: "m.room.topic",
      sender: ALICE,
      stateKey: "",
      content: { topic: "kept" },
      beforePersist: async () => {
        later = engine.sendEvent(roomId, { type: "m.room.message", sender: ALICE, content: { body: "after" } });
        await new Promise((r) => setTimeout(r, 20));
        expect(heard).toEqual([]);
      },
    });
    const second = await later!;
    expect(heard).toEqual([first.eventId, second.eventId]);
    expect((await engine.parsedEvent(second.eventId))?.event.prev_events).toEqual([first.eventId]);
  });

  test("a local tombstone must be a state event naming another room", async () => {
    const { engine } = await testEngine();
    const roomId = await createRoom(engine, { creator: ALICE, roomVersion: "11" });
    const tombstone = (content: JsonObject, asState = true) => engine.sendEvent(roomId, { type: "m.room.tombstone", sender: ALICE, ...(asState ? { stateKey: "" } : {}), content });
    await expect(tombstone({ replacement_room: roomId })).rejects.toMatchObject({ errcode: "M_BAD_JSON" });
    await expect(tombstone({ body: "no replacement" })).rejects.toMatchObject({ errcode: "M_BAD_JSON" });
    await expect(tombstone({ replacement_room: "!new:example.org" }, false)).rejects.toMatchObject({ errcode: "M_BAD_JSON" });
    expect((await tombstone({ replacement_room: "!new:example.org" })).eventId).toStartWith("$");
  });
});
