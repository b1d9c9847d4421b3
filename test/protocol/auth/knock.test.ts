// Knocking (v7+, rule 5.7) and every membership transition into and out of `knock`.
import { describe, expect, test } from "bun:test";
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

const KNOCKING = versionsWhere((v) => v.knocking);
const BEFORE_KNOCKING = versionsWhere((v) => !v.knocking);

/** A room whose join rule allows knocking, with ALICE (creator, PL 100) joined. */
function knockRoom(versionId: string, joinRule = "knock"): AuthRoom {
  return new AuthRoom(versionId, { joinRule });
}

describe("knocking where it does not exist (v1..v6)", () => {
  for (const v of BEFORE_KNOCKING) {
    test(`v${v.id}: knock is an unknown membership, even under join rule knock`, () => {
      const room = knockRoom(v.id);
      expectRejected(room.check(room.member(BOB, BOB, "knock")), /unknown membership/);
    });
    test(`v${v.id}: a knock already in state (from elsewhere) does not let its sender leave`, () => {
      const room = knockRoom(v.id);
      room.setMembership(BOB, "knock");
      expectRejected(room.check(room.member(BOB, BOB, "leave")));
    });
  }
});

describe("5.7.1: the join rule must allow knocking", () => {
  for (const v of KNOCKING) {
    test(`v${v.id}: join rule knock allows it`, () => {
      const room = knockRoom(v.id);
      expectAllowed(room.check(room.member(BOB, BOB, "knock")));
    });
    test(`v${v.id}: join rule knock_restricted ${v.knockRestrictedJoinRule ? "allows" : "does not allow"} it`, () => {
      const room = knockRoom(v.id, "knock_restricted");
      expect(room.check(room.member(BOB, BOB, "knock")).allowed).toBe(v.knockRestrictedJoinRule);
    });
    for (const rule of ["public", "invite", "restricted", "private"]) {
      test(`v${v.id}: join rule ${rule} rejects it`, () => {
        const room = knockRoom(v.id, rule);
        expectRejected(room.check(room.member(BOB, BOB, "knock")), /join rule/);
      });
    }
    test(`v${v.id}: no join rules event rejects it (read as invite)`, () => {
      const room = knockRoom(v.id);
      room.remove("m.room.join_rules");
      expectRejected(room.check(room.member(BOB, BOB, "knock")), /join rule/);
    });
  }
});

describe("5.7.2: only for yourself", () => {
  for (const v of KNOCKING) {
    test(`v${v.id}`, () => {
      const room = knockRoom(v.id);
      expectRejected(room.check(room.member(ALICE, BOB, "knock")), /sender/);
    });
  }
});

describe("transitions into knock (5.7.3/5.7.4)", () => {
  for (const v of KNOCKING) {
    describe(`room version ${v.id}`, () => {
      test("no membership -> knock: allowed", () => {
        const room = knockRoom(v.id);
        expectAllowed(room.check(room.member(BOB, BOB, "knock")));
      });
      test("leave -> knock: allowed", () => {
        const room = knockRoom(v.id);
        room.setMembership(BOB, "leave");
        expectAllowed(room.check(room.member(BOB, BOB, "knock")));
      });
      test("knock -> knock: allowed", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(BOB, BOB, "knock"));
        expectAllowed(room.check(room.member(BOB, BOB, "knock", { reason: "again" })));
      });
      test("invite -> knock: rejected", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(ALICE, BOB, "invite"));
        expectRejected(room.check(room.member(BOB, BOB, "knock")), /invite/);
      });
      test("join -> knock: rejected", () => {
        const room = knockRoom(v.id);
        room.setMembership(BOB, "join");
        expectRejected(room.check(room.member(BOB, BOB, "knock")), /join/);
      });
      test("ban -> knock: rejected", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(ALICE, BOB, "ban"));
        expectRejected(room.check(room.member(BOB, BOB, "knock")), /ban/);
      });
      test("a knocker need not be on the room's server, and rule 6 does not apply", () => {
        const room = knockRoom(v.id);
        expectAllowed(room.check(room.member(CAROL, CAROL, "knock")));
      });
    });
  }
});

