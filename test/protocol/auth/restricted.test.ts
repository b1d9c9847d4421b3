// Restricted joins: rule 5.2 (join_authorised_via_users_server must have signed, v8+) and 5.3.5
// (join rules restricted from v8 and knock_restricted from v10).
import { describe, expect, test } from "bun:test";
import type { AuthChecks } from "../../../src/protocol/auth";
import {
  ALICE,
  AuthRoom,
  BOB,
  CAROL,
  DAVE,
  expectAllowed,
  expectRejected,
  usersWithCreator,
  versionsWhere,
} from "../../helpers/auth-events";

const RESTRICTED = versionsWhere((v) => v.restrictedJoinRule);
const KNOCK_RESTRICTED = versionsWhere((v) => v.knockRestrictedJoinRule);
const signedBy = (...servers: string[]): AuthChecks => ({ isSignedBy: (s) => servers.includes(s) });
const ALLOW = { allow: [{ type: "m.room_membership", room_id: "!space:a.example" }] };

function restrictedJoin(room: AuthRoom, user: string, authoriser: unknown = ALICE) {
  return room.member(user, user, "join", { join_authorised_via_users_server: authoriser as string });
}

for (const rule of ["restricted", "knock_restricted"] as const) {
  const versions = rule === "restricted" ? RESTRICTED : KNOCK_RESTRICTED;
  describe(`join rule ${rule}`, () => {
    for (const v of versions) {
      describe(`room version ${v.id}`, () => {
        const room = () => new AuthRoom(v.id, { joinRule: rule });

        test("5.3.5.3: joined authoriser at the invite level, signed by their server: allowed", () => {
          const r = room();
          expectAllowed(r.check(restrictedJoin(r, BOB), signedBy("a.example")));
        });

        test("5.3.5.1: already invited or joined needs no authoriser", () => {
          const r = room();
          r.force(r.member(ALICE, BOB, "invite"));
          expectAllowed(r.check(r.member(BOB, BOB, "join")));
          r.setMembership(BOB, "join");
          expectAllowed(r.check(r.member(BOB, BOB, "join", { displayname: "B" })));
        });

        test("5.3.5.2: no authoriser rejects", () => {
          const r = room();
          expectRejected(r.check(r.member(BOB, BOB, "join")), /authorised/);
          r.setMembership(BOB, "leave");
          expectRejected(r.check(r.member(BOB, BOB, "join")), /authorised/);
        });

        test("5.3.5.2: an authoriser who is not joined rejects", () => {
          const r = room();
          expectRejected(r.check(restrictedJoin(r, BOB, DAVE), signedBy("a.example")), /not joined/);
          r.force(r.member(ALICE, DAVE, "invite"));
          expectRejected(r.check(restrictedJoin(r, BOB, DAVE), signedBy("a.example")), /not joined/);
        });

        test("5.3.5.2: an authoriser below the invite level rejects", () => {
          const r = room();
          r.setMembership(DAVE, "join");
          r.setPowerLevels({ users: usersWithCreator(v), invite: 10 });
          expectRejected(r.check(restrictedJoin(r, BOB, DAVE), signedBy("a.example")), /may not invite/);
          r.setPowerLevels({ users: usersWithCreator(v, { [DAVE]: 10 }), invite: 10 });
          expectAllowed(r.check(restrictedJoin(r, BOB, DAVE), signedBy("a.example")));
        });

        test("5.3.3: a banned user cannot join even with an authoriser", () => {
          const r = room();
          r.force(r.member(ALICE, BOB, "ban"));
          expectRejected(r.check(restrictedJoin(r, BOB), signedBy("a.example")), /banned/);
        });

        test("5.3.2: the authorised join must still be the sender's own", () => {
          const r = room();
          expectRejected(r.check(r.member(ALICE, BOB, "join", { join_authorised_via_users_server: ALICE }), signedBy("a.example")));
        });

        test("the allow list is not consulted by the auth rules", () => {
          const r = room();
          r.setJoinRule(rule, ALLOW);
          expectAllowed(r.check(restrictedJoin(r, BOB), signedBy("a.example")));
        });
      });
    }
  });
}

describe("join rule knock_restricted also allows knocking (5.7.1)", () => {
  for (const v of KNOCK_RESTRICTED) {
    test(`v${v.id}: knock, then join through an authoriser from the knock`, () => {
      const room = new AuthRoom(v.id, { joinRule: "knock_restricted" });
      room.apply(room.member(BOB, BOB, "knock"));
      expectAllowed(room.check(restrictedJoin(room, BOB), signedBy("a.example")));
      expectRejected(room.check(room.member(BOB, BOB, "join")));
    });
  }
});

describe("5.2: the authoriser's server must have signed the event", () => {
  for (const v of RESTRICTED) {
    describe(`room version ${v.id}`, () => {
      test("unsigned by that server rejects, whatever else would allow it", () => {
        const room = new AuthRoom(v.id, { joinRule: "public" });
        // BOB is on b.example; the authoriser ALICE on a.example.
        expectRejected(room.check(restrictedJoin(room, BOB), signedBy("b.example")), /signed/);
        expectAllowed(room.check(restrictedJoin(room, BOB), signedBy("a.example", "b.example")));
      });
      test("no isSignedBy check given means not signed", () => {
        const room = new AuthRoom(v.id, { joinRule: "public" });
        expectRejected(room.check(restrictedJoin(room, BOB)), /signed/);
      });
      test("applies to every membership carrying the key", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        const leave = room.member(BOB, BOB, "leave", { join_authorised_via_users_server: CAROL });
        expectRejected(room.check(leave, signedBy("b.example")), /signed/);
        expectAllowed(room.check(leave, signedBy("c.example")));
      });
      test("a value that is not a user ID rejects (no server to have signed)", () => {
        const room = new AuthRoom(v.id, { joinRule: "public" });
        expectRejected(room.check(restrictedJoin(room, BOB, "not-a-user"), signedBy("a.example")), /signed/);
        expectRejected(room.check(restrictedJoin(room, BOB, 42), signedBy("a.example")), /signed/);
        expectRejected(room.check(restrictedJoin(room, BOB, null), signedBy("a.example")), /signed/);
      });
    });
  }

  for (const v of versionsWhere((v) => !v.restrictedJoinRule)) {
    test(`v${v.id}: the key means nothing before v8`, () => {
      const room = new AuthRoom(v.id, { joinRule: "public" });
      expectAllowed(room.check(restrictedJoin(room, BOB)));
    });
  }
});

test("v12: a creator authorises restricted joins (infinite level >= invite)", () => {
  const room = new AuthRoom("12", { joinRule: "restricted" });
  room.setPowerLevels({ users: {}, invite: 100 });
  expect(room.check(restrictedJoin(room, BOB), signedBy("a.example")).allowed).toBe(true);
});
