// Knocking through matrix-js-sdk against a real Portier on a loopback port: the knocker's knockRoom,
// the room showing up as "knock" in the knocker's client through /sync, the moderator's client seeing
// the knock with its reason, and acceptance by invite followed by a join. Every response is checked
// against the spec and none may be a 5xx.
import { describe, expect, test } from "bun:test";
import { specMismatches, specOperation } from "../helpers/openapi";
import { sdkServer, waitFor } from "./helpers/sdk";

const SERVER_NAME = "knock.e2e.test";
const { exchanges, sdkLog, syncingClient } = sdkServer(SERVER_NAME);

describe("knocking with matrix-js-sdk", () => {
  test(
    "knockRoom, the knock seen on both sides, accepted by invite, then joined",
    async () => {
      const alice = await syncingClient("alice");
      const dave = await syncingClient("dave");
      const { room_id: roomId } = await alice.client.createRoom({
        name: "Knock test",
        room_version: "10",
        initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }],
      });

      const knocked = await dave.client.knockRoom(roomId, { reason: "please let me in", viaServers: [SERVER_NAME] });
      expect(knocked.room_id).toBe(roomId);

      // The knocker's client learns of the room from rooms.knock, with its stripped state.
      await waitFor("dave's client to show the knock", () => dave.client.getRoom(roomId)?.getMyMembership() === "knock", 15_000);
      expect(dave.client.getRoom(roomId)?.name).toBe("Knock test");

      // The moderator's client sees the knock and its reason.
      const member = await waitFor("alice to see dave knocking", () => {
        const m = alice.client.getRoom(roomId)?.getMember(dave.userId);
        return m?.membership === "knock" ? m : undefined;
      }, 15_000);
      expect(member.events.member?.getContent().reason).toBe("please let me in");

      // Accept by invite; the knocker's client moves to invite, and joins.
      await alice.client.invite(roomId, dave.userId);
      await waitFor("dave's client to show the invite", () => dave.client.getRoom(roomId)?.getMyMembership() === "invite", 15_000);
      await dave.client.joinRoom(roomId);
      await waitFor("alice to see dave joined", () => alice.client.getRoom(roomId)?.getMember(dave.userId)?.membership === "join", 15_000);

      const serverErrors = exchanges.filter((e) => e.status >= 500);
      expect(serverErrors).toEqual([]);
      const checked = exchanges.filter((e) => e.status < 300 && specOperation({ method: e.method, path: e.path }));
      const knockCalls = checked.filter((e) => e.path.includes("/knock/"));
      expect(knockCalls.length).toBe(1);
      const problems = checked.flatMap((e) => specMismatches({ method: e.method, path: e.path, status: e.status, body: e.body }).map((p) => `${e.method} ${e.path}: ${p}`));
      expect(problems).toEqual([]);
    },
    30_000,
  );
});
