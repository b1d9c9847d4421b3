// An audit of the m.room.member authorization rules, rule by rule in the spec's order, for every
// room version 1..12 (content/rooms/fragments/v1-auth-rules.md for v1..v5, content/rooms/v6.md,
// v7.md, fragments/v8-auth-rules.md for v8/v9, v10.md, v11.md, v12.md).
//
// One table of cases; each case says in which room versions the spec allows the event, written as
// version ranges read off the spec's text, not derived from the RoomVersion flags the code uses.
// Every case runs in every version: allowed there, rejected everywhere else.
//
// Rule numbers are room version 12's (5.x). Versions 1..11 number the member rule 4 (v1..v5: 5, as
// here, with m.room.aliases as 4), and before v8 there is no 5.2, so v1..v7's "4.2.4" is 5.3.4 here.
//
// The last part replays Synapse 1.67's own member events (../shared/fixtures/synapse) with the
// one change that matters to the deviation audited here: a join_authorised_via_users_server that
// its server did not sign.
import { describe, expect, test } from "bun:test";
import { type AuthChecks, type AuthResult, authorizeEvent, authStateFromEvents } from "../../../src/protocol/auth";
import type { RoomEvent } from "../../../src/protocol/events";
import type { JsonObject } from "../../../src/protocol/json";
import { roomVersion } from "../../../src/protocol/room-versions";
import { ALICE, ALL_VERSIONS, AuthRoom, BOB, CAROL, DAVE, type RoomOptions, usersWithCreator } from "../../helpers/auth-events";
import { loadSynapseFixture, roomEventFromPdu, signedByFromRecord, type SynapseRoomFixture } from "../../helpers/synapse-rooms";

/** "1-12", "7-12", "12", "" (never): the versions a case is allowed in. */
function versions(range: string): Set<string> {
  const out = new Set<string>();
  for (const part of range.split(",").filter(Boolean)) {
    const [from, to = from] = part.split("-").map(Number);
    for (let n = from!; n <= to!; n++) out.add(String(n));
  }
  return out;
}

const signedBy = (...servers: string[]): AuthChecks => ({ isSignedBy: (s) => servers.includes(s) });
/** A stand-in for ed25519 in 5.4.1.7: signature "good" verifies under public key "pk1" or "pk2". */
const verifies: AuthChecks = { verifySignature: (_signed, signature, key) => signature === "good" && (key === "pk1" || key === "pk2") };

interface Case {
  rule: string;
  name: string;
  /** The versions the spec allows the event in; rejected in all others. */
  allowed: string;
  room?: RoomOptions;
  /** Builds the state, returns the event to authorise (and the signature facts). */
  build(r: AuthRoom): RoomEvent | { event: RoomEvent; checks: AuthChecks };
  /** Where rejected, the reason must match (proves which rule rejected). */
  reason?: RegExp;
  /** The versions `reason` is checked in (default: every version the case is rejected in). */
  reasonIn?: string;
}

const PUBLIC: RoomOptions = { joinRule: "public" };
const INVITE: RoomOptions = { joinRule: "invite" };
const KNOCK: RoomOptions = { joinRule: "knock" };
const RESTRICTED: RoomOptions = { joinRule: "restricted" };
const KNOCK_RESTRICTED: RoomOptions = { joinRule: "knock_restricted" };
const BARE: RoomOptions = { bare: true };

/** A restricted join of `user` vouched for by `authoriser`. */
const viaJoin = (r: AuthRoom, user: string, authoriser: unknown, extra: JsonObject = {}) =>
  r.member(user, user, "join", { join_authorised_via_users_server: authoriser as string, ...extra });

/** The create event of a v1..v10 room whose content.creator is DAVE, though ALICE sent it. */
function withContentCreator(r: AuthRoom, creator: string): void {
  r.force({ ...r.create, content: { ...r.create.content, creator } });
}

/** An m.room.third_party_invite by ALICE with token "tok" and public key "pk1". */
function thirdPartyInviteState(r: AuthRoom, sender = ALICE, content: JsonObject = { display_name: "b…", public_key: "pk1", key_validity_url: "https://id.example/v" }) {
  r.force(r.stateEvent("m.room.third_party_invite", "tok", sender, content));
}
function thirdPartyInvite(r: AuthRoom, sender: string, target: string, signed: JsonObject | undefined | string) {
  const tpi: JsonObject = { display_name: "b…" };
  if (signed !== undefined) tpi.signed = signed;
  return r.member(sender, target, "invite", { third_party_invite: tpi });
}
const goodSigned = (mxid = BOB, token = "tok", signature = "good"): JsonObject => ({ mxid, token, signatures: { "id.example": { "ed25519:0": signature } } });

