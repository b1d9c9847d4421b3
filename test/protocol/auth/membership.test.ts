// Rule 5 (m.room.member) except knocking, restricted joins and third-party invites, which have
// their own files: 5.1, join (5.3), invite (5.4), leave (5.5), ban (5.6), unknown (5.8).
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

describe("5.1: state_key and membership are required", () => {
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}`, () => {
      const room = new AuthRoom(v.id, { joinRule: "public" });
      const join = room.member(BOB, BOB, "join");
      const { state_key: _omit, ...noStateKey } = join;
      expectRejected(room.check(noStateKey), /state_key/);
      expectRejected(room.check({ ...join, content: { displayname: "Bob" } }), /membership/);
      expectAllowed(room.check(join));
    });
  }
});

describe("5.3: join", () => {
  describe("5.3.1: the creator's first join straight after the create event", () => {
    for (const v of ALL_VERSIONS) {
      test(`v${v.id}: allowed with no join rules or power levels yet`, () => {
        const room = new AuthRoom(v.id, { bare: true });
        const join = room.member(ALICE, ALICE, "join");
        expect(join.prev_events).toEqual([room.create.event_id]);
        expectAllowed(room.check(join));
      });
      test(`v${v.id}: not when the create event is not the only prev event`, () => {
        const room = new AuthRoom(v.id, { bare: true });
        const join = room.member(ALICE, ALICE, "join");
        expectRejected(room.check({ ...join, prev_events: [room.create.event_id, "$other:a.example"] }));
        expectRejected(room.check({ ...join, prev_events: ["$other:a.example"] }));
      });
      test(`v${v.id}: not for someone else`, () => {
        const room = new AuthRoom(v.id, { bare: true });
        expectRejected(room.check(room.member(BOB, BOB, "join")));
      });
    }

    // Up to v10 "the creator" is content.creator; from v11 the sender of the create event.
    for (const v of versionsWhere((v) => !v.createUsesSender)) {
      test(`v${v.id}: the creator is content.creator`, () => {
        const room = new AuthRoom(v.id, { bare: true });
        (room.create.content as Record<string, unknown>).creator = BOB;
        expectAllowed(room.check(room.member(BOB, BOB, "join")));
        expectRejected(room.check(room.member(ALICE, ALICE, "join")));
      });
    }
    for (const v of versionsWhere((v) => v.createUsesSender)) {
      test(`v${v.id}: the creator is the create event's sender, whatever content.creator says`, () => {
        const room = new AuthRoom(v.id, { bare: true });
        (room.create.content as Record<string, unknown>).creator = BOB;
        expectAllowed(room.check(room.member(ALICE, ALICE, "join")));
        expectRejected(room.check(room.member(BOB, BOB, "join")));
      });
    }
    test("v12: additional creators do not get the first-join exception", () => {
      const room = new AuthRoom("12", { bare: true, createContent: { additional_creators: [BOB] } });
      expectRejected(room.check(room.member(BOB, BOB, "join")));
    });
  });

  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      test("5.3.2: the sender must be the state_key", () => {
        const room = new AuthRoom(v.id, { joinRule: "public" });
        expectRejected(room.check(room.member(ALICE, BOB, "join")), /sender/);
      });

      test("5.3.3: a banned sender cannot join, even a public room", () => {
        const room = new AuthRoom(v.id, { joinRule: "public" });
        room.setMembership(BOB, "ban");
        expectRejected(room.check(room.member(BOB, BOB, "join")), /banned/);
      });

      test("5.3.4: join rule invite admits the invited and the joined only", () => {
        const room = new AuthRoom(v.id, { joinRule: "invite" });
        expectRejected(room.check(room.member(BOB, BOB, "join")));
        room.setMembership(BOB, "leave");
        expectRejected(room.check(room.member(BOB, BOB, "join")));
        room.force(room.member(ALICE, BOB, "invite"));
        expectAllowed(room.check(room.member(BOB, BOB, "join")));
        room.setMembership(BOB, "join");
        expectAllowed(room.check(room.member(BOB, BOB, "join", { displayname: "Bob" })));
      });

      test("5.3.6: join rule public admits anyone not banned", () => {
        const room = new AuthRoom(v.id, { joinRule: "public" });
        expectAllowed(room.check(room.member(BOB, BOB, "join")));
        room.setMembership(BOB, "leave");
        expectAllowed(room.check(room.member(BOB, BOB, "join")));
      });

      test("5.3.7: any other join rule rejects, invited or not", () => {
        for (const rule of ["private", "made_up"]) {
          const room = new AuthRoom(v.id, { joinRule: rule });
          expectRejected(room.check(room.member(BOB, BOB, "join")), /join rule/);
          room.force(room.member(ALICE, BOB, "invite"));
          expectRejected(room.check(room.member(BOB, BOB, "join")), /join rule/);
        }
      });

      test("no join rules event reads as invite (interpretation, as Synapse)", () => {
        const room = new AuthRoom(v.id);
        room.remove("m.room.join_rules");
        expectRejected(room.check(room.member(BOB, BOB, "join")));
        room.force(room.member(ALICE, BOB, "invite"));
        expectAllowed(room.check(room.member(BOB, BOB, "join")));
      });
    });
  }

  // The knock join rule admits invited users like invite does, but only where it exists (v7+).
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}: join rule knock ${v.knocking ? "admits" : "does not admit"} an invited user`, () => {
      const room = new AuthRoom(v.id, { joinRule: "knock" });
      room.force(room.member(ALICE, BOB, "invite"));
      const result = room.check(room.member(BOB, BOB, "join"));
      expect(result.allowed).toBe(v.knocking);
      expectRejected(room.check(room.member(CAROL, CAROL, "join")));
    });
  }

  // Restricted join rules where they do not exist are just unknown rules (5.3.7).
  for (const v of versionsWhere((v) => !v.restrictedJoinRule)) {
    test(`v${v.id}: join rule restricted is unknown and rejects`, () => {
      const room = new AuthRoom(v.id, { joinRule: "restricted" });
      room.force(room.member(ALICE, BOB, "invite"));
      expectRejected(room.check(room.member(BOB, BOB, "join")), /join rule/);
    });
  }
  for (const v of versionsWhere((v) => !v.knockRestrictedJoinRule)) {
    test(`v${v.id}: join rule knock_restricted is unknown and rejects`, () => {
      const room = new AuthRoom(v.id, { joinRule: "knock_restricted" });
      room.force(room.member(ALICE, BOB, "invite"));
      expectRejected(room.check(room.member(BOB, BOB, "join")), /join rule/);
    });
  }
});

describe("5.4: invite (no third_party_invite)", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      test("a joined user at the invite level may invite", () => {
        const room = new AuthRoom(v.id);
        expectAllowed(room.check(room.member(ALICE, BOB, "invite")));
      });

      test("5.4.2: the inviter must be joined", () => {
        const room = new AuthRoom(v.id);
        expectRejected(room.check(room.member(CAROL, BOB, "invite")), /joined/);
        room.force(room.member(ALICE, CAROL, "invite"));
        expectRejected(room.check(room.member(CAROL, BOB, "invite")), /joined/);
      });

      test("5.4.3: not someone joined or banned", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        expectRejected(room.check(room.member(ALICE, BOB, "invite")), /join/);
        room.force(room.member(ALICE, BOB, "ban"));
        expectRejected(room.check(room.member(ALICE, BOB, "invite")), /ban/);
      });

      test("5.4.3: someone invited or gone may be invited (again)", () => {
        const room = new AuthRoom(v.id);
        room.force(room.member(ALICE, BOB, "invite"));
        expectAllowed(room.check(room.member(ALICE, BOB, "invite")));
        room.setMembership(BOB, "leave");
        expectAllowed(room.check(room.member(ALICE, BOB, "invite")));
      });

      test("5.4.4/5.4.5: the inviter's level against the invite level (default 0)", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(CAROL, "join");
        expectAllowed(room.check(room.member(CAROL, BOB, "invite"))); // 0 >= default 0
        room.setPowerLevels({ users: usersWithCreator(v, { [CAROL]: 49 }), invite: 50 });
        expectRejected(room.check(room.member(CAROL, BOB, "invite")), /invite level/);
        room.setPowerLevels({ users: usersWithCreator(v, { [CAROL]: 50 }), invite: 50 });
        expectAllowed(room.check(room.member(CAROL, BOB, "invite")));
      });
    });
  }
});

describe("5.5: leave", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      test("5.5.1: leaving yourself needs membership invite or join", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        expectAllowed(room.check(room.member(BOB, BOB, "leave")));
        room.force(room.member(ALICE, BOB, "invite"));
        expectAllowed(room.check(room.member(BOB, BOB, "leave"))); // declining an invite
        room.setMembership(BOB, "leave");
        expectRejected(room.check(room.member(BOB, BOB, "leave")));
        room.remove("m.room.member", BOB);
        expectRejected(room.check(room.member(BOB, BOB, "leave")));
        room.force(room.member(ALICE, BOB, "ban"));
        expectRejected(room.check(room.member(BOB, BOB, "leave")), /ban/); // no self-unban
      });

      test("5.5.2: kicking needs the sender to be joined", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        room.force(room.member(ALICE, ALICE, "leave"));
        expectRejected(room.check(room.member(ALICE, BOB, "leave")), /joined/);
      });

      test("5.5.3: unbanning needs the ban level too", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(CAROL, "join");
        room.force(room.member(ALICE, BOB, "ban"));
        const users = usersWithCreator(v, { [CAROL]: 60 });
        room.setPowerLevels({ users, kick: 50, ban: 70 });
        expectRejected(room.check(room.member(CAROL, BOB, "leave")), /ban level/);
        room.setPowerLevels({ users, kick: 50, ban: 60 });
        expectAllowed(room.check(room.member(CAROL, BOB, "leave")));
        // ... and the kick level: 5.5.4 still applies.
        room.setPowerLevels({ users, kick: 61, ban: 60 });
        expectRejected(room.check(room.member(CAROL, BOB, "leave")), /kick/);
      });

      test("5.5.4: kicking needs the kick level (default 50) and a target below the sender", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        room.setMembership(CAROL, "join");
        const base = usersWithCreator(v);
        room.setPowerLevels({ users: { ...base, [CAROL]: 49 } });
        expectRejected(room.check(room.member(CAROL, BOB, "leave"))); // below default kick 50
        room.setPowerLevels({ users: { ...base, [CAROL]: 50 } });
        expectAllowed(room.check(room.member(CAROL, BOB, "leave")));
        room.setPowerLevels({ users: { ...base, [CAROL]: 50, [BOB]: 50 } });
        expectRejected(room.check(room.member(CAROL, BOB, "leave"))); // equal level
        room.setPowerLevels({ users: { ...base, [CAROL]: 50, [BOB]: 10 }, kick: 51 });
        expectRejected(room.check(room.member(CAROL, BOB, "leave"))); // below explicit kick level
        // Kicking someone who never was a member follows the same rule.
        room.setPowerLevels({ users: { ...base, [CAROL]: 50 } });
        expectAllowed(room.check(room.member(CAROL, "@stranger:d.example", "leave")));
      });

      test("5.5.4: revoking an invite is a kick", () => {
        const room = new AuthRoom(v.id);
        room.force(room.member(ALICE, BOB, "invite"));
        expectAllowed(room.check(room.member(ALICE, BOB, "leave")));
      });
    });
  }
});

describe("5.6: ban", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      test("5.6.1: the sender must be joined", () => {
        const room = new AuthRoom(v.id);
        room.force(room.member(ALICE, ALICE, "leave"));
        expectRejected(room.check(room.member(ALICE, BOB, "ban")), /joined/);
      });

      test("5.6.2: ban level (default 50) and a target below the sender", () => {
        const room = new AuthRoom(v.id);
        room.setMembership(BOB, "join");
        room.setMembership(CAROL, "join");
        const base = usersWithCreator(v);
        room.setPowerLevels({ users: { ...base, [CAROL]: 49 } });
        expectRejected(room.check(room.member(CAROL, BOB, "ban")));
        room.setPowerLevels({ users: { ...base, [CAROL]: 50 } });
        expectAllowed(room.check(room.member(CAROL, BOB, "ban")));
        room.setPowerLevels({ users: { ...base, [CAROL]: 50, [BOB]: 50 } });
        expectRejected(room.check(room.member(CAROL, BOB, "ban")));
        room.setPowerLevels({ users: { ...base, [CAROL]: 50 }, ban: 80 });
        expectRejected(room.check(room.member(CAROL, BOB, "ban")));
      });

      test("anyone may be banned pre-emptively, whatever their membership", () => {
        const room = new AuthRoom(v.id);
        expectAllowed(room.check(room.member(ALICE, BOB, "ban")));
        room.force(room.member(ALICE, BOB, "ban"));
        expectAllowed(room.check(room.member(ALICE, BOB, "ban"))); // ban -> ban
        room.force(room.member(ALICE, CAROL, "invite"));
        expectAllowed(room.check(room.member(ALICE, CAROL, "ban")));
      });

      test("nobody can ban themselves (their level is not below their own)", () => {
        const room = new AuthRoom(v.id);
        expectRejected(room.check(room.member(ALICE, ALICE, "ban")));
      });
    });
  }
});

describe("5.8: unknown memberships", () => {
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}`, () => {
      const room = new AuthRoom(v.id, { joinRule: "public" });
      expectRejected(room.check(room.member(ALICE, ALICE, "dance")), /unknown membership/);
      expectRejected(room.check({ ...room.member(ALICE, ALICE, "join"), content: { membership: 1 } }), /unknown/);
      expectRejected(room.check({ ...room.member(ALICE, ALICE, "join"), content: { membership: null } }), /unknown/);
      expectRejected(room.check(room.member(ALICE, ALICE, "JOIN")), /unknown/);
    });
  }
});

