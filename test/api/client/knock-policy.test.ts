// Knock policy through HTTP (issue 9): the bundled knock-policy plugin and drop-in policies decide
// local knocks before anything is stored (deny with the plugin's errcode, shadow, accept), a room's
// org.portier.knock_policy state event overrides the operator's rules, a plugin that throws or hangs
// is handled by its fail mode and never answers 500, and the policies hear how knocks end.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PortierServer } from "../../../src/app";
import type { IntervalTimer } from "../../../src/services/knocks/knock-expiry";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";

const START = 1_700_000_000_000;

/** What the recording drop-in heard, shared with the test through a global (the file is imported in this process). */
type Heard = { kind: "arrived" | "resolved"; roomId: string; userId: string; outcome?: string; by?: string; reason?: string; local?: boolean; originServer?: string };
const LOG_KEY = `portierKnockPolicyTest${process.pid}`;
const heard = ((globalThis as Record<string, unknown>)[LOG_KEY] = [] as Heard[]);

const pluginDir = mkdtempSync(join(tmpdir(), "portier-knock-policy-"));
/** Writes a drop-in plugin file (no imports: nothing of Portier is beside a drop-in) and returns its path. */
function dropIn(file: string, source: string): string {
  const path = join(pluginDir, file);
  writeFileSync(path, source);
  return path;
}

// Records knocks and outcomes; denies with M_LIMIT_EXCEEDED for one reason, to show the errcode and its status pass through.
const recorder = dropIn(
  "recorder.ts",
  `const log = globalThis[${JSON.stringify(LOG_KEY)}];
export default {
  name: "recorder",
  version: "1.0.0",
  register(host) {
    host.addKnockPolicy({
      decideKnock: (k) => (k.reason === "too fast" ? { kind: "deny", errcode: "M_LIMIT_EXCEEDED", message: "slow down" } : { kind: "allow" }),
      onKnock: (k) => { log.push({ kind: "arrived", ...k }); },
      onKnockResolved: (r) => { log.push({ kind: "resolved", ...r }); },
    });
  },
};
`,
);
const thrower = dropIn("thrower.ts", `export default { name: "thrower", version: "1.0.0", register(host) { host.addKnockPolicy({ decideKnock() { throw new Error("the policy broke"); } }); } };\n`);
const hanger = dropIn("hanger.ts", `export default { name: "hanger", version: "1.0.0", register(host) { host.addKnockPolicy({ decideKnock: () => new Promise(() => {}) }); } };\n`);

