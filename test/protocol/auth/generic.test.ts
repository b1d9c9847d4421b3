// The rules for every other event: the m.room.aliases special case (v1..v5), sender joined (6),
// required power level (8), user-keyed state (9), m.room.redaction (v1, v2 rule 11), allow (11/12).
import { describe, expect, test } from "bun:test";
import type { JsonObject } from "../../../src/protocol/json";
import {
  ALICE,
  ALL_VERSIONS,
  AuthRoom,
  BOB,
  CAROL,
  expectAllowed,
  expectRejected,
  usersWithCreator,
  versionsWhere,
} from "../../helpers/auth-events";

describe("m.room.aliases", () => {
  for (const v of versionsWhere((v) => v.specialCaseAliasesAuth)) {
    describe(`room version ${v.id}: rule 4 special case`, () => {
      test("4.3: allowed when the state_key is the sender's server, member or not, any level", () => {
        const room = new AuthRoom(v.id);
        room.setPowerLevels({ users: { [ALICE]: 100 }, state_default: 100 });
        expectAllowed(room.check(room.stateEvent("m.room.aliases", "b.example", BOB, { aliases: ["#x:b.example"] })));
      });
      test("4.2: rejected when the state_key is another server", () => {
        const room = new AuthRoom(v.id);
        expectRejected(room.check(room.stateEvent("m.room.aliases", "a.example", BOB, { aliases: [] })), /server name/);
        expectRejected(room.check(room.stateEvent("m.room.aliases", "", ALICE, { aliases: [] })), /server name/);
      });
      test("4.1: rejected without a state_key", () => {
        const room = new AuthRoom(v.id);
        expectRejected(room.check(room.event({ type: "m.room.aliases", sender: ALICE, content: {} })), /state_key/);
      });
    });
  }
  for (const v of versionsWhere((v) => !v.specialCaseAliasesAuth)) {
    describe(`room version ${v.id}: an ordinary state event`, () => {
      test("a non-member cannot send it", () => {
        const room = new AuthRoom(v.id);
        expectRejected(room.check(room.stateEvent("m.room.aliases", "b.example", BOB, { aliases: [] })), /not joined/);
      });
      test("a member needs state_default", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        expectRejected(room.check(room.stateEvent("m.room.aliases", "b.example", BOB, { aliases: [] })), /required/);
        expectAllowed(room.check(room.stateEvent("m.room.aliases", "b.example", ALICE, { aliases: [] })));
      });
    });
  }
});

describe("rule 6: the sender must be joined", () => {
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}`, () => {
      const room = new AuthRoom(v.id);
      expectRejected(room.check(room.message(BOB)), /not joined/);
      for (const membership of ["invite", "leave", "ban", "knock"]) {
        room.setMembership(BOB, membership);
        expectRejected(room.check(room.message(BOB)), /not joined/);
      }
      room.setMembership(BOB, "join");
      expectAllowed(room.check(room.message(BOB)));
    });
  }
});

describe("rule 8: the event type's required power level", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      test("state events default to state_default (50), messages to events_default (0)", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        expectAllowed(room.check(room.message(BOB)));
        expectRejected(room.check(room.stateEvent("m.room.topic", "", BOB, { topic: "t" })), /required/);
        expectAllowed(room.check(room.stateEvent("m.room.topic", "", ALICE, { topic: "t" })));
      });
      test("events[type] overrides both, for state and message events", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        const base = usersWithCreator(v);
        room.setPowerLevels({ users: { ...base, [BOB]: 10 }, events: { "m.room.topic": 10, "m.room.message": 11 } });
        expectAllowed(room.check(room.stateEvent("m.room.topic", "", BOB, { topic: "t" })));
        expectRejected(room.check(room.message(BOB)), /required/);
        expectAllowed(room.check(room.event({ type: "m.reaction", sender: BOB, content: {} })));
      });
      test("an empty state_key still makes a state event", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        room.setPowerLevels({ users: usersWithCreator(v), state_default: 1, events_default: 0 });
        expectRejected(room.check(room.stateEvent("com.example.custom", "", BOB, {})), /required/);
        expectAllowed(room.check(room.event({ type: "com.example.custom", sender: BOB, content: {} })));
      });
      test("m.room.redaction is governed by events / events_default, like any event", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        room.setPowerLevels({ users: usersWithCreator(v), events: { "m.room.redaction": 5 } });
        const redaction = room.event({ type: "m.room.redaction", sender: BOB, content: {}, redacts: "$x:b.example" });
        expectRejected(room.check(redaction), /required/);
      });
      test("negative levels work", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        room.setPowerLevels({ users: usersWithCreator(v), users_default: -10, events_default: -5 });
        expectRejected(room.check(room.message(BOB)), /required/);
      });
    });
  }
});

describe("rule 9: a state_key starting with '@' must be the sender", () => {
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}`, () => {
      const room = new AuthRoom(v.id);
      room.setMembership(BOB, "join");
      expectRejected(room.check(room.stateEvent("com.example.profile", BOB, ALICE, {})), /another user/);
      expectAllowed(room.check(room.stateEvent("com.example.profile", ALICE, ALICE, {})));
      expectAllowed(room.check(room.stateEvent("com.example.profile", "not@first", ALICE, {})));
      // Even a user-looking key that is not a valid user ID.
      expectRejected(room.check(room.stateEvent("com.example.profile", "@", ALICE, {})), /another user/);
    });
  }
});

