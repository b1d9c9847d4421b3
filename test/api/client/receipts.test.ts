import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { testServer } from "../../helpers/server";
import { R0, TestClient, enc } from "../../helpers/rooms";

let now = 1_700_000_000_000;
const clock = { now: () => now };
let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
let carol: TestClient;
let roomId: string;
beforeAll(async () => {
  server = await testServer({ server_name: "receipts.example", registration: { enabled: true } }, { clock });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
  carol = await TestClient.register(server, "carol");
  roomId = await alice.createRoom({ preset: "public_chat" });
  await bob.ok("POST", `/join/${enc(roomId)}`, {});
});
afterAll(() => server.stop());

describe("typing", () => {
  test("start, expire by timeout, stop; typingSince reports changes once", async () => {
    const typing = resolve(server.container, Tokens.Typing);
    const woken: string[] = [];
    typing.onChange((r) => woken.push(r));
    const start = typing.currentSerial();
    expect(await alice.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 10_000 })).toEqual({});
    await bob.ok("PUT", `${R0}/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: true, timeout: 30_000 });
    expect(typing.typingUsers(roomId)).toEqual([alice.userId, bob.userId].sort());
    expect(woken).toEqual([roomId, roomId]);
    const seen = typing.typingSince(roomId, start)!;
    expect(seen.userIds).toEqual([alice.userId, bob.userId].sort());
    expect(typing.typingSince(roomId, seen.serial)).toBeUndefined();
    now += 10_001;
    const expired = typing.typingSince(roomId, seen.serial)!;
    expect(expired.userIds).toEqual([bob.userId]);
    await bob.ok("PUT", `/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: false });
    expect(typing.typingSince(roomId, expired.serial)!.userIds).toEqual([]);
  });

  test("only for yourself, only as a member; typing is required", async () => {
    await alice.fails("PUT", `/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: true }, 403, "M_FORBIDDEN");
    await carol.fails("PUT", `/rooms/${enc(roomId)}/typing/${enc(carol.userId)}`, { typing: true }, 403, "M_FORBIDDEN");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, {}, 400, "M_MISSING_PARAM");
    await alice.fails("PUT", `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: "yes" }, 400, "M_BAD_JSON");
    await alice.fails("PUT", `/rooms/${enc("!x:receipts.example")}/typing/${enc(alice.userId)}`, { typing: true }, 404, "M_NOT_FOUND");
  });
});

describe("receipts and read markers", () => {
  test("public and private receipts, threaded ones, receiptsSince for /sync; receipts never move back", async () => {
    const receipts = resolve(server.container, Tokens.Receipts);
    const since = await receipts.currentStreamId();
    const first = await alice.send(roomId);
    const second = await alice.send(roomId);
    expect(await bob.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(second)}`, {})).toEqual({});
    await bob.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(first)}`, {}); // older: ignored
    await bob.ok("POST", `/rooms/${enc(roomId)}/receipt/m.read.private/${enc(first)}`, {});
    await alice.ok("POST", `${R0}/rooms/${enc(roomId)}/receipt/m.read/${enc(first)}`, { thread_id: "main" });
    const forAlice = (await receipts.receiptsSince(roomId, since, alice.userId))!;
    expect(forAlice).toEqual({
      [second]: { "m.read": { [bob.userId]: { ts: now } } },
      [first]: { "m.read": { [alice.userId]: { ts: now, thread_id: "main" } } },
    });
    const forBob = (await receipts.receiptsSince(roomId, since, bob.userId))!;
    expect(forBob[first]!["m.read.private"]).toEqual({ [bob.userId]: { ts: now } });
    expect(await receipts.receiptsSince(roomId, await receipts.currentStreamId(), bob.userId)).toBeUndefined();
  });

  test("read markers set m.fully_read and receipts; errors for bad input", async () => {
    const receipts = resolve(server.container, Tokens.Receipts);
    const eventId = await alice.send(roomId);
    expect(await bob.ok("POST", `/rooms/${enc(roomId)}/read_markers`, { "m.fully_read": eventId, "m.read": eventId })).toEqual({});
    expect(await receipts.fullyReadOf(bob.userId, roomId)).toBe(eventId);
    const later = await alice.send(roomId);
    await bob.ok("POST", `/rooms/${enc(roomId)}/receipt/m.fully_read/${enc(later)}`, {});
    expect(await receipts.fullyReadOf(bob.userId, roomId)).toBe(later);
    // m.fully_read never shows up among the receipts others see.
    const all = (await receipts.receiptsSince(roomId, 0, alice.userId))!;
    expect(JSON.stringify(all)).not.toContain("m.fully_read");

    await bob.fails("POST", `/rooms/${enc(roomId)}/receipt/m.unknown/${enc(eventId)}`, {}, 400, "M_INVALID_PARAM");
    await bob.fails("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, { thread_id: "" }, 400, "M_INVALID_PARAM");
    await bob.fails("POST", `/rooms/${enc(roomId)}/receipt/m.fully_read/${enc(eventId)}`, { thread_id: "main" }, 400, "M_INVALID_PARAM");
    await bob.fails("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc("$nope")}`, {}, 404, "M_NOT_FOUND");
    await carol.fails("POST", `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {}, 403, "M_FORBIDDEN");
    await bob.fails("POST", `/rooms/${enc(roomId)}/read_markers`, { "m.read": 5 }, 400, "M_BAD_JSON");
    await carol.fails("POST", `/rooms/${enc(roomId)}/read_markers`, { "m.fully_read": eventId }, 403, "M_FORBIDDEN");
  });
});
