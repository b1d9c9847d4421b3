// Power-level helpers (levels, defaults, string and float values, v12 creators) and rule 10.
import { describe, expect, test } from "bun:test";
import {
  eventSendLevel,
  namedLevel,
  notificationLevel,
  parsePowerLevel,
  userPowerLevel,
} from "../../../src/protocol/auth";
import { type JsonObject, type JsonValue, LosslessNumber } from "../../../src/protocol/json";
import {
  ALICE,
  ALL_VERSIONS,
  AuthRoom,
  BOB,
  CAROL,
  DAVE,
  expectAllowed,
  expectRejected,
  version,
  usersWithCreator,
  versionsWhere,
} from "../../helpers/auth-events";

describe("parsePowerLevel", () => {
  const cases: [JsonValue, number | undefined, number | undefined, number | undefined][] = [
    // value, v1..v5, v6..v9, v10+
    [50, 50, 50, 50],
    [-7, -7, -7, -7],
    [0, 0, 0, 0],
    ["50", 50, 50, undefined],
    ["+100", 100, 100, undefined],
    ["-100", -100, -100, undefined],
    ["000100", 100, 100, undefined],
    [" 00100 ", 100, 100, undefined],
    ["\t-5\n", -5, -5, undefined],
    ["1.5", undefined, undefined, undefined],
    ["1e3", undefined, undefined, undefined],
    ["++1", undefined, undefined, undefined],
    ["", undefined, undefined, undefined],
    ["abc", undefined, undefined, undefined],
    ["0x10", undefined, undefined, undefined],
    [50.57, 50, undefined, undefined],
    [-50.9, -50, undefined, undefined],
    [51146.98, 51146, undefined, undefined],
    [Infinity, undefined, undefined, undefined],
    [Number.NaN, undefined, undefined, undefined],
    [2 ** 53, 2 ** 53, undefined, undefined],
    [null, undefined, undefined, undefined],
    [true, undefined, undefined, undefined],
    [[50], undefined, undefined, undefined],
    [{ level: 50 }, undefined, undefined, undefined],
  ];
  for (const [value, v1, v6, v10] of cases) {
    test(`${JSON.stringify(value) ?? String(value)}: v1..v5 ${v1}, v6..v9 ${v6}, v10+ ${v10}`, () => {
      for (const id of ["1", "5"]) expect(parsePowerLevel(value, version(id))).toBe(v1 as number);
      for (const id of ["6", "9"]) expect(parsePowerLevel(value, version(id))).toBe(v6 as number);
      for (const id of ["10", "11", "12"]) expect(parsePowerLevel(value, version(id))).toBe(v10 as number);
    });
  }
  test("numbers the lossless parser kept as text read as their value", () => {
    const n = (raw: string) => new LosslessNumber(raw);
    expect(parsePowerLevel(n("50.57"), version("1"))).toBe(50);
    expect(parsePowerLevel(n("5.114698E4"), version("5"))).toBe(51146);
    expect(parsePowerLevel(n("1e400"), version("1"))).toBeUndefined(); // beyond a double: rejected
    expect(parsePowerLevel(n("18446744073709551616"), version("3"))).toBe(18446744073709551616);
    expect(parsePowerLevel(n("50.0"), version("6"))).toBeUndefined();
    expect(parsePowerLevel(n("50"), version("10"))).toBe(50);
    expect(parsePowerLevel(n("9007199254740993"), version("10"))).toBeUndefined();
  });
  test("a v1 power levels event with a lossless float is valid (10.3)", () => {
    const room = new AuthRoom("1");
    const pl = room.stateEvent("m.room.power_levels", "", ALICE, { users: { [ALICE]: 100, [BOB]: new LosslessNumber("50.57") } });
    expectAllowed(room.check(pl));
    room.force(pl);
    expect(userPowerLevel(BOB, room.lookup, version("1"))).toBe(50);
  });
  test("-0 reads as 0", () => {
    expect(Object.is(parsePowerLevel(-0.5, version("1")), 0)).toBe(true);
  });
});

