// The redaction algorithm per room version, written from the spec's lists
// (content/rooms/fragments/v1-, v6-, v9-, v11-redactions.md; v8.md adds join_rules `allow`;
// v12 reuses v11's). Synapse vectors cover v1-v10 (events-fixtures.test.ts); v11/v12 have none.
import { describe, expect, test } from "bun:test";
import type { JsonObject } from "../../src/protocol/json";
import { ROOM_VERSIONS, roomVersion, type RoomVersion } from "../../src/protocol/room-versions";
import { redactEvent } from "../../src/protocol/signing/redaction";

const v = (id: string): RoomVersion => roomVersion(id) as RoomVersion;

/** Every top-level key any version keeps, plus ones no version keeps. */
function event(type: string, content: JsonObject, extra: JsonObject = {}): JsonObject {
  return {
    event_id: "$e",
    type,
    room_id: "!r:example.org",
    sender: "@alice:example.org",
    state_key: "",
    content,
    hashes: { sha256: "hash" },
    signatures: { "example.org": { "ed25519:1": "sig" } },
    depth: 7,
    prev_events: ["$p"],
    prev_state: [],
    auth_events: ["$a"],
    origin: "example.org",
    origin_server_ts: 1234,
    membership: "join",
    unsigned: { age_ts: 1, replaces_state: "$old" },
    redacts: "$target",
    extra_top_level: true,
    ...extra,
  };
}

const TOP_LEVEL_V1_V10 = {
  event_id: "$e",
  room_id: "!r:example.org",
  sender: "@alice:example.org",
  state_key: "",
  hashes: { sha256: "hash" },
  signatures: { "example.org": { "ed25519:1": "sig" } },
  depth: 7,
  prev_events: ["$p"],
  prev_state: [],
  auth_events: ["$a"],
  origin: "example.org",
  origin_server_ts: 1234,
  membership: "join",
};
const { origin: _o, membership: _m, prev_state: _p, ...TOP_LEVEL_V11 } = TOP_LEVEL_V1_V10;

const POWER_LEVELS = {
  ban: 50,
  events: { "m.room.name": 50 },
  events_default: 0,
  invite: 0,
  kick: 50,
  redact: 50,
  state_default: 50,
  users: { "@alice:example.org": 100 },
  users_default: 0,
  notifications: { room: 50 },
  historical: 100,
};
const MEMBER = {
  membership: "join",
  displayname: "Alice",
  avatar_url: "mxc://x/y",
  reason: "hi",
  join_authorised_via_users_server: "@bob:example.org",
  third_party_invite: { display_name: "a...@example.org", signed: { mxid: "@alice:example.org", token: "t", signatures: {} } },
};
const CREATE = { creator: "@alice:example.org", room_version: "1", "m.federate": false, predecessor: { room_id: "!old", event_id: "$x" } };
const JOIN_RULES = { join_rule: "restricted", allow: [{ type: "m.room_membership", room_id: "!other" }], other: 1 };

describe("top-level keys", () => {
  test("v1-v10 keep origin, membership and prev_state; unsigned, redacts and unknown keys go", () => {
    for (const id of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]) {
      expect(redactEvent(event("m.room.message", { body: "x" }), v(id))).toEqual({ ...TOP_LEVEL_V1_V10, type: "m.room.message", content: {} });
    }
  });

  test("v11 and v12 drop origin, membership and prev_state", () => {
    for (const id of ["11", "12"]) {
      expect(redactEvent(event("m.room.message", { body: "x" }), v(id))).toEqual({ ...TOP_LEVEL_V11, type: "m.room.message", content: {} });
    }
  });

  test("absent keys stay absent; a missing or non-object content becomes {}", () => {
    const minimal = { type: "m.room.message", sender: "@a:b", content: "oops" } as unknown as JsonObject;
    expect(redactEvent(minimal, v("10"))).toEqual({ type: "m.room.message", sender: "@a:b", content: {} });
    expect(redactEvent({ type: "m.room.member" }, v("11"))).toEqual({ type: "m.room.member", content: {} });
  });

  test("does not modify its input", () => {
    const original = event("m.room.power_levels", { ...POWER_LEVELS });
    const before = JSON.stringify(original);
    redactEvent(original, v("11"));
    expect(JSON.stringify(original)).toBe(before);
  });
});

