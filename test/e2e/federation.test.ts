// Two Portier servers federating over TLS on loopback: a remote join by alias, messages both ways
// in order, invites, leaves, and the refusal of forged requests.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, enc } from "../helpers/rooms";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";
import { resolve, Tokens } from "../../src/di/tokens";
import { LosslessNumber, type JsonObject } from "../../src/protocol/json";
import { computeEventId } from "../../src/protocol/signing/event-id";
import { roomVersion } from "../../src/protocol/room-versions";

let a: FederatedServer;
let b: FederatedServer;

beforeAll(async () => {
  a = await federatedServer({ registration: { enabled: true } });
  b = await federatedServer({ registration: { enabled: true } });
});

afterAll(async () => {
  await a?.server.stop();
  await b?.server.stop();
});

async function timelineBodies(client: TestClient, roomId: string): Promise<string[]> {
  const messages = await client.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
  return (messages.chunk as { type: string; content: { body?: string } }[])
    .filter((e) => e.type === "m.room.message")
    .map((e) => e.content.body!)
    .reverse();
}

async function memberships(client: TestClient, roomId: string): Promise<Record<string, string>> {
  const members = await client.ok("GET", `/rooms/${enc(roomId)}/members`);
  return Object.fromEntries((members.chunk as { state_key: string; content: { membership: string } }[]).map((e) => [e.state_key, e.content.membership]));
}