let n = 0;
const knockRoom = (owner: TestClient, extra: Record<string, unknown> = {}) =>
  owner.createRoom({ room_version: "7", initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock" } }], ...extra });
const memberOf = async (viewer: TestClient, roomId: string, userId: string) => {
  const r = await viewer.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);
  return r.status === 404 ? undefined : (r.body.membership as string);
};
const knockers = async (viewer: TestClient, roomId: string) =>
  (await viewer.ok("GET", `/rooms/${enc(roomId)}/members?membership=knock`)).chunk.map((e: { state_key: string }) => e.state_key) as string[];
const knock = (c: TestClient, roomId: string, reason?: string) => c.call("POST", `/knock/${enc(roomId)}`, reason === undefined ? {} : { reason });

/** Waits until the recorder heard what `matches` looks for (notifications are not awaited by the request). */
async function heardThat(matches: (h: Heard) => boolean, count = 1): Promise<Heard[]> {
  for (let i = 0; i < 200; i++) {
    const found = heard.filter(matches);
    if (found.length >= count) return found;
    await Bun.sleep(5);
  }
  throw new Error(`never heard it; heard: ${JSON.stringify(heard)}`);
}

/** Nothing of a refused knock is stored: no member event, no knock in /members, nothing in the knocker's sync. */
async function expectNothingStored(owner: TestClient, knocker: TestClient, roomId: string) {
  expect(await memberOf(owner, roomId, knocker.userId)).toBeUndefined();
  expect(await knockers(owner, roomId)).toEqual([]);
  const sync = await knocker.ok("GET", "/sync?timeout=0");
  expect(sync.rooms?.knock?.[roomId]).toBeUndefined();
}

describe("the bundled knock-policy plugin", () => {
  let server: PortierServer;
  beforeAll(async () => {
    server = await testServer({
      server_name: "kp.example",
      registration: { enabled: true },
      plugins: [
        {
          name: "knock-policy",
          config: {
            deny: { users: ["@spam*:*"] },
            shadow: { users: ["@shadow*:kp.example"] },
            auto_accept: { users: ["@vip*:*"] },
            require_reason: true,
            max_reason_length: 20,
          },
        },
        { path: recorder },
      ],
    });
  });
  afterAll(() => server.stop());
  const user = (name: string) => TestClient.register(server, `${name}${++n}`);

  test("a denied knock gets the plugin's errcode and message, and nothing is stored", async () => {
    const alice = await user("alice");
    const spammer = await user("spam");
    const roomId = await knockRoom(alice);
    const body = await spammer.fails("POST", `/knock/${enc(roomId)}`, { reason: "hello there" }, 403, "M_FORBIDDEN");
    expect(body.error).toBe("You may not knock on this room");
    await expectNothingStored(alice, spammer, roomId);
    // The room's own checks still come first: a room that is not knockable says so, whoever knocks.
    const inviteOnly = await alice.createRoom({ room_version: "7" });
    expect((await spammer.fails("POST", `/knock/${enc(inviteOnly)}`, { reason: "hello there" }, 403, "M_FORBIDDEN")).error).toContain("join rule is invite");
  });

  test("a policy's errcode passes through with its own status (M_LIMIT_EXCEEDED is 429)", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const roomId = await knockRoom(alice);
    const body = await bob.fails("POST", `/knock/${enc(roomId)}`, { reason: "too fast" }, 429, "M_LIMIT_EXCEEDED");
    expect(body.error).toBe("slow down");
    await expectNothingStored(alice, bob, roomId);
  });

  test("a shadowed knock is answered 200 and stores and sends nothing", async () => {
    const alice = await user("alice");
    const shadowed = await user("shadow");
    const roomId = await knockRoom(alice);
    const before = (await alice.ok("GET", "/sync?timeout=0")).next_batch;
    expect(await shadowed.ok("POST", `/knock/${enc(roomId)}`, { reason: "let me in" })).toEqual({ room_id: roomId });
    await expectNothingStored(alice, shadowed, roomId);
    const after = await alice.ok("GET", `/sync?timeout=0&since=${before}`);
    expect(after.rooms?.join?.[roomId]).toBeUndefined();
    // The policies hear of stored knocks only.
    await Bun.sleep(20);
    expect(heard.filter((h) => h.userId === shadowed.userId)).toEqual([]);
  });

  test("an allowed knock is stored and the policies hear it arrive", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const roomId = await knockRoom(alice);
    expect(await bob.ok("POST", `/knock/${enc(roomId)}`, { reason: "let me in" })).toEqual({ room_id: roomId });
    expect(await knockers(alice, roomId)).toEqual([bob.userId]);
    const [arrived] = await heardThat((h) => h.kind === "arrived" && h.userId === bob.userId);
    expect(arrived).toEqual({ kind: "arrived", roomId, userId: bob.userId, originServer: "kp.example", reason: "let me in", local: true });
  });

  test("accept: the knocker is invited at once by the room's most powerful local member, and the outcome is reported", async () => {
    const alice = await user("alice");
    const mod = await user("mod");
    const vip = await user("vip");
    const roomId = await knockRoom(alice, { invite: [mod.userId], power_level_content_override: { users: { [alice.userId]: 100, [mod.userId]: 50 } } });
    await mod.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    expect(await vip.ok("POST", `/knock/${enc(roomId)}`, { reason: "it's me" })).toEqual({ room_id: roomId });
    const invite = (await alice.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(vip.userId)}?format=event`)).body;
    expect(invite).toMatchObject({ sender: alice.userId, content: { membership: "invite" } });
    expect(await knockers(alice, roomId)).toEqual([]);
    // The knock was stored first (the invite follows it), and the invite reaches the knocker.
    const sync = await vip.ok("GET", "/sync?timeout=0");
    expect(sync.rooms.invite[roomId]).toBeDefined();
    await vip.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    const [resolved] = await heardThat((h) => h.kind === "resolved" && h.userId === vip.userId);
    expect(resolved).toEqual({ kind: "resolved", roomId, userId: vip.userId, outcome: "accepted", by: alice.userId });
    // Accepting is only for knocks that pass the other rules.
    const vipSpam = await user("vip");
    const other = await knockRoom(alice);
    await vipSpam.fails("POST", `/knock/${enc(other)}`, {}, 403, "M_FORBIDDEN");
  });

  test("require_reason and max_reason_length", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const roomId = await knockRoom(alice);
    expect((await bob.fails("POST", `/knock/${enc(roomId)}`, {}, 403, "M_FORBIDDEN")).error).toContain("asks for a reason");
    expect((await bob.fails("POST", `/knock/${enc(roomId)}`, { reason: "   " }, 403, "M_FORBIDDEN")).error).toContain("asks for a reason");
    expect((await bob.fails("POST", `/knock/${enc(roomId)}`, { reason: "x".repeat(21) }, 403, "M_FORBIDDEN")).error).toBe("Your reason is too long: at most 20 characters, please");
    await expectNothingStored(alice, bob, roomId);
    // 20 characters, counted as characters (emoji are one each), is fine.
    await bob.ok("POST", `/knock/${enc(roomId)}`, { reason: "🙂".repeat(20) });
    expect(await knockers(alice, roomId)).toEqual([bob.userId]);
  });

  test("a room's org.portier.knock_policy state event changes the decision for that room only", async () => {
    const alice = await user("alice");
    const carol = await user("carol");
    const dave = await user("dave");
    const strict = await knockRoom(alice);
    const other = await knockRoom(alice);
    const policyPath = `/rooms/${enc(strict)}/state/org.portier.knock_policy/`;

    await alice.ok("PUT", policyPath, { deny: { users: [carol.userId] }, max_reason_length: 5, auto_accept: { users: ["@dave*:kp.example"] } });
    expect((await carol.fails("POST", `/knock/${enc(strict)}`, { reason: "hi" }, 403, "M_FORBIDDEN")).error).toBe("You may not knock on this room");
    expect((await dave.fails("POST", `/knock/${enc(strict)}`, { reason: "hello" + "!" }, 403, "M_FORBIDDEN")).error).toContain("at most 5 characters");
    await dave.ok("POST", `/knock/${enc(strict)}`, { reason: "hello" });
    expect(await memberOf(alice, strict, dave.userId)).toBe("invite");
    // The other room keeps the operator's rules: carol knocks, dave's knock waits.
    await carol.ok("POST", `/knock/${enc(other)}`, { reason: "hi" });
    await dave.ok("POST", `/knock/${enc(other)}`, { reason: "hello there" });
    expect((await knockers(alice, other)).sort()).toEqual([carol.userId, dave.userId].sort());

    // The room can tighten, never loosen: require_reason false does not lift the operator's requirement.
    await alice.ok("PUT", policyPath, { require_reason: false });
    await carol.fails("POST", `/knock/${enc(strict)}`, {}, 403, "M_FORBIDDEN");
    await carol.ok("POST", `/knock/${enc(strict)}`, { reason: "hi again" });
    expect(await knockers(alice, strict)).toEqual([carol.userId]);

    // Keys that are not valid are ignored, not a failure: the knock is decided by the valid ones.
    const erin = await user("erin");
    await alice.ok("PUT", policyPath, { deny: "everyone", max_reason_length: 3 });
    expect((await erin.fails("POST", `/knock/${enc(strict)}`, { reason: "four" }, 403, "M_FORBIDDEN")).error).toContain("at most 3 characters");
    await erin.ok("POST", `/knock/${enc(strict)}`, { reason: "yo" });
  });

  test("the policies hear how knocks end: accepted, rejected, rescinded, banned", async () => {
    const alice = await user("alice");
    const [b1, b2, b3, b4] = [await user("bob"), await user("bob"), await user("bob"), await user("bob")];
    const roomId = await knockRoom(alice);
    for (const b of [b1, b2, b3, b4]) await b.ok("POST", `/knock/${enc(roomId)}`, { reason: "let me in" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: b1.userId });
    await alice.ok("POST", `/rooms/${enc(roomId)}/kick`, { user_id: b2.userId, reason: "no" });
    await b3.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
    await alice.ok("POST", `/rooms/${enc(roomId)}/ban`, { user_id: b4.userId });
    const outcomes = async (b: TestClient) => (await heardThat((h) => h.kind === "resolved" && h.userId === b.userId)).map(({ outcome, by, roomId }) => ({ outcome, by, roomId }));
    expect(await outcomes(b1)).toEqual([{ outcome: "accepted", by: alice.userId, roomId }]);
    expect(await outcomes(b2)).toEqual([{ outcome: "rejected", by: alice.userId, roomId }]);
    expect(await outcomes(b3)).toEqual([{ outcome: "rescinded", by: b3.userId, roomId }]);
    expect(await outcomes(b4)).toEqual([{ outcome: "banned", by: alice.userId, roomId }]);

    // Memberships that do not end a knock say nothing: b1 joins after the invite, b2 knocks again.
    await b1.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    await b2.ok("POST", `/knock/${enc(roomId)}`, { reason: "again" });
    // A membership set through the generic state endpoint is seen too (the engine's listener sees every event).
    await alice.ok("PUT", `/rooms/${enc(roomId)}/state/m.room.member/${enc(b2.userId)}`, { membership: "leave", reason: "via state" });
    expect((await heardThat((h) => h.kind === "resolved" && h.userId === b2.userId, 2)).map((h) => h.outcome)).toEqual(["rejected", "rejected"]);
    expect(heard.filter((h) => h.kind === "resolved" && h.userId === b1.userId)).toHaveLength(1);
  });

  test("a knocker who joins a knock_restricted room directly is accepted, by the member who vouched for the join", async () => {
    const alice = await user("alice");
    const bob = await user("bob");
    const club = await alice.createRoom({ preset: "public_chat" });
    const roomId = await alice.createRoom({
      room_version: "10",
      initial_state: [{ type: "m.room.join_rules", content: { join_rule: "knock_restricted", allow: [{ type: "m.room_membership", room_id: club }] } }],
    });
    await bob.ok("POST", `/knock/${enc(roomId)}`, { reason: "let me in" });
    await bob.ok("POST", `/rooms/${enc(club)}/join`, {});
    await bob.ok("POST", `/rooms/${enc(roomId)}/join`, {});
    const [resolved] = await heardThat((h) => h.kind === "resolved" && h.userId === bob.userId);
    expect(resolved).toEqual({ kind: "resolved", roomId, userId: bob.userId, outcome: "accepted", by: alice.userId });
  });
});

describe("deny lists by server and by pattern", () => {
  let server: PortierServer;
  beforeAll(async () => {
    server = await testServer({
      server_name: "denied.example",
      registration: { enabled: true },
      plugins: [{ name: "knock-policy", config: { deny: { servers: ["*.example"] } } }],
    });
  });
  afterAll(() => server.stop());

  test("a denied server's users cannot knock; the message names the server; nothing is stored", async () => {
    const alice = await TestClient.register(server, "alice");
    const bob = await TestClient.register(server, "bob");
    const roomId = await knockRoom(alice);
    const body = await bob.fails("POST", `/knock/${enc(roomId)}`, { reason: "hi" }, 403, "M_FORBIDDEN");
    expect(body.error).toBe("Knocks from users of denied.example are not accepted here");
    await expectNothingStored(alice, bob, roomId);
  });
});

describe("allow lists", () => {
  let server: PortierServer;
  beforeAll(async () => {
    server = await testServer({ server_name: "allow.example", registration: { enabled: true }, plugins: [{ name: "knock-policy", config: { allow: { users: ["@friend*:allow.example"] } } }] });
  });
  afterAll(() => server.stop());

  test("only the users the allow list names may knock", async () => {
    const alice = await TestClient.register(server, "alice");
    const friend = await TestClient.register(server, "friend1");
    const stranger = await TestClient.register(server, "stranger");
    const roomId = await knockRoom(alice);
    expect((await stranger.fails("POST", `/knock/${enc(roomId)}`, {}, 403, "M_FORBIDDEN")).error).toContain("not among them");
    await friend.ok("POST", `/knock/${enc(roomId)}`, {});
    expect(await knockers(alice, roomId)).toEqual([friend.userId]);
  });
});

describe("plugin failures are handled by fail mode, never a 500", () => {
  const servers: PortierServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.stop();
  });
  const serverWith = async (name: string, plugins: unknown[]) => {
    const s = await testServer({ server_name: name, registration: { enabled: true }, plugins });
    servers.push(s);
    return s;
  };

  test("fail open: a policy that throws, and one that hangs past its timeout, let the knock through", async () => {
    const server = await serverWith("open.example", [
      { path: thrower, fail_mode: "open" },
      { path: hanger, fail_mode: "open", timeout_ms: 50 },
    ]);
    const alice = await TestClient.register(server, "alice");
    const bob = await TestClient.register(server, "bob");
    const roomId = await knockRoom(alice);
    const started = performance.now();
    expect(await bob.ok("POST", `/knock/${enc(roomId)}`, { reason: "hi" })).toEqual({ room_id: roomId });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await knockers(alice, roomId)).toEqual([bob.userId]);
  });

  test("fail closed: a policy that throws refuses the knock with M_FORBIDDEN; nothing is stored", async () => {
    const server = await serverWith("closed.example", [{ path: thrower, fail_mode: "closed" }]);
    const alice = await TestClient.register(server, "alice");
    const bob = await TestClient.register(server, "bob");
    const roomId = await knockRoom(alice);
    const body = await bob.fails("POST", `/knock/${enc(roomId)}`, { reason: "hi" }, 403, "M_FORBIDDEN");
    expect(body.error).not.toContain("the policy broke");
    await expectNothingStored(alice, bob, roomId);
  });

  test("fail closed: a policy that hangs is cut off at its timeout and the knock refused", async () => {
    const server = await serverWith("hang.example", [{ path: hanger, fail_mode: "closed", timeout_ms: 50 }]);
    const alice = await TestClient.register(server, "alice");
    const bob = await TestClient.register(server, "bob");
    const roomId = await knockRoom(alice);
    await bob.fails("POST", `/knock/${enc(roomId)}`, { reason: "hi" }, 403, "M_FORBIDDEN");
    await expectNothingStored(alice, bob, roomId);
  });
});

describe("expired knocks", () => {
  test("the expiry job's kicks are reported as expired, not rejected", async () => {
    let now = START;
    const ticks: (() => Promise<unknown>)[] = [];
    const timer: IntervalTimer = { every: (_ms, tick) => (ticks.push(tick), { cancel: () => {} }) };
    const server = await testServer(
      { server_name: "expiry-kp.example", registration: { enabled: true }, knocks: { expire_after_ms: 60_000 }, plugins: [{ path: recorder }] },
      { clock: { now: () => now }, timer },
    );
    try {
      await server.start();
      const alice = await TestClient.register(server, "alice");
      const bob = await TestClient.register(server, "bob");
      const carol = await TestClient.register(server, "carol");
      const roomId = await knockRoom(alice);
      await bob.ok("POST", `/knock/${enc(roomId)}`, { reason: "hi" });
      await carol.ok("POST", `/knock/${enc(roomId)}`, { reason: "hi" });
      await alice.ok("POST", `/rooms/${enc(roomId)}/kick`, { user_id: carol.userId });
      now += 60_000;
      expect(ticks).toHaveLength(1);
      await ticks[0]!();
      expect(await memberOf(alice, roomId, bob.userId)).toBe("leave");
      const [bobs] = await heardThat((h) => h.kind === "resolved" && h.userId === bob.userId);
      expect(bobs).toEqual({ kind: "resolved", roomId, userId: bob.userId, outcome: "expired", by: alice.userId });
      const [carols] = await heardThat((h) => h.kind === "resolved" && h.userId === carol.userId);
      expect(carols.outcome).toBe("rejected");
    } finally {
      await server.stop();
    }
  });
});
