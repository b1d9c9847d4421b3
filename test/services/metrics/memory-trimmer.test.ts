// Memory trimming: a collection at most once per interval, only when requests came in since the last
// one, in a quiet moment (or after waiting MAX_DEFERRALS intervals for one under constant load); none
// when idle, none when turned off, and the timer stops with the server.
import { expect, spyOn, test } from "bun:test";
import { MAX_DEFERRALS, MemoryTrimmer, QUIET_MS, trimMemory } from "../../../src/services/metrics/memory-trimmer";
import { RecentCache } from "../../../src/protocol/recent-cache";
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
  const kinds: ("quiet" | "forced")[] = [];
  const trimmer = new MemoryTrimmer(INTERVAL, timer, (quiet) => void kinds.push(quiet ? "quiet" : "forced"), () => now);
  trimmer.start();
  return {
    trimmer,
    scheduled,
    tick: () => scheduled[0]!.tick(),
    advance: (ms: number) => void (now += ms),
    collections: () => kinds.length,
    kinds,
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
  // Only the trims in quiet moments may drop caches.
  expect(t.kinds).toEqual(["quiet", "forced", "quiet"]);
});

test("the default trim drops the caches that turned over in a quiet moment, not in one forced under load", async () => {
  const { timer, scheduled } = manualTimer();
  let now = 1_000_000;
  const trimmer = new MemoryTrimmer(INTERVAL, timer, undefined, () => now);
  trimmer.start();
  const tick = () => scheduled[0]!.tick();
  const busy = new RecentCache<number, string>(10);
  const fill = (from: number) => {
    for (let i = from; i < from + 10; i++) busy.set(i, `entry ${i}`);
  };
  // A quiet moment after a cache turned over: it is emptied.
  fill(0);
  trimmer.noteActivity();
  now += INTERVAL;
  await tick();
  expect(busy.size).toBe(0);
  // Turned over again, but the trim is forced under constant load: kept.
  fill(10);
  const held = busy.size;
  const collections = spyOn(Bun, "gc");
  try {
    for (let i = 0; collections.mock.calls.length === 0 && i < 10 * (MAX_DEFERRALS + 2); i++) {
      trimmer.noteActivity();
      now += INTERVAL / 10;
      trimmer.noteActivity(); // never quiet
      await tick();
    }
    expect(collections.mock.calls.length).toBe(1);
  } finally {
    collections.mockRestore();
  }
  expect(busy.size).toBe(held);
  expect(busy.get(19)).toBe("entry 19");
  trimmer.stop();
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

test("trimMemory releases the database's memory only in a quiet trim that dropped caches", () => {
  let released = 0;
  const trim = trimMemory(() => void released++);
  const busy = new RecentCache<number, number>(8);
  RecentCache.dropChurned(); // what other tests of this process left counts no more
  trim(true);
  expect(released).toBe(0); // nothing was busy since
  for (let i = 0; i < 2; i++) busy.set(i, i); // a quarter of its capacity
  trim(false);
  expect([released, busy.size]).toEqual([0, 2]); // forced under load: kept
  trim(true);
  expect([released, busy.size]).toEqual([1, 0]);
  // A release that fails does not stop the trim.
  const failing = trimMemory(() => {
    throw new Error("engine closed");
  });
  for (let i = 0; i < 2; i++) busy.set(i, i);
  expect(() => failing(true)).not.toThrow();
  expect(busy.size).toBe(0);
});
