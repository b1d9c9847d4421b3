import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildServer } from "../../src/app";
import { resolveConfig } from "../../src/config/loader";
import { request, silentLogger, tempDir, testServer } from "../helpers/server";

describe("server lifecycle", () => {
  test("first start creates data/ with the database and a 0600 signing key, reused after a restart", async () => {
    const dir = tempDir();
    const config = resolveConfig({ bind: "127.0.0.1:0", data_dir: join(dir, "data") });
    const first = await buildServer(config, { logger: silentLogger });
    const keyFile = join(dir, "data", "signing.key");
    expect(existsSync(join(dir, "data", "portier.db"))).toBe(true);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const keyText = readFileSync(keyFile, "utf8");
    expect(keyText).toMatch(/^ed25519 a_[A-Za-z0-9]{4} [A-Za-z0-9+/]{43}\n$/);
    const firstKeys = (await request(first, "GET", "/_matrix/key/v2/server")).body;
    await first.stop();

    const second = await buildServer(config, { logger: silentLogger });
    const secondKeys = (await request(second, "GET", "/_matrix/key/v2/server")).body;
    await second.stop();
    expect(readFileSync(keyFile, "utf8")).toBe(keyText);
    expect(secondKeys.verify_keys).toEqual(firstKeys.verify_keys);
  });

  test("refuses to start on a database created under another server name", async () => {
    const dir = tempDir();
    const a = await buildServer(resolveConfig({ data_dir: dir, server_name: "one.example" }), { logger: silentLogger });
    await a.stop();
    await expect(buildServer(resolveConfig({ data_dir: dir, server_name: "two.example" }), { logger: silentLogger })).rejects.toThrow(
      "belongs to server 'one.example'",
    );
  });

  test("listens on an ephemeral loopback port and stops", async () => {
    const server = await testServer();
    const { url, port } = await server.start();
    expect(url).toStartWith("http://127.0.0.1:");
    expect(port).toBeGreaterThan(0);
    const r = await fetch(`${url}/_matrix/client/versions`);
    expect(r.status).toBe(200);
    await server.stop();
    await expect(fetch(`${url}/_matrix/client/versions`)).rejects.toThrow();
  });

  test("two servers run side by side in one process with their own containers", async () => {
    const a = await testServer({ server_name: "a.example" });
    const b = await testServer({ server_name: "b.example" });
    try {
      expect(a.container).not.toBe(b.container);
      expect((await request(a, "GET", "/_matrix/key/v2/server")).body.server_name).toBe("a.example");
      expect((await request(b, "GET", "/_matrix/key/v2/server")).body.server_name).toBe("b.example");
    } finally {
      await a.stop();
      await b.stop();
    }
  });
});

describe("room engine in the container", () => {
  test("a room created through the container's engine survives a restart", async () => {
    const { Tokens, resolve } = await import("../../src/di/tokens");
    const { createRoom } = await import("../../src/services/rooms/room-creation");
    const dir = tempDir();
    const config = resolveConfig({ data_dir: dir, server_name: "persist.example" });
    const first = await buildServer(config, { logger: silentLogger });
    const roomId = await createRoom(resolve(first.container, Tokens.RoomEngine), { creator: "@a:persist.example", name: "Kept" });
    const messages = Promise.all(
      Array.from({ length: 5 }, (_, i) => resolve(first.container, Tokens.RoomEngine).sendEvent(roomId, { type: "m.room.message", sender: "@a:persist.example", content: { body: `${i}` } })),
    );
    // stop() waits for queued writes: nothing accepted is lost.
    await first.stop();
    await messages;
    const second = await buildServer(config, { logger: silentLogger });
    try {
      const store = resolve(second.container, Tokens.RoomEventStore);
      expect((await store.getRoom(roomId))?.roomVersion).toBe("10");
      const name = await store.currentStateEvent(roomId, "m.room.name", "");
      expect(JSON.parse((await store.getEvent(name!))!.json).content.name).toBe("Kept");
      expect((await store.roomEventsBetween(roomId, 0, Number.MAX_SAFE_INTEGER, 100)).filter((e) => e.type === "m.room.message")).toHaveLength(5);
    } finally {
      await second.stop();
    }
  });
});
