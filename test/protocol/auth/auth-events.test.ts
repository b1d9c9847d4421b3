// Auth events selection (server-server-api "Auth events selection") and rule 2's checks on the
// auth_events list (checkAuthEventsShape), plus authStateFromEvents.
import { describe, expect, test } from "bun:test";
import {
  authEventsForEvent,
  authorizeEvent,
  authStateFromEvents,
  checkAuthEventsShape,
} from "../../../src/protocol/auth";
import type { RoomEvent } from "../../../src/protocol/events";
import {
  ALICE,
  ALL_VERSIONS,
  AuthRoom,
  BOB,
  CAROL,
  expectAllowed,
  expectRejected,
  version,
  versionsWhere,
} from "../../helpers/auth-events";

const v10 = version("10");
const v12 = version("12");

describe("authEventsForEvent", () => {
  test("m.room.create has none", () => {
    for (const v of ALL_VERSIONS) expect(authEventsForEvent({ type: "m.room.create", sender: ALICE, state_key: "", content: {} }, v)).toEqual([]);
  });

  test("a message: create, power levels, the sender's membership", () => {
    expect(authEventsForEvent({ type: "m.room.message", sender: BOB, content: {} }, v10)).toEqual([
      ["m.room.create", ""],
      ["m.room.power_levels", ""],
      ["m.room.member", BOB],
    ]);
  });

  test("v12 never selects the create event", () => {
    expect(authEventsForEvent({ type: "m.room.message", sender: BOB, content: {} }, v12)).toEqual([
      ["m.room.power_levels", ""],
      ["m.room.member", BOB],
    ]);
    for (const v of versionsWhere((x) => !x.createEventNotInAuthEvents)) {
      expect(authEventsForEvent({ type: "m.room.topic", sender: BOB, state_key: "", content: {} }, v)[0]).toEqual(["m.room.create", ""]);
    }
  });

  test("join, invite and knock add the target and the join rules; leave and ban only the target", () => {
    for (const membership of ["join", "invite", "knock"]) {
      const keys = authEventsForEvent({ type: "m.room.member", sender: ALICE, state_key: BOB, content: { membership } }, v10);
      expect(keys).toEqual([
        ["m.room.create", ""],
        ["m.room.power_levels", ""],
        ["m.room.member", ALICE],
        ["m.room.member", BOB],
        ["m.room.join_rules", ""],
      ]);
    }
    for (const membership of ["leave", "ban"]) {
      const keys = authEventsForEvent({ type: "m.room.member", sender: ALICE, state_key: BOB, content: { membership } }, v10);
      expect(keys).toEqual([
        ["m.room.create", ""],
        ["m.room.power_levels", ""],
        ["m.room.member", ALICE],
        ["m.room.member", BOB],
      ]);
    }
  });

  test("the sender's and the target's membership are one entry when they are the same user", () => {
    const keys = authEventsForEvent({ type: "m.room.member", sender: BOB, state_key: BOB, content: { membership: "join" } }, v12);
    expect(keys).toEqual([
      ["m.room.power_levels", ""],
      ["m.room.member", BOB],
      ["m.room.join_rules", ""],
    ]);
  });

  test("an invite with third_party_invite adds the m.room.third_party_invite named by signed.token", () => {
    const content = { membership: "invite", third_party_invite: { signed: { mxid: BOB, token: "tok", signatures: {} } } };
    const keys = authEventsForEvent({ type: "m.room.member", sender: ALICE, state_key: BOB, content }, v10);
    expect(keys).toContainEqual(["m.room.third_party_invite", "tok"]);
    // Not without a token, nor for other memberships.
    const noToken = { membership: "invite", third_party_invite: { signed: { mxid: BOB } } };
    expect(authEventsForEvent({ type: "m.room.member", sender: ALICE, state_key: BOB, content: noToken }, v10).length).toBe(5);
    const join = { ...content, membership: "join" };
    expect(authEventsForEvent({ type: "m.room.member", sender: BOB, state_key: BOB, content: join }, v10)).not.toContainEqual([
      "m.room.third_party_invite",
      "tok",
    ]);
  });

  test("a join with join_authorised_via_users_server adds that user's membership, from v8", () => {
    for (const v of ALL_VERSIONS) {
      const content = { membership: "join", join_authorised_via_users_server: CAROL };
      const keys = authEventsForEvent({ type: "m.room.member", sender: BOB, state_key: BOB, content }, v);
      expect(keys.some(([t, k]) => t === "m.room.member" && k === CAROL)).toBe(v.restrictedJoinRule);
    }
    // Only for joins.
    const leave = { membership: "leave", join_authorised_via_users_server: CAROL };
    expect(authEventsForEvent({ type: "m.room.member", sender: BOB, state_key: BOB, content: leave }, v10)).not.toContainEqual([
      "m.room.member",
      CAROL,
    ]);
  });
});

/** A room with ALICE joined and BOB invited; returns the state events by role. */
function setup(versionId: string) {
  const room = new AuthRoom(versionId);
  const invite = room.apply(room.member(ALICE, BOB, "invite"));
  return {
    room,
    create: room.create,
    powerLevels: room.get("m.room.power_levels")!,
    aliceJoin: room.get("m.room.member", ALICE)!,
    joinRules: room.get("m.room.join_rules")!,
    invite,
  };
}