describe("userPowerLevel", () => {
  for (const v of versionsWhere((v) => !v.privilegedCreators)) {
    test(`v${v.id}: without power levels the creator has 100 and others 0`, () => {
      const room = new AuthRoom(v.id, { bare: true });
      expect(userPowerLevel(ALICE, room.lookup, v)).toBe(100);
      expect(userPowerLevel(BOB, room.lookup, v)).toBe(0);
    });
    test(`v${v.id}: with power levels: users, then users_default, then 0`, () => {
      const room = new AuthRoom(v.id);
      room.setPowerLevels({ users: { [BOB]: 30 } });
      expect(userPowerLevel(BOB, room.lookup, v)).toBe(30);
      expect(userPowerLevel(ALICE, room.lookup, v)).toBe(0); // the creator gets nothing special
      room.setPowerLevels({ users: { [BOB]: 30 }, users_default: 7 });
      expect(userPowerLevel(CAROL, room.lookup, v)).toBe(7);
    });
  }
  for (const v of versionsWhere((v) => !v.createUsesSender)) {
    test(`v${v.id}: "the creator" is content.creator`, () => {
      const room = new AuthRoom(v.id, { bare: true });
      (room.create.content as Record<string, unknown>).creator = BOB;
      expect(userPowerLevel(BOB, room.lookup, v)).toBe(100);
      expect(userPowerLevel(ALICE, room.lookup, v)).toBe(0);
    });
  }
  test("v11: the creator is the create event's sender", () => {
    const room = new AuthRoom("11", { bare: true });
    (room.create.content as Record<string, unknown>).creator = BOB;
    expect(userPowerLevel(ALICE, room.lookup, version("11"))).toBe(100);
    expect(userPowerLevel(BOB, room.lookup, version("11"))).toBe(0);
  });
  test("v12: creators and additional creators are infinite, with or without power levels", () => {
    const v = version("12");
    const room = new AuthRoom("12", { bare: true, createContent: { additional_creators: [BOB] } });
    expect(userPowerLevel(ALICE, room.lookup, v)).toBe(Infinity);
    expect(userPowerLevel(BOB, room.lookup, v)).toBe(Infinity);
    expect(userPowerLevel(CAROL, room.lookup, v)).toBe(0);
    room.setPowerLevels({ users: { [CAROL]: 100 }, users_default: 5 });
    expect(userPowerLevel(ALICE, room.lookup, v)).toBe(Infinity);
    expect(userPowerLevel(CAROL, room.lookup, v)).toBe(100);
    expect(userPowerLevel(DAVE, room.lookup, v)).toBe(5);
  });
  test("string levels count before v10 and fall back to users_default from v10", () => {
    for (const v of ALL_VERSIONS) {
      const room = new AuthRoom(v.id);
      room.setPowerLevels({ users: { [BOB]: "60" }, users_default: 3 });
      expect(userPowerLevel(BOB, room.lookup, v)).toBe(v.integerPowerLevels ? 3 : 60);
    }
  });
  test("user IDs that are Object.prototype keys are not confused with them", () => {
    const v = version("10");
    const room = new AuthRoom("10");
    room.setPowerLevels({ users: {} });
    expect(userPowerLevel("constructor", room.lookup, v)).toBe(0);
    expect(userPowerLevel("__proto__", room.lookup, v)).toBe(0);
  });
});

