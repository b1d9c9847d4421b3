import { describe, expect, test } from "bun:test";
import { RoomWriteQueue } from "../../src/services/rooms/room-write-queue";

const tick = (ms = 1) => new Promise((r) => setTimeout(r, ms));

describe("RoomWriteQueue", () => {
  test("tasks of one room never interleave, and keep their order", async () => {
    const queue = new RoomWriteQueue();
    const log: string[] = [];
    const task = (name: string) => async () => {
      log.push(`${name}:start`);
      await tick(Math.random() * 3);
      log.push(`${name}:end`);
      return name;
    };
    const results = await Promise.all(["a", "b", "c", "d"].map((n) => queue.run("!r:x", task(n))));
    expect(results).toEqual(["a", "b", "c", "d"]);
    expect(log).toEqual(["a:start", "a:end", "b:start", "b:end", "c:start", "c:end", "d:start", "d:end"]);
  });

  test("different rooms run side by side", async () => {
    const queue = new RoomWriteQueue();
    const log: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = queue.run("!one:x", async () => {
      log.push("one:start");
      await gate;
      log.push("one:end");
    });
    const fast = queue.run("!two:x", async () => {
      log.push("two:ran");
    });
    await fast;
    expect(log).toEqual(["one:start", "two:ran"]);
    release();
    await slow;
    expect(log).toEqual(["one:start", "two:ran", "one:end"]);
  });

  test("a failing task rejects only its own caller; the next one still runs", async () => {
    const queue = new RoomWriteQueue();
    const failed = queue.run("!r:x", async () => {
      throw new Error("boom");
    });
    const next = queue.run("!r:x", () => 42);
    await expect(failed).rejects.toThrow("boom");
    expect(await next).toBe(42);
    await queue.drain();
    expect(queue.busyRooms).toBe(0);
  });
});