describe("checkAuthEventsShape (rule 2; v12 rule 3)", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      const withCreate = (s: ReturnType<typeof setup>, events: RoomEvent[]) =>
        v.createEventNotInAuthEvents ? events : [s.create, ...events];

      test("the selected events pass, in any order", () => {
        const s = setup(v.id);
        const join = s.room.member(BOB, BOB, "join");
        expectAllowed(checkAuthEventsShape(join, withCreate(s, [s.powerLevels, s.invite, s.joinRules]), v));
        expectAllowed(checkAuthEventsShape(join, withCreate(s, [s.joinRules, s.invite]).reverse(), v));
      });

      test("2.1: duplicate (type, state_key) rejects", () => {
        const s = setup(v.id);
        const message = s.room.message(ALICE);
        const olderPl = { ...s.powerLevels, event_id: "$older:a.example" };
        expectRejected(checkAuthEventsShape(message, withCreate(s, [s.powerLevels, olderPl, s.aliceJoin]), v), /duplicate/);
        expectRejected(checkAuthEventsShape(message, withCreate(s, [s.aliceJoin, s.aliceJoin]), v), /duplicate/);
      });

      test("2.2: an entry the selection would not pick rejects", () => {
        const s = setup(v.id);
        const message = s.room.message(ALICE);
        expectRejected(checkAuthEventsShape(message, withCreate(s, [s.powerLevels, s.aliceJoin, s.joinRules]), v), /unexpected auth_event/);
        const topic = s.room.stateEvent("m.room.topic", "", ALICE, { topic: "t" });
        expectRejected(checkAuthEventsShape(message, withCreate(s, [s.aliceJoin, topic]), v), /unexpected auth_event/);
        // Another user's membership.
        expectRejected(checkAuthEventsShape(message, withCreate(s, [s.aliceJoin, s.invite]), v), /unexpected auth_event/);
        // join_rules on a leave.
        const leave = s.room.member(ALICE, BOB, "leave");
        expectRejected(checkAuthEventsShape(leave, withCreate(s, [s.aliceJoin, s.invite, s.joinRules]), v), /unexpected auth_event/);
      });

      test("2.2: a non-state event among the auth events rejects", () => {
        const s = setup(v.id);
        const message = s.room.message(ALICE);
        expectRejected(checkAuthEventsShape(message, withCreate(s, [s.aliceJoin, s.room.message(ALICE)]), v), /unexpected/);
      });

      test("2.3: a rejected auth event rejects, when the caller says which are", () => {
        const s = setup(v.id);
        const message = s.room.message(ALICE);
        const list = withCreate(s, [s.aliceJoin, s.powerLevels]);
        expectAllowed(checkAuthEventsShape(message, list, v, () => false));
        expectRejected(checkAuthEventsShape(message, list, v, (id) => id === s.powerLevels.event_id), /rejected/);
      });

      test("2.5: an auth event from another room rejects", () => {
        const s = setup(v.id);
        const message = s.room.message(ALICE);
        const foreign = { ...s.aliceJoin, room_id: "!elsewhere:a.example" };
        expectRejected(checkAuthEventsShape(message, withCreate(s, [foreign]), v), /belongs to room/);
      });

      test("the selection is a ceiling, not a floor: fewer events pass this check", () => {
        const s = setup(v.id);
        expectAllowed(checkAuthEventsShape(s.room.message(ALICE), withCreate(s, []), v));
      });

      test("m.room.create itself is not subject to rule 2", () => {
        const s = setup(v.id);
        expectAllowed(checkAuthEventsShape(s.create, [s.powerLevels, s.powerLevels], v));
      });
    });
  }

  for (const v of versionsWhere((x) => !x.createEventNotInAuthEvents)) {
    test(`v${v.id} 2.4: the create event must be among them`, () => {
      const s = setup(v.id);
      expectRejected(checkAuthEventsShape(s.room.message(ALICE), [s.powerLevels, s.aliceJoin], v), /m\.room\.create/);
    });
  }

  test("v12 3.2: listing the create event rejects", () => {
    const s = setup("12");
    const result = checkAuthEventsShape(s.room.message(ALICE), [s.create, s.powerLevels, s.aliceJoin], v12);
    expectRejected(result, /unexpected auth_event.*m\.room\.create/);
  });
});

describe("authStateFromEvents", () => {
  test("looks events up by (type, state_key) and skips non-state events", () => {
    const s = setup("10");
    const lookup = authStateFromEvents([s.create, s.powerLevels, s.aliceJoin, s.room.message(ALICE)]);
    expect(lookup("m.room.member", ALICE)).toBe(s.aliceJoin);
    expect(lookup("m.room.power_levels", "")).toBe(s.powerLevels);
    expect(lookup("m.room.message", "")).toBeUndefined();
    expect(lookup("m.room.member", BOB)).toBeUndefined();
  });

  test("v12: the create event comes separately and authorisation works with it", () => {
    const s = setup("12");
    const message = s.room.message(ALICE);
    const authEvents = [s.powerLevels, s.aliceJoin];
    expectAllowed(checkAuthEventsShape(message, authEvents, v12));
    expectRejected(authorizeEvent(message, authStateFromEvents(authEvents), v12), /m\.room\.create/);
    expectAllowed(authorizeEvent(message, authStateFromEvents(authEvents, s.create), v12));
  });

  test("auth events chosen by authEventsForEvent from the state authorise as the state does", () => {
    for (const v of ALL_VERSIONS) {
      const s = setup(v.id);
      const join = s.room.member(BOB, BOB, "join");
      const picked = authEventsForEvent(join, v)
        .map(([t, k]) => s.room.get(t, k))
        .filter((e): e is RoomEvent => e !== undefined);
      expectAllowed(checkAuthEventsShape(join, picked, v));
      const lookup = authStateFromEvents(picked, v.createEventNotInAuthEvents ? s.create : undefined);
      expect(authorizeEvent(join, lookup, v)).toEqual(authorizeEvent(join, s.room.lookup, v));
    }
  });
});
