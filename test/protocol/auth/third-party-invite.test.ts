// Third-party invites: rule 5.4.1 (an invite carrying third_party_invite) and rule 7 (the
// m.room.third_party_invite event itself).
import { describe, expect, test } from "bun:test";
import * as ed from "@noble/ed25519";
import type { AuthChecks } from "../../../src/protocol/auth";
import type { JsonObject, JsonValue } from "../../../src/protocol/json";
import {
  ALICE,
  ALL_VERSIONS,
  AuthRoom,
  BOB,
  CAROL,
  expectAllowed,
  expectRejected,
  usersWithCreator,
} from "../../helpers/auth-events";

const TOKEN = "abc123";
const KEY_A = "keyA";
const KEY_B = "keyB";

/** A stand-in for ed25519: "sig:K" is a valid signature under key K. */
const fakeVerify: AuthChecks = { verifySignature: (_signed, signature, key) => signature === `sig:${key}` };

function signedBlock(mxid: string, signatures: JsonObject = { "id.example": { "ed25519:0": `sig:${KEY_A}` } }): JsonObject {
  return { mxid, token: TOKEN, signatures };
}

function roomWithInvite(versionId: string, inviteContent: JsonObject = { public_key: KEY_A }): AuthRoom {
  const room = new AuthRoom(versionId);
  room.force(
    room.stateEvent("m.room.third_party_invite", TOKEN, ALICE, { display_name: "b...@example.com", key_validity_url: "https://id.example/isvalid", ...inviteContent }),
  );
  return room;
}

function thirdPartyInvite(room: AuthRoom, target: string, thirdParty: JsonValue, sender = ALICE) {
  return room.member(sender, target, "invite", { third_party_invite: thirdParty });
}

