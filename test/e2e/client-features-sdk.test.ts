// What matrix-js-sdk does beyond messages, against a real Portier on a loopback port: presence,
// push rules and the unread counts they drive, the user directory, and a room upgrade the SDK
// follows (the tombstone, then the replacement room). Every response is checked against the spec
// and none may be a 5xx.
import { describe, expect, test } from "bun:test";
import { NotificationCountType } from "matrix-js-sdk";
import { specMismatches, specOperation } from "../helpers/openapi";
import { sdkServer, waitFor } from "./helpers/sdk";

const SERVER_NAME = "features.e2e.test";
const { exchanges, sdkLog, syncingClient } = sdkServer(SERVER_NAME);

describe("matrix-js-sdk beyond messages", () => {
  test(
    "presence, unread counts from push rules, the user directory, and a room upgrade the SDK follows",
    async () => {
      const alice = await syncingClient("alice");
      const bob = await syncingClient("bob");
      await alice.client.setDisplayName("Alice Liddell");
      const { room_id: roomId } = await alice.client.createRoom({ name: "Features", preset: "public_chat" as never, room_version: "10" });
      await bob.client.joinRoom(roomId);
      await waitFor("alice to see bob joined", () => alice.client.getRoom(roomId)?.getMember(bob.userId)?.membership === "join", 15_000);

      // Presence: bob sets a status; alice's client hears of it through /sync.
      await bob.client.setPresence({ presence: "unavailable", status_msg: "in a meeting" });
      await waitFor("alice to see bob's presence", () => {
        const user = alice.client.getUser(bob.userId);
        return user?.presence === "unavailable" && user.presenceStatusMsg === "in a meeting";
      }, 15_000);

      // Push rules drive unread counts: bob mentions alice, alice's client counts a highlight.
      await bob.client.sendMessage(roomId, { msgtype: "m.text", body: "a plain message" } as never);
      await bob.client.sendMessage(roomId, { msgtype: "m.text", body: "Alice, look", "m.mentions": { user_ids: [alice.userId] } } as never);
      const bodies = () => (alice.client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? []).map((e) => e.getContent().body);
      await waitFor("both messages in alice's timeline", () => bodies().includes("Alice, look") && bodies().includes("a plain message"), 30_000);
      const counts = () => {
        const room = alice.client.getRoom(roomId);
        return `${room?.getUnreadNotificationCount(NotificationCountType.Total)}/${room?.getUnreadNotificationCount(NotificationCountType.Highlight)}`;
      };
      try {
        await waitFor("alice's unread counts", () => counts() === "2/1", 30_000);
      } catch (error) {
        throw new Error(`${(error as Error).message}; the client's counts (total/highlight): ${counts()}`);
      }
      const rules = await alice.client.getPushRules();
      expect(rules?.global.override?.some((r) => r.rule_id === ".m.rule.is_user_mention")).toBe(true);

      // The user directory finds a room mate by display name.
      const found = await bob.client.searchUserDirectory({ term: "liddell" });
      expect(found.results.map((r) => r.user_id)).toEqual([alice.userId]);

      // A room upgrade: bob's client sees the tombstone and follows to the replacement room.
      const { replacement_room: newRoom } = await alice.client.upgradeRoom(roomId, "11");
      await waitFor("bob's client to see the tombstone", () => bob.client.getRoom(roomId)?.currentState.getStateEvents("m.room.tombstone", "")?.getContent().replacement_room === newRoom, 15_000);
      await bob.client.joinRoom(newRoom);
      await waitFor("bob in the replacement room", () => bob.client.getRoom(newRoom)?.getMyMembership() === "join", 15_000);
      expect(bob.client.getRoom(newRoom)?.findPredecessor()?.roomId).toBe(roomId);

      const serverErrors = exchanges.filter((e) => e.status >= 500);
      expect(serverErrors).toEqual([]);
      const checked = exchanges.filter((e) => e.status < 300 && specOperation({ method: e.method, path: e.path }));
      const problems = checked.flatMap((e) => specMismatches({ method: e.method, path: e.path, status: e.status, body: e.body }).map((p) => `${e.method} ${e.path}: ${p}`));
      expect(problems).toEqual([]);
    },
    90_000,
  );
});