const CASES: Case[] = [
  // ---- 5.1
  { rule: "5.1", name: "no membership in content", allowed: "", room: PUBLIC, build: (r) => r.stateEvent("m.room.member", BOB, BOB, { displayname: "B" }), reason: /membership/ },
  {
    rule: "5.1", name: "no state_key", allowed: "", room: PUBLIC, reason: /state_key/,
    build: (r) => r.event({ type: "m.room.member", sender: BOB, content: { membership: "join" } }),
  },

  // ---- 5.2 (v8+): join_authorised_via_users_server must be signed by its user's server
  { rule: "5.2.1", name: "join naming an authoriser whose server did not sign (public room)", allowed: "1-7", room: PUBLIC, reason: /signed/, build: (r) => ({ event: viaJoin(r, BOB, ALICE), checks: signedBy("b.example") }) },
  { rule: "5.2.1", name: "join naming an authoriser whose server signed (public room)", allowed: "1-12", room: PUBLIC, build: (r) => ({ event: viaJoin(r, BOB, ALICE), checks: signedBy("a.example", "b.example") }) },
  {
    // The reported deviation, in a room where join -> join is otherwise allowed everywhere.
    rule: "5.2.1", name: "join -> join (profile change) carrying an unsigned authoriser (invite room)", allowed: "1-7", room: INVITE, reason: /signed/,
    build: (r) => { r.setMembership(BOB, "join"); return { event: viaJoin(r, BOB, CAROL, { displayname: "B" }), checks: signedBy("b.example") }; },
  },
  {
    rule: "5.2.1", name: "join -> join carrying an unsigned authoriser (restricted room): 5.2 comes before 5.3.5.1", allowed: "", room: RESTRICTED, reason: /signed/, reasonIn: "8-12",
    build: (r) => { r.setMembership(BOB, "join"); return { event: viaJoin(r, BOB, CAROL, { displayname: "B" }), checks: signedBy("b.example") }; },
  },
  {
    rule: "5.2.1", name: "join -> join carrying an unsigned authoriser (knock_restricted room)", allowed: "", room: KNOCK_RESTRICTED, reason: /signed/, reasonIn: "8-12",
    build: (r) => { r.setMembership(BOB, "join"); return { event: viaJoin(r, BOB, CAROL, { displayname: "B" }), checks: signedBy("b.example") }; },
  },
  { rule: "5.2.1", name: "leave carrying an unsigned authoriser", allowed: "1-7", room: INVITE, reason: /signed/, build: (r) => { r.setMembership(BOB, "join"); return { event: r.member(BOB, BOB, "leave", { join_authorised_via_users_server: CAROL }), checks: signedBy("b.example") }; } },
  { rule: "5.2.1", name: "leave carrying a signed authoriser", allowed: "1-12", room: INVITE, build: (r) => { r.setMembership(BOB, "join"); return { event: r.member(BOB, BOB, "leave", { join_authorised_via_users_server: CAROL }), checks: signedBy("b.example", "c.example") }; } },
  {
    rule: "5.2.1", name: "an authoriser that is not a user ID, though its text ends in a signing server's name", allowed: "1-7", room: PUBLIC, reason: /signed/,
    build: (r) => ({ event: viaJoin(r, BOB, "alice:a.example"), checks: signedBy("a.example", "b.example") }),
  },
  { rule: "5.2.1", name: "an authoriser without a server name", allowed: "1-7", room: PUBLIC, reason: /signed/, build: (r) => ({ event: viaJoin(r, BOB, "@alice"), checks: signedBy("a.example", "b.example") }) },
  { rule: "5.2.1", name: "an authoriser that is null", allowed: "1-7", room: PUBLIC, reason: /signed/, build: (r) => ({ event: viaJoin(r, BOB, null), checks: signedBy("a.example", "b.example") }) },
  { rule: "5.2.1", name: "an authoriser that is a number", allowed: "1-7", room: PUBLIC, reason: /signed/, build: (r) => ({ event: viaJoin(r, BOB, 42), checks: signedBy("a.example", "b.example") }) },
  { rule: "5.2.1", name: "a historical user ID as authoriser, signed", allowed: "1-12", room: PUBLIC, build: (r) => ({ event: viaJoin(r, BOB, "@Alice Smith:a.example"), checks: signedBy("a.example", "b.example") }) },

  // ---- 5.3.1
  { rule: "5.3.1", name: "the creator's first join straight after the create event", allowed: "1-12", room: BARE, build: (r) => r.member(ALICE, ALICE, "join") },
  { rule: "5.3.1", name: "the creator's join with another prev event beside the create", allowed: "", room: BARE, build: (r) => ({ ...r.member(ALICE, ALICE, "join"), prev_events: [r.create.event_id, "$other:a.example"] }) },
  { rule: "5.3.1", name: "someone else's join straight after the create event", allowed: "", room: BARE, build: (r) => r.member(BOB, BOB, "join") },
  { rule: "5.3.1", name: "the creator's first join, sent by someone else (5.3.1 does not look at the sender)", allowed: "1-12", room: BARE, build: (r) => r.member(BOB, ALICE, "join") },
  {
    rule: "5.3.1", name: "content.creator's first join (ALICE sent the create, content.creator is DAVE)", allowed: "1-10", room: BARE,
    build: (r) => { withContentCreator(r, DAVE); return r.member(DAVE, DAVE, "join"); },
  },
  {
    rule: "5.3.1", name: "the create sender's first join when content.creator names another", allowed: "11-12", room: BARE,
    build: (r) => { withContentCreator(r, DAVE); return r.member(ALICE, ALICE, "join"); },
  },
  {
    rule: "5.3.1", name: "an additional creator's first join (v12: only the create's sender)", allowed: "", room: { bare: true, createContent: { additional_creators: [BOB] } },
    build: (r) => r.member(BOB, BOB, "join"),
  },

  // ---- 5.3.2, 5.3.3
  { rule: "5.3.2", name: "a join whose sender is not its state_key", allowed: "", room: PUBLIC, reason: /sender must be its state_key/, build: (r) => r.member(ALICE, BOB, "join") },
  { rule: "5.3.3", name: "a banned user's join (public room)", allowed: "", room: PUBLIC, reason: /banned/, build: (r) => { r.force(r.member(ALICE, BOB, "ban")); return r.member(BOB, BOB, "join"); } },
  {
    rule: "5.3.3", name: "a banned user's join with a signed, valid authoriser (restricted room)", allowed: "", room: RESTRICTED, reason: /banned/,
    build: (r) => { r.force(r.member(ALICE, BOB, "ban")); return { event: viaJoin(r, BOB, ALICE), checks: signedBy("a.example") }; },
  },

  // ---- 5.3.4: invite, and (v7+) knock
  { rule: "5.3.4", name: "invite rule: invited user joins", allowed: "1-12", room: INVITE, build: (r) => { r.force(r.member(ALICE, BOB, "invite")); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.4", name: "invite rule: join -> join", allowed: "1-12", room: INVITE, build: (r) => { r.setMembership(BOB, "join"); return r.member(BOB, BOB, "join", { displayname: "B" }); } },
  { rule: "5.3.4", name: "invite rule: a user with no membership", allowed: "", room: INVITE, build: (r) => r.member(BOB, BOB, "join") },
  { rule: "5.3.4", name: "invite rule: a user who left", allowed: "", room: INVITE, build: (r) => { r.setMembership(BOB, "leave"); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.4", name: "invite rule: a knocking user", allowed: "", room: INVITE, build: (r) => { r.setMembership(BOB, "knock"); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.4", name: "knock rule: invited user joins", allowed: "7-12", room: KNOCK, build: (r) => { r.force(r.member(ALICE, BOB, "invite")); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.4", name: "knock rule: join -> join", allowed: "7-12", room: KNOCK, build: (r) => { r.setMembership(BOB, "join"); return r.member(BOB, BOB, "join", { displayname: "B" }); } },
  { rule: "5.3.4", name: "knock rule: a knocking user joins without an invite", allowed: "", room: KNOCK, build: (r) => { r.setMembership(BOB, "knock"); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.4", name: "knock rule: a user with no membership", allowed: "", room: KNOCK, build: (r) => r.member(BOB, BOB, "join") },

  // ---- 5.3.5: restricted (v8+), knock_restricted (v10+)
  { rule: "5.3.5.1", name: "restricted: join -> join, no authoriser", allowed: "8-12", room: RESTRICTED, build: (r) => { r.setMembership(BOB, "join"); return r.member(BOB, BOB, "join", { displayname: "B" }); } },
  {
    rule: "5.3.5.1", name: "restricted: join -> join naming a signed authoriser who is not in the room", allowed: "8-12", room: RESTRICTED,
    build: (r) => { r.setMembership(BOB, "join"); return { event: viaJoin(r, BOB, CAROL, { displayname: "B" }), checks: signedBy("b.example", "c.example") }; },
  },
  { rule: "5.3.5.1", name: "restricted: invited user joins, no authoriser", allowed: "8-12", room: RESTRICTED, build: (r) => { r.force(r.member(ALICE, BOB, "invite")); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.5.2", name: "restricted: no membership, no authoriser", allowed: "", room: RESTRICTED, reason: /no user authorised/, reasonIn: "8-12", build: (r) => r.member(BOB, BOB, "join") },
  { rule: "5.3.5.3", name: "restricted: joined authoriser with invite power, signed", allowed: "8-12", room: RESTRICTED, build: (r) => ({ event: viaJoin(r, BOB, ALICE), checks: signedBy("a.example") }) },
  {
    rule: "5.3.5.3", name: "restricted: a user who left joins again through an authoriser", allowed: "8-12", room: RESTRICTED,
    build: (r) => { r.setMembership(BOB, "leave"); return { event: viaJoin(r, BOB, ALICE), checks: signedBy("a.example") }; },
  },
  { rule: "5.3.5.2", name: "restricted: authoriser not in the room", allowed: "", room: RESTRICTED, reason: /not joined/, reasonIn: "8-12", build: (r) => ({ event: viaJoin(r, BOB, DAVE), checks: signedBy("a.example") }) },
  {
    rule: "5.3.5.2", name: "restricted: authoriser only invited", allowed: "", room: RESTRICTED, reason: /not joined/, reasonIn: "8-12",
    build: (r) => { r.force(r.member(ALICE, DAVE, "invite")); return { event: viaJoin(r, BOB, DAVE), checks: signedBy("a.example") }; },
  },
  {
    rule: "5.3.5.2", name: "restricted: authoriser who left", allowed: "", room: RESTRICTED, reason: /not joined/, reasonIn: "8-12",
    build: (r) => { r.setMembership(DAVE, "leave"); return { event: viaJoin(r, BOB, DAVE), checks: signedBy("a.example") }; },
  },
  {
    rule: "5.3.5.3", name: "restricted: joined authoriser at the default invite level 0", allowed: "8-12", room: RESTRICTED,
    build: (r) => { r.setMembership(DAVE, "join"); return { event: viaJoin(r, BOB, DAVE), checks: signedBy("a.example") }; },
  },
  {
    rule: "5.3.5.2", name: "restricted: joined authoriser below the invite level", allowed: "", room: RESTRICTED, reason: /may not invite/, reasonIn: "8-12",
    build: (r) => {
      r.setMembership(DAVE, "join");
      r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 49 }), invite: 50 });
      return { event: viaJoin(r, BOB, DAVE), checks: signedBy("a.example") };
    },
  },
  {
    rule: "5.3.5.3", name: "restricted: joined authoriser exactly at the invite level (through users_default)", allowed: "8-12", room: RESTRICTED,
    build: (r) => {
      r.setMembership(DAVE, "join");
      r.setPowerLevels({ users: usersWithCreator(r.version), users_default: 50, invite: 50 });
      return { event: viaJoin(r, BOB, DAVE), checks: signedBy("a.example") };
    },
  },
  { rule: "5.3.5.1", name: "knock_restricted: join -> join, no authoriser", allowed: "10-12", room: KNOCK_RESTRICTED, build: (r) => { r.setMembership(BOB, "join"); return r.member(BOB, BOB, "join", { displayname: "B" }); } },
  { rule: "5.3.5.1", name: "knock_restricted: invited user joins", allowed: "10-12", room: KNOCK_RESTRICTED, build: (r) => { r.force(r.member(ALICE, BOB, "invite")); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.5.3", name: "knock_restricted: joined authoriser, signed", allowed: "10-12", room: KNOCK_RESTRICTED, build: (r) => ({ event: viaJoin(r, BOB, ALICE), checks: signedBy("a.example") }) },
  {
    rule: "5.3.5.3", name: "knock_restricted: a knocking user joins through an authoriser", allowed: "10-12", room: KNOCK_RESTRICTED,
    build: (r) => { r.setMembership(BOB, "knock"); return { event: viaJoin(r, BOB, ALICE), checks: signedBy("a.example") }; },
  },
  { rule: "5.3.5.2", name: "knock_restricted: a knocking user without an authoriser", allowed: "", room: KNOCK_RESTRICTED, build: (r) => { r.setMembership(BOB, "knock"); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.5.2", name: "knock_restricted: authoriser not in the room", allowed: "", room: KNOCK_RESTRICTED, reason: /not joined/, reasonIn: "10-12", build: (r) => ({ event: viaJoin(r, BOB, DAVE), checks: signedBy("a.example") }) },

  // ---- 5.3.6, 5.3.7
  { rule: "5.3.6", name: "public: a user with no membership", allowed: "1-12", room: PUBLIC, build: (r) => r.member(BOB, BOB, "join") },
  { rule: "5.3.6", name: "public: a user who left", allowed: "1-12", room: PUBLIC, build: (r) => { r.setMembership(BOB, "leave"); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.6", name: "public: a knocking user (forced state)", allowed: "1-12", room: PUBLIC, build: (r) => { r.setMembership(BOB, "knock"); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.7", name: "private: even an invited user", allowed: "", room: { joinRule: "private" }, build: (r) => { r.force(r.member(ALICE, BOB, "invite")); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.7", name: "private: even join -> join", allowed: "", room: { joinRule: "private" }, build: (r) => { r.setMembership(BOB, "join"); return r.member(BOB, BOB, "join", { displayname: "B" }); } },
  { rule: "5.3.7", name: "an unknown join rule", allowed: "", room: { joinRule: "xyz.custom" }, build: (r) => r.member(BOB, BOB, "join") },
  {
    rule: "5.3.7", name: "a join_rule that is not a string names no rule, not invite: an invited user", allowed: "", room: INVITE, reason: /not a string/,
    build: (r) => { r.force(r.stateEvent("m.room.join_rules", "", ALICE, { join_rule: 5 })); r.force(r.member(ALICE, BOB, "invite")); return r.member(BOB, BOB, "join"); },
  },
  {
    rule: "5.3.7", name: "a null join_rule: join -> join", allowed: "", room: INVITE,
    build: (r) => { r.setMembership(BOB, "join"); r.force(r.stateEvent("m.room.join_rules", "", ALICE, { join_rule: null })); return r.member(BOB, BOB, "join", { displayname: "B" }); },
  },
  // No join rule in the state: read as invite (the spec gives none; Synapse reads invite).
  { rule: "5.3.4", name: "no m.room.join_rules: an invited user", allowed: "1-12", room: INVITE, build: (r) => { r.remove("m.room.join_rules"); r.force(r.member(ALICE, BOB, "invite")); return r.member(BOB, BOB, "join"); } },
  { rule: "5.3.4", name: "no m.room.join_rules: a user with no membership", allowed: "", room: INVITE, build: (r) => { r.remove("m.room.join_rules"); return r.member(BOB, BOB, "join"); } },
  {
    rule: "5.3.4", name: "m.room.join_rules without join_rule: an invited user", allowed: "1-12", room: INVITE,
    build: (r) => { r.force(r.stateEvent("m.room.join_rules", "", ALICE, {})); r.force(r.member(ALICE, BOB, "invite")); return r.member(BOB, BOB, "join"); },
  },

  // ---- 5.4.1: third-party invites
  { rule: "5.4.1.7", name: "3pid: a signature matching public_key", allowed: "1-12", room: INVITE, build: (r) => { thirdPartyInviteState(r); return { event: thirdPartyInvite(r, ALICE, BOB, goodSigned()), checks: verifies }; } },
  {
    rule: "5.4.1.7", name: "3pid: a signature matching one of public_keys", allowed: "1-12", room: INVITE,
    build: (r) => { thirdPartyInviteState(r, ALICE, { display_name: "b…", public_key: "pkX", public_keys: [{ public_key: "pk2" }] }); return { event: thirdPartyInvite(r, ALICE, BOB, goodSigned()), checks: verifies }; },
  },
  {
    rule: "5.4.1", name: "3pid: the sender need not be joined (5.4.1 comes before 5.4.2)", allowed: "1-12", room: INVITE,
    build: (r) => { thirdPartyInviteState(r, CAROL); return { event: thirdPartyInvite(r, CAROL, BOB, goodSigned()), checks: verifies }; },
  },
  { rule: "5.4.1.1", name: "3pid: the target is banned", allowed: "", room: INVITE, reason: /banned/, build: (r) => { thirdPartyInviteState(r); r.force(r.member(ALICE, BOB, "ban")); return { event: thirdPartyInvite(r, ALICE, BOB, goodSigned()), checks: verifies }; } },
  { rule: "5.4.1.2", name: "3pid: no signed", allowed: "", room: INVITE, reason: /signed/, build: (r) => { thirdPartyInviteState(r); return { event: thirdPartyInvite(r, ALICE, BOB, undefined), checks: verifies }; } },
  { rule: "5.4.1.3", name: "3pid: signed without token", allowed: "", room: INVITE, reason: /mxid or token/, build: (r) => { thirdPartyInviteState(r); const { token: _t, ...s } = goodSigned(); return { event: thirdPartyInvite(r, ALICE, BOB, s), checks: verifies }; } },
  { rule: "5.4.1.4", name: "3pid: mxid is not the state_key", allowed: "", room: INVITE, reason: /mxid/, build: (r) => { thirdPartyInviteState(r); return { event: thirdPartyInvite(r, ALICE, BOB, goodSigned(CAROL)), checks: verifies }; } },
  { rule: "5.4.1.5", name: "3pid: no m.room.third_party_invite for the token", allowed: "", room: INVITE, reason: /no m.room.third_party_invite/, build: (r) => { thirdPartyInviteState(r); return { event: thirdPartyInvite(r, ALICE, BOB, goodSigned(BOB, "other")), checks: verifies }; } },
  { rule: "5.4.1.6", name: "3pid: the sender did not send the m.room.third_party_invite", allowed: "", room: INVITE, reason: /did not send/, build: (r) => { thirdPartyInviteState(r, DAVE); return { event: thirdPartyInvite(r, ALICE, BOB, goodSigned()), checks: verifies }; } },
  { rule: "5.4.1.8", name: "3pid: no signature matches", allowed: "", room: INVITE, reason: /no signature/, build: (r) => { thirdPartyInviteState(r); return { event: thirdPartyInvite(r, ALICE, BOB, goodSigned(BOB, "tok", "bad")), checks: verifies }; } },

  // ---- 5.4.2..5.4.5
  { rule: "5.4.2", name: "invite by a sender who is not joined", allowed: "", room: INVITE, reason: /inviter is not joined/, build: (r) => { r.force(r.member(ALICE, DAVE, "invite")); return r.member(DAVE, BOB, "invite"); } },
  { rule: "5.4.3", name: "invite of a joined user", allowed: "", room: INVITE, reason: /join/, build: (r) => { r.setMembership(BOB, "join"); return r.member(ALICE, BOB, "invite"); } },
  { rule: "5.4.3", name: "invite of a banned user", allowed: "", room: INVITE, reason: /ban/, build: (r) => { r.force(r.member(ALICE, BOB, "ban")); return r.member(ALICE, BOB, "invite"); } },
  { rule: "5.4.4", name: "invite of a user with no membership", allowed: "1-12", room: INVITE, build: (r) => r.member(ALICE, BOB, "invite") },
  { rule: "5.4.4", name: "invite again of an invited user", allowed: "1-12", room: INVITE, build: (r) => { r.force(r.member(ALICE, BOB, "invite")); return r.member(ALICE, BOB, "invite"); } },
  { rule: "5.4.4", name: "invite of a user who left", allowed: "1-12", room: INVITE, build: (r) => { r.setMembership(BOB, "leave"); return r.member(ALICE, BOB, "invite"); } },
  { rule: "5.4.4", name: "invite of a knocking user", allowed: "1-12", room: KNOCK, build: (r) => { r.setMembership(BOB, "knock"); return r.member(ALICE, BOB, "invite"); } },
  {
    rule: "5.4.4", name: "invite by a member exactly at the invite level", allowed: "1-12", room: INVITE,
    build: (r) => { r.setMembership(DAVE, "join"); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 20 }), invite: 20 }); return r.member(DAVE, BOB, "invite"); },
  },
  {
    rule: "5.4.5", name: "invite by a member below the invite level", allowed: "", room: INVITE, reason: /below the invite level/,
    build: (r) => { r.setMembership(DAVE, "join"); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 19 }), invite: 20 }); return r.member(DAVE, BOB, "invite"); },
  },

  // ---- 5.5: leave
  { rule: "5.5.1", name: "a joined user leaves", allowed: "1-12", room: INVITE, build: (r) => { r.setMembership(BOB, "join"); return r.member(BOB, BOB, "leave"); } },
  { rule: "5.5.1", name: "an invited user declines", allowed: "1-12", room: INVITE, build: (r) => { r.force(r.member(ALICE, BOB, "invite")); return r.member(BOB, BOB, "leave"); } },
  { rule: "5.5.1", name: "a knocking user rescinds (knock exists from v7)", allowed: "7-12", room: KNOCK, build: (r) => { r.setMembership(BOB, "knock"); return r.member(BOB, BOB, "leave"); } },
  { rule: "5.5.1", name: "a user who left leaves again", allowed: "", room: INVITE, build: (r) => { r.setMembership(BOB, "leave"); return r.member(BOB, BOB, "leave"); } },
  { rule: "5.5.1", name: "a user with no membership leaves", allowed: "", room: INVITE, build: (r) => r.member(BOB, BOB, "leave") },
  { rule: "5.5.1", name: "a banned user unbans themself", allowed: "", room: INVITE, build: (r) => { r.force(r.member(ALICE, BOB, "ban")); return r.member(BOB, BOB, "leave"); } },
  { rule: "5.5.2", name: "a kick by a sender who is not joined", allowed: "", room: INVITE, reason: /not joined/, build: (r) => { r.setMembership(BOB, "join"); r.force(r.member(ALICE, DAVE, "invite")); return r.member(DAVE, BOB, "leave"); } },
  { rule: "5.5.4", name: "the creator kicks a joined member", allowed: "1-12", room: INVITE, build: (r) => { r.setMembership(BOB, "join"); return r.member(ALICE, BOB, "leave"); } },
  { rule: "5.5.4", name: "the creator withdraws an invite", allowed: "1-12", room: INVITE, build: (r) => { r.force(r.member(ALICE, BOB, "invite")); return r.member(ALICE, BOB, "leave"); } },
  { rule: "5.5.4", name: "the creator rejects a knock", allowed: "1-12", room: KNOCK, build: (r) => { r.setMembership(BOB, "knock"); return r.member(ALICE, BOB, "leave"); } },
  { rule: "5.5.5", name: "a kick by a member below the kick level", allowed: "", room: INVITE, build: (r) => { r.setMembership(BOB, "join"); r.setMembership(DAVE, "join"); return r.member(DAVE, BOB, "leave"); } },
  {
    rule: "5.5.5", name: "a kick of an equal", allowed: "", room: INVITE,
    build: (r) => { r.setMembership(BOB, "join"); r.setMembership(DAVE, "join"); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 50, [BOB]: 50 }) }); return r.member(DAVE, BOB, "leave"); },
  },
  {
    rule: "5.5.4", name: "the creator kicks a member at 100 (v12: creators are above every level)", allowed: "12", room: INVITE,
    build: (r) => { r.setMembership(DAVE, "join"); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 100 }) }); return r.member(ALICE, DAVE, "leave"); },
  },
  {
    rule: "5.5.5", name: "a member at 100 kicks the creator", allowed: "", room: INVITE,
    build: (r) => { r.setMembership(DAVE, "join"); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 100 }) }); return r.member(DAVE, ALICE, "leave"); },
  },
  { rule: "5.5.4", name: "the creator unbans", allowed: "1-12", room: INVITE, build: (r) => { r.force(r.member(ALICE, BOB, "ban")); return r.member(ALICE, BOB, "leave"); } },
  {
    rule: "5.5.3", name: "an unban by a member at the kick level but below the ban level", allowed: "", room: INVITE, reason: /ban level/,
    build: (r) => { r.setMembership(DAVE, "join"); r.force(r.member(ALICE, BOB, "ban")); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 60 }), kick: 50, ban: 70 }); return r.member(DAVE, BOB, "leave"); },
  },
  {
    rule: "5.5.4", name: "an unban by a member at the ban level but below the kick level", allowed: "", room: INVITE, reason: /may not kick/,
    build: (r) => { r.setMembership(DAVE, "join"); r.force(r.member(ALICE, BOB, "ban")); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 60 }), kick: 70, ban: 50 }); return r.member(DAVE, BOB, "leave"); },
  },
  {
    rule: "5.5.4", name: "an unban by a member at both levels", allowed: "1-12", room: INVITE,
    build: (r) => { r.setMembership(DAVE, "join"); r.force(r.member(ALICE, BOB, "ban")); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 60 }), kick: 60, ban: 60 }); return r.member(DAVE, BOB, "leave"); },
  },

  // ---- 5.6: ban
  { rule: "5.6.2", name: "the creator bans a joined member", allowed: "1-12", room: INVITE, build: (r) => { r.setMembership(BOB, "join"); return r.member(ALICE, BOB, "ban"); } },
  { rule: "5.6.2", name: "the creator bans a user who was never in the room", allowed: "1-12", room: INVITE, build: (r) => r.member(ALICE, CAROL, "ban") },
  { rule: "5.6.2", name: "the creator bans a knocking user", allowed: "1-12", room: KNOCK, build: (r) => { r.setMembership(BOB, "knock"); return r.member(ALICE, BOB, "ban"); } },
  { rule: "5.6.1", name: "a ban by a sender who is not joined", allowed: "", room: INVITE, reason: /not joined/, build: (r) => { r.force(r.member(ALICE, DAVE, "invite")); return r.member(DAVE, BOB, "ban"); } },
  { rule: "5.6.3", name: "a ban by a member below the ban level", allowed: "", room: INVITE, reason: /may not ban/, build: (r) => { r.setMembership(DAVE, "join"); return r.member(DAVE, BOB, "ban"); } },
  {
    rule: "5.6.3", name: "a ban of an equal", allowed: "", room: INVITE,
    build: (r) => { r.setMembership(BOB, "join"); r.setMembership(DAVE, "join"); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 50, [BOB]: 50 }) }); return r.member(DAVE, BOB, "ban"); },
  },
  {
    rule: "5.6.2", name: "a ban at exactly a raised ban level", allowed: "1-12", room: INVITE,
    build: (r) => { r.setMembership(DAVE, "join"); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 80 }), ban: 80 }); return r.member(DAVE, BOB, "ban"); },
  },
  {
    rule: "5.6.2", name: "the creator bans a member at 100 (v12: creators are above every level)", allowed: "12", room: INVITE,
    build: (r) => { r.setMembership(DAVE, "join"); r.setPowerLevels({ users: usersWithCreator(r.version, { [DAVE]: 100 }) }); return r.member(ALICE, DAVE, "ban"); },
  },

  // ---- 5.7: knock (v7+), knock_restricted (v10+)
  { rule: "5.7.3", name: "knock rule: a user with no membership knocks", allowed: "7-12", room: KNOCK, build: (r) => r.member(BOB, BOB, "knock") },
  { rule: "5.7.3", name: "knock rule: a user who left knocks", allowed: "7-12", room: KNOCK, build: (r) => { r.setMembership(BOB, "leave"); return r.member(BOB, BOB, "knock"); } },
  { rule: "5.7.3", name: "knock rule: a knocking user knocks again", allowed: "7-12", room: KNOCK, build: (r) => { r.setMembership(BOB, "knock"); return r.member(BOB, BOB, "knock", { reason: "again" }); } },
  { rule: "5.7.3", name: "knock_restricted rule: a user with no membership knocks", allowed: "10-12", room: KNOCK_RESTRICTED, build: (r) => r.member(BOB, BOB, "knock") },
  { rule: "5.7.1", name: "invite rule: a knock", allowed: "", room: INVITE, reason: /does not allow knocking/, reasonIn: "7-12", build: (r) => r.member(BOB, BOB, "knock") },
  { rule: "5.7.1", name: "public rule: a knock", allowed: "", room: PUBLIC, reason: /does not allow knocking/, reasonIn: "7-12", build: (r) => r.member(BOB, BOB, "knock") },
  { rule: "5.7.1", name: "restricted rule: a knock", allowed: "", room: RESTRICTED, reason: /does not allow knocking/, reasonIn: "7-12", build: (r) => r.member(BOB, BOB, "knock") },
  { rule: "5.7.1", name: "a join_rule that is not a string: a knock", allowed: "", room: KNOCK, build: (r) => { r.force(r.stateEvent("m.room.join_rules", "", ALICE, { join_rule: ["knock"] })); return r.member(BOB, BOB, "knock"); } },
  { rule: "5.7.2", name: "a knock whose sender is not its state_key", allowed: "", room: KNOCK, reason: /sender must be its state_key/, reasonIn: "7-12", build: (r) => r.member(ALICE, BOB, "knock") },
  { rule: "5.7.4", name: "a banned user knocks", allowed: "", room: KNOCK, reason: /cannot knock/, reasonIn: "7-12", build: (r) => { r.force(r.member(ALICE, BOB, "ban")); return r.member(BOB, BOB, "knock"); } },
  { rule: "5.7.4", name: "an invited user knocks", allowed: "", room: KNOCK, reason: /cannot knock/, reasonIn: "7-12", build: (r) => { r.force(r.member(ALICE, BOB, "invite")); return r.member(BOB, BOB, "knock"); } },
  { rule: "5.7.4", name: "a joined user knocks", allowed: "", room: KNOCK, reason: /cannot knock/, reasonIn: "7-12", build: (r) => { r.setMembership(BOB, "join"); return r.member(BOB, BOB, "knock"); } },
  { rule: "5.8", name: "knock before v7 is an unknown membership", allowed: "7-12", room: KNOCK, reason: /unknown membership/, reasonIn: "1-6", build: (r) => r.member(BOB, BOB, "knock") },

  // ---- 5.8
  { rule: "5.8", name: "an unknown membership", allowed: "", room: PUBLIC, reason: /unknown membership/, build: (r) => r.member(BOB, BOB, "xyz.custom") },
  { rule: "5.8", name: "a membership that is not a string", allowed: "", room: PUBLIC, reason: /unknown membership/, build: (r) => r.stateEvent("m.room.member", BOB, BOB, { membership: 1 }) },
];

