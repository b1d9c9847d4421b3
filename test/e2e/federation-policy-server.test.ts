// Policy servers across three Portier servers over TLS: the room lives on A, P is its policy server
// (policy_server.enabled, with a spam policy), B is another member server. A asks P to sign its
// users' events and refuses what P refuses; A soft-fails a received event P will not sign; P's
// /_matrix/policy/v1/sign answers as the spec says.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, enc } from "../helpers/rooms";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";
import { resolve, Tokens } from "../../src/di/tokens";
import { request } from "../helpers/server";
import { RemoteMatrixError } from "../../src/services/federation/contracts";
import { roomVersion } from "../../src/protocol/room-versions";
import { computeEventId } from "../../src/protocol/signing/event-id";
import { POLICY_SERVER_KEY_ID } from "../../src/protocol/policy-server";
import type { JsonObject } from "../../src/protocol/json";

let a: FederatedServer;
let p: FederatedServer;
let b: FederatedServer;
const version = roomVersion("10")!;

beforeAll(async () => {
  a = await federatedServer({ registration: { enabled: true } });
  p = await federatedServer({
    registration: { enabled: true },
    policy_server: { enabled: true },
    plugins: [{ name: "spam-policy", config: { messages: { keywords: ["crypto giveaway"] } } }],
  });
  b = await federatedServer({ registration: { enabled: true } });
});

afterAll(async () => {
  for (const s of [a, p, b]) await s?.server.stop();
});

async function bodies(client: TestClient, roomId: string): Promise<string[]> {
  const messages = await client.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
  return (messages.chunk as { type: string; content: { body?: string } }[]).filter((e) => e.type === "m.room.message" && typeof e.content.body === "string").map((e) => e.content.body!).reverse();
}

/** A room on A with members of P and B, guarded by P once `guard` sets m.room.policy. */
async function guardedRoom(alias: string) {
  const alice = await TestClient.register(a.server, `alice-${alias}`);
  const warden = await TestClient.register(p.server, `warden-${alias}`);
  const bob = await TestClient.register(b.server, `bob-${alias}`);
  const roomId = await alice.createRoom({ preset: "public_chat", room_alias_name: alias, room_version: "10" });
  for (const user of [warden, bob]) await user.ok("POST", `/join/${enc(`#${alias}:${a.serverName}`)}`, {});
  await eventually(async () => {
    const members = await alice.ok("GET", `/rooms/${enc(roomId)}/joined_members`);
    return members.joined[warden.userId] && members.joined[bob.userId];
  }, 10_000, "P's and B's members on A");
  const wellKnown = await request(p.server, "GET", "/.well-known/matrix/policy_server");
  expect(wellKnown.status).toBe(200);
  await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.policy/`, { via: p.serverName, public_keys: wellKnown.body.public_keys });
  // P signs for rooms whose state it holds names it: it must have received the m.room.policy event.
  await eventually(async () => (await warden.call("GET", `/rooms/${enc(roomId)}/state/m.room.policy/`)).body?.via === p.serverName, 10_000, "the policy event on P");
  return { alice, warden, bob, roomId, policyKey: wellKnown.body.public_keys.ed25519 as string };
}

describe("a room guarded by a policy server", () => {
  test("A's events carry P's signature; what P refuses is refused to A's client with P's error, and stored nowhere", async () => {
    const { alice, warden, roomId } = await guardedRoom("guarded1");
    const okId = await alice.send(roomId, { msgtype: "m.text", body: "a fine message" });
    const stored = await resolve(a.server.container, Tokens.RoomEventStore).getEvent(okId);
    expect(JSON.parse(stored!.json).signatures[p.serverName]).toHaveProperty(POLICY_SERVER_KEY_ID);
    await eventually(async () => (await bodies(warden, roomId)).includes("a fine message"), 10_000, "the message on P");

    const refused = await alice.call("PUT", `/rooms/${enc(roomId)}/send/m.room.message/${crypto.randomUUID()}`, { msgtype: "m.text", body: "a crypto giveaway" });
    expect(refused.status).toBe(403);
    expect(refused.body.errcode).toBe("M_FORBIDDEN");
    expect(await bodies(alice, roomId)).not.toContain("a crypto giveaway");
    // The m.room.policy state event itself needs no signature: it can always switch the policy server off.
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.policy/`, {});
    await alice.send(roomId, { msgtype: "m.text", body: "a crypto giveaway, unguarded" });
    expect(await bodies(alice, roomId)).toContain("a crypto giveaway, unguarded");
  }, 30_000);

  test("a received event without P's signature is signed on asking when P agrees, and soft-failed when P refuses", async () => {
    const { alice, bob, roomId } = await guardedRoom("guarded2");
    // Events as a server that does not know policy servers sends them: B's user, signed by B alone.
    const store = resolve(a.server.container, Tokens.RoomEventStore);
    const pduFor = async (body: string): Promise<JsonObject> => {
      const prevEvents = await store.forwardExtremities(roomId);
      const depth = Math.max(...(await Promise.all(prevEvents.map((id) => store.getEvent(id)))).map((e) => e!.depth)) + 1;
      const authEvents: string[] = [];
      for (const [type, key] of [["m.room.create", ""], ["m.room.power_levels", ""], ["m.room.member", bob.userId]] as const) authEvents.push((await store.currentStateEvent(roomId, type, key))!);
      return resolve(b.server.container, Tokens.ServerKeys).signEvent({ room_id: roomId, sender: bob.userId, type: "m.room.message", content: { msgtype: "m.text", body }, origin_server_ts: Date.now(), depth, prev_events: prevEvents, auth_events: authEvents }, version);
    };
    const send = (pdus: JsonObject[]) =>
      resolve(b.server.container, Tokens.FederationClient).request("PUT", a.serverName, `/_matrix/federation/v1/send/${enc(crypto.randomUUID())}`, { body: { origin: b.serverName, origin_server_ts: Date.now(), pdus } });

    const fine = await pduFor("unsigned but fine");
    await send([fine]);
    expect((await store.getEvent(computeEventId(fine, version)))?.softFailed).toBe(false);
    expect(await bodies(alice, roomId)).toContain("unsigned but fine");

    const spam = await pduFor("a crypto giveaway from B");
    await send([spam]);
    expect((await store.getEvent(computeEventId(spam, version)))?.softFailed).toBe(true);
    expect(await bodies(alice, roomId)).not.toContain("a crypto giveaway from B");
  }, 30_000);
});