describe("federation between two Portier servers", () => {
  test("a user of B joins a public room on A by alias; messages flow both ways in order", async () => {
    const alice = await TestClient.register(a.server, "alice");
    const bob = await TestClient.register(b.server, "bob");
    const roomId = await alice.createRoom({ preset: "public_chat", room_alias_name: "lobby", name: "Lobby" });
    await alice.send(roomId, { msgtype: "m.text", body: "before bob" });

    const joined = await bob.ok("POST", `/join/${enc(`#lobby:${a.serverName}`)}`, {});
    expect(joined.room_id).toBe(roomId);
    // B now holds the room: its state, and bob's join.
    expect((await memberships(bob, roomId))[bob.userId]).toBe("join");
    const name = await bob.ok("GET", `/rooms/${enc(roomId)}/state/m.room.name`);
    expect(name.name).toBe("Lobby");
    // A hears of the join.
    await eventually(async () => (await memberships(alice, roomId))[bob.userId] === "join", 10_000, "bob's join on A");

    for (let i = 0; i < 3; i++) await bob.send(roomId, { msgtype: "m.text", body: `from bob ${i}` });
    for (let i = 0; i < 3; i++) await alice.send(roomId, { msgtype: "m.text", body: `from alice ${i}` });
    const expected = ["from bob 0", "from bob 1", "from bob 2", "from alice 0", "from alice 1", "from alice 2"];
    await eventually(async () => {
      const onA = await timelineBodies(alice, roomId);
      return expected.every((b) => onA.includes(b)) && onA;
    }, 10_000, "bob's messages on A");
    const onB = await eventually(async () => {
      const bodies = await timelineBodies(bob, roomId);
      return expected.every((x) => bodies.includes(x)) && bodies;
    }, 10_000, "alice's messages on B");
    expect(onB.filter((x) => x.startsWith("from bob"))).toEqual(["from bob 0", "from bob 1", "from bob 2"]);
    expect(onB.filter((x) => x.startsWith("from alice"))).toEqual(["from alice 0", "from alice 1", "from alice 2"]);
  }, 30_000);

  test("invite a remote user, who joins; then leaves", async () => {
    const carol = await TestClient.register(a.server, "carol");
    const dave = await TestClient.register(b.server, "dave");
    const roomId = await carol.createRoom({ preset: "private_chat", name: "Private" });
    await carol.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: dave.userId });
    // dave's /sync shows the invite with the room's stripped state.
    const invite = await eventually(async () => {
      const sync = await dave.ok("GET", "/sync?timeout=0");
      return sync.rooms?.invite?.[roomId];
    }, 10_000, "dave's invite in /sync");
    expect(invite.invite_state.events.some((e: { type: string }) => e.type === "m.room.name")).toBe(true);
    await dave.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await eventually(async () => (await memberships(carol, roomId))[dave.userId] === "join", 10_000, "dave's join on A");
    await dave.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    await eventually(async () => (await memberships(carol, roomId))[dave.userId] === "leave", 10_000, "dave's leave on A");
  }, 30_000);

  test("a remote invite can be rejected", async () => {
    const erin = await TestClient.register(a.server, "erin");
    const frank = await TestClient.register(b.server, "frank");
    const roomId = await erin.createRoom({ preset: "private_chat" });
    await erin.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: frank.userId });
    await eventually(async () => (await frank.ok("GET", "/sync?timeout=0")).rooms?.invite?.[roomId], 10_000, "frank's invite");
    await frank.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    expect((await memberships(erin, roomId))[frank.userId]).toBe("leave");
  }, 30_000);

  test("an invite answer with JSON the room version forbids (a float in a v6 room) is refused: 400 M_BAD_JSON, nothing stored", async () => {
    const inviter = await TestClient.register(a.server, "bad-json-inviter");
    const invitee = await TestClient.register(b.server, "bad-json-invitee");
    const roomId = await inviter.createRoom({ preset: "private_chat", room_version: "6" });
    const aClient = resolve(a.server.container, Tokens.FederationClient);
    const request = aClient.request.bind(aClient);
    aClient.request = async (method, destination, path, options) => {
      const answer = await request(method, destination, path, options);
      if (!path.startsWith("/_matrix/federation/v2/invite/")) return answer;
      const { event } = answer as { event: JsonObject };
      return { event: { ...event, bad_val: new LosslessNumber("1.1") } };
    };
    try {
      await inviter.fails("POST", `/rooms/${enc(roomId)}/invite`, { user_id: invitee.userId }, 400, "M_BAD_JSON");
    } finally {
      aClient.request = request;
    }
    expect((await memberships(inviter, roomId))[invitee.userId]).toBeUndefined();
  }, 30_000);

  test("send_join of an event with JSON the room version forbids (a float in a v6 room) is 400 M_BAD_JSON", async () => {
    const host = await TestClient.register(a.server, "float-host");
    const roomId = await host.createRoom({ preset: "public_chat", room_version: "6" });
    const joiner = `@float-joiner:${b.serverName}`;
    const client = resolve(b.server.container, Tokens.FederationClient);
    const made = (await client.request("GET", a.serverName, `/_matrix/federation/v1/make_join/${enc(roomId)}/${enc(joiner)}`, { query: { ver: ["6"] } })) as { event: JsonObject };
    const signed = resolve(b.server.container, Tokens.ServerKeys).signEvent({ ...made.event, origin_server_ts: Date.now() }, roomVersion("6")!);
    const bad = { ...signed, content: { ...(signed.content as JsonObject), bad_val: new LosslessNumber("1.1") } };
    const eventId = computeEventId(signed, roomVersion("6")!);
    const refused = await client.request("PUT", a.serverName, `/_matrix/federation/v2/send_join/${enc(roomId)}/${enc(eventId)}`, { body: bad }).then(() => undefined, (error) => error);
    expect(refused).toMatchObject({ status: 400, errcode: "M_BAD_JSON" });
    expect((await memberships(host, roomId))[joiner]).toBeUndefined();
  }, 30_000);

  test("a remote invite can be rejected when the inviting server refuses the leave (403) or is gone: the leave is made locally", async () => {
    const c = await federatedServer({ registration: { enabled: true } });
    let cStopped = false;
    try {
      const host = await TestClient.register(c.server, "reject-host");
      const frank = await TestClient.register(b.server, "reject-frank");
      const leaveOf = async (roomId: string, since: string) => {
        const sync = await frank.ok("GET", `/sync?timeout=0&since=${enc(since)}`);
        return sync.rooms?.leave?.[roomId];
      };
      const invited = async (roomId: string) => {
        await host.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: frank.userId });
        await eventually(async () => (await frank.ok("GET", "/sync?timeout=0")).rooms?.invite?.[roomId], 10_000, "frank's invite");
        return (await frank.ok("GET", "/sync?timeout=0")).next_batch as string;
      };

      // The inviting server refuses: after the invite went out, the room's ACL denies servers named by IP (B is one).
      const refusing = await host.createRoom({ preset: "private_chat" });
      const since1 = await invited(refusing);
      await host.ok("PUT", `/rooms/${enc(refusing)}/state/m.room.server_acl/`, { allow: ["*"], allow_ip_literals: false });
      await frank.ok("POST", `/rooms/${enc(refusing)}/leave`, {});
      const left1 = await leaveOf(refusing, since1);
      expect(left1.timeline.events.at(-1)).toMatchObject({ type: "m.room.member", state_key: frank.userId, sender: frank.userId, content: { membership: "leave" } });
      // Only here: the inviting server still has frank invited.
      expect((await memberships(host, refusing))[frank.userId]).toBe("invite");

      // The inviting server is gone.
      const gone = await host.createRoom({ preset: "private_chat" });
      const since2 = await invited(gone);
      await c.server.stop();
      cStopped = true;
      await frank.ok("POST", `/rooms/${enc(gone)}/leave`, { reason: "bye" });
      const left2 = await leaveOf(gone, since2);
      expect(left2.timeline.events.at(-1)).toMatchObject({ sender: frank.userId, content: { membership: "leave", reason: "bye" } });
      expect((await frank.ok("GET", "/sync?timeout=0")).rooms?.invite?.[gone]).toBeUndefined();
    } finally {
      if (!cStopped) await c.server.stop();
    }
  }, 60_000);

  test("B's clients read A's aliases and A's public room directory (GET and POST /publicRooms?server=)", async () => {
    const owner = await TestClient.register(a.server, "dir-owner");
    const reader = await TestClient.register(b.server, "dir-reader");
    const roomId = await owner.createRoom({ preset: "public_chat", room_alias_name: "listed", name: "Listed on A", topic: "a topic" });
    await owner.ok("PUT", `/directory/list/room/${enc(roomId)}`, { visibility: "public" });

    const alias = await reader.ok("GET", `/directory/room/${enc(`#listed:${a.serverName}`)}`);
    expect(alias.room_id).toBe(roomId);
    expect(alias.servers).toContain(a.serverName);
    await reader.fails("GET", `/directory/room/${enc(`#nothing-here:${a.serverName}`)}`, undefined, 404, "M_NOT_FOUND");

    const listed = await reader.ok("GET", `/publicRooms?server=${enc(a.serverName)}`);
    expect(listed.chunk.find((r: { room_id: string }) => r.room_id === roomId)).toMatchObject({ name: "Listed on A", topic: "a topic", canonical_alias: `#listed:${a.serverName}` });
    const filtered = await reader.ok("POST", `/publicRooms?server=${enc(a.serverName)}`, { filter: { generic_search_term: "listed on" } });
    expect(filtered.chunk.map((r: { room_id: string }) => r.room_id)).toEqual([roomId]);
    const none = await reader.ok("POST", `/publicRooms?server=${enc(a.serverName)}`, { filter: { generic_search_term: "no such room anywhere" } });
    expect(none.chunk).toEqual([]);
    // B's own directory does not list A's room.
    expect((await reader.ok("GET", "/publicRooms")).chunk.map((r: { room_id: string }) => r.room_id)).not.toContain(roomId);
  }, 30_000);

  test("history from before B joined is backfilled from A as B's user pages back, in order, and never shows in /sync as new", async () => {
    const kim = await TestClient.register(a.server, "kim");
    const lou = await TestClient.register(b.server, "lou");
    const roomId = await kim.createRoom({ preset: "public_chat", room_alias_name: "history" });
    const sent = Array.from({ length: 30 }, (_, i) => `old message ${i}`);
    for (const body of sent) await kim.send(roomId, { msgtype: "m.text", body });
    await lou.ok("POST", `/join/${enc(`#history:${a.serverName}`)}`, {});
    const since = (await lou.ok("GET", "/sync?timeout=0")).next_batch;
    // Every /backfill B asks names events B lacks (what A must know), never B's own earliest event.
    const bClient = resolve(b.server.container, Tokens.FederationClient);
    const request = bClient.request.bind(bClient);
    const askedFrom: string[][] = [];
    bClient.request = async (method, destination, path, options) => {
      if (path.startsWith("/_matrix/federation/v1/backfill/")) askedFrom.push([options?.query?.v ?? []].flat());
      return request(method, destination, path, options);
    };

    // Page back 10 at a time, as a client scrolling up does.
    const pages: string[][] = [];
    const ends: string[] = [];
    const types: string[] = [];
    let from: string | undefined;
    for (let page = 0; page < 10; page++) {
      const r = await lou.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=10${from ? `&from=${enc(from)}` : ""}`);
      types.push(...(r.chunk as { type: string }[]).map((e) => e.type));
      pages.push((r.chunk as { type: string; content: { body?: string } }[]).filter((e) => e.type === "m.room.message").map((e) => e.content.body!));
      if (!r.end) break;
      ends.push((from = r.end));
    }
    expect(pages.flat().reverse()).toEqual(sent);
    // The room's own beginning, which B first held only as the state its join came with, is history
    // too: paging back reaches the m.room.create event, as on A.
    expect(types.at(-1)).toBe("m.room.create");
    expect(types.filter((t) => t === "m.room.create")).toHaveLength(1);
    bClient.request = request;
    expect(askedFrom.length).toBeGreaterThan(0);
    const bStore = resolve(b.server.container, Tokens.RoomEventStore);
    const lousJoin = await bStore.currentStateEvent(roomId, "m.room.member", lou.userId);
    for (const v of askedFrom) {
      expect(v.length).toBeGreaterThan(0);
      expect(v).not.toContain(lousJoin!);
    }
    // Forwards from a token inside the backfilled history: the same events, the same order.
    const middle = ends[1]!;
    const olderThanMiddle = pages.slice(2).flat().length;
    const forwards = await lou.ok("GET", `/rooms/${enc(roomId)}/messages?dir=f&limit=100&from=${enc(middle)}`);
    expect((forwards.chunk as { type: string; content: { body?: string } }[]).filter((e) => e.type === "m.room.message").map((e) => e.content.body)).toEqual(sent.slice(olderThanMiddle));
    // The history is old news: an incremental /sync does not bring it.
    const next = await lou.ok("GET", `/sync?timeout=0&since=${enc(since)}`);
    const bodies = ((next.rooms?.join?.[roomId]?.timeline?.events ?? []) as { content: { body?: string } }[]).map((e) => e.content.body);
    expect(bodies.filter((b) => b?.startsWith("old message"))).toEqual([]);
  }, 30_000);

  test("presence reaches the other server's room mates (m.presence EDUs)", async () => {
    const olga = await TestClient.register(a.server, "olga");
    const pete = await TestClient.register(b.server, "pete");
    const roomId = await olga.createRoom({ preset: "public_chat" });
    await pete.ok("POST", `/join/${enc(roomId)}`, {});
    await eventually(async () => (await memberships(olga, roomId))[pete.userId] === "join", 10_000, "pete's join on A");
    await pete.ok("PUT", `/presence/${enc(pete.userId)}/status`, { presence: "unavailable", status_msg: "away from B" });
    await eventually(async () => {
      const sync = await olga.ok("GET", "/sync?timeout=0&set_presence=offline");
      const event = (sync.presence.events as { sender: string; content: { presence: string; status_msg?: string } }[]).find((e) => e.sender === pete.userId);
      return event?.content.presence === "unavailable" && event.content.status_msg === "away from B";
    }, 10_000, "pete's presence on A");
    expect(await olga.ok("GET", `/presence/${enc(pete.userId)}/status`)).toMatchObject({ presence: "unavailable", status_msg: "away from B" });
  }, 30_000);

  test("typing reaches the other server's members", async () => {
    const gina = await TestClient.register(a.server, "gina");
    const hank = await TestClient.register(b.server, "hank");
    const roomId = await gina.createRoom({ preset: "public_chat" });
    await hank.ok("POST", `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    await gina.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(gina.userId)}`, { typing: true, timeout: 20_000 });
    const typingOnB = async () => {
      const sync = await hank.ok("GET", "/sync?timeout=0");
      const typing = (sync.rooms?.join?.[roomId]?.ephemeral?.events ?? []).find((e: { type: string }) => e.type === "m.typing");
      return typing?.content.user_ids as string[] | undefined;
    };
    expect(await eventually(async () => (await typingOnB())?.includes(gina.userId) && true, 10_000, "gina typing on B")).toBe(true);
    await gina.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(gina.userId)}`, { typing: false });
    await eventually(async () => !(await typingOnB())?.includes(gina.userId), 10_000, "gina stopped typing on B");
  }, 30_000);

  test("public read receipts reach the other server's members both ways; private ones stay home", async () => {
    const ivy = await TestClient.register(a.server, "receipt-ivy");
    const jack = await TestClient.register(b.server, "receipt-jack");
    const roomId = await ivy.createRoom({ preset: "public_chat" });
    await jack.ok("POST", `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    const eventId = await ivy.send(roomId, { msgtype: "m.text", body: "read me" });
    await eventually(async () => (await timelineBodies(jack, roomId)).includes("read me"), 10_000, "the message on B");
    const receiptsOn = async (client: TestClient) => {
      const sync = await client.ok("GET", "/sync?timeout=0");
      const events = (sync.rooms?.join?.[roomId]?.ephemeral?.events ?? []).filter((e: { type: string }) => e.type === "m.receipt");
      return events.map((e: { content: Record<string, Record<string, Record<string, unknown>>> }) => e.content[eventId] ?? {});
    };
    await jack.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read.private/${enc(eventId)}`, {});
    await jack.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {});
    const onA = await eventually(async () => (await receiptsOn(ivy)).find((c: Record<string, Record<string, unknown>>) => c["m.read"]?.[jack.userId]), 10_000, "jack's receipt on A");
    expect(onA["m.read"][jack.userId]).toMatchObject({ ts: expect.any(Number) });
    // Sent before the public one, so it would be there by now had it been sent: A holds no private receipt of jack's.
    const heldOnA = await resolve(a.server.container, Tokens.Receipts).receiptsSince(roomId, 0, jack.userId);
    expect(heldOnA?.[eventId]?.["m.read.private"]).toBeUndefined();
    await ivy.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {});
    await eventually(async () => (await receiptsOn(jack)).some((c: Record<string, Record<string, unknown>>) => c["m.read"]?.[ivy.userId]), 10_000, "ivy's receipt on B");
  }, 30_000);

  test("three servers: a join through the resident server reaches the third server by the resident's relay, and so do its messages", async () => {
    const c = await federatedServer({ registration: { enabled: true } });
    try {
      const ivy = await TestClient.register(a.server, "ivy");
      const jack = await TestClient.register(b.server, "jack");
      const kate = await TestClient.register(c.server, "kate");
      const roomId = await ivy.createRoom({ preset: "public_chat" });
      await jack.ok("POST", `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
      await kate.ok("POST", `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
      // C's join reaches B through A, which relays it; C sends it nowhere itself.
      await eventually(async () => (await memberships(jack, roomId))[kate.userId] === "join", 10_000, "kate's join on B, relayed by A");
      const cSender = resolve(c.server.container, Tokens.FederationSender);
      await cSender.idle();
      expect(cSender.counters.pdusQueued).toBe(0);
      await kate.send(roomId, { msgtype: "m.text", body: "from the third server" });
      await eventually(async () => (await timelineBodies(jack, roomId)).includes("from the third server"), 10_000, "kate's message on B");
    } finally {
      await c.server.stop();
    }
  }, 30_000);

  test("a signed body with a float (as a room v1..v5 PDU may carry) verifies: its number text is kept", async () => {
    const client = resolve(b.server.container, Tokens.FederationClient);
    const answer = await client.request("PUT", a.serverName, `/_matrix/federation/v1/send/float-${crypto.randomUUID()}`, {
      body: { origin: b.serverName, origin_server_ts: Date.now(), pdus: [], edus: [{ edu_type: "org.example.unknown", content: { ratio: new LosslessNumber("1.0") } }] },
    });
    expect(answer).toEqual({ pdus: {} });
  }, 30_000);

  test("requests without a valid X-Matrix signature are refused with 401", async () => {
    const path = `/_matrix/federation/v1/query/profile?user_id=${enc("@alice:" + a.serverName)}`;
    const none = await fetch(`${a.url}${path}`, { tls: { rejectUnauthorized: false } } as RequestInit);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { errcode: string }).errcode).toBe("M_UNAUTHORIZED");
    const forged = await fetch(`${a.url}${path}`, {
      headers: { Authorization: `X-Matrix origin="${b.serverName}",destination="${a.serverName}",key="ed25519:a_bad",sig="AAAA"` },
      tls: { rejectUnauthorized: false },
    } as RequestInit);
    expect(forged.status).toBe(401);
    // A header that is not X-Matrix credentials at all (here an origin that is no server name) is
    // a bad request, as Synapse answers: 400, still M_UNAUTHORIZED.
    for (const header of [`X-Matrix origin="localhost:http",destination="${a.serverName}",key="ed25519:1",sig="AAAA"`, "X-Matrix nonsense", "Bearer abc"]) {
      const malformed = await fetch(`${a.url}${path}`, { headers: { Authorization: header }, tls: { rejectUnauthorized: false } } as RequestInit);
      expect({ header, status: malformed.status, errcode: ((await malformed.json()) as { errcode: string }).errcode }).toEqual({ header, status: 400, errcode: "M_UNAUTHORIZED" });
    }
  }, 30_000);
});