describe("transitions out of knock", () => {
  for (const v of KNOCKING) {
    describe(`room version ${v.id}`, () => {
      test("knock -> invite (accepting the knock): allowed for a user at the invite level", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(BOB, BOB, "knock"));
        expectAllowed(room.check(room.member(ALICE, BOB, "invite")));
      });
      test("knock -> invite: rejected below the invite level", () => {
        const room = knockRoom(v.id);
        room.setMembership(CAROL, "join");
        room.setPowerLevels({ users: usersWithCreator(v), invite: 50 });
        room.apply(room.member(BOB, BOB, "knock"));
        expectRejected(room.check(room.member(CAROL, BOB, "invite")), /invite level/);
        expectAllowed(room.check(room.member(ALICE, BOB, "invite")));
      });
      test("knock -> invite -> join: the accepted knocker joins", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(BOB, BOB, "knock"));
        room.apply(room.member(ALICE, BOB, "invite"));
        expectAllowed(room.check(room.member(BOB, BOB, "join")));
      });
      test("knock -> join directly: rejected under join rule knock", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(BOB, BOB, "knock"));
        expectRejected(room.check(room.member(BOB, BOB, "join")));
      });
      test("knock -> leave by the knocker (rescinding): allowed", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(BOB, BOB, "knock"));
        expectAllowed(room.check(room.member(BOB, BOB, "leave")));
      });
      test("knock -> leave by a user with kick power above the knocker (rejecting): allowed", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(BOB, BOB, "knock"));
        expectAllowed(room.check(room.member(ALICE, BOB, "leave", { reason: "no thanks" })));
      });
      test("knock -> leave by a joined user below the kick level: rejected", () => {
        const room = knockRoom(v.id);
        room.setMembership(CAROL, "join"); // level 0, kick defaults to 50
        room.apply(room.member(BOB, BOB, "knock"));
        expectRejected(room.check(room.member(CAROL, BOB, "leave")), /kick/);
      });
      test("knock -> leave by a user with kick power but not above the knocker: rejected", () => {
        const room = knockRoom(v.id);
        room.setMembership(CAROL, "join");
        const base = usersWithCreator(v);
        room.setPowerLevels({ users: { ...base, [CAROL]: 50, [BOB]: 50 } });
        room.apply(room.member(BOB, BOB, "knock"));
        expectRejected(room.check(room.member(CAROL, BOB, "leave")), /kick/);
      });
      test("knock -> leave by a user who is not joined: rejected", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(BOB, BOB, "knock"));
        room.apply(room.member(CAROL, CAROL, "knock"));
        expectRejected(room.check(room.member(CAROL, BOB, "leave")), /joined/);
      });
      test("knock -> ban: allowed at the ban level", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(BOB, BOB, "knock"));
        expectAllowed(room.check(room.member(ALICE, BOB, "ban")));
      });
      test("knock -> ban: rejected below the ban level", () => {
        const room = knockRoom(v.id);
        room.setMembership(CAROL, "join");
        room.apply(room.member(BOB, BOB, "knock"));
        expectRejected(room.check(room.member(CAROL, BOB, "ban")), /ban/);
      });
      test("the Synapse fixture sequence: knock, rejected, knock again, banned", () => {
        const room = knockRoom(v.id);
        room.apply(room.member(BOB, BOB, "knock", { reason: "please let me in" }));
        room.apply(room.member(ALICE, BOB, "leave", { reason: "knock rejected" }));
        room.apply(room.member(BOB, BOB, "knock", { reason: "second try" }));
        room.apply(room.member(ALICE, BOB, "ban", { reason: "persistent knocker" }));
        expectRejected(room.check(room.member(BOB, BOB, "knock")));
      });
    });
  }
});

describe("a knocking user is not a member", () => {
  for (const v of KNOCKING) {
    test(`v${v.id}: cannot send events (rule 6)`, () => {
      const room = knockRoom(v.id);
      room.apply(room.member(BOB, BOB, "knock"));
      expectRejected(room.check(room.message(BOB)), /not joined/);
    });
  }
});

test("every room version is covered by exactly one of the two groups", () => {
  expect(KNOCKING.length + BEFORE_KNOCKING.length).toBe(ALL_VERSIONS.length);
  expect(KNOCKING.map((v) => v.id)).toEqual(["7", "8", "9", "10", "11", "12"]);
});
