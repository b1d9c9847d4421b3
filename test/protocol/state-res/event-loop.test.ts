// A resolution of thousands of conflicted events must keep the event loop turning
// (ARCHITECTURE.md "Style": long CPU work yields every N steps). Checked by counting the turns of
// the event loop that other work gets while the resolution runs (a chain of setImmediate callbacks):
// a resolution that never yields lets it run once or twice, one that yields every few dozen steps
// lets it run hundreds of times, however fast or loaded the machine is. The largest gap between
// the ticks of a 1 ms timer is printed as a figure, not asserted (it depends on the machine's load).

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
/** Far below the turns a yielding resolution gives (hundreds), far above a blocking one (1 or 2). */
const MIN_TURNS = 50;

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

async function measureGaps<T>(work: () => Promise<T>): Promise<{ result: T; maxGapMs: number; ticks: number; turns: number; totalMs: number }> {
  let last = performance.now();
  let maxGapMs = 0;
  let ticks = 0;
  let turns = 0;
  let running = true;
  const turn = () => {
    if (!running) return;
    turns++;
    setImmediate(turn);
  };
  setImmediate(turn);
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
    return { result, maxGapMs, ticks, turns, totalMs: now - started };
  } finally {
    running = false;
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

  test(`resolving ~${2 * JOINS_PER_FORK + BANS + POWER_LEVEL_CHANGES} conflicted events lets the event loop turn all along`, async () => {
    const { result, maxGapMs, ticks, turns, totalMs } = await measureGaps(() => resolveState(v10, [forkA, forkB], room.lookups()));
    checkResolved(result);
    console.log(`state-res event loop: ${totalMs.toFixed(0)} ms total, ${turns} turns for other work, ${ticks} timer ticks, max gap ${maxGapMs.toFixed(1)} ms`);
    expect(turns).toBeGreaterThan(MIN_TURNS);
  });

  test("also with asynchronous lookups and a store's auth chains", async () => {
    const lookups: StateResolutionLookups = {
      fetchEvent: async (id) => room.events.get(id),
      authChain: async (ids) => room.authChain(ids),
      isRejected: async () => false,
    };
    const { result, turns } = await measureGaps(() => resolveState(v10, [forkA, forkB], lookups));
    checkResolved(result);
    expect(turns).toBeGreaterThan(MIN_TURNS);
  });
});
