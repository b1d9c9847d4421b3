// The spam policies of a server apply to events that arrive from other servers, as to its own
// users': a received event a policy calls spam is stored redacted and soft-failed (never shown,
// never built on), and the sender's next events still arrive.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, enc } from "../helpers/rooms";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";
import { resolve, Tokens } from "../../src/di/tokens";

let a: FederatedServer;
let b: FederatedServer;

beforeAll(async () => {
  a = await federatedServer({
    registration: { enabled: true },
    plugins: [{ name: "spam-policy", config: { messages: { keywords: ["crypto giveaway"] } } }],
  });
  b = await federatedServer({ registration: { enabled: true } });
});

afterAll(async () => {
  await a?.server.stop();
  await b?.server.stop();
});

async function bodies(client: TestClient, roomId: string): Promise<string[]> {
  const messages = await client.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
  return (messages.chunk as { type: string; content: { body?: string } }[]).filter((e) => e.type === "m.room.message").map((e) => e.content.body!).reverse();
}

describe("spam checks on received events", () => {
  test("a remote user's spam is stored redacted and soft-failed on A; their next message shows; B keeps its own copy", async () => {
    const alice = await TestClient.register(a.server, "alice");
    const bob = await TestClient.register(b.server, "bob");
    const roomId = await alice.createRoom({ preset: "public_chat", room_alias_name: "spamtest" });
    await bob.ok("POST", `/join/${enc(`#spamtest:${a.serverName}`)}`, {});
    await eventually(async () => (await alice.ok("GET", `/rooms/${enc(roomId)}/members`)).chunk.some((e: { state_key: string }) => e.state_key === bob.userId), 10_000, "bob's join on A");

    const sinceA = (await alice.ok("GET", "/sync?timeout=0")).next_batch;
    const spamId = await bob.send(roomId, { msgtype: "m.text", body: "a CRYPTO GIVEAWAY for you" });
    await bob.send(roomId, { msgtype: "m.text", body: "sorry, wrong room" });
    const onA = await eventually(async () => {
      const seen = await bodies(alice, roomId);
      return seen.includes("sorry, wrong room") && seen;
    }, 10_000, "bob's second message on A");
    expect(onA.some((x) => x.toLowerCase().includes("crypto giveaway"))).toBe(false);

    const stored = await resolve(a.server.container, Tokens.RoomEventStore).getEvent(spamId);
    expect(stored?.softFailed).toBe(true);
    expect(JSON.parse(stored!.json).content).toEqual({});
    // Not built on: A's next event does not cite it.
    expect(await resolve(a.server.container, Tokens.RoomEventStore).forwardExtremities(roomId)).not.toContain(spamId);
    const sync = await alice.ok("GET", `/sync?timeout=0&since=${enc(sinceA)}`);
    const ids = ((sync.rooms?.join?.[roomId]?.timeline?.events ?? []) as { event_id: string }[]).map((e) => e.event_id);
    expect(ids).not.toContain(spamId);
    // The policy is A's: B, without one, shows its user's message as sent.
    expect(await bodies(bob, roomId)).toContain("a CRYPTO GIVEAWAY for you");
  }, 30_000);
});
