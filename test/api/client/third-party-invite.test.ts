// Third-party invites through an identity server: POST /rooms/{roomId}/invite with a 3PID looks
// it up (hash_details + sha256 lookup) and invites a bound user directly; an unbound one is stored
// at the identity server (/store-invite) and the room gets an m.room.third_party_invite event; the
// identity server's /3pid/onbind then turns it into an m.room.member invite carrying the signed
// token, which the invitee accepts (even after the inviter left). createRoom's invite_3pid does the
// same. Bad input, an unreachable identity server, a signature under another key and a revoked key
// are refused; a join carrying third_party_signed makes the invite itself.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { request, testServer } from "../../helpers/server";
import { FakeIdentityServer, ID_ACCESS_TOKEN, PEPPER } from "../../helpers/identity-server";
import { enc, TestClient, V3 } from "../../helpers/rooms";
import { expectMatchesSpec } from "../../helpers/openapi";
import type { PortierServer } from "../../../src/app";
import { encodeBase64, encodeUrlSafeBase64 } from "../../../src/protocol/base64";
import { nativeEd25519 } from "../../../src/protocol/signing/ed25519";
import { signJson } from "../../../src/protocol/signing/sign-json";
import { verifyThirdPartyInviteSignature } from "../../../src/protocol/signing/third-party-invite";

let ids: FakeIdentityServer;
let server: PortierServer;
beforeAll(async () => {
  ids = new FakeIdentityServer();
  server = await testServer({ registration: { enabled: true }, identity: { plain_http_servers: [ids.name], allow_loopback: true } });
});
afterAll(async () => {
  await server.stop();
  ids.server.stop(true);
});

let n = 0;
const email = () => `someone${n++}@example.org`;
const invite3pid = (address: string) => ({ id_server: ids.name, id_access_token: ID_ACCESS_TOKEN, medium: "email", address });
const memberOf = (client: TestClient, roomId: string, userId: string) => client.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);