describe("v12: creators outrank everyone in membership changes", () => {
  test("a PL-100 user cannot kick or ban a creator; a creator can kick a PL-100 user", () => {
    const room = new AuthRoom("12", { createContent: { additional_creators: [CAROL] } });
    room.setMembership(BOB, "join");
    room.setMembership(CAROL, "join");
    room.setPowerLevels({ users: { [BOB]: 100 } });
    expectRejected(room.check(room.member(BOB, ALICE, "leave")));
    expectRejected(room.check(room.member(BOB, CAROL, "ban")));
    expectAllowed(room.check(room.member(ALICE, BOB, "ban")));
    expectAllowed(room.check(room.member(CAROL, BOB, "leave")));
  });
  test("creators cannot kick each other (infinity is not below infinity)", () => {
    const room = new AuthRoom("12", { createContent: { additional_creators: [CAROL] } });
    room.setMembership(CAROL, "join");
    expectRejected(room.check(room.member(ALICE, CAROL, "leave")));
    expectRejected(room.check(room.member(CAROL, ALICE, "ban")));
  });
  test("before v12 the creator is only as strong as power_levels says", () => {
    const room = new AuthRoom("11");
    room.setMembership(BOB, "join");
    room.setPowerLevels({ users: { [ALICE]: 50, [BOB]: 100 } });
    expectAllowed(room.check(room.member(BOB, ALICE, "ban")));
  });
});
