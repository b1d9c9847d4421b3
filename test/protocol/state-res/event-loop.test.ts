// A resolution of thousands of conflicted events must keep the event loop turning
// (ARCHITECTURE.md "Style": long CPU work yields every N steps). Measured as the largest gap
// between the ticks of a 1 ms interval timer while the resolution runs.

import { describe, expect, test } from "bun:test";
import type { StateMap } from "../../../src/protocol/events";
import type { JsonObject } from "../../../src/protocol/json";
import { roomVersion } from "../../../src/protocol/room-versions";
import { resolveState, type StateResolutionLookups } from "../../../src/protocol/state-res";
import { ALICE, key, TestRoom } from "./test-room";

const v10 = roomVersion("10")!;
const JOINS_PER_FORK = 2000;
const BANS = 400;
const POWER_LEVEL_CHANGES = 400;
/** Far above a healthy gap (a few ms), far below a blocking resolution (seconds). */
const MAX_GAP_MS = 50;

/**
 * Two forks of one public room. Fork A: 2000 joins, then alice bans 400 of them. Fork B: 2000
 * other joins, interleaved with 400 power-level changes by alice that each cite the previous one.
 * Every membership and the power levels are conflicted: about 4,800 events in the full
 * conflicted set, 800 of them power events.
 */
function bigFork() {
  const room = new TestRoom(v10);
  const base = room.bootstrap({ users: { [ALICE]: 100 } });
  let forkA = base;
  for (let i = 0; i < JOINS_PER_FORK; i++) {
    const user = `@a${i}:example.com`;
    forkA = room.send(forkA, { id: `$join-a${i}`, type: "m.room.member", sender: user, stateKey: user, content: { membership: "join" } }).state;
  }
  for (let i = 0; i < BANS; i++) {
    const user = `@a${i * 5}:example.com`;
    forkA = room.send(forkA, { id: `$ban-a${i * 5}`, type: "m.room.member", sender: ALICE, stateKey: user, content: { membership: "ban" } }).state;
  }
  let forkB = base;
  const perChange = JOINS_PER_FORK / POWER_LEVEL_CHANGES;
  for (let i = 0; i < JOINS_PER_FORK; i++) {
    if (i % perChange === 0) {
      const content: JsonObject = { users: { [ALICE]: 100 }, state_default: 50 + ((i / perChange) % 40) };
      forkB = room.send(forkB, { id: `$pl-b${i / perChange}`, type: "m.room.power_levels", sender: ALICE, stateKey: "", content }).state;
    }
    const user = `@b${i}:example.com`;
    forkB = room.send(forkB, { id: `$join-b${i}`, type: "m.room.member", sender: user, stateKey: user, content: { membership: "join" } }).state;
  }
  return { room, forkA, forkB };
}

async function measureGaps<T>(work: () => Promise<T>): Promise<{ result: T; maxGapMs: number; ticks: number; totalMs: number }> {
  let last = performance.now();
  let maxGapMs = 0;
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    ticks++;
  }, 1);
  const started = performance.now();
  try {
    const result = await work();
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    return { result, maxGapMs, ticks, totalMs: now - started };
  } finally {
    clearInterval(timer);
  }
}

function checkResolved(resolved: StateMap) {
  expect(resolved.get(key("m.room.power_levels", ""))).toBe(`$pl-b${POWER_LEVEL_CHANGES - 1}`);
  expect(resolved.get(key("m.room.member", "@a5:example.com"))).toBe("$ban-a5");
  expect(resolved.get(key("m.room.member", "@a6:example.com"))).toBe("$join-a6");
  expect(resolved.get(key("m.room.member", `@b${JOINS_PER_FORK - 1}:example.com`))).toBe(`$join-b${JOINS_PER_FORK - 1}`);
  expect(resolved.size).toBe(4 + 2 * JOINS_PER_FORK);
}

describe("yielding to the event loop", () => {
  const { room, forkA, forkB } = bigFork();

  test(`resolving ~${2 * JOINS_PER_FORK + BANS + POWER_LEVEL_CHANGES} conflicted events never blocks for ${MAX_GAP_MS} ms`, async () => {
    const { result, maxGapMs, ticks, totalMs } = await measureGaps(() => resolveState(v10, [forkA, forkB], room.lookups()));
    checkResolved(result);
    console.log(`state-res event loop: ${totalMs.toFixed(0)} ms total, ${ticks} ticks, max gap ${maxGapMs.toFixed(1)} ms`);
    expect(maxGapMs).toBeLessThan(MAX_GAP_MS);
    expect(ticks).toBeGreaterThan(0);
  });

  test("also with asynchronous lookups and a store's auth chains", async () => {
    const lookups: StateResolutionLookups = {
      fetchEvent: async (id) => room.events.get(id),
      authChain: async (ids) => room.authChain(ids),
      isRejected: async () => false,
    };
    const { result, maxGapMs } = await measureGaps(() => resolveState(v10, [forkA, forkB], lookups));
    checkResolved(result);
    expect(maxGapMs).toBeLessThan(MAX_GAP_MS);
  });
});