for (const v of ALL_VERSIONS) {
  describe(`room version ${v.id}: 5.4.1`, () => {
    test("5.4.1.7: a signature matching public_key allows", () => {
      const room = roomWithInvite(v.id);
      expectAllowed(room.check(thirdPartyInvite(room, BOB, { display_name: "Bob", signed: signedBlock(BOB) }), fakeVerify));
    });

    test("5.4.1.7: a signature matching any of public_keys allows", () => {
      const room = roomWithInvite(v.id, { public_key: "other", public_keys: [{ public_key: "x" }, { public_key: KEY_B }] });
      const signed = signedBlock(BOB, { "id.example": { "ed25519:0": "junk", "ed25519:1": `sig:${KEY_B}` } });
      expectAllowed(room.check(thirdPartyInvite(room, BOB, { signed }), fakeVerify));
    });

    test("5.4.1.8: no matching signature rejects", () => {
      const room = roomWithInvite(v.id);
      const signed = signedBlock(BOB, { "id.example": { "ed25519:0": `sig:${KEY_B}` } });
      expectRejected(room.check(thirdPartyInvite(room, BOB, { signed }), fakeVerify), /signature/);
      expectRejected(room.check(thirdPartyInvite(room, BOB, { signed: { mxid: BOB, token: TOKEN } }), fakeVerify), /signature/);
    });

    test("5.4.1.8: without a verifySignature check nothing matches", () => {
      const room = roomWithInvite(v.id);
      expectRejected(room.check(thirdPartyInvite(room, BOB, { signed: signedBlock(BOB) })), /signature/);
    });

    test("5.4.1.1: a banned target rejects", () => {
      const room = roomWithInvite(v.id);
      room.force(room.member(ALICE, BOB, "ban"));
      expectRejected(room.check(thirdPartyInvite(room, BOB, { signed: signedBlock(BOB) }), fakeVerify), /banned/);
    });

    test("5.4.1.2: no signed object rejects", () => {
      const room = roomWithInvite(v.id);
      expectRejected(room.check(thirdPartyInvite(room, BOB, { display_name: "Bob" }), fakeVerify), /signed/);
      expectRejected(room.check(thirdPartyInvite(room, BOB, { signed: "x" }), fakeVerify), /signed/);
      expectRejected(room.check(thirdPartyInvite(room, BOB, null), fakeVerify), /signed/);
    });

    test("5.4.1.3: signed without mxid or token rejects", () => {
      const room = roomWithInvite(v.id);
      const { mxid: _m, ...noMxid } = signedBlock(BOB);
      const { token: _t, ...noToken } = signedBlock(BOB);
      expectRejected(room.check(thirdPartyInvite(room, BOB, { signed: noMxid }), fakeVerify), /mxid or token/);
      expectRejected(room.check(thirdPartyInvite(room, BOB, { signed: noToken }), fakeVerify), /mxid or token/);
    });

    test("5.4.1.4: mxid must be the state_key", () => {
      const room = roomWithInvite(v.id);
      expectRejected(room.check(thirdPartyInvite(room, BOB, { signed: signedBlock(CAROL) }), fakeVerify), /mxid/);
    });

    test("5.4.1.5: the token must name an m.room.third_party_invite in the state", () => {
      const room = roomWithInvite(v.id);
      const signed = { ...signedBlock(BOB), token: "other" };
      expectRejected(room.check(thirdPartyInvite(room, BOB, { signed }), fakeVerify), /third_party_invite/);
    });

    test("5.4.1.6: the sender must be the one who sent the m.room.third_party_invite", () => {
      const room = roomWithInvite(v.id);
      room.setMembership(CAROL, "join");
      expectRejected(room.check(thirdPartyInvite(room, BOB, { signed: signedBlock(BOB) }, CAROL), fakeVerify), /sender/);
    });

    test("5.4.1 decides alone: 5.4.2-5.4.4 (sender joined, target not joined, invite level) are not reached", () => {
      const room = roomWithInvite(v.id);
      room.setMembership(BOB, "join");
      room.force(room.member(ALICE, ALICE, "leave"));
      expectAllowed(room.check(thirdPartyInvite(room, BOB, { signed: signedBlock(BOB) }), fakeVerify));
    });
  });

  describe(`room version ${v.id}: rule 7, m.room.third_party_invite`, () => {
    test("allowed at the invite level, whatever events[] says (rule 8 is not reached)", () => {
      const room = new AuthRoom(v.id);
      room.setMembership(BOB, "join");
      room.setPowerLevels({
        users: usersWithCreator(v),
        events: { "m.room.third_party_invite": 100 },
        state_default: 100,
      });
      expectAllowed(room.check(room.stateEvent("m.room.third_party_invite", TOKEN, BOB, { public_key: KEY_A })));
    });
    test("rejected below the invite level", () => {
      const room = new AuthRoom(v.id);
      room.setMembership(BOB, "join");
      room.setPowerLevels({ users: usersWithCreator(v), invite: 1 });
      expectRejected(room.check(room.stateEvent("m.room.third_party_invite", TOKEN, BOB, { public_key: KEY_A })), /invite level/);
    });
    test("rejected from a non-member (rule 6 comes first)", () => {
      const room = new AuthRoom(v.id);
      expectRejected(room.check(room.stateEvent("m.room.third_party_invite", TOKEN, BOB, {})), /not joined/);
    });
  });
}

test("a real ed25519 verifySignature fits the callback", async () => {
  ed.hashes.sha512 = (message: Uint8Array) => new Uint8Array(new Bun.CryptoHasher("sha512").update(message).digest());
  const secret = ed.utils.randomSecretKey();
  const publicKey = Buffer.from(ed.getPublicKey(secret)).toString("base64").replace(/=+$/, "");
  // Canonical JSON of {mxid, token} (ASCII, keys in order): what the identity server signs.
  const canonical = (o: JsonObject) => JSON.stringify(Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1))));
  const unsigned = { mxid: BOB, token: TOKEN };
  const signature = Buffer.from(ed.sign(new TextEncoder().encode(canonical(unsigned)), secret)).toString("base64").replace(/=+$/, "");
  const checks: AuthChecks = {
    verifySignature(signed, sig, key) {
      const { signatures: _s, unsigned: _u, ...body } = signed;
      return ed.verify(Buffer.from(sig, "base64"), new TextEncoder().encode(canonical(body)), Buffer.from(key, "base64"));
    },
  };
  const room = roomWithInvite("10", { public_key: publicKey });
  const signed = { ...unsigned, signatures: { "id.example": { "ed25519:0": signature } } };
  expectAllowed(room.check(thirdPartyInvite(room, BOB, { signed }), checks));
  const forged = { ...signed, mxid: BOB, token: TOKEN, extra: "tampered" };
  expect(room.check(thirdPartyInvite(room, BOB, { signed: forged }), checks).allowed).toBe(false);
});
