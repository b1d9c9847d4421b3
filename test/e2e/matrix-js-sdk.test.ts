// End to end with a real client library: matrix-js-sdk (v43) drives a real Portier listening on an
// ephemeral loopback port. Three users register and log in through the SDK, sync, create rooms, invite,
// join, chat, rename, paginate, leave, resolve aliases and join from the public room directory.
// Every HTTP exchange the SDK makes is recorded (through createClient's fetchFn); at the end each
// response to an operation the spec knows is checked against the spec, no response may be a 5xx, and
// the requests Portier does not implement (404/405 M_UNRECOGNIZED) are listed.
//
// The tests below run in order and share the users and rooms; each waits for what it needs with a
// bounded timeout rather than sleeping.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  ClientEvent,
  createClient,
  Direction,
  EventType,
  MatrixError,
  MsgType,
  Preset,
  RoomEvent,
  RoomMemberEvent,
  SyncState,
  Visibility,
  type MatrixClient,
  type MatrixEvent,
  type Room,
} from "matrix-js-sdk";
import type { PortierServer } from "../../src/app";
import { specMismatches, specOperation } from "../helpers/openapi";
import { testServer } from "../helpers/server";
import { databaseConfig, serverDatabases } from "../helpers/databases";
import { muteSdkGlobalLogger, quietLogger, recordingFetch, waitFor, type Exchange } from "./helpers/sdk";

const SERVER_NAME = "portier.test";
const PASSWORD = "correct horse battery staple";
const TEST_TIMEOUT = 30_000;
const WAIT = 15_000;

interface User {
  name: string;
  userId: string;
  client: MatrixClient;
  /** Every sync state the client went through, in order. */
  syncStates: SyncState[];
  syncErrors: unknown[];
}

const exchanges: Exchange[] = [];
const sdkLog: string[] = [];
const started: MatrixClient[] = [];
let server: PortierServer;
let baseUrl: string;
let unmuteSdk: (() => void) | undefined;

/** A client with no credentials (for /register and /login), recording its requests. */
function anonymousClient(who: string): MatrixClient {
  return createClient({ baseUrl, fetchFn: recordingFetch(who, exchanges), logger: quietLogger(sdkLog, `${who} `) });
}

