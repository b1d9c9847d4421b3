// The iterative auth checks (v2-state-res.md "Iterative auth checks"), with the real auth rules.

import { describe, expect, test } from "bun:test";
import { authorizeEvent } from "../../../src/protocol/auth";
import type { StateMap } from "../../../src/protocol/events";
import { roomVersion } from "../../../src/protocol/room-versions";
import { EventCache, Yielder } from "../../../src/protocol/state-res";
import type { ResolutionContext } from "../../../src/protocol/state-res/context";
import { iterativeAuthChecks } from "../../../src/protocol/state-res/iterative-auth-checks";
import { ALICE, BOB, key, TestRoom } from "./test-room";

const v10 = roomVersion("10")!;
const TOPIC = key("m.room.topic", "");
const BOB_MEMBER = key("m.room.member", BOB);

function setup(rejected: ReadonlySet<string> = new Set()) {
  const room = new TestRoom(v10);
  const base = room.bootstrap({ users: { [ALICE]: 100, [BOB]: 50 } });
  const withBob = room.send(base, { id: "$join-bob", type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } }).state;
  room.send(withBob, { id: "$topic-bob", type: "m.room.topic", sender: BOB, stateKey: "", content: { topic: "t" } });
  room.send(withBob, { id: "$bob-leaves", type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "leave" } });
  const context: ResolutionContext = {
    version: v10,
    events: new EventCache({ ...room.lookups(), isRejected: (id) => rejected.has(id) }),
    yielder: new Yielder(1),
    authorize: (event, authState) => authorizeEvent(event, authState, v10),
  };
  return { room, base, withBob, context };
}

describe("iterative auth checks", () => {
  test("a key the state lacks comes from the event's auth events", async () => {
    const { base, context } = setup();
    expect(base.has(BOB_MEMBER)).toBe(false);
    const state = await iterativeAuthChecks(context, base, ["$topic-bob"]);
    expect(state.get(TOPIC)).toBe("$topic-bob");
  });

  test("a rejected auth event is not used", async () => {
    const { base, context } = setup(new Set(["$join-bob"]));
    const state = await iterativeAuthChecks(context, base, ["$topic-bob"]);
    expect(state.has(TOPIC)).toBe(false);
  });

  test("the state wins over the auth events, and events are checked against the state built so far", async () => {
    const { base, context } = setup();
    // Bob's leave is applied first; his topic then fails although its auth events say joined.
    const state = await iterativeAuthChecks(context, base, ["$join-bob", "$bob-leaves", "$topic-bob"]);
    expect(state.get(BOB_MEMBER)).toBe("$bob-leaves");
    expect(state.has(TOPIC)).toBe(false);
  });

  test("the initial state is not modified and unknown events are skipped", async () => {
    const { withBob, context } = setup();
    const initial: StateMap = new Map(withBob);
    const state = await iterativeAuthChecks(context, initial, ["$missing", "$topic-bob"]);
    expect(initial).toEqual(withBob);
    expect(state.get(TOPIC)).toBe("$topic-bob");
  });
});
