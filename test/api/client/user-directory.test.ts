// POST /user_directory/search: users who share a private room with the searcher, and users of public
// rooms (join rule public or world_readable history), found by user ID or display name; nobody else.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";
import type { PortierServer } from "../../../src/app";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
let dave: TestClient;

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
  [alice, bob, carol, dave] = await Promise.all(["alice", "bob", "carol", "dave"].map((n) => TestClient.register(server, n)));
  await bob.ok("PUT", `/profile/${enc(bob.userId)}/displayname`, { displayname: "Bobby Tables" });
  await dave.ok("PUT", `/profile/${enc(dave.userId)}/displayname`, { displayname: "Dave in public" });
  // alice shares a private room with bob; dave sits in a room of the public directory; carol is nowhere.
  const shared = await alice.createRoom({ preset: "private_chat" });
  await alice.ok("POST", `/rooms/${enc(shared)}/invite`, { user_id: bob.userId });
  await bob.ok("POST", `/join/${enc(shared)}`, {});
  const listed = await dave.createRoom({ preset: "public_chat", visibility: "public" });
  expect(listed).toStartWith("!");
});
afterAll(() => server.stop());

const search = async (who: TestClient, term: string, limit?: number) => who.ok("POST", "/user_directory/search", { search_term: term, ...(limit === undefined ? {} : { limit }) });

describe("POST /user_directory/search", () => {
  test("by display name and by user ID, with the profile; users of public rooms too; strangers not", async () => {
    expect((await search(alice, "tables")).results).toEqual([{ user_id: bob.userId, display_name: "Bobby Tables" }]);
    expect((await search(alice, "bob")).results.map((r: { user_id: string }) => r.user_id)).toEqual([bob.userId]);
    expect((await search(alice, "dave")).results).toEqual([{ user_id: dave.userId, display_name: "Dave in public" }]);
    expect((await search(alice, "carol")).results).toEqual([]);
    expect((await search(carol, "tables")).results).toEqual([]);
  });

  test("limit and limited; a body without search_term is 400", async () => {
    const r = await search(alice, "", 1);
    expect(r.results.length).toBe(1);
    expect(r.limited).toBe(true);
    await alice.fails("POST", "/user_directory/search", { limit: 3 }, 400, "M_MISSING_PARAM");
  });

  test("the searcher finds themself only through a public room; a room turning public or private moves its members in or out", async () => {
    const erin = await TestClient.register(server, "erin");
    const frank = await TestClient.register(server, "frank");
    await erin.ok("PUT", `/profile/${enc(erin.userId)}/displayname`, { displayname: "Erin Private" });
    const room = await frank.createRoom({ preset: "private_chat", invite: [erin.userId] });
    await erin.ok("POST", `/join/${enc(room)}`, {});
    const found = async (who: TestClient, term: string) => (await search(who, term)).results.map((r: { user_id: string }) => r.user_id);
    // A private room: each finds the other, nobody finds themself, a stranger finds neither.
    expect(await found(erin, "erin private")).toEqual([]);
    expect(await found(frank, "erin private")).toEqual([erin.userId]);
    expect(await found(carol, "erin private")).toEqual([]);
    // Joinable by anyone: erin is in a public room now, so erin finds herself (not published: carol, in no room with her, still does not).
    await frank.ok("PUT", `/rooms/${enc(room)}/state/m.room.join_rules`, { join_rule: "public" });
    expect(await found(erin, "erin private")).toEqual([erin.userId]);
    // World-readable history keeps the room public when the join rule goes back to invite.
    await frank.ok("PUT", `/rooms/${enc(room)}/state/m.room.history_visibility`, { history_visibility: "world_readable" });
    await frank.ok("PUT", `/rooms/${enc(room)}/state/m.room.join_rules`, { join_rule: "invite" });
    expect(await found(erin, "erin private")).toEqual([erin.userId]);
    await frank.ok("PUT", `/rooms/${enc(room)}/state/m.room.history_visibility`, { history_visibility: "shared" });
    expect(await found(erin, "erin private")).toEqual([]);
    expect(await found(frank, "erin private")).toEqual([erin.userId]);
  });

  test("a published room that is not public shows its members only to those in it", async () => {
    const gina = await TestClient.register(server, "gina");
    await gina.ok("PUT", `/profile/${enc(gina.userId)}/displayname`, { displayname: "Gina Listed" });
    const room = await gina.createRoom({ preset: "private_chat", visibility: "public" });
    expect((await alice.ok("GET", "/publicRooms")).chunk.map((r: { room_id: string }) => r.room_id)).toContain(room);
    expect((await search(alice, "gina listed")).results).toEqual([]);
  });
});