describe("m.room.redaction", () => {
  for (const v of versionsWhere((v) => v.eventIdFormat === "server-chosen")) {
    describe(`room version ${v.id}: rule 11`, () => {
      test("11.1: at the redact level anything may be redacted", () => {
        const room = new AuthRoom(v.id);
        const redaction = room.event({ type: "m.room.redaction", sender: ALICE, content: {}, redacts: "$x:b.example", event_id: "$r1:a.example" });
        expectAllowed(room.check(redaction));
      });
      test("11.2: below it, only events whose ID is on the redaction's ID's domain", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        const own = room.event({ type: "m.room.redaction", sender: BOB, content: {}, redacts: "$x:b.example", event_id: "$r2:b.example" });
        expectAllowed(room.check(own));
        const other = room.event({ type: "m.room.redaction", sender: BOB, content: {}, redacts: "$x:a.example", event_id: "$r3:b.example" });
        expectRejected(room.check(other), /redact/); // 11.3
        const noTarget = room.event({ type: "m.room.redaction", sender: BOB, content: {}, event_id: "$r4:b.example" });
        expectRejected(room.check(noTarget), /redact/);
      });
      test("11.2 compares event ID domains, not the sender's", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        const redaction = room.event({ type: "m.room.redaction", sender: BOB, content: {}, redacts: "$x:a.example", event_id: "$r5:a.example" });
        expectAllowed(room.check(redaction));
      });
      test("the redact level is read from power levels", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        room.setPowerLevels({ users: { [ALICE]: 100, [BOB]: 10 }, redact: 10 });
        const redaction = room.event({ type: "m.room.redaction", sender: BOB, content: {}, redacts: "$x:a.example", event_id: "$r6:b.example" });
        expectAllowed(room.check(redaction));
      });
    });
  }
  for (const v of versionsWhere((v) => v.eventIdFormat !== "server-chosen")) {
    test(`v${v.id}: no redaction rule; anyone who may send it may (checked when applied)`, () => {
      const room = new AuthRoom(v.id);
      room.setMembership(BOB, "join");
      const content: JsonObject = v.redactsInContent ? { redacts: "$someone_elses" } : {};
      const redaction = room.event({ type: "m.room.redaction", sender: BOB, content, redacts: "$someone_elses" });
      expectAllowed(room.check(redaction));
    });
  }
});

describe("the final rule: otherwise allow", () => {
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}: a joined member's message and custom events`, () => {
      const room = new AuthRoom(v.id);
      room.setMembership(CAROL, "join");
      expectAllowed(room.check(room.message(CAROL)));
      expectAllowed(room.check(room.event({ type: "com.example.anything", sender: CAROL, content: { x: [1, 2] } })));
      expect(room.check(room.stateEvent("m.room.name", "", ALICE, { name: "n" })).allowed).toBe(true);
    });
  }
});
