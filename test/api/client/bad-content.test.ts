// Event content a server could not hash and store byte-for-byte, or that breaks the PDU limits, is
// refused with a Matrix error and stores nothing.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { testServer } from "../../helpers/server";
import { TestClient, V3, enc } from "../../helpers/rooms";

let server: PortierServer;
let alice: TestClient;
let room: string;
beforeAll(async () => {
  server = await testServer({ server_name: "bad.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  room = await alice.createRoom({ room_version: "5" });
});
afterAll(() => server.stop());

describe("bad event content", () => {
  test.each([
    ["a float", '{"body":"x","n":1.5}', 400, "M_BAD_JSON"],
    ["an integer past 2^53", '{"body":"x","n":12345678901234567890}', 400, "M_BAD_JSON"],
    ["a lone surrogate", '{"body":"\\ud800"}', 400, "M_BAD_JSON"],
    ["content past 64 KiB", JSON.stringify({ body: "z".repeat(70_000) }), 413, "M_TOO_LARGE"],
  ])("%s is refused", async (_what, body, status, errcode) => {
    const r = await alice.call("PUT", `${V3}/rooms/${enc(room)}/send/m.room.message/${crypto.randomUUID()}`, body);
    expect({ status: r.status, errcode: r.body.errcode }).toEqual({ status, errcode });
  });

  test("an event type past 255 bytes, or with a NUL, is refused", async () => {
    const long = await alice.call("PUT", `${V3}/rooms/${enc(room)}/send/${"t".repeat(300)}/${crypto.randomUUID()}`, { body: "x" });
    expect({ status: long.status, errcode: long.body.errcode }).toEqual({ status: 400, errcode: "M_BAD_JSON" });
    const nul = await alice.call("PUT", `${V3}/rooms/${enc(room)}/state/${enc("m.room.member\u0000")}/x`, { membership: "join" });
    expect(nul.status).toBe(400);
    const members = await alice.ok("GET", `${V3}/rooms/${enc(room)}/joined_members`);
    expect(Object.keys(members.joined)).toEqual([alice.userId]);
  });

  test("createRoom with a float in creation_content is M_BAD_JSON and creates nothing", async () => {
    const before = (await alice.ok("GET", `${V3}/joined_rooms`)).joined_rooms.length;
    const r = await alice.call("POST", `${V3}/createRoom`, { creation_content: { x: 1.5 } });
    expect({ status: r.status, errcode: r.body.errcode }).toEqual({ status: 400, errcode: "M_BAD_JSON" });
    expect((await alice.ok("GET", `${V3}/joined_rooms`)).joined_rooms.length).toBe(before);
  });
});