describe("m.room.member auth rules, per room version (table)", () => {
  test("the table covers every member sub-rule of the spec", () => {
    const covered = new Set(CASES.map((c) => c.rule.split(".").slice(0, 3).join(".")));
    for (const rule of ["5.1", "5.2.1", "5.3.1", "5.3.2", "5.3.3", "5.3.4", "5.3.5.1", "5.3.5.2", "5.3.5.3", "5.3.6", "5.3.7", "5.4.1", "5.4.2", "5.4.3", "5.4.4", "5.4.5", "5.5.1", "5.5.2", "5.5.3", "5.5.4", "5.5.5", "5.6.1", "5.6.2", "5.6.3", "5.7.1", "5.7.2", "5.7.3", "5.7.4", "5.8"]) {
      const prefix = rule.split(".").slice(0, 3).join(".");
      expect({ rule, covered: covered.has(prefix) || [...covered].some((c) => c.startsWith(rule)) }).toEqual({ rule, covered: true });
    }
  });

  for (const v of ALL_VERSIONS) {
    describe(`room version ${v.id}`, () => {
      for (const c of CASES) {
        const allowed = versions(c.allowed).has(v.id);
        test(`${c.rule} ${c.name}: ${allowed ? "allowed" : "rejected"}`, () => {
          const room = new AuthRoom(v.id, c.room ?? {});
          const built = c.build(room);
          const { event, checks } = "event" in built && "checks" in built ? built : { event: built as RoomEvent, checks: undefined };
          const result: AuthResult = room.check(event, checks);
          expect({ version: v.id, allowed: result.allowed }).toEqual({ version: v.id, allowed });
          if (!result.allowed && c.reason && (c.reasonIn === undefined || versions(c.reasonIn).has(v.id))) {
            expect(result.reason).toMatch(c.reason);
          }
        });
      }
    });
  }
});

