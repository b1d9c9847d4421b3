// Memory trimming: a collection per interval only when requests came in since the last one; none
// when idle, none when turned off, and the timer stops with the server.
import { expect, test } from "bun:test";
import { MemoryTrimmer } from "../../../src/services/metrics/memory-trimmer";
import type { IntervalTimer } from "../../../src/services/knocks/knock-expiry";

function manualTimer() {
  const scheduled: { intervalMs: number; tick: () => Promise<unknown>; cancelled: boolean }[] = [];
  const timer: IntervalTimer = {
    every(intervalMs, tick) {
      const entry = { intervalMs, tick, cancelled: false };
      scheduled.push(entry);
      return { cancel: () => void (entry.cancelled = true) };
    },
  };
  return { timer, scheduled };
}

test("trims once after activity, not again while idle, again after new activity; stops with the server", async () => {
  const { timer, scheduled } = manualTimer();
  let collections = 0;
  const trimmer = new MemoryTrimmer(10_000, timer, () => collections++);
  trimmer.start();
  expect(scheduled.map((s) => s.intervalMs)).toEqual([10_000]);
  const tick = scheduled[0]!.tick;

  await tick();
  expect(collections).toBe(0); // nothing happened yet
  trimmer.noteActivity();
  trimmer.noteActivity();
  await tick();
  expect(collections).toBe(1);
  await tick();
  await tick();
  expect(collections).toBe(1); // idle: not woken
  trimmer.noteActivity();
  await tick();
  expect(collections).toBe(2);

  trimmer.stop();
  expect(scheduled[0]!.cancelled).toBe(true);
});

test("an interval of 0 schedules nothing", () => {
  const { timer, scheduled } = manualTimer();
  const trimmer = new MemoryTrimmer(0, timer, () => {
    throw new Error("no collection expected");
  });
  trimmer.start();
  trimmer.noteActivity();
  expect(scheduled).toEqual([]);
  trimmer.stop();
});