describe("POST /rooms/{roomId}/invite with a 3PID", () => {
  test("a bound 3PID is looked up (sha256, with the pepper and the access token) and its user invited", async () => {
    const alice = await TestClient.register(server, "tpi_alice");
    const bob = await TestClient.register(server, "tpi_bob");
    const address = email();
    await ids.bind(server, "email", address, bob.userId);
    const roomId = await alice.createRoom({ preset: "private_chat" });
    const before = ids.requests.length;
    expect(await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, invite3pid(address))).toEqual({});
    const lookup = ids.requests.slice(before).find((r) => r.path === "/_matrix/identity/v2/lookup");
    expect(lookup).toMatchObject({ authorization: `Bearer ${ID_ACCESS_TOKEN}`, body: { algorithm: "sha256", pepper: PEPPER } });
    expect(lookup!.body.addresses).toEqual([encodeUrlSafeBase64(createHash("sha256").update(`${address} email ${PEPPER}`).digest())]);
    expect(ids.requests.slice(before).some((r) => r.path === "/_matrix/identity/v2/store-invite")).toBe(false);
    const member = await memberOf(alice, roomId, bob.userId);
    expect(member.body.membership).toBe("invite");
    expect(member.body.third_party_invite).toBeUndefined();
  });

  test("an unbound 3PID is stored at the identity server and becomes an m.room.third_party_invite; onbind makes the invite, which is accepted", async () => {
    const alice = await TestClient.register(server, "tpi_inviter");
    const carol = await TestClient.register(server, "tpi_carol");
    const address = email();
    const roomId = await alice.createRoom({ preset: "private_chat", name: "Lemurs" });
    const before = ids.requests.length;
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, invite3pid(address));
    const stored = ids.requests.slice(before).find((r) => r.path === "/_matrix/identity/v2/store-invite");
    expect(stored).toMatchObject({ authorization: `Bearer ${ID_ACCESS_TOKEN}`, body: { medium: "email", address, room_id: roomId, sender: alice.userId, room_name: "Lemurs", room_join_rules: "invite" } });

    const state: any[] = await alice.ok("GET", `/rooms/${enc(roomId)}/state`);
    const event = state.find((e) => e.type === "m.room.third_party_invite");
    expect(event.sender).toBe(alice.userId);
    const validity = `http://${ids.name}/_matrix/identity/v2/pubkey/isvalid`;
    expect(event.content).toEqual({
      display_name: "Bob",
      key_validity_url: validity,
      public_key: ids.publicKey,
      public_keys: [
        { public_key: ids.publicKey, key_validity_url: validity },
        { public_key: ids.ephemeralPublicKey, key_validity_url: validity },
      ],
    });
    expect((await memberOf(alice, roomId, carol.userId)).status).toBe(404);

    const bound = await ids.bind(server, "email", address, carol.userId);
    expect(bound).toMatchObject({ status: 200, body: {} });
    const member = (await memberOf(alice, roomId, carol.userId)).body;
    expect(member.membership).toBe("invite");
    expect(member.third_party_invite.display_name).toBe("Bob");
    expect(member.third_party_invite.signed).toMatchObject({ mxid: carol.userId, token: event.state_key });
    // The invite's key was asked about at its key_validity_url.
    expect(ids.requests.some((r) => r.method === "GET" && r.path === "/_matrix/identity/v2/pubkey/isvalid")).toBe(true);

    const sync = await carol.ok("GET", "/sync");
    expect(sync.rooms.invite[roomId].invite_state.events.some((e: any) => e.type === "m.room.member" && e.state_key === alice.userId)).toBe(true);
    await carol.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    expect((await memberOf(alice, roomId, carol.userId)).body.membership).toBe("join");
  });

  test("the invite is accepted after the inviter has left", async () => {
    const alice = await TestClient.register(server, "tpi_leaver");
    const other = await TestClient.register(server, "tpi_other");
    const dave = await TestClient.register(server, "tpi_dave");
    const address = email();
    const roomId = await alice.createRoom({ preset: "private_chat", invite: [other.userId] });
    await other.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, invite3pid(address));
    await alice.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    await ids.bind(server, "email", address, dave.userId);
    await dave.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    expect((await memberOf(other, roomId, dave.userId)).body.membership).toBe("join");
  });

  test("createRoom's invite_3pid invites a bound user, and stores an invite for an unbound address", async () => {
    const alice = await TestClient.register(server, "tpi_creator");
    const erin = await TestClient.register(server, "tpi_erin");
    const boundAddress = email();
    await ids.bind(server, "email", boundAddress, erin.userId);
    const roomId = await alice.createRoom({ invite_3pid: [invite3pid(boundAddress), invite3pid(email())] });
    expect((await memberOf(alice, roomId, erin.userId)).body.membership).toBe("invite");
    const state: any[] = await alice.ok("GET", `/rooms/${enc(roomId)}/state`);
    expect(state.filter((e) => e.type === "m.room.third_party_invite")).toHaveLength(1);
    // A malformed entry is refused before any room is made.
    const rooms = (await alice.ok("GET", "/joined_rooms")).joined_rooms.length;
    await alice.fails("POST", "/createRoom", { invite_3pid: [{ id_server: ids.name, medium: "email", address: email() }] }, 400, "M_MISSING_PARAM");
    expect((await alice.ok("GET", "/joined_rooms")).joined_rooms.length).toBe(rooms);
  });

  test("bad input, a non-member, an unreachable or refusing identity server: Matrix errors, nothing stored", async () => {
    const alice = await TestClient.register(server, "tpi_bad");
    const mallory = await TestClient.register(server, "tpi_mallory");
    const roomId = await alice.createRoom({ preset: "private_chat" });
    const path = `/rooms/${enc(roomId)}/invite`;
    const before = ids.requests.length;
    await alice.fails("POST", path, { id_server: ids.name, id_access_token: ID_ACCESS_TOKEN, medium: "email" }, 400, "M_MISSING_PARAM");
    await alice.fails("POST", path, { id_server: ids.name, medium: "email", address: email() }, 400, "M_MISSING_PARAM");
    await alice.fails("POST", path, { ...invite3pid(email()), id_server: "https://not a name" }, 400, "M_INVALID_PARAM");
    await mallory.fails("POST", path, invite3pid(email()), 403, "M_FORBIDDEN");
    expect(ids.requests.length).toBe(before);

    // A port nothing listens on.
    const gone = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const deadName = `127.0.0.1:${gone.port}`;
    gone.stop(true);
    const unreachable = await alice.call("POST", path, { ...invite3pid(email()), id_server: deadName });
    expect({ status: unreachable.status, errcode: unreachable.body.errcode }).toEqual({ status: 502, errcode: "M_UNKNOWN" });
    expect(unreachable.body.error).toContain(deadName);

    await alice.fails("POST", path, { ...invite3pid(email()), id_access_token: "wrong" }, 401, "M_UNAUTHORIZED");
    const state: any[] = await alice.ok("GET", `/rooms/${enc(roomId)}/state`);
    expect(state.some((e) => e.type === "m.room.third_party_invite")).toBe(false);
  });
});