describe("namedLevel, eventSendLevel, notificationLevel defaults", () => {
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}: without power levels`, () => {
      const room = new AuthRoom(v.id, { bare: true });
      expect(namedLevel("invite", room.lookup, v)).toBe(0);
      expect(namedLevel("kick", room.lookup, v)).toBe(50);
      expect(namedLevel("ban", room.lookup, v)).toBe(50);
      expect(namedLevel("redact", room.lookup, v)).toBe(50);
      expect(eventSendLevel("m.room.name", true, room.lookup, v)).toBe(50);
      expect(eventSendLevel("m.room.message", false, room.lookup, v)).toBe(0);
      expect(notificationLevel("room", room.lookup, v)).toBe(50);
    });
    test(`v${v.id}: with power levels`, () => {
      const room = new AuthRoom(v.id);
      room.setPowerLevels({
        invite: 1,
        kick: 2,
        ban: 3,
        redact: 4,
        state_default: 5,
        events_default: 6,
        events: { "m.room.name": 7, "m.reaction": 8 },
        notifications: { room: 9 },
      });
      expect(namedLevel("invite", room.lookup, v)).toBe(1);
      expect(namedLevel("kick", room.lookup, v)).toBe(2);
      expect(namedLevel("ban", room.lookup, v)).toBe(3);
      expect(namedLevel("redact", room.lookup, v)).toBe(4);
      expect(eventSendLevel("m.room.topic", true, room.lookup, v)).toBe(5);
      expect(eventSendLevel("m.room.message", false, room.lookup, v)).toBe(6);
      expect(eventSendLevel("m.room.name", true, room.lookup, v)).toBe(7);
      expect(eventSendLevel("m.reaction", false, room.lookup, v)).toBe(8);
      expect(eventSendLevel("constructor", false, room.lookup, v)).toBe(6);
      expect(notificationLevel("room", room.lookup, v)).toBe(9);
    });
    test(`v${v.id}: a power levels event without the keys keeps the defaults`, () => {
      const room = new AuthRoom(v.id);
      room.setPowerLevels({});
      expect(namedLevel("kick", room.lookup, v)).toBe(50);
      expect(eventSendLevel("m.room.topic", true, room.lookup, v)).toBe(50);
      expect(eventSendLevel("m.room.message", false, room.lookup, v)).toBe(0);
    });
  }
});

// --- Rule 10 ---------------------------------------------------------------------------------

/** ALICE creator; CAROL joined at `carolLevel` and allowed to send m.room.power_levels at 50. */
function plRoom(versionId: string, carolLevel = 50, extra: JsonObject = {}) {
  const v = version(versionId);
  const room = new AuthRoom(versionId);
  room.setMembership(CAROL, "join");
  room.setMembership(BOB, "join");
  const users: JsonObject = usersWithCreator(v, { [CAROL]: carolLevel });
  const current: JsonObject = { users, events: { "m.room.power_levels": 50 }, ...extra };
  room.setPowerLevels(current);
  const change = (content: JsonObject, sender = CAROL) =>
    room.check(room.stateEvent("m.room.power_levels", "", sender, content));
  /** The current content with `patch` applied (undefined deletes a key). */
  const patched = (patch: Record<string, JsonValue | undefined>): JsonObject => {
    const out: JsonObject = { ...current };
    for (const [k, val] of Object.entries(patch)) {
      if (val === undefined) delete out[k];
      else out[k] = val;
    }
    return out;
  };
  return { room, v, users, current, change, patched };
}

describe("10.1, 10.2: integer values only (v10+)", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      for (const key of ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"]) {
        test(`a string ${key} is ${v.integerPowerLevels ? "rejected" : "accepted"}`, () => {
          const { change, patched } = plRoom(v.id);
          const result = change(patched({ [key]: "10" }));
          expect(result.allowed).toBe(!v.integerPowerLevels);
        });
      }
      test(`events / notifications with string values are ${v.integerPowerLevels ? "rejected" : "accepted"}`, () => {
        const { change, patched } = plRoom(v.id);
        expect(change(patched({ events: { "m.room.power_levels": 50, "m.room.name": "10" } })).allowed).toBe(!v.integerPowerLevels);
        expect(change(patched({ notifications: { room: "10" } })).allowed).toBe(!v.integerPowerLevels);
      });
      if (v.integerPowerLevels) {
        test("10.1: floats, null and booleans reject", () => {
          const { change, patched } = plRoom(v.id);
          for (const bad of [10.5, null, true, [10], {}]) expectRejected(change(patched({ ban: bad })), /integer/);
        });
        test("10.2: events / notifications must be objects of integers", () => {
          const { change, patched } = plRoom(v.id);
          expectRejected(change(patched({ events: [] })), /events/);
          expectRejected(change(patched({ events: 5 })), /events/);
          expectRejected(change(patched({ notifications: "room" })), /notifications/);
          expectRejected(change(patched({ notifications: { room: 1.5 } })), /notifications/);
          expectAllowed(change(patched({ notifications: { room: 20 } })));
        });
        test("10.1 applies to the first power levels event too", () => {
          const room = new AuthRoom(v.id, { bare: true });
          room.force(room.member(ALICE, ALICE, "join"));
          const pl = room.stateEvent("m.room.power_levels", "", ALICE, { kick: "50" });
          expectRejected(room.check(pl), /integer/);
        });
      }
    });
  }
});

describe("10.3: users is an object of valid user IDs to integers", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      test("a non-object users rejects", () => {
        const { change, patched } = plRoom(v.id);
        for (const bad of [[], "users", 5, null]) expectRejected(change(patched({ users: bad })), /users/);
      });
      test("an absent users is allowed (as empty)", () => {
        const { room } = plRoom(v.id);
        expectAllowed(room.check(room.stateEvent("m.room.power_levels", "", ALICE, { events: { "m.room.power_levels": 50 } })));
      });
      test("keys must be user IDs (historical ones count)", () => {
        const { change, users, patched } = plRoom(v.id);
        expectRejected(change(patched({ users: { ...users, alice: 0 } })), /user ID/);
        expectRejected(change(patched({ users: { ...users, "@nodomain": 0 } })), /user ID/);
        expectAllowed(change(patched({ users: { ...users, "@Old Style:d.example": 0 } })));
      });
      test(`a string value is ${v.integerPowerLevels ? "rejected" : "accepted"}`, () => {
        const { change, users, patched } = plRoom(v.id);
        expect(change(patched({ users: { ...users, [DAVE]: "10" } })).allowed).toBe(!v.integerPowerLevels);
        expectRejected(change(patched({ users: { ...users, [DAVE]: "ten" } })));
        expectRejected(change(patched({ users: { ...users, [DAVE]: null } })));
      });
      test(`a float value is ${v.strictCanonicalJson ? "rejected" : "truncated and accepted"}`, () => {
        const { change, users, patched } = plRoom(v.id);
        expect(change(patched({ users: { ...users, [DAVE]: 10.5 } })).allowed).toBe(!v.strictCanonicalJson);
      });
      test("10.3 applies to the first power levels event too", () => {
        const room = new AuthRoom(v.id, { bare: true });
        room.force(room.member(ALICE, ALICE, "join"));
        expectRejected(room.check(room.stateEvent("m.room.power_levels", "", ALICE, { users: { bob: 1 } })), /user ID/);
      });
    });
  }
});

describe("10.4 (v12): creators cannot be listed in users", () => {
  test("the create event's sender", () => {
    const { change, users, patched } = plRoom("12");
    expectRejected(change(patched({ users: { ...users, [ALICE]: 100 } })), /creator/);
  });
  test("an additional creator", () => {
    const room = new AuthRoom("12", { createContent: { additional_creators: [DAVE] } });
    expectRejected(room.check(room.stateEvent("m.room.power_levels", "", ALICE, { users: { [DAVE]: 1 } })), /creator/);
    expectAllowed(room.check(room.stateEvent("m.room.power_levels", "", ALICE, { users: { [BOB]: 1 } })));
  });
  test("even on the first power levels event", () => {
    const room = new AuthRoom("12", { bare: true });
    room.force(room.member(ALICE, ALICE, "join"));
    expectRejected(room.check(room.stateEvent("m.room.power_levels", "", ALICE, { users: { [ALICE]: 100 } })), /creator/);
  });
  for (const v of versionsWhere((v) => !v.privilegedCreators)) {
    test(`v${v.id} lists the creator freely`, () => {
      const { room } = plRoom(v.id);
      expectAllowed(room.check(room.stateEvent("m.room.power_levels", "", ALICE, { users: { [ALICE]: 100 } })));
    });
  }
});

describe("10.5: the first power levels event is allowed", () => {
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}: any valid levels, even above the sender's`, () => {
      const room = new AuthRoom(v.id, { bare: true });
      room.force(room.member(ALICE, ALICE, "join"));
      const users = usersWithCreator(v, { [BOB]: 1000 });
      expectAllowed(room.check(room.stateEvent("m.room.power_levels", "", ALICE, { users, ban: 1000, events: { x: 1000 } })));
    });
  }
});