describe("POST /_matrix/policy/v1/sign", () => {
  test("refusals: not a policy server 404 M_UNRECOGNIZED; a room that does not name P 404 M_NOT_FOUND; the m.room.policy state event 400; spam 400 M_FORBIDDEN; no X-Matrix 401", async () => {
    const { alice, roomId } = await guardedRoom("guarded3");
    const event = (body: string, extra: JsonObject = {}): JsonObject => ({ room_id: roomId, sender: alice.userId, type: "m.room.message", content: { msgtype: "m.text", body }, origin_server_ts: Date.now(), depth: 10, prev_events: [], auth_events: [], hashes: { sha256: "x" }, ...extra });
    const askFrom = (server: FederatedServer, destination: string, pdu: JsonObject) => resolve(server.server.container, Tokens.FederationClient).request("POST", destination, "/_matrix/policy/v1/sign", { body: pdu });
    const refusal = async (call: Promise<unknown>) => {
      try {
        await call;
      } catch (error) {
        if (error instanceof RemoteMatrixError) return { status: error.status, errcode: error.errcode };
        throw error;
      }
      throw new Error("expected a refusal");
    };

    const signed = (await askFrom(a, p.serverName, event("hello"))) as Record<string, Record<string, string>>;
    expect(Object.keys(signed)).toEqual([p.serverName]);
    expect(Object.keys(signed[p.serverName]!)).toEqual([POLICY_SERVER_KEY_ID]);

    expect(await refusal(askFrom(a, b.serverName, event("hello")))).toEqual({ status: 404, errcode: "M_UNRECOGNIZED" });
    const elsewhere = await alice.createRoom({ preset: "public_chat" });
    expect(await refusal(askFrom(a, p.serverName, { ...event("hello"), room_id: elsewhere }))).toEqual({ status: 404, errcode: "M_NOT_FOUND" });
    expect(await refusal(askFrom(a, p.serverName, event("x", { type: "m.room.policy", state_key: "", content: {} })))).toEqual({ status: 400, errcode: "M_BAD_JSON" });
    expect(await refusal(askFrom(a, p.serverName, event("a crypto giveaway")))).toEqual({ status: 400, errcode: "M_FORBIDDEN" });
    const anonymous = await fetch(`${p.url}/_matrix/policy/v1/sign`, { method: "POST", body: JSON.stringify(event("hello")), tls: { rejectUnauthorized: false } } as RequestInit);
    expect(anonymous.status).toBe(401);
  }, 30_000);
});
