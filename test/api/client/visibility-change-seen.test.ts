// An m.room.history_visibility event is visible when the visibility before it or after it lets the
// user see it (client-server-api "Room History Visibility", server behaviour): a user who joins later
// sees the change to "joined" that shut them out of what followed, in /messages and in /sync.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";

let server: PortierServer;
let alice: TestClient;
beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
});
afterAll(() => server.stop());

async function setVisibility(roomId: string, history_visibility: string): Promise<string> {
  return (await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.history_visibility/`, { history_visibility })).event_id;
}

describe("history_visibility changes", () => {
  test.each(["joined", "invited"])("shared -> %s: a later joiner sees the change, the message before it, not the one after", async (visibility) => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    const before = await alice.send(roomId, { msgtype: "m.text", body: "shared" });
    const change = await setVisibility(roomId, visibility);
    const hidden = await alice.send(roomId, { msgtype: "m.text", body: "pre_join" });
    const joiner = await TestClient.register(server, `joiner-${visibility}`);
    await joiner.ok("POST", `/join/${enc(roomId)}`, {});
    const after = await alice.send(roomId, { msgtype: "m.text", body: "post_join" });

    const ids = (await joiner.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`)).chunk.map((e: { event_id: string }) => e.event_id);
    expect(ids).toContain(before);
    expect(ids).toContain(change);
    expect(ids).not.toContain(hidden);
    expect(ids).toContain(after);

    const sync = await joiner.ok("GET", "/sync?timeout=0");
    const timeline = sync.rooms.join[roomId].timeline.events.map((e: { event_id: string }) => e.event_id);
    expect(timeline.slice(-4)).toEqual([before, change, expect.any(String), after]);
  });

  test("a change neither side of which lets the user see it stays hidden (joined -> invited, before their invite)", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat", initial_state: [{ type: "m.room.history_visibility", content: { history_visibility: "joined" } }] });
    const change = await setVisibility(roomId, "invited");
    const joiner = await TestClient.register(server, "joiner-late");
    await joiner.ok("POST", `/join/${enc(roomId)}`, {});
    const ids = (await joiner.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`)).chunk.map((e: { event_id: string }) => e.event_id);
    expect(ids).not.toContain(change);
  });
});