// ---- Synapse 1.67's member events, with an authoriser their signer could not have signed for.

interface Replay {
  version: string;
  event: RoomEvent;
  state: RoomEvent[];
  checks: AuthChecks;
}

/** Each member event of rooms-vN.json by label, with the state Synapse recorded before it. */
function synapseMemberEvents(n: number): Map<string, Replay> {
  const fixture = loadSynapseFixture<SynapseRoomFixture>(`rooms-v${n}.json`);
  const byId = new Map<string, RoomEvent>();
  for (const record of fixture.events) byId.set(record.derived.event_id, roomEventFromPdu(record.pdu, record.derived.event_id));
  const out = new Map<string, Replay>();
  for (const record of fixture.events) {
    if (record.pdu.type !== "m.room.member" || !record.state_before) continue;
    const state = record.state_before.map(([, , id]) => byId.get(id)!);
    out.set(record.label, { version: fixture.room_version, event: byId.get(record.derived.event_id)!, state, checks: { isSignedBy: signedByFromRecord(record) } });
  }
  return out;
}

const judge = (r: Replay, event: RoomEvent = r.event, state: RoomEvent[] = r.state) =>
  authorizeEvent(event, authStateFromEvents(state), roomVersion(r.version)!, r.checks);

/** A user on hs2, which signed none of hs1's events. */
const HS2_USER = "@someone:127.0.0.1:8450";

