// PostgreSQL lost while Portier runs: requests get a Matrix error (never a crash or a hang), the
// server reconnects by itself once the database is back, and nothing acknowledged before is lost.
import { afterAll, describe, expect, test } from "bun:test";
import { hasPostgres } from "../helpers/databases";
import { ownPostgresServer } from "../helpers/postgres";
import { request, testServer } from "../helpers/server";
import type { PortierServer } from "../../src/app";

const enc = encodeURIComponent;
let server: PortierServer | undefined;
let cleanup: (() => void) | undefined;
afterAll(async () => {
  await server?.stop().catch(() => {});
  cleanup?.();
});

describe.skipIf(!hasPostgres)("PostgreSQL outage", () => {
  test("errors while it is down, the same data and new writes once it is back", async () => {
    const pg = await ownPostgresServer();
    cleanup = pg.remove;
    server = await testServer({ server_name: "outage.test", registration: { enabled: true }, database: { driver: "postgres", url: pg.url } });
    const reg = await request(server, "POST", "/_matrix/client/v3/register", { username: "alice", password: "outage password", auth: { type: "m.login.dummy" } });
    expect(reg.status).toBe(200);
    const auth = { Authorization: `Bearer ${reg.body.access_token}` };
    const room = (await request(server, "POST", "/_matrix/client/v3/createRoom", {}, auth)).body.room_id as string;
    const sent = await request(server, "PUT", `/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/t1`, { msgtype: "m.text", body: "before" }, auth);
    expect(sent.status).toBe(200);

    pg.stop();
    const down = await request(server, "PUT", `/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/t2`, { msgtype: "m.text", body: "during" }, auth);
    expect(down.status).toBe(503);
    expect(down.body.errcode).toBe("M_UNKNOWN");
    // (The access token itself is known from memory by now: a read that needs the database.)
    const read = await request(server, "GET", "/_matrix/client/v3/devices", undefined, auth);
    expect(read.status).toBe(503);

    pg.restart();
    // The first request after the database is back succeeds: dead pooled connections are replaced.
    const again = await request(server, "PUT", `/_matrix/client/v3/rooms/${enc(room)}/send/m.room.message/t2`, { msgtype: "m.text", body: "during" }, auth);
    expect(again.status).toBe(200);
    const messages = await request(server, "GET", `/_matrix/client/v3/rooms/${enc(room)}/messages?dir=b&limit=50`, undefined, auth);
    const bodies = messages.body.chunk.filter((e: { type: string }) => e.type === "m.room.message").map((e: { content: { body: string } }) => e.content.body);
    expect(bodies).toEqual(["during", "before"]);
  }, 60_000);
});
