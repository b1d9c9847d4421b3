// POST /rooms/{roomId}/upgrade: a new room naming its predecessor, the old room's defining state
// copied, a tombstone in the old room, the old room closed to ordinary members; refusals store nothing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { testServer } from "../../helpers/server";
import { TestClient, enc } from "../../helpers/rooms";
import { resolve, Tokens } from "../../../src/di/tokens";
import type { PortierServer } from "../../../src/app";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;

beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
});
afterAll(() => server.stop());

describe("POST /rooms/{roomId}/upgrade", () => {
  for (const newVersion of ["11", "12"]) {
    test(`to room version ${newVersion}: predecessor, copied state and power levels, tombstone, old room closed`, async () => {
      const oldRoom = await alice.createRoom({ room_version: "10", preset: "public_chat", name: "Old name", topic: "Old topic", power_level_content_override: { users: { [alice.userId]: 100, [bob.userId]: 20 } } });
      await bob.ok("POST", `/join/${enc(oldRoom)}`, {});
      const { replacement_room: newRoom } = await alice.ok("POST", `/rooms/${enc(oldRoom)}/upgrade`, { new_version: newVersion });
      expect(newRoom).not.toBe(oldRoom);

      const create = await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.create/`);
      expect(create.room_version).toBe(newVersion);
      expect(create.predecessor.room_id).toBe(oldRoom);
      expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.name/`)).name).toBe("Old name");
      expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.topic/`)).topic).toBe("Old topic");
      expect((await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.join_rules/`)).join_rule).toBe("public");
      const power = await alice.ok("GET", `/rooms/${enc(newRoom)}/state/m.room.power_levels/`);
      expect(power.users[bob.userId]).toBe(20);

      const tombstone = await bob.ok("GET", `/rooms/${enc(oldRoom)}/state/m.room.tombstone/`);
      expect(tombstone.replacement_room).toBe(newRoom);
      await bob.fails("PUT", `/rooms/${enc(oldRoom)}/send/m.room.message/${crypto.randomUUID()}`, { msgtype: "m.text", body: "still here?" }, 403, "M_FORBIDDEN");
      // bob follows to the new room (a public one).
      await bob.ok("POST", `/join/${enc(newRoom)}`, {});
      await bob.send(newRoom, { msgtype: "m.text", body: "moved" });
    });
  }

  test("refused without the power to send m.room.tombstone, for an unknown version, for a room one is not in; nothing created", async () => {
    const roomId = await alice.createRoom({ preset: "public_chat" });
    await bob.ok("POST", `/join/${enc(roomId)}`, {});
    const before = await resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering();
    await bob.fails("POST", `/rooms/${enc(roomId)}/upgrade`, { new_version: "11" }, 403, "M_FORBIDDEN");
    await alice.fails("POST", `/rooms/${enc(roomId)}/upgrade`, { new_version: "99" }, 400, "M_UNSUPPORTED_ROOM_VERSION");
    await alice.fails("POST", `/rooms/${enc("!nowhere:" + server.config.server_name)}/upgrade`, { new_version: "11" }, 404, "M_NOT_FOUND");
    await alice.fails("POST", `/rooms/${enc(roomId)}/upgrade`, {}, 400, "M_MISSING_PARAM");
    expect(await resolve(server.container, Tokens.RoomEventStore).maxStreamOrdering()).toBe(before);
  });
});
