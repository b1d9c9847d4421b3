// State resolution of room version 1 (content/rooms/v1.md "State resolution").

import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { roomVersion } from "../../../src/protocol/room-versions";
import { resolveState } from "../../../src/protocol/state-res";
import { ALICE, BOB, CAROL, key, TestRoom } from "./test-room";

const v1 = roomVersion("1")!;
const sha1 = (s: string) => createHash("sha1").update(s).digest("hex");
const PL = key("m.room.power_levels", "");
const TOPIC = key("m.room.topic", "");

/** A v1 room where bob has joined with level 50. Event depths follow the send order. */
function v1Room() {
  const room = new TestRoom(v1);
  const base = room.sendAll(room.bootstrap({ users: { [ALICE]: 100, [BOB]: 50 } }), [
    { id: "$join-bob:example.com", type: "m.room.member", sender: BOB, stateKey: BOB, content: { membership: "join" } },
  ]);
  return { room, base };
}

describe("state resolution v1", () => {
  test("power levels: from the shallowest on, each next one while it is allowed in R", async () => {
    const { room, base } = v1Room();
    const forkA = room.send(base, {
      id: "$pl-a:example.com",
      type: "m.room.power_levels",
      sender: ALICE,
      stateKey: "",
      content: { users: { [ALICE]: 100, [BOB]: 50, [CAROL]: 10 } },
      depth: 10,
    }).state;
    const forkB = room.send(base, {
      id: "$pl-b:example.com",
      type: "m.room.power_levels",
      sender: ALICE,
      stateKey: "",
      content: { users: { [ALICE]: 100, [BOB]: 50, [CAROL]: 20 } },
      depth: 11,
    }).state;
    expect((await resolveState(v1, [forkA, forkB], room.lookups())).get(PL)).toBe("$pl-b:example.com");
  });

  test("power levels: a demotion stops the demoted user's deeper change", async () => {
    const { room, base } = v1Room();
    const demote = room.send(base, {
      id: "$demote-bob:example.com",
      type: "m.room.power_levels",
      sender: ALICE,
      stateKey: "",
      content: { users: { [ALICE]: 100, [BOB]: 0 } },
      depth: 10,
    }).state;
    const byBob = room.send(base, {
      id: "$pl-bob:example.com",
      type: "m.room.power_levels",
      sender: BOB,
      stateKey: "",
      content: { users: { [ALICE]: 100, [BOB]: 50, [CAROL]: 50 } },
      depth: 12,
    }).state;
    expect((await resolveState(v1, [byBob, demote], room.lookups())).get(PL)).toBe("$demote-bob:example.com");
  });

  test("power levels: the first disallowed event ends the pass, even if a deeper one would be allowed", async () => {
    const { room, base } = v1Room();
    const pl = (id: string, sender: string, users: Record<string, number>, depth: number) =>
      room.send(base, { id, type: "m.room.power_levels", sender, stateKey: "", content: { users }, depth }).state;
    const states = [
      pl("$demote-bob:example.com", ALICE, { [ALICE]: 100, [BOB]: 0 }, 10),
      pl("$pl-bob:example.com", BOB, { [ALICE]: 100, [BOB]: 50, [CAROL]: 50 }, 11),
      pl("$pl-alice:example.com", ALICE, { [ALICE]: 100, [CAROL]: 1 }, 12),
    ];
    expect((await resolveState(v1, states, room.lookups())).get(PL)).toBe("$demote-bob:example.com");
  });

  test("memberships are resolved after the power levels, against them", async () => {
    // Fork A: alice makes bob an admin, then bob kicks carol. Fork B: carol's join only. (v1 checks
    // against R alone, so the kick's own auth_events do not matter here.)
    const { room, base } = v1Room();
    const withCarol = room.send(base, {
      id: "$join-carol:example.com",
      type: "m.room.member",
      sender: CAROL,
      stateKey: CAROL,
      content: { membership: "join" },
      depth: 8,
    }).state;
    const forkA = room.sendAll(base, [
      { id: "$promote-bob:example.com", type: "m.room.power_levels", sender: ALICE, stateKey: "", content: { users: { [ALICE]: 100, [BOB]: 100 } }, depth: 9 },
      { id: "$kick-carol:example.com", type: "m.room.member", sender: BOB, stateKey: CAROL, content: { membership: "leave" }, depth: 12 },
    ]);
    const resolved = await resolveState(v1, [forkA, withCarol], room.lookups());
    expect(resolved.get(PL)).toBe("$promote-bob:example.com");
    // Against R without power levels (they conflict), bob would be below the kick level.
    expect(resolved.get(key("m.room.member", CAROL))).toBe("$kick-carol:example.com");
  });

  test("equal depths: descending sha1(event_id) first, so the smaller hash is applied last", async () => {
    const { room, base } = v1Room();
    const ids = ["$pl-x:example.com", "$pl-y:example.com"];
    const [forkA, forkB] = ids.map(
      (id) =>
        room.send(base, { id, type: "m.room.power_levels", sender: ALICE, stateKey: "", content: { users: { [ALICE]: 100 } }, depth: 10 })
          .state,
    );
    const smallerHash = sha1(ids[0]) < sha1(ids[1]) ? ids[0] : ids[1];
    expect((await resolveState(v1, [forkA, forkB], room.lookups())).get(PL)).toBe(smallerHash);
  });

  test("memberships: a ban stops the banned user's deeper membership change", async () => {
    const { room, base } = v1Room();
    const ban = room.send(base, {
      id: "$ban-bob:example.com",
      type: "m.room.member",
      sender: ALICE,
      stateKey: BOB,
      content: { membership: "ban" },
      depth: 10,
    }).state;
    const rename = room.send(base, {
      id: "$rename-bob:example.com",
      type: "m.room.member",
      sender: BOB,
      stateKey: BOB,
      content: { membership: "join", displayname: "Bob" },
      depth: 12,
    }).state;
    expect((await resolveState(v1, [rename, ban], room.lookups())).get(key("m.room.member", BOB))).toBe(
      "$ban-bob:example.com",
    );
  });

  test("other state: the deepest event allowed in R, after R's power levels are resolved", async () => {
    const { room, base } = v1Room();
    const topic = (id: string, sender: string, depth: number) => ({
      id,
      type: "m.room.topic",
      sender,
      stateKey: "",
      content: { topic: id },
      depth,
    });
    const forkA = room.send(base, topic("$topic-bob:example.com", BOB, 20)).state;
    const forkB = room.sendAll(base, [
      topic("$topic-alice:example.com", ALICE, 15),
      { id: "$demote-bob:example.com", type: "m.room.power_levels", sender: ALICE, stateKey: "", content: { users: { [ALICE]: 100 } }, depth: 16 },
    ]);
    const resolved = await resolveState(v1, [forkA, forkB], room.lookups());
    expect(resolved.get(PL)).toBe("$demote-bob:example.com");
    expect(resolved.get(TOPIC)).toBe("$topic-alice:example.com");
    // Without the demotion, bob's deeper topic wins.
    const forkC = room.send(base, topic("$topic-alice-2:example.com", ALICE, 15)).state;
    expect((await resolveState(v1, [forkA, forkC], room.lookups())).get(TOPIC)).toBe("$topic-bob:example.com");
  });

  test("other state: when none is allowed, the shallowest is kept (as Synapse does)", async () => {
    const { room, base } = v1Room();
    const forkA = room.send(base, {
      id: "$topic-1:example.com",
      type: "m.room.topic",
      sender: BOB,
      stateKey: "",
      content: { topic: "1" },
      depth: 14,
    }).state;
    const forkB = room.sendAll(base, [
      { id: "$topic-2:example.com", type: "m.room.topic", sender: BOB, stateKey: "", content: { topic: "2" }, depth: 15 },
      { id: "$demote-bob:example.com", type: "m.room.power_levels", sender: ALICE, stateKey: "", content: { users: { [ALICE]: 100 } }, depth: 16 },
    ]);
    expect((await resolveState(v1, [forkA, forkB], room.lookups())).get(TOPIC)).toBe("$topic-1:example.com");
  });

  test("unconflicted state is kept, including keys only some states hold", async () => {
    const { room, base } = v1Room();
    const forkA = room.send(base, { id: "$name:example.com", type: "m.room.name", sender: ALICE, stateKey: "", content: { name: "n" } }).state;
    const resolved = await resolveState(v1, [forkA, base], room.lookups());
    expect(resolved).toEqual(forkA);
  });
});
