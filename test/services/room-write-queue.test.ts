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

describe("RoomWriteQueue with async tasks", () => {
  /** A task that awaits between its steps, as a persist awaiting the store does (microtasks and timers both). */
  const steps = (log: string[], name: string, count: number) => async () => {
    for (let i = 0; i < count; i++) {
      log.push(`${name}:${i}`);
      await (i % 2 === 0 ? Promise.resolve() : tick(0));
    }
    log.push(`${name}:done`);
    return name;
  };

  test("a task's promise settles before the next task of the room starts", async () => {
    const queue = new RoomWriteQueue();
    const log: string[] = [];
    const results = await Promise.all([queue.run("!r:x", steps(log, "a", 4)), queue.run("!r:x", steps(log, "b", 3)), queue.run("!r:x", steps(log, "c", 2))]);
    expect(results).toEqual(["a", "b", "c"]);
    expect(log).toEqual(["a:0", "a:1", "a:2", "a:3", "a:done", "b:0", "b:1", "b:2", "b:done", "c:0", "c:1", "c:done"]);
  });

  test("a task queued by a running task of the same room waits for it", async () => {
    const queue = new RoomWriteQueue();
    const log: string[] = [];
    let inner: Promise<string> | undefined;
    await queue.run("!r:x", async () => {
      inner = queue.run("!r:x", steps(log, "inner", 1));
      await tick(2);
      log.push("outer:done");
    });
    expect(await inner).toBe("inner");
    expect(log).toEqual(["outer:done", "inner:0", "inner:done"]);
  });

  test("rooms interleave with each other; drain() waits for every room", async () => {
    const queue = new RoomWriteQueue();
    const log: string[] = [];
    for (const room of ["!one:x", "!two:x", "!three:x"]) {
      void queue.run(room, steps(log, `${room}a`, 3));
      void queue.run(room, steps(log, `${room}b`, 3));
    }
    expect(queue.busyRooms).toBe(3);
    await queue.drain();
    expect(queue.busyRooms).toBe(0);
    expect(log.filter((l) => l.endsWith(":done"))).toHaveLength(6);
    // Side by side: the second room started before the first one's tasks were done.
    expect(log.indexOf("!two:xa:0")).toBeLessThan(log.indexOf("!one:xa:done"));
    for (const room of ["!one:x", "!two:x", "!three:x"]) {
      const own = log.filter((l) => l.startsWith(room));
      expect(own).toEqual([`${room}a:0`, `${room}a:1`, `${room}a:2`, `${room}a:done`, `${room}b:0`, `${room}b:1`, `${room}b:2`, `${room}b:done`]);
    }
  });

  test("a rejected async task after awaits lets the next one run", async () => {
    const queue = new RoomWriteQueue();
    const log: string[] = [];
    const failed = queue.run("!r:x", async () => {
      await tick(1);
      log.push("failing");
      throw new Error("refused");
    });
    const next = queue.run("!r:x", steps(log, "next", 1));
    await expect(failed).rejects.toThrow("refused");
    expect(await next).toBe("next");
    expect(log).toEqual(["failing", "next:0", "next:done"]);
  });
});
