// Ignoring users (m.ignored_user_list): their events leave /sync timelines and /messages, and their
// invites are not shown; others' events are untouched.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";
import type { PortierServer } from "../../../src/app";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
  [alice, bob, carol] = await Promise.all(["alice", "bob", "carol"].map((n) => TestClient.register(server, n)));
});
afterAll(() => server.stop());

const ignore = (who: TestClient, users: string[]) => who.ok("PUT", `/user/${enc(who.userId)}/account_data/m.ignored_user_list`, { ignored_users: Object.fromEntries(users.map((u) => [u, {}])) });
const bodies = (events: { type: string; content: { body?: string } }[]) => events.filter((e) => e.type === "m.room.message").map((e) => e.content.body);

describe("ignoring users", () => {
  test("an ignored user's messages are left out of /sync and /messages; others' stay", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    for (const c of [bob, carol]) await c.ok("POST", `/join/${enc(roomId)}`, {});
    await ignore(alice, [bob.userId]);
    const since = (await alice.ok("GET", "/sync?timeout=0")).next_batch;
    await bob.send(roomId, { msgtype: "m.text", body: "from bob" });
    await carol.send(roomId, { msgtype: "m.text", body: "from carol" });
    const r = await alice.ok("GET", `/sync?timeout=0&since=${enc(since)}`);
    expect(bodies(r.rooms.join[roomId].timeline.events)).toEqual(["from carol"]);
    const page = await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=20`);
    expect(bodies(page.chunk)).toEqual(["from carol"]);
    // Not ignoring any more: bob's messages are there again.
    await ignore(alice, []);
    expect(bodies((await alice.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=20`)).chunk)).toEqual(["from carol", "from bob"]);
  });

  test("an invite from an ignored user is not shown, in a full or an incremental sync", async () => {
    await ignore(carol, [bob.userId]);
    const since = (await carol.ok("GET", "/sync?timeout=0")).next_batch;
    const roomId = await bob.createRoom({ preset: "private_chat" });
    await bob.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: carol.userId });
    expect((await carol.ok("GET", `/sync?timeout=0&since=${enc(since)}`)).rooms.invite[roomId]).toBeUndefined();
    expect((await carol.ok("GET", "/sync?timeout=0")).rooms.invite[roomId]).toBeUndefined();
    // alice's invite still shows.
    const fromAlice = await alice.createRoom({ preset: "private_chat" });
    await alice.ok("POST", `/rooms/${enc(fromAlice)}/invite`, { user_id: carol.userId });
    expect((await carol.ok("GET", "/sync?timeout=0")).rooms.invite[fromAlice]).toBeDefined();
  });
});
