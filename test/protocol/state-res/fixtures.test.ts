// The Ruma state-resolution scenarios (test/fixtures/ruma-state-res/README.md), with the real
// authorization rules of src/protocol/auth.

import { describe, expect, test } from "bun:test";
import { resolveState } from "../../../src/protocol/state-res";
import {
  BATCH_SCENARIOS,
  inMemoryLookups,
  loadBatches,
  loadExpected,
  loadStateMap,
  readableState,
  replayPduByPdu,
  roomVersionOf,
  STATE_MAP_SCENARIOS,
} from "../../helpers/state-res-fixtures";

describe("batch scenarios, PDU by PDU", () => {
  for (const [name, batchNames] of Object.entries(BATCH_SCENARIOS)) {
    test(name, async () => {
      const pdus = loadBatches(batchNames).flat();
      const replay = await replayPduByPdu(pdus, roomVersionOf(pdus));
      const expected = loadExpected(name);
      expect(readableState(replay.finalState)).toEqual(readableState(expected.state));
      // The expected contents are those of the events chosen, so the fixture's events were read whole.
      for (const entry of expected.entries) expect(replay.events.get(entry.event_id)?.content).toEqual(entry.content);
    });
  }

  test("no scenario PDU is rejected on receipt: every loss comes from state resolution", async () => {
    for (const batchNames of Object.values(BATCH_SCENARIOS)) {
      const pdus = loadBatches(batchNames).flat();
      const replay = await replayPduByPdu(pdus, roomVersionOf(pdus));
      expect([...replay.rejected]).toEqual([]);
    }
  });

  test("the concurrent scenarios end with more than one forward extremity", async () => {
    const pdus = loadBatches(BATCH_SCENARIOS.ban_vs_power_levels).flat();
    const replay = await replayPduByPdu(pdus, roomVersionOf(pdus));
    expect(replay.forwardExtremities.sort()).toEqual(["$00-m-room-member-ban-bob", "$02-m-room-power_levels"]);
  });

  test("the result does not depend on the order of the state sets", async () => {
    for (const [name, batchNames] of Object.entries(BATCH_SCENARIOS)) {
      const pdus = loadBatches(batchNames).flat();
      const version = roomVersionOf(pdus);
      const replay = await replayPduByPdu(pdus, version);
      const states = replay.forwardExtremities.map((id) => replay.stateAfter.get(id)!).reverse();
      const reversed = await resolveState(version, states, inMemoryLookups(replay.events, replay.rejected));
      expect({ name, state: readableState(reversed) }).toEqual({ name, state: readableState(loadExpected(name).state) });
    }
  });
});

describe("MSC4297 state-map scenarios", () => {
  for (const [name, scenario] of Object.entries(STATE_MAP_SCENARIOS)) {
    test(name, async () => {
      const [pdus] = loadBatches([scenario.pdus]);
      const version = roomVersionOf(pdus);
      expect(version.stateResolution).toBe(name.endsWith("v2_1") ? "v2.1" : "v2");
      const events = new Map(pdus.map((e) => [e.event_id, e]));
      const stateSets = scenario.stateMaps.map((m) => loadStateMap(m, events));
      const resolved = await resolveState(version, stateSets, inMemoryLookups(events));
      expect(readableState(resolved)).toEqual(readableState(loadExpected(name).state));
    });
  }
});
