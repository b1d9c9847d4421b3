// Erasure on deactivation (client-server-api "Account deactivation", `erase`): a user who was in the
// room when the erased user's events were sent still sees them whole in /messages, /sync, /event and
// /context; one who joins after the erasure sees them pruned (the redaction algorithm, no
// redacted_because). Room state stays whole for everyone. The erased user's account data is gone,
// and the erasure holds across a restart. A deactivation without erase changes no event.
import { afterAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { TestClient, enc } from "../../helpers/rooms";
import { tempDir, testServer } from "../../helpers/server";

const dataDir = tempDir();
const config = { registration: { enabled: true }, data_dir: dataDir };
let server: PortierServer = await testServer(config);
afterAll(() => server.stop());

async function deactivate(client: TestClient, erase: boolean): Promise<void> {
  const first = await client.call("POST", "/account/deactivate", { erase });
  expect(first.status).toBe(401);
  const auth = { type: "m.login.password", identifier: { type: "m.id.user", user: client.userId }, password: "pw", session: first.body.session };
  await client.ok("POST", "/account/deactivate", { erase, auth });
}

const timelineFilter = enc(JSON.stringify({ room: { timeline: { limit: 50 } } }));
const stateFilter = enc(JSON.stringify({ room: { timeline: { limit: 1 } } }));

/** The events of a room's timeline in an initial /sync, by event ID. */
async function syncTimeline(client: TestClient, roomId: string): Promise<Map<string, any>> {
  const body = await client.ok("GET", `/sync?timeout=0&filter=${timelineFilter}`);
  return new Map(body.rooms.join[roomId].timeline.events.map((e: any) => [e.event_id, e]));
}

async function messages(client: TestClient, roomId: string): Promise<Map<string, any>> {
  const body = await client.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
  return new Map(body.chunk.map((e: any) => [e.event_id, e]));
}

describe("erasure on deactivation", () => {
  test("earlier members see the erased user's events whole, later ones pruned; state whole; account data gone; across a restart", async () => {
    const alice = await TestClient.register(server, "erased");
    const dave = await TestClient.register(server, "deactivated");
    const bob = await TestClient.register(server, "before");
    const carol = await TestClient.register(server, "after");
    const roomId = await bob.createRoom({ preset: "public_chat", power_level_content_override: { events: { "m.room.topic": 0 } } });
    await alice.ok("POST", `/join/${enc(roomId)}`, {});
    await dave.ok("POST", `/join/${enc(roomId)}`, {});
    const message = await alice.send(roomId, { msgtype: "m.text", body: "forget me" });
    const topic = (await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.topic/`, { topic: "alice's topic" })).event_id as string;
    const kept = await dave.send(roomId, { msgtype: "m.text", body: "keep me" });
    await bob.send(roomId, { msgtype: "m.text", body: "last word" });
    await alice.ok("PUT", `/user/${enc(alice.userId)}/account_data/org.example.secret`, { secret: 1 });
    await alice.ok("PUT", `/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/org.example.pin`, { pinned: true });
    await bob.ok("PUT", `/user/${enc(bob.userId)}/account_data/org.example.secret`, { secret: 2 });

    await deactivate(dave, false);
    await deactivate(alice, true);
    await carol.ok("POST", `/join/${enc(roomId)}`, {});

    const whole = (e: any) => expect(e.content).toEqual({ msgtype: "m.text", body: "forget me" });
    const pruned = (e: any) => {
      expect(e.content).toEqual({});
      expect(e.sender).toBe(alice.userId);
      expect(e.unsigned?.redacted_because).toBeUndefined();
    };
    const check = async (label: string) => {
      // Bob was joined when alice spoke: everything whole.
      const bobMessages = await messages(bob, roomId);
      whole(bobMessages.get(message));
      expect(bobMessages.get(topic).content).toEqual({ topic: "alice's topic" });
      whole((await syncTimeline(bob, roomId)).get(message));
      whole(await bob.ok("GET", `/rooms/${enc(roomId)}/event/${enc(message)}`));
      whole((await bob.ok("GET", `/rooms/${enc(roomId)}/context/${enc(message)}?limit=2`)).event);

      // Carol joined after the erasure: alice's events pruned, dave's (deactivated, not erased) whole.
      const carolMessages = await messages(carol, roomId);
      pruned(carolMessages.get(message));
      pruned(carolMessages.get(topic));
      expect(carolMessages.get(topic).unsigned?.prev_content).toBeUndefined();
      expect(carolMessages.get(kept).content).toEqual({ msgtype: "m.text", body: "keep me" });
      const carolSync = await syncTimeline(carol, roomId);
      pruned(carolSync.get(message));
      expect(carolSync.get(kept).content.body).toBe("keep me");
      pruned(await carol.ok("GET", `/rooms/${enc(roomId)}/event/${enc(message)}`));
      const context = await carol.ok("GET", `/rooms/${enc(roomId)}/context/${enc(kept)}?limit=10`);
      pruned(context.events_before.find((e: any) => e.event_id === message));
      pruned((await carol.ok("GET", `/rooms/${enc(roomId)}/context/${enc(message)}?limit=2`)).event);

      // Room state stays whole, in GET /state and in a sync's state section alike.
      expect(await carol.ok("GET", `/rooms/${enc(roomId)}/state/m.room.topic`)).toEqual({ topic: "alice's topic" });
      const stateSync = await carol.ok("GET", `/sync?timeout=0&filter=${stateFilter}`);
      const topicState = stateSync.rooms.join[roomId].state.events.find((e: any) => e.type === "m.room.topic");
      expect({ label, topic: topicState?.content }).toEqual({ label, topic: { topic: "alice's topic" } });
    };
    await check("before the restart");

    // The erased user's account data is gone; others' stays.
    const accountData = () => resolve(server.container, Tokens.AccountData);
    await expect(accountData().get(alice.userId, alice.userId, undefined, "org.example.secret")).rejects.toThrow("Account data not found");
    await expect(accountData().get(alice.userId, alice.userId, roomId, "org.example.pin")).rejects.toThrow("Account data not found");
    expect(await accountData().get(bob.userId, bob.userId, undefined, "org.example.secret")).toEqual({ secret: 2 });

    // The list of erased users is read again at start.
    await server.stop();
    server = await testServer(config);
    const reopened = (c: TestClient) => new TestClient(server, c.userId, c.deviceId, c.token);
    await (async (b: TestClient, c: TestClient) => {
      whole(await b.ok("GET", `/rooms/${enc(roomId)}/event/${enc(message)}`));
      pruned(await c.ok("GET", `/rooms/${enc(roomId)}/event/${enc(message)}`));
      pruned((await syncTimeline(c, roomId)).get(message));
    })(reopened(bob), reopened(carol));
  }, 30_000);
});
