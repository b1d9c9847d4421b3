// A guest of one server joining a room on another: refused unless the room's m.room.guest_access
// is can_join (client-server-api "Guest Access", server behaviour). Being a guest is known only to
// the guest's own server, so the refusal is its own; when the room's state is first seen in the
// send_join answer, the guest leaves at once.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, V3, enc } from "../helpers/rooms";
import { request } from "../helpers/server";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";

let a: FederatedServer;
let b: FederatedServer;

beforeAll(async () => {
  a = await federatedServer({ registration: { enabled: true } });
  b = await federatedServer({ registration: { enabled: true, allow_guest_access: true } });
});

afterAll(async () => {
  await a?.server.stop();
  await b?.server.stop();
});

async function guestOfB(): Promise<TestClient> {
  const r = await request(b.server, "POST", `${V3}/register?kind=guest`, {});
  if (r.status !== 200) throw new Error(`guest registration: ${r.status} ${JSON.stringify(r.body)}`);
  return new TestClient(b.server, r.body.user_id, r.body.device_id, r.body.access_token);
}

async function membershipOn(client: TestClient, roomId: string, userId: string): Promise<string | undefined> {
  const members = await client.ok("GET", `/rooms/${enc(roomId)}/members`);
  return (members.chunk as { state_key: string; content: { membership: string } }[]).find((e) => e.state_key === userId)?.content.membership;
}

describe("guests joining over federation", () => {
  test("an invited guest may not join a remote room without can_join guest access: 403, and it is not left in the room", async () => {
    const alice = await TestClient.register(a.server, "alice");
    const guest = await guestOfB();
    const roomId = await alice.createRoom({ preset: "private_chat" });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.guest_access/`, { guest_access: "forbidden" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: guest.userId });
    await eventually(async () => (await guest.ok("GET", "/sync?timeout=0")).rooms?.invite?.[roomId], 10_000, "the guest's invite");
    await guest.fails("POST", `/join/${enc(roomId)}`, {}, 403, "M_FORBIDDEN");
    await eventually(async () => (await membershipOn(alice, roomId, guest.userId)) === "leave", 10_000, "the guest out of the room on A");
  }, 30_000);

  test("with can_join, the invited guest joins", async () => {
    const alice = await TestClient.register(a.server, "alice2");
    const guest = await guestOfB();
    const roomId = await alice.createRoom({ preset: "private_chat" });
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.guest_access/`, { guest_access: "can_join" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: guest.userId });
    await eventually(async () => (await guest.ok("GET", "/sync?timeout=0")).rooms?.invite?.[roomId], 10_000, "the guest's invite");
    await guest.ok("POST", `/join/${enc(roomId)}`, {});
    await eventually(async () => (await membershipOn(alice, roomId, guest.userId)) === "join", 10_000, "the guest's join on A");
  }, 30_000);
});