describe("10.6: users_default, events_default, state_default, ban, redact, kick, invite", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      for (const key of ["users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"]) {
        test(`${key}: add/change/remove up to the sender's level only`, () => {
          const { change, patched } = plRoom(v.id, 50);
          expectAllowed(change(patched({ [key]: 50 }))); // added at own level
          expectRejected(change(patched({ [key]: 51 })), new RegExp(key)); // 10.6.2 added above
          const above = plRoom(v.id, 50, { [key]: 60 });
          expectRejected(above.change(above.patched({ [key]: 10 })), new RegExp(key)); // 10.6.1 changed from above
          expectRejected(above.change(above.patched({ [key]: undefined })), new RegExp(key)); // removed from above
          expectAllowed(above.change(above.patched({}))); // unchanged: no alteration to check
          const below = plRoom(v.id, 50, { [key]: 40 });
          expectAllowed(below.change(below.patched({ [key]: 45 })));
          expectAllowed(below.change(below.patched({ [key]: undefined })));
          expectRejected(below.change(below.patched({ [key]: 70 })), new RegExp(key));
        });
      }
      if (!v.integerPowerLevels) {
        test("a string replaced by the same integer is no change (values compare as levels)", () => {
          const { change, patched } = plRoom(v.id, 50, { ban: "60" });
          expectAllowed(change(patched({ ban: 60 })));
          expectRejected(change(patched({ ban: "061" })));
        });
        test("an unreadable new value rejects when it alters the property (interpretation)", () => {
          const { change, patched } = plRoom(v.id, 50, { ban: 40 });
          expectRejected(change(patched({ ban: "forty" })), /valid power level/);
        });
      }
    });
  }
});