/** Registers `name` through the SDK, logs in with the password on a new device, and starts a syncing client. */
async function signUp(name: string, opts: { twoStep: boolean }): Promise<User> {
  const anon = anonymousClient(`${name}(anon)`);
  let registered;
  if (opts.twoStep) {
    // The full user-interactive flow: the first request is answered 401 with the flows and a session.
    const challenge = await anon.registerRequest({ username: name, password: PASSWORD }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(challenge).toBeInstanceOf(MatrixError);
    expect((challenge as MatrixError).httpStatus).toBe(401);
    const data = (challenge as MatrixError).data as { flows?: { stages: string[] }[]; session?: string };
    expect(data.flows).toContainEqual({ stages: ["m.login.dummy"] });
    const session = data.session;
    expect(typeof session).toBe("string");
    registered = await anon.registerRequest({ username: name, password: PASSWORD, auth: { type: "m.login.dummy", session } });
  } else {
    registered = await anon.registerRequest({ username: name, password: PASSWORD, auth: { type: "m.login.dummy" } });
  }
  const userId = `@${name}:${SERVER_NAME}`;
  expect(registered.user_id).toBe(userId);
  expect(typeof registered.access_token).toBe("string");

  const login = await anon.loginRequest({
    type: "m.login.password",
    identifier: { type: "m.id.user", user: name },
    password: PASSWORD,
    initial_device_display_name: `${name}'s e2e device`,
  });
  expect(login.user_id).toBe(userId);
  expect(login.device_id).not.toBe(registered.device_id);
  expect(login.access_token).not.toBe(registered.access_token);

  const user = await startSyncing(name, { userId, accessToken: login.access_token, deviceId: login.device_id }, { initialSyncLimit: 10 });
  const whoami = await user.client.whoami();
  expect(whoami.user_id).toBe(userId);
  expect(whoami.device_id).toBe(login.device_id);
  return user;
}

async function startSyncing(
  name: string,
  creds: { userId: string; accessToken: string; deviceId: string },
  opts: { initialSyncLimit: number; lazyLoadMembers?: boolean },
): Promise<User> {
  const client = createClient({
    baseUrl,
    ...creds,
    fetchFn: recordingFetch(name, exchanges),
    logger: quietLogger(sdkLog, `${name} `),
  });
  const user: User = { name, userId: creds.userId, client, syncStates: [], syncErrors: [] };
  client.on(ClientEvent.Sync, (state, _prev, data) => {
    user.syncStates.push(state);
    if (state === SyncState.Error) user.syncErrors.push(data?.error);
  });
  started.push(client);
  await client.startClient(opts);
  await waitFor(`${name}'s first sync`, () => {
    if (user.syncStates.includes(SyncState.Error)) throw new Error(`${name}'s sync failed: ${String(user.syncErrors[0])}`);
    return user.syncStates.includes(SyncState.Prepared) && (client.getSyncState() === SyncState.Syncing || client.getSyncState() === SyncState.Prepared);
  }, WAIT);
  expect(user.syncStates[0]).toBe(SyncState.Prepared);
  return user;
}

function messageBodies(room: Room | null | undefined): string[] {
  if (!room) return [];
  return room
    .getLiveTimeline()
    .getEvents()
    .filter((e) => e.getType() === EventType.RoomMessage)
    .map((e) => e.getContent().body as string);
}

function membershipOf(client: MatrixClient, roomId: string, userId: string): string | undefined {
  return client.getRoom(roomId)?.getMember(userId)?.membership;
}

/** Calls every client's stopClient once (it also aborts a /sync long-poll in flight). */
function stopClients(): void {
  for (const client of started.splice(0)) client.stopClient();
}

let alice: User;
let bob: User;
let carol: User;
let roomId: string;
let lobbyId: string;
const sent: { sender: string; body: string }[] = [];

// The whole conversation runs once per storage engine (SQLite drivers, and PostgreSQL where available).
describe.each(serverDatabases.map((d) => [d.name] as const))("matrix-js-sdk against a real Portier on %s", (engine) => {
  beforeAll(async () => {
    exchanges.length = 0;
    sdkLog.length = 0;
    sent.length = 0;
    unmuteSdk = muteSdkGlobalLogger(sdkLog);
    server = await testServer({ server_name: SERVER_NAME, registration: { enabled: true }, ...(await databaseConfig(engine)) });
    ({ url: baseUrl } = await server.start());
    expect(baseUrl).toStartWith("http://127.0.0.1:");
  });

  afterAll(async () => {
    stopClients();
    await server?.stop();
    unmuteSdk?.();
  });

  test(
    "three users register, log in and sync without errors",
    async () => {
      // Server discovery the way a client starts: the supported versions.
      const versions = await anonymousClient("anon").getVersions();
      expect(versions.versions.length).toBeGreaterThan(0);

      alice = await signUp("alice", { twoStep: true });
      bob = await signUp("bob", { twoStep: false });
      carol = await signUp("carol", { twoStep: false });
      for (const u of [alice, bob, carol]) expect(u.syncStates).not.toContain(SyncState.Error);
    },
    TEST_TIMEOUT,
  );

  test(
    "Alice creates a named room with an alias and invites Bob, who sees the invite and joins",
    async () => {
      const bobMembershipEvents: string[] = [];
      bob.client.on(RoomMemberEvent.Membership, (_event, member) => {
        if (member.userId === bob.userId) bobMembershipEvents.push(member.membership ?? "");
      });

      const created = await alice.client.createRoom({ name: "E2E room", room_alias_name: "e2e", topic: "matrix-js-sdk meets Portier" });
      roomId = created.room_id;
      expect(roomId).toStartWith("!");
      const aliceRoom = await waitFor("Alice's room to sync with its name", () => {
        const room = alice.client.getRoom(roomId);
        return room?.name === "E2E room" && room.getMyMembership() === "join" ? room : undefined;
      }, WAIT);
      expect(aliceRoom.getCanonicalAlias()).toBe(`#e2e:${SERVER_NAME}`);
      expect(aliceRoom.currentState.getStateEvents(EventType.RoomTopic, "")?.getContent().topic).toBe("matrix-js-sdk meets Portier");

      await alice.client.invite(roomId, bob.userId);
      const invited = await waitFor("Bob to see the invite", () => {
        const room = bob.client.getRoom(roomId);
        return room?.getMyMembership() === "invite" ? room : undefined;
      }, WAIT);
      // The invite carries stripped state, so Bob knows what he is invited to and by whom.
      expect(invited.name).toBe("E2E room");
      expect(invited.getMember(bob.userId)?.events.member?.getSender()).toBe(alice.userId);
      expect(bobMembershipEvents).toContain("invite");

      const joined = await bob.client.joinRoom(roomId);
      expect(joined.roomId).toBe(roomId);
      await waitFor("Bob's own join to sync", () => bob.client.getRoom(roomId)?.getMyMembership() === "join", WAIT);
      await waitFor("Alice to see Bob joined", () => membershipOf(alice.client, roomId, bob.userId) === "join", WAIT);
      expect(bobMembershipEvents).toContain("join");
      expect(bob.client.getRoom(roomId)?.getJoinedMembers().map((m) => m.userId).sort()).toEqual([alice.userId, bob.userId]);
    },
    TEST_TIMEOUT,
  );

  test(
    "messages arrive at the other client in the order they were sent",
    async () => {
      const arrived = new Map<string, string[]>([
        [alice.userId, []],
        [bob.userId, []],
      ]);
      const listen = (user: User) =>
        user.client.on(RoomEvent.Timeline, (event: MatrixEvent, room, toStartOfTimeline) => {
          if (room?.roomId !== roomId || toStartOfTimeline || event.getType() !== EventType.RoomMessage) return;
          if (event.getSender() === user.userId) return; // local echo and remote echo of our own messages
          arrived.get(user.userId)!.push(event.getContent().body);
        });
      listen(alice);
      listen(bob);

      const script: [User, string][] = [
        [alice, "Hello Bob!"],
        [bob, "Hi Alice."],
        [alice, "How is Portier treating you?"],
        [alice, "It looks like the sync works."],
        [bob, "It does: 🎉 and ünïcödé too"],
        [bob, "Third from Bob"],
        [alice, "Last from Alice"],
      ];
      for (const [user, body] of script) {
        // As people talk: each replies once the messages before have reached them. (The 200 of a send
        // and the other client's /sync answer race; without this wait a local echo could be placed
        // before a message that the server already had.)
        const seen = sent.map((s) => s.body);
        await waitFor(`${user.name} to see the conversation so far`, () => messageBodies(user.client.getRoom(roomId)).length >= seen.length, WAIT);
        const { event_id } = await user.client.sendTextMessage(roomId, body);
        expect(event_id).toStartWith("$");
        sent.push({ sender: user.userId, body });
      }

      const all = sent.map((s) => s.body);
      await waitFor("both timelines to hold every message", () => {
        return messageBodies(alice.client.getRoom(roomId)).length === all.length && messageBodies(bob.client.getRoom(roomId)).length === all.length;
      }, WAIT);
      expect(messageBodies(alice.client.getRoom(roomId))).toEqual(all);
      expect(messageBodies(bob.client.getRoom(roomId))).toEqual(all);
      // The live Room.timeline events of the other side's messages came in sending order.
      expect(arrived.get(bob.userId)).toEqual(sent.filter((s) => s.sender === alice.userId).map((s) => s.body));
      expect(arrived.get(alice.userId)).toEqual(sent.filter((s) => s.sender === bob.userId).map((s) => s.body));
      // No message is stuck as a local echo: each sender's last one is replaced by its remote echo
      // once /sync brings it (which may come a moment after the send's 200).
      for (const user of [alice, bob]) {
        const pending = () => user.client.getRoom(roomId)!.getLiveTimeline().getEvents().filter((e) => e.status !== null);
        await waitFor(`${user.name}'s local echoes to be replaced`, () => pending().length === 0, WAIT).catch(() => undefined);
        expect(pending().map((e) => e.status)).toEqual([]);
      }
    },
    TEST_TIMEOUT,
  );

  test(
    "Alice changes her displayname and Bob sees the new name",
    async () => {
      const names: string[] = [];
      bob.client.on(RoomMemberEvent.Name, (_event, member) => {
        if (member.roomId === roomId && member.userId === alice.userId) names.push(member.name);
      });
      await alice.client.setDisplayName("Alice Liddell");
      await waitFor("Bob to see Alice's new name", () => bob.client.getRoom(roomId)?.getMember(alice.userId)?.name === "Alice Liddell", WAIT);
      expect(names).toContain("Alice Liddell");
      expect((await bob.client.getProfileInfo(alice.userId)).displayname).toBe("Alice Liddell");
      expect((await alice.client.getProfileInfo(alice.userId, "displayname")).displayname).toBe("Alice Liddell");
    },
    TEST_TIMEOUT,
  );

  test(
    "history paginates: a fresh client scrolls back, and /messages pages backwards to the start",
    async () => {
      // A second device for Bob whose initial sync only sees the last two events, with lazy-loaded members.
      const login = await anonymousClient("bob2(anon)").loginRequest({ type: "m.login.password", identifier: { type: "m.id.user", user: "bob" }, password: PASSWORD });
      const bob2 = await startSyncing("bob2", { userId: bob.userId, accessToken: login.access_token, deviceId: login.device_id }, { initialSyncLimit: 2, lazyLoadMembers: true });
      const room = await waitFor("bob2 to know the room", () => bob2.client.getRoom(roomId), WAIT);
      // Lazy loading: the full member list comes from /members when asked for.
      await room.loadMembersIfNeeded();
      expect(room.getJoinedMembers().map((m) => m.userId).sort()).toEqual([alice.userId, bob.userId]);
      expect(room.getMember(alice.userId)?.name).toBe("Alice Liddell");
      const all = sent.map((s) => s.body);
      expect(messageBodies(room).length).toBeLessThan(all.length);

      for (let i = 0; i < 10 && messageBodies(room).length < all.length; i++) await bob2.client.scrollback(room, 3);
      expect(messageBodies(room)).toEqual(all);
      // Scrolling reaches the room's creation.
      for (let i = 0; i < 10 && room.getLiveTimeline().getEvents()[0]?.getType() !== EventType.RoomCreate; i++) await bob2.client.scrollback(room, 10);
      expect(room.getLiveTimeline().getEvents()[0]?.getType()).toBe(EventType.RoomCreate);
      expect(room.oldState.paginationToken).toBeNull();

      // Raw /messages backwards from the end (no `from`), following `end` until it disappears.
      const backwards: string[] = [];
      let from: string | null = null;
      for (let page = 0; page < 50; page++) {
        const res = await alice.client.createMessagesRequest(roomId, from, 4, Direction.Backward);
        for (const e of res.chunk) if (e.type === EventType.RoomMessage) backwards.push(e.content.body as string);
        if (!res.end) break;
        from = res.end;
      }
      expect(backwards).toEqual([...all].reverse());

      bob2.client.stopClient();
      expect(bob2.syncStates).not.toContain(SyncState.Error);
    },
    TEST_TIMEOUT,
  );

  test(
    "typing notifications, read receipts, the fully-read marker, a topic change and a redaction reach the other side",
    async () => {
      const aliceRoom = alice.client.getRoom(roomId)!;
      const bobRoom = bob.client.getRoom(roomId)!;

      await bob.client.sendTyping(roomId, true, 20_000);
      await waitFor("Alice to see Bob typing", () => aliceRoom.getMember(bob.userId)?.typing === true, WAIT);
      await bob.client.sendTyping(roomId, false, 0);
      await waitFor("Alice to see Bob stop typing", () => aliceRoom.getMember(bob.userId)?.typing === false, WAIT);

      const last = bobRoom.getLiveTimeline().getEvents().at(-1)!;
      await bob.client.sendReadReceipt(last);
      await waitFor("Alice to see Bob's read receipt", () => aliceRoom.getEventReadUpTo(bob.userId) === last.getId(), WAIT);
      await bob.client.setRoomReadMarkers(roomId, last.getId()!);
      await waitFor("Bob's fully-read marker to sync back", () => bobRoom.getAccountData("m.fully_read")?.getContent().event_id === last.getId(), WAIT);

      await alice.client.setRoomTopic(roomId, "Now with receipts");
      await waitFor("Bob to see the new topic", () => bobRoom.currentState.getStateEvents(EventType.RoomTopic, "")?.getContent().topic === "Now with receipts", WAIT);

      const victim = aliceRoom.getLiveTimeline().getEvents().find((e) => e.getType() === EventType.RoomMessage && e.getSender() === alice.userId)!;
      const { event_id: redactionId } = await alice.client.redactEvent(roomId, victim.getId()!, undefined, { reason: "oops" });
      expect(redactionId).toStartWith("$");
      await waitFor("Bob to see the message redacted", () => bobRoom.findEventById(victim.getId()!)?.isRedacted(), WAIT);
      expect(bobRoom.findEventById(victim.getId()!)?.getContent()).toEqual({});
      // The redacted event as fetched afresh.
      const fetched = await bob.client.fetchRoomEvent(roomId, victim.getId()!);
      expect(fetched.content).toEqual({});
      expect(fetched.unsigned?.redacted_because?.event_id).toBe(redactionId);
    },
    TEST_TIMEOUT,
  );

  test(
    "Bob leaves and Alice sees his membership become leave",
    async () => {
      await bob.client.leave(roomId);
      await waitFor("Alice to see Bob left", () => membershipOf(alice.client, roomId, bob.userId) === "leave", WAIT);
      await waitFor("Bob's own leave to sync", () => bob.client.getRoom(roomId)?.getMyMembership() === "leave", WAIT);
      expect(alice.client.getRoom(roomId)?.getJoinedMembers().map((m) => m.userId)).toEqual([alice.userId]);
    },
    TEST_TIMEOUT,
  );

  test(
    "Carol resolves the private room's alias but may not join it",
    async () => {
      const resolved = await carol.client.getRoomIdForAlias(`#e2e:${SERVER_NAME}`);
      expect(resolved.room_id).toBe(roomId);
      expect(resolved.servers).toContain(SERVER_NAME);
      // Created without a preset and private: invite-only.
      const err = await carol.client.joinRoom(`#e2e:${SERVER_NAME}`).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MatrixError);
      expect((err as MatrixError).errcode).toBe("M_FORBIDDEN");
      expect(carol.client.getRoom(roomId)?.getMyMembership()).not.toBe("join");
    },
    TEST_TIMEOUT,
  );

  test(
    "Carol finds Alice's public room in the directory and joins it by alias",
    async () => {
      const created = await alice.client.createRoom({
        name: "Lobby",
        topic: "Everyone welcome",
        room_alias_name: "lobby",
        visibility: Visibility.Public,
        preset: Preset.PublicChat,
      });
      lobbyId = created.room_id;
      await waitFor("Alice's lobby to sync", () => alice.client.getRoom(lobbyId)?.getMyMembership() === "join", WAIT);

      const listed = await carol.client.publicRooms();
      const entry = listed.chunk.find((r) => r.room_id === lobbyId);
      expect(entry).toMatchObject({ name: "Lobby", topic: "Everyone welcome", canonical_alias: `#lobby:${SERVER_NAME}`, num_joined_members: 1, world_readable: false, guest_can_join: false });
      expect(listed.chunk.map((r) => r.room_id)).not.toContain(roomId);
      // The filtered form is a POST.
      const searched = await carol.client.publicRooms({ filter: { generic_search_term: "lob" } });
      expect(searched.chunk.map((r) => r.room_id)).toEqual([lobbyId]);
      expect(await carol.client.getRoomDirectoryVisibility(lobbyId)).toEqual({ visibility: Visibility.Public });

      const joined = await carol.client.joinRoom(entry!.canonical_alias!);
      expect(joined.roomId).toBe(lobbyId);
      await waitFor("Carol's join to sync", () => carol.client.getRoom(lobbyId)?.getMyMembership() === "join", WAIT);
      await waitFor("Alice to see Carol joined", () => membershipOf(alice.client, lobbyId, carol.userId) === "join", WAIT);

      await carol.client.sendMessage(lobbyId, { msgtype: MsgType.Text, body: "Hi all, Carol here" });
      await waitFor("Alice to get Carol's message", () => messageBodies(alice.client.getRoom(lobbyId)).includes("Hi all, Carol here"), WAIT);
      const carolRoom = carol.client.getRoom(lobbyId)!;
      expect(carolRoom.name).toBe("Lobby");
      expect(carolRoom.getMember(alice.userId)?.name).toBe("Alice Liddell");

      expect((await carol.client.publicRooms()).chunk.find((r) => r.room_id === lobbyId)?.num_joined_members).toBe(2);
    },
    TEST_TIMEOUT,
  );

  test(
    "every recorded response matches the spec, none is a 5xx; unimplemented endpoints are listed",
    async () => {
      for (const u of [alice, bob, carol]) {
        expect(u.syncStates).not.toContain(SyncState.Error);
        expect(u.client.getSyncState()).toBe(SyncState.Syncing);
      }
      stopClients();
      expect(exchanges.length).toBeGreaterThan(20);

      const serverErrors: string[] = [];
      // Requests that got no answer at all; the /sync long-polls stopClient aborted do not count.
      const transportErrors = exchanges.filter((e) => e.status === 0 && !/abort/i.test(String(e.body))).map((e) => `${e.who}: ${e.method} ${e.url}: ${String(e.body)}`);
      const unrecognized = new Set<string>();
      const mismatches: string[] = [];
      const unknownToSpec = new Set<string>();
      let validated = 0;
      const template = (e: Exchange) => specOperation({ api: "client-server", method: e.method, path: e.path })?.template ?? e.path;
      for (const e of exchanges) {
        if (e.status === 0) continue;
        if (e.status >= 500) {
          serverErrors.push(`${e.who}: ${e.method} ${e.url} → ${e.status} ${JSON.stringify(e.body)}`);
          continue;
        }
        const errcode = (e.body as { errcode?: string } | undefined)?.errcode;
        if ((e.status === 404 || e.status === 405) && errcode === "M_UNRECOGNIZED") {
          unrecognized.add(`${e.method} ${template(e)} → ${e.status}`);
          continue;
        }
        if (!specOperation({ api: "client-server", method: e.method, path: e.path })) {
          unknownToSpec.add(`${e.method} ${e.path} → ${e.status}`);
          continue;
        }
        validated++;
        const problems = specMismatches({ api: "client-server", method: e.method, path: e.path, status: e.status, body: e.body });
        if (problems.length) mismatches.push(`${e.who}: ${e.method} ${e.url} → ${e.status}\n    ${problems.join("\n    ")}`);
      }
      const called = [...new Set(exchanges.filter((e) => e.status !== 0).map((e) => `${e.method} ${template(e)}`))].sort();
      console.log(
        [
          `matrix-js-sdk e2e: ${exchanges.length} requests (${validated} validated against the spec), ${called.length} distinct endpoints:`,
          ...called.map((c) => `  ${c}`),
          `not implemented by Portier (M_UNRECOGNIZED): ${unrecognized.size ? "" : "none"}`,
          ...[...unrecognized].sort().map((c) => `  ${c}`),
          `not in the spec (not validated): ${unknownToSpec.size ? "" : "none"}`,
          ...[...unknownToSpec].sort().map((c) => `  ${c}`),
        ].join("\n"),
      );
      if (mismatches.length || serverErrors.length) {
        console.log(["SDK warnings/errors:", ...sdkLog.slice(-40)].join("\n"));
      }
      expect(serverErrors).toEqual([]);
      expect(mismatches).toEqual([]);
      expect(transportErrors).toEqual([]);
      // Guard against checking nothing.
      expect(validated).toBeGreaterThan(50);
      expect(called).toContain("GET /_matrix/client/v3/sync");
    },
    TEST_TIMEOUT,
  );
});