describe("content kept per event type", () => {
  const content = (type: string, body: JsonObject, id: string) => redactEvent(event(type, body), v(id)).content;

  test("m.room.member: membership; v9+ join_authorised_via_users_server; v11+ third_party_invite.signed only", () => {
    for (const id of ["1", "8"]) expect(content("m.room.member", MEMBER, id)).toEqual({ membership: "join" });
    for (const id of ["9", "10"]) {
      expect(content("m.room.member", MEMBER, id)).toEqual({ membership: "join", join_authorised_via_users_server: "@bob:example.org" });
    }
    for (const id of ["11", "12"]) {
      expect(content("m.room.member", MEMBER, id)).toEqual({
        membership: "join",
        join_authorised_via_users_server: "@bob:example.org",
        third_party_invite: { signed: { mxid: "@alice:example.org", token: "t", signatures: {} } },
      });
      // No `signed`, nothing of third_party_invite survives.
      expect(content("m.room.member", { membership: "invite", third_party_invite: { display_name: "x" } }, id)).toEqual({ membership: "invite" });
    }
  });

  test("m.room.create: creator only before v11, everything from v11", () => {
    for (const id of ["1", "6", "10"]) expect(content("m.room.create", CREATE, id)).toEqual({ creator: "@alice:example.org" });
    for (const id of ["11", "12"]) expect(content("m.room.create", CREATE, id)).toEqual(CREATE);
  });

  test("m.room.join_rules: join_rule; allow from v8", () => {
    for (const id of ["1", "7"]) expect(content("m.room.join_rules", JOIN_RULES, id)).toEqual({ join_rule: "restricted" });
    for (const id of ["8", "9", "10", "11", "12"]) {
      expect(content("m.room.join_rules", JOIN_RULES, id)).toEqual({ join_rule: "restricted", allow: JOIN_RULES.allow });
    }
  });

  test("m.room.power_levels: the listed keys; invite from v11; never notifications or historical", () => {
    const { invite: _i, notifications: _n, historical: _h, ...v1Kept } = POWER_LEVELS;
    for (const id of ["1", "6", "10"]) expect(content("m.room.power_levels", POWER_LEVELS, id)).toEqual(v1Kept);
    for (const id of ["11", "12"]) expect(content("m.room.power_levels", POWER_LEVELS, id)).toEqual({ ...v1Kept, invite: 0 });
  });

  test("m.room.aliases: aliases in v1-v5 only", () => {
    const aliases = { aliases: ["#a:example.org"], other: 1 };
    for (const id of ["1", "2", "3", "4", "5"]) expect(content("m.room.aliases", aliases, id)).toEqual({ aliases: ["#a:example.org"] });
    for (const id of ["6", "10", "11", "12"]) expect(content("m.room.aliases", aliases, id)).toEqual({});
  });

  test("m.room.history_visibility: history_visibility", () => {
    for (const id of ["1", "11", "12"]) {
      expect(content("m.room.history_visibility", { history_visibility: "shared", other: 1 }, id)).toEqual({ history_visibility: "shared" });
    }
  });

  test("m.room.redaction: content.redacts from v11 (top-level redacts is dropped in every version)", () => {
    const redaction = { redacts: "$target", reason: "spam" };
    for (const id of ["1", "10"]) {
      const redacted = redactEvent(event("m.room.redaction", redaction), v(id));
      expect(redacted.content).toEqual({});
      expect(redacted.redacts).toBeUndefined();
    }
    for (const id of ["11", "12"]) {
      const redacted = redactEvent(event("m.room.redaction", redaction), v(id));
      expect(redacted.content).toEqual({ redacts: "$target" });
      expect(redacted.redacts).toBeUndefined();
    }
  });

  test("other types keep no content, and state keys of one type are not special", () => {
    for (const id of ["1", "12"]) {
      expect(content("m.room.name", { name: "n" }, id)).toEqual({});
      expect(content("m.room.topic", { topic: "t" }, id)).toEqual({});
      expect(content("m.room.encryption", { algorithm: "m.megolm.v1.aes-sha2" }, id)).toEqual({});
    }
  });

  test("a key the rules keep but the event lacks is not invented", () => {
    expect(content("m.room.power_levels", { ban: 1 }, "11")).toEqual({ ban: 1 });
    expect(content("m.room.member", {}, "11")).toEqual({});
  });
});

test("every known room version has redaction rules the tests above cover", () => {
  expect([...ROOM_VERSIONS.keys()]).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"]);
});
