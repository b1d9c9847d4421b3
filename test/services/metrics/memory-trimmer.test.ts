// Memory trimming: a collection at most once per interval, only when requests came in since the last
// one, in a quiet moment (or after waiting MAX_DEFERRALS intervals for one under constant load); none
// when idle, none when turned off, and the timer stops with the server.
import { expect, test } from "bun:test";
import { MAX_DEFERRALS, MemoryTrimmer, QUIET_MS } from "../../../src/services/metrics/memory-trimmer";
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

const INTERVAL = 10_000;

function setup() {
  const { timer, scheduled } = manualTimer();
  let now = 1_000_000;
  let collections = 0;
  const trimmer = new MemoryTrimmer(INTERVAL, timer, () => collections++, () => now);
  trimmer.start();
  return {
    trimmer,
    scheduled,
    tick: () => scheduled[0]!.tick(),
    advance: (ms: number) => void (now += ms),
    collections: () => collections,
  };
}

test("trims once after activity in a quiet moment, not again while idle, again after new activity; stops with the server", async () => {
  const t = setup();
  expect(t.scheduled.map((s) => s.intervalMs)).toEqual([INTERVAL / 10]);
  t.advance(INTERVAL);
  await t.tick();
  expect(t.collections()).toBe(0); // nothing happened yet
  t.trimmer.noteActivity();
  t.trimmer.noteActivity();
  await t.tick();
  expect(t.collections()).toBe(0); // a request just came: not quiet
  t.advance(QUIET_MS);
  await t.tick();
  expect(t.collections()).toBe(1);
  t.advance(INTERVAL * 3);
  await t.tick();
  await t.tick();
  expect(t.collections()).toBe(1); // idle: not woken
  t.trimmer.noteActivity();
  t.advance(QUIET_MS);
  await t.tick();
  expect(t.collections()).toBe(2);
  // At most once per interval, however quiet.
  t.trimmer.noteActivity();
  t.advance(QUIET_MS);
  await t.tick();
  expect(t.collections()).toBe(2);
  t.advance(INTERVAL);
  await t.tick();
  expect(t.collections()).toBe(3);

  t.trimmer.stop();
  expect(t.scheduled[0]!.cancelled).toBe(true);
});

test("under constant load, a trim waits for a quiet moment at most MAX_DEFERRALS intervals", async () => {
  const t = setup();
  const step = INTERVAL / 10;
  let elapsed = 0;
  while (t.collections() === 0 && elapsed < INTERVAL * (MAX_DEFERRALS + 2)) {
    t.trimmer.noteActivity(); // a request every tick: never quiet
    t.advance(step);
    elapsed += step;
    t.trimmer.noteActivity();
    await t.tick();
  }
  expect(t.collections()).toBe(1);
  expect(elapsed).toBe(INTERVAL * MAX_DEFERRALS);
});

test("after a trim forced under load, the first quiet moment trims again", async () => {
  const t = setup();
  const step = INTERVAL / 10;
  // A quiet trim, then constant load until one is forced.
  t.trimmer.noteActivity();
  t.advance(INTERVAL);
  await t.tick();
  expect(t.collections()).toBe(1);
  while (t.collections() === 1) {
    t.trimmer.noteActivity();
    t.advance(step);
    t.trimmer.noteActivity();
    await t.tick();
  }
  expect(t.collections()).toBe(2);
  // The load goes on a little, then stops: trimmed in the first quiet moment, not an interval later.
  t.trimmer.noteActivity();
  t.advance(step);
  t.trimmer.noteActivity();
  await t.tick();
  expect(t.collections()).toBe(2);
  t.advance(QUIET_MS);
  await t.tick();
  expect(t.collections()).toBe(3);
  // And quiet trims stay at most one per interval.
  t.trimmer.noteActivity();
  t.advance(QUIET_MS);
  await t.tick();
  expect(t.collections()).toBe(3);
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
