// Rule 1 (m.room.create), v12's rule 2 (room ID from the create event), the m.federate rule, and
// an auth state without a create event.
import { describe, expect, test } from "bun:test";
import { authorizeEvent } from "../../../src/protocol/auth";
import type { RoomEvent } from "../../../src/protocol/events";
import type { JsonObject } from "../../../src/protocol/json";
import type { RoomVersion } from "../../../src/protocol/room-versions";
import {
  ALICE,
  ALL_VERSIONS,
  AuthRoom,
  BOB,
  expectAllowed,
  expectRejected,
  fakeEventId,
  versionsWhere,
} from "../../helpers/auth-events";

const nothing = () => undefined;

function createEvent(v: RoomVersion, overrides: Partial<RoomEvent> & { content?: JsonObject } = {}): RoomEvent {
  const content: JsonObject = { room_version: v.id };
  if (!v.createUsesSender) content.creator = ALICE;
  return {
    event_id: fakeEventId(v),
    ...(v.roomIdFromCreateEvent ? {} : { room_id: "!room:a.example" }),
    type: "m.room.create",
    state_key: "",
    sender: ALICE,
    content,
    origin_server_ts: 1,
    depth: 1,
    prev_events: [],
    auth_events: [],
    ...overrides,
  };
}

describe("rule 1: m.room.create", () => {
  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      test("a well-formed create event is allowed", () => {
        expectAllowed(authorizeEvent(createEvent(v), nothing, v));
      });

      test("1.1: any prev_events rejects", () => {
        expectRejected(authorizeEvent(createEvent(v, { prev_events: [fakeEventId(v)] }), nothing, v), /prev_events/);
      });

      test("1.3: an unrecognised room_version rejects", () => {
        const ev = createEvent(v);
        expectRejected(authorizeEvent({ ...ev, content: { ...ev.content, room_version: "999" } }, nothing, v), /room_version/);
        expectRejected(authorizeEvent({ ...ev, content: { ...ev.content, room_version: 1 } }, nothing, v), /room_version/);
      });

      test("1.3: an absent room_version is fine (it means 1)", () => {
        const ev = createEvent(v);
        const { room_version: _omit, ...content } = ev.content;
        expectAllowed(authorizeEvent({ ...ev, content }, nothing, v));
      });
    });
  }

  for (const v of versionsWhere((v) => !v.roomIdFromCreateEvent)) {
    test(`v${v.id} 1.2: the room_id's domain must be the sender's`, () => {
      expectRejected(authorizeEvent(createEvent(v, { room_id: "!room:b.example" }), nothing, v), /domain/);
      expectRejected(authorizeEvent(createEvent(v, { sender: BOB }), nothing, v), /domain/);
      const { room_id: _omit, ...noRoom } = createEvent(v);
      expectRejected(authorizeEvent(noRoom, nothing, v), /domain/);
    });
  }

  test("v12 1.2: a create event with a room_id rejects; the domain is not compared", () => {
    const v = ALL_VERSIONS.find((x) => x.id === "12")!;
    expectRejected(authorizeEvent(createEvent(v, { room_id: "!room:a.example" }), nothing, v), /room_id/);
    expectAllowed(authorizeEvent(createEvent(v, { sender: BOB }), nothing, v));
  });

  for (const v of versionsWhere((v) => !v.createUsesSender)) {
    test(`v${v.id} 1.4: content without creator rejects`, () => {
      const ev = createEvent(v);
      const { creator: _omit, ...content } = ev.content;
      expectRejected(authorizeEvent({ ...ev, content }, nothing, v), /creator/);
    });
  }
  for (const v of versionsWhere((v) => v.createUsesSender)) {
    test(`v${v.id}: creator is not required (the sender is the creator)`, () => {
      expectAllowed(authorizeEvent(createEvent(v), nothing, v));
    });
  }

  describe("v12 1.4: additional_creators", () => {
    const v = ALL_VERSIONS.find((x) => x.id === "12")!;
    const withCreators = (value: JsonObject[string]) =>
      authorizeEvent(createEvent(v, { content: { room_version: "12", additional_creators: value } }), nothing, v);
    test("an array of valid user IDs is allowed, historical ones included", () => {
      expectAllowed(withCreators([BOB, "@Upper.Case:b.example"]));
      expectAllowed(withCreators([]));
    });
    test("anything else rejects", () => {
      expectRejected(withCreators(BOB), /additional_creators/);
      expectRejected(withCreators([BOB, 5]), /additional_creators/);
      expectRejected(withCreators(["bob"]), /additional_creators/);
      expectRejected(withCreators(["@bob:"]), /additional_creators/);
      expectRejected(withCreators(null), /additional_creators/);
    });
    for (const old of versionsWhere((x) => !x.privilegedCreators)) {
      test(`v${old.id} ignores additional_creators`, () => {
        const ev = createEvent(old);
        expectAllowed(authorizeEvent({ ...ev, content: { ...ev.content, additional_creators: "junk" } }, nothing, old));
      });
    }
  });
});

describe("the create event in the auth state", () => {
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}: an event with no m.room.create in its auth state is rejected (2.4 / v12 2)`, () => {
      const room = new AuthRoom(v.id);
      const message = room.message(ALICE);
      expectAllowed(room.check(message));
      room.remove("m.room.create");
      expectRejected(room.check(message));
    });
  }

  describe("v12 rule 2: room_id must be the create event's ID with '!'", () => {
    test("a room_id naming another create event rejects", () => {
      const room = new AuthRoom("12");
      const message = room.message(ALICE);
      expectAllowed(room.check(message));
      expectRejected(room.check({ ...message, room_id: `!${"Z".repeat(43)}` }), /room_id/);
      expectRejected(room.check({ ...message, room_id: room.create.event_id }), /room_id/); // '$' sigil
      const { room_id: _omit, ...noRoom } = message;
      expectRejected(room.check(noRoom), /room_id/);
    });
    test("earlier versions do not relate the room ID to the create event", () => {
      const room = new AuthRoom("11");
      expectAllowed(room.check({ ...room.message(ALICE), room_id: "!other:a.example" }));
    });
  });
});

describe("m.federate: false keeps the room on the creator's server", () => {
  for (const v of ALL_VERSIONS) {
    test(`v${v.id}`, () => {
      const room = new AuthRoom(v.id, { createContent: { "m.federate": false }, joinRule: "public" });
      expectRejected(room.check(room.member(BOB, BOB, "join")), /federate/);
      const localUser = "@local:a.example";
      expectAllowed(room.check(room.member(localUser, localUser, "join")));
      // A true or absent m.federate does not restrict.
      const open = new AuthRoom(v.id, { createContent: { "m.federate": true }, joinRule: "public" });
      expectAllowed(open.check(open.member(BOB, BOB, "join")));
    });
  }
  test("the creator's own server is compared, messages included", () => {
    const room = new AuthRoom("10", { createContent: { "m.federate": false } });
    room.force(room.member(BOB, BOB, "join")); // however BOB got in
    expectRejected(room.check(room.message(BOB)), /federate/);
    expect(room.check(room.message(ALICE)).allowed).toBe(true);
  });
});