describe("POST /_matrix/federation/v1/3pid/onbind", () => {
  async function pendingInvite(name: string) {
    const alice = await TestClient.register(server, `${name}_a`);
    const invitee = await TestClient.register(server, `${name}_b`);
    const address = email();
    const roomId = await alice.createRoom({});
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, invite3pid(address));
    return { alice, invitee, address, roomId };
  }

  async function expectNoInvite(alice: TestClient, invitee: TestClient, roomId: string) {
    expect((await memberOf(alice, roomId, invitee.userId)).status).toBe(404);
    await invitee.fails("POST", `/rooms/${enc(roomId)}/join`, {}, 403, "M_FORBIDDEN");
  }

  test("a signature under a key the invite does not list is refused", async () => {
    const { alice, invitee, address, roomId } = await pendingInvite("tpi_wrongkey");
    ids.rotateKeys();
    const refused = await ids.bind(server, "email", address, invitee.userId);
    expect({ status: refused.status, errcode: refused.body.errcode }).toEqual({ status: 403, errcode: "M_FORBIDDEN" });
    await expectNoInvite(alice, invitee, roomId);
  });

  test("a valid signature under a key the identity server has since revoked is refused", async () => {
    const { alice, invitee, address, roomId } = await pendingInvite("tpi_revoked");
    expect((await ids.bind(server, "email", address, invitee.userId, () => ids.revoked.add(ids.publicKey))).status).toBe(403);
    await expectNoInvite(alice, invitee, roomId);
  });

  test("a valid signature is refused when the key's validity cannot be checked", async () => {
    const { alice, invitee, address, roomId } = await pendingInvite("tpi_unreachable");
    const stored: any[] = await alice.ok("GET", `/rooms/${enc(roomId)}/state`);
    const event = stored.find((e) => e.type === "m.room.third_party_invite");
    // The same invite, in a room whose third-party invite names a validity URL nothing answers.
    const gone = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const deadUrl = `http://127.0.0.1:${gone.port}/_matrix/identity/v2/pubkey/isvalid`;
    gone.stop(true);
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.third_party_invite/${enc(event.state_key)}`, {
      ...event.content,
      key_validity_url: deadUrl,
      public_keys: [{ public_key: ids.publicKey, key_validity_url: deadUrl }],
    });
    expect((await ids.bind(server, "email", address, invitee.userId)).status).toBe(403);
    await expectNoInvite(alice, invitee, roomId);
  });

  test("malformed notifications are 400s; invites for users of other servers are not ours", async () => {
    const onbind = (body: unknown) => request(server, "POST", "/_matrix/federation/v1/3pid/onbind", body);
    expect((await onbind({ medium: "email", address: "x@example.org" })).body.errcode).toBe("M_INVALID_PARAM");
    expect((await onbind({ medium: "email", address: "x@example.org", mxid: "@someone:elsewhere.example", invites: [] })).status).toBe(400);
    expect((await onbind({ medium: "email", address: "x@example.org", mxid: "@x:localhost", invites: "no" })).status).toBe(400);
    // PUT, the spec's method, is served too.
    expect((await request(server, "PUT", "/_matrix/federation/v1/3pid/onbind", { medium: "email", address: "x@example.org", mxid: `@nobody:${server.config.server_name}`, invites: [] })).status).toBe(200);
  });
});

describe("POST /join with third_party_signed", () => {
  test("the signed token (here under the ephemeral key) makes the invite, then the join", async () => {
    const alice = await TestClient.register(server, "tpi_signed_a");
    const frank = await TestClient.register(server, "tpi_signed_b");
    const roomId = await alice.createRoom({});
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, invite3pid(email()));
    const state: any[] = await alice.ok("GET", `/rooms/${enc(roomId)}/state`);
    const token = state.find((e) => e.type === "m.room.third_party_invite").state_key;
    const signed = ids.sign({ mxid: frank.userId, sender: alice.userId, token }, ids.ephemeralSeed);
    await frank.fails("POST", `/join/${enc(roomId)}`, { third_party_signed: { ...signed, mxid: alice.userId } }, 403, "M_FORBIDDEN");
    const bad = ids.sign({ mxid: frank.userId, sender: alice.userId, token }, randomBytes(32));
    await frank.fails("POST", `/join/${enc(roomId)}`, { third_party_signed: bad }, 403, "M_FORBIDDEN");
    const joined = await frank.call("POST", `${V3}/join/${enc(roomId)}`, { third_party_signed: signed });
    expect(joined).toMatchObject({ status: 200, body: { room_id: roomId } });
    expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/join/${enc(roomId)}`, status: 200, body: joined.body });
    expect((await memberOf(alice, roomId, frank.userId)).body.membership).toBe("join");
  });
});

describe("verifyThirdPartyInviteSignature", () => {
  test("accepts the key in either Base64 alphabet, refuses another key and a changed object", () => {
    const seed = randomBytes(32);
    const publicKey = nativeEd25519.publicKeyFromSeed(seed);
    const signed = signJson({ mxid: "@a:b", token: "t" }, "id.example", "ed25519:0", seed);
    const signature = signed.signatures["id.example"]!["ed25519:0"]!;
    expect(verifyThirdPartyInviteSignature(signed, signature, encodeBase64(publicKey))).toBe(true);
    expect(verifyThirdPartyInviteSignature(signed, signature, encodeUrlSafeBase64(publicKey))).toBe(true);
    expect(verifyThirdPartyInviteSignature(signed, signature, encodeBase64(nativeEd25519.publicKeyFromSeed(randomBytes(32))))).toBe(false);
    expect(verifyThirdPartyInviteSignature({ ...signed, token: "u" }, signature, encodeBase64(publicKey))).toBe(false);
    expect(verifyThirdPartyInviteSignature(signed, "not base64!", encodeBase64(publicKey))).toBe(false);
  });
});
