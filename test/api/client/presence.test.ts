// Presence: PUT/GET /presence/{userId}/status, set by syncing too, shared in /sync with the users
// one shares a room with (and nobody else), a long-poll woken by a change; off by config.
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
  const roomId = await alice.createRoom({ preset: "public_chat" });
  await bob.ok("POST", `/join/${enc(roomId)}`, {});
});
afterAll(() => server.stop());

const presenceEvents = (sync: any) => sync.presence.events as { sender: string; content: { presence: string; status_msg?: string } }[];

describe("presence", () => {
  test("PUT sets it (with a status message); GET reads it; only one's own; others' when sharing a room", async () => {
    await alice.ok("PUT", `/presence/${enc(alice.userId)}/status`, { presence: "unavailable", status_msg: "lunch" });
    const seen = await bob.ok("GET", `/presence/${enc(alice.userId)}/status`);
    expect(seen).toMatchObject({ presence: "unavailable", status_msg: "lunch" });
    expect(typeof seen.last_active_ago).toBe("number");
    await bob.fails("PUT", `/presence/${enc(alice.userId)}/status`, { presence: "online" }, 403, "M_FORBIDDEN");
    await carol.fails("GET", `/presence/${enc(alice.userId)}/status`, undefined, 403, "M_FORBIDDEN");
    await alice.fails("PUT", `/presence/${enc(alice.userId)}/status`, { presence: "asleep" }, 400, "M_BAD_JSON");
    await alice.fails("GET", `/presence/${enc("@nobody:" + server.config.server_name)}/status`, undefined, 404, "M_NOT_FOUND");
  });

  test("/sync carries changes to those who share a room; syncing makes one online; a long-poll wakes on a change", async () => {
    const bobSince = (await bob.ok("GET", "/sync?timeout=0")).next_batch;
    const carolSince = (await carol.ok("GET", "/sync?timeout=0")).next_batch;
    const waiting = bob.ok("GET", `/sync?timeout=5000&since=${enc(bobSince)}&set_presence=offline`);
    await Bun.sleep(50);
    await alice.ok("PUT", `/presence/${enc(alice.userId)}/status`, { presence: "online", status_msg: "back" });
    const woken = await waiting;
    expect(presenceEvents(woken).find((e) => e.sender === alice.userId)?.content).toMatchObject({ presence: "online", status_msg: "back" });
    // carol shares no room with alice: nothing of hers.
    const carolSync = await carol.ok("GET", `/sync?timeout=0&since=${enc(carolSince)}`);
    expect(presenceEvents(carolSync).some((e) => e.sender === alice.userId)).toBe(false);
    // A sync without set_presence marks the user online (carol had never set any).
    expect((await carol.ok("GET", `/presence/${enc(carol.userId)}/status`)).presence).toBe("online");
    // The next incremental sync brings no presence that did not change.
    const again = await bob.ok("GET", `/sync?timeout=0&since=${enc(woken.next_batch)}&set_presence=offline`);
    expect(presenceEvents(again).filter((e) => e.sender === alice.userId)).toEqual([]);
  });

  test("set_presence=unavailable on a sync reaches those who share a room, not others", async () => {
    const bobSince = (await bob.ok("GET", "/sync?timeout=0")).next_batch;
    const carolSince = (await carol.ok("GET", "/sync?timeout=0")).next_batch;
    await alice.ok("GET", "/sync?timeout=0&set_presence=unavailable");
    const seen = presenceEvents(await bob.ok("GET", `/sync?timeout=0&since=${enc(bobSince)}`)).find((e) => e.sender === alice.userId);
    expect(seen?.content.presence).toBe("unavailable");
    expect(typeof (seen?.content as { last_active_ago?: number }).last_active_ago).toBe("number");
    expect(presenceEvents(await carol.ok("GET", `/sync?timeout=0&since=${enc(carolSince)}`)).some((e) => e.sender === alice.userId)).toBe(false);
  });

  test("presence.enabled: false — PUT accepted and ignored, everyone offline, nothing in /sync", async () => {
    const off = await testServer({ registration: { enabled: true }, presence: { enabled: false } });
    try {
      const dan = await TestClient.register(off, "dan");
      await dan.ok("PUT", `/presence/${enc(dan.userId)}/status`, { presence: "online", status_msg: "hi" });
      expect(await dan.ok("GET", `/presence/${enc(dan.userId)}/status`)).toEqual({ presence: "offline" });
      expect(presenceEvents(await dan.ok("GET", "/sync?timeout=0"))).toEqual([]);
    } finally {
      await off.stop();
    }
  });
});