describe("Synapse vectors: join_authorised_via_users_server on member events Synapse made", () => {
  for (let n = 1; n <= 10; n++) {
    const events = synapseMemberEvents(n);
    const profileChange = events.get("bob changes his per-room displayname (join -> join)")!;

    test(`v${n}: bob's join -> join (displayname) as Synapse made it is allowed`, () => {
      expect(profileChange.event.content.membership).toBe("join");
      expect(judge(profileChange)).toEqual({ allowed: true });
    });

    test(`v${n}: the same join -> join naming an hs2 authoriser: ${n >= 8 ? "rejected (5.2.1)" : "allowed (the key means nothing before v8)"}`, () => {
      const event = { ...profileChange.event, content: { ...profileChange.event.content, join_authorised_via_users_server: HS2_USER } };
      const result = judge(profileChange, event);
      expect(result.allowed).toBe(n < 8);
      if (!result.allowed) expect(result.reason).toMatch(/signed/);
    });

    test(`v${n}: the same join -> join naming hs1's alice (the signer) is allowed`, () => {
      const alice = profileChange.state.find((e) => e.type === "m.room.create")!.sender;
      const event = { ...profileChange.event, content: { ...profileChange.event.content, join_authorised_via_users_server: alice } };
      expect(judge(profileChange, event)).toEqual({ allowed: true });
    });
  }

  for (let n = 8; n <= 10; n++) {
    const erin = synapseMemberEvents(n).get("erin joins via the allow list (restricted join; content.join_authorised_via_users_server)")!;

    test(`v${n}: erin's restricted join as Synapse made it is allowed, and only with hs1's signature`, () => {
      expect(typeof erin.event.content.join_authorised_via_users_server).toBe("string");
      expect(judge(erin)).toEqual({ allowed: true });
      expect(judge({ ...erin, checks: {} })).toMatchObject({ allowed: false });
    });

    test(`v${n}: erin's join naming an hs2 authoriser is rejected (5.2.1, then 5.3.5.2)`, () => {
      const event = { ...erin.event, content: { ...erin.event.content, join_authorised_via_users_server: HS2_USER } };
      expect(judge(erin, event)).toMatchObject({ allowed: false, reason: expect.stringMatching(/signed/) });
      // Even if hs2 had signed, hs2's user is not joined.
      expect(judge({ ...erin, checks: { isSignedBy: () => true } }, event)).toMatchObject({ allowed: false, reason: expect.stringMatching(/not joined/) });
    });

    test(`v${n}: erin's join again once joined (join -> join): 5.3.5.1, whoever the signed authoriser is`, () => {
      const joined = [...erin.state.filter((e) => !(e.type === "m.room.member" && e.state_key === erin.event.state_key)), erin.event];
      const again = { ...erin.event, event_id: "$again", content: { ...erin.event.content, displayname: "Erin", join_authorised_via_users_server: HS2_USER } };
      expect(judge({ ...erin, checks: { isSignedBy: () => true } }, again, joined)).toEqual({ allowed: true });
      expect(judge(erin, again, joined)).toMatchObject({ allowed: false, reason: expect.stringMatching(/signed/) });
    });
  }

  test("Synapse refused /knock in v1..v6 (README gotcha 9): v7's knock judged by v1..v6 rules is an unknown membership", () => {
    const knock = synapseMemberEvents(7).get("carol knocks (reason 'please let me in')")!;
    expect(judge(knock)).toEqual({ allowed: true });
    for (const id of ["1", "2", "3", "4", "5", "6"]) {
      expect(authorizeEvent(knock.event, authStateFromEvents(knock.state), roomVersion(id)!, knock.checks)).toMatchObject({ allowed: false, reason: expect.stringMatching(/unknown membership/) });
    }
  });
});