describe("10.7, 10.8: events (and notifications from v6)", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      test("events entries: add/change/remove up to the sender's level only", () => {
        const { change, patched } = plRoom(v.id, 50, { events: { "m.room.power_levels": 50, "m.room.name": 70, "m.room.topic": 40 } });
        const events = (e: JsonObject) => patched({ events: { "m.room.power_levels": 50, "m.room.name": 70, "m.room.topic": 40, ...e } });
        expectAllowed(change(events({ "m.reaction": 50 }))); // 10.8 add at own level
        expectRejected(change(events({ "m.reaction": 51 })), /events\.m\.reaction/); // 10.8 add above
        expectRejected(change(events({ "m.room.name": 10 })), /events\.m\.room\.name/); // 10.7 change from above
        expectRejected(change(patched({ events: { "m.room.power_levels": 50, "m.room.topic": 40 } })), /m\.room\.name/); // 10.7 remove above
        expectAllowed(change(events({ "m.room.topic": 0 })));
        expectRejected(change(events({ "m.room.topic": 60 })), /m\.room\.topic/); // 10.8 change to above
        expectAllowed(change(patched({ events: { "m.room.power_levels": 50, "m.room.name": 70 } }))); // remove below
      });
      test(`notifications are ${v.limitNotificationsPowerLevels ? "" : "not "}limited`, () => {
        const { change, patched } = plRoom(v.id, 50, { notifications: { room: 80 } });
        expect(change(patched({ notifications: { room: 0 } })).allowed).toBe(!v.limitNotificationsPowerLevels);
        expect(change(patched({ notifications: { room: 80, other: 90 } })).allowed).toBe(!v.limitNotificationsPowerLevels);
        expect(change(patched({ notifications: undefined })).allowed).toBe(!v.limitNotificationsPowerLevels);
        expectAllowed(change(patched({ notifications: { room: 80, other: 50 } })));
      });
    });
  }
});

describe("10.9, 10.10: users", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      test("10.9: others at or above the sender cannot be changed or removed", () => {
        const { change, users, patched } = plRoom(v.id, 50);
        const withPeer = plRoom(v.id, 50, { users: { ...users, [BOB]: 50 } });
        expectRejected(withPeer.change(withPeer.patched({ users: { ...users, [BOB]: 10 } })), new RegExp(BOB));
        expectRejected(withPeer.change(withPeer.patched({ users })), new RegExp(BOB));
        const withLower = plRoom(v.id, 50, { users: { ...users, [BOB]: 49 } });
        expectAllowed(withLower.change(withLower.patched({ users: { ...users, [BOB]: 10 } })));
        expectAllowed(withLower.change(withLower.patched({ users })));
        expectAllowed(change(patched({ users: { ...users, [BOB]: 50 } }))); // 10.10 added at own level
      });
      test("10.9: the sender may lower or remove their own entry", () => {
        const { change, users, patched } = plRoom(v.id, 50);
        expectAllowed(change(patched({ users: { ...users, [CAROL]: 10 } })));
        const { [CAROL]: _omit, ...withoutCarol } = users;
        expectAllowed(change(patched({ users: withoutCarol, events: { "m.room.power_levels": 0 } })));
      });
      test("10.10: nobody can be raised above the sender, the sender included", () => {
        const { change, users, patched } = plRoom(v.id, 50);
        expectRejected(change(patched({ users: { ...users, [BOB]: 51 } })), new RegExp(BOB));
        expectRejected(change(patched({ users: { ...users, [CAROL]: 51 } })), new RegExp(CAROL));
      });
      if (!v.privilegedCreators) {
        test("10.9: the creator at 100 cannot be demoted by a 50", () => {
          const { change, users, patched } = plRoom(v.id, 50);
          expectRejected(change(patched({ users: { ...users, [ALICE]: 50 } })), new RegExp(ALICE));
        });
      }
    });
  }
  test("v12: a creator's infinite level allows any change", () => {
    const { room, users } = plRoom("12", 50);
    const pl = room.stateEvent("m.room.power_levels", "", ALICE, { users: { ...users, [CAROL]: 9000, [BOB]: 1e9 }, ban: 1e6 });
    expectAllowed(room.check(pl));
  });
  test("v12: a PL-100 non-creator is bound by the rules as before", () => {
    const { change, users, patched } = plRoom("12", 100);
    expectRejected(change(patched({ users: { ...users, [BOB]: 101 } })));
  });
});

describe("rule 8 applies to power levels before rule 10", () => {
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}: a user below events["m.room.power_levels"] cannot send any`, () => {
      const { change, patched } = plRoom(v.id, 40);
      expectRejected(change(patched({})), /required/);
    });
  }
});
