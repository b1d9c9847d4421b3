// Server-side key backups (key_backup.yaml) through the real HTTP app: versions (create, read,
// update, delete), keys at the three levels with etag and count, the spec's rule on which key
// replaces which, writes only to the current version, and the errors the spec names.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { expectMatchesSpec, specOperation } from "../../helpers/openapi";
import { testServer } from "../../helpers/server";
import { R0, TestClient, V3, enc } from "../../helpers/rooms";
import { replacesBackedUpKey } from "../../../src/services/e2ee/key-backup";

let server: PortierServer;
let alice: TestClient;
let bob: TestClient;
beforeAll(async () => {
  server = await testServer({ server_name: "backup.example", registration: { enabled: true } });
  alice = await TestClient.register(server, "alice");
  bob = await TestClient.register(server, "bob");
});
afterAll(() => server.stop());

const ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2";
const ROOM = "!room:backup.example";
const OTHER_ROOM = "!other:backup.example";

async function fails(client: TestClient, method: string, path: string, body: unknown, status: number, errcode: string) {
  const r = await client.call(method, path, body);
  expect({ status: r.status, errcode: r.body?.errcode }).toEqual({ status, errcode });
  const full = path.startsWith("/_matrix") ? path : `${V3}${path}`;
  if (specOperation({ api: "client-server", method, path: full })?.statuses.includes(String(status))) expectMatchesSpec({ api: "client-server", method, path: full, status, body: r.body });
  return r.body;
}

const key = (firstMessageIndex: number, forwardedCount: number, isVerified: boolean, tag: string) => ({
  first_message_index: firstMessageIndex,
  forwarded_count: forwardedCount,
  is_verified: isVerified,
  session_data: { ephemeral: "e", ciphertext: tag, mac: "m" },
});

describe("backup versions", () => {
  test("none yet: 404 M_NOT_FOUND; then create, read, update and delete", async () => {
    await fails(alice, "GET", "/room_keys/version", undefined, 404, "M_NOT_FOUND");
    await fails(alice, "GET", "/room_keys/version/1", undefined, 404, "M_NOT_FOUND");
    const { version } = await alice.ok("POST", "/room_keys/version", { algorithm: ALGORITHM, auth_data: { public_key: "abc" } });
    expect(version).toBe("1");
    const latest = await alice.ok("GET", "/room_keys/version");
    expect(latest).toEqual({ algorithm: ALGORITHM, auth_data: { public_key: "abc" }, count: 0, etag: "0", version: "1" });
    expect(await alice.ok("GET", `${R0}/room_keys/version/1`)).toEqual(latest);
    // Backups are per user.
    await fails(bob, "GET", "/room_keys/version/1", undefined, 404, "M_NOT_FOUND");

    await alice.ok("PUT", "/room_keys/version/1", { algorithm: ALGORITHM, auth_data: { public_key: "abc", signatures: {} }, version: "1" });
    expect((await alice.ok("GET", "/room_keys/version")).auth_data).toEqual({ public_key: "abc", signatures: {} });
    await fails(alice, "PUT", "/room_keys/version/1", { algorithm: "other", auth_data: {} }, 400, "M_INVALID_PARAM");
    await fails(alice, "PUT", "/room_keys/version/1", { algorithm: ALGORITHM, auth_data: {}, version: "2" }, 400, "M_INVALID_PARAM");
    await fails(alice, "PUT", "/room_keys/version/9", { algorithm: ALGORITHM, auth_data: {} }, 404, "M_NOT_FOUND");
    await fails(alice, "PUT", "/room_keys/version/1", { algorithm: ALGORITHM }, 400, "M_MISSING_PARAM");
    await fails(alice, "POST", "/room_keys/version", { algorithm: ALGORITHM, auth_data: "x" }, 400, "M_BAD_JSON");

    const second = await alice.ok("POST", "/room_keys/version", { algorithm: ALGORITHM, auth_data: { public_key: "def" } });
    expect(second.version).toBe("2");
    expect((await alice.ok("GET", "/room_keys/version")).version).toBe("2");
    await alice.ok("DELETE", "/room_keys/version/2");
    await fails(alice, "DELETE", "/room_keys/version/2", undefined, 404, "M_NOT_FOUND");
    await fails(alice, "GET", "/room_keys/version/2", undefined, 404, "M_NOT_FOUND");
    await fails(alice, "DELETE", "/room_keys/version/x", undefined, 404, "M_NOT_FOUND");
    // The latest is version 1 again, and a new version never reuses a deleted number.
    expect((await alice.ok("GET", "/room_keys/version")).version).toBe("1");
    expect((await alice.ok("POST", "/room_keys/version", { algorithm: ALGORITHM, auth_data: { public_key: "ghi" } })).version).toBe("3");
  });
});

describe("backed-up keys", () => {
  let version: string;
  beforeAll(async () => {
    version = (await bob.ok("POST", "/room_keys/version", { algorithm: ALGORITHM, auth_data: { public_key: "bob" } })).version;
  });

  test("stored and read at the three levels, with count and etag", async () => {
    const put = await bob.ok("PUT", `/room_keys/keys?version=${version}`, { rooms: { [ROOM]: { sessions: { s1: key(0, 0, false, "s1"), s2: key(0, 0, false, "s2") } } } });
    expect(put.count).toBe(2);
    const room = await bob.ok("PUT", `/room_keys/keys/${enc(OTHER_ROOM)}?version=${version}`, { sessions: { s3: key(0, 0, false, "s3") } });
    expect(room.count).toBe(3);
    const session = await bob.ok("PUT", `/room_keys/keys/${enc(OTHER_ROOM)}/s4?version=${version}`, key(0, 0, false, "s4"));
    expect(session.count).toBe(4);
    expect(new Set([put.etag, room.etag, session.etag]).size).toBe(3);

    const all = await bob.ok("GET", `/room_keys/keys?version=${version}`);
    expect(Object.keys(all.rooms).sort()).toEqual([OTHER_ROOM, ROOM].sort());
    expect(Object.keys(all.rooms[ROOM].sessions).sort()).toEqual(["s1", "s2"]);
    expect((await bob.ok("GET", `/room_keys/keys/${enc(OTHER_ROOM)}?version=${version}`)).sessions.s3.session_data.ciphertext).toBe("s3");
    expect(await bob.ok("GET", `/room_keys/keys/${enc(OTHER_ROOM)}/s4?version=${version}`)).toEqual(key(0, 0, false, "s4"));
    expect(await bob.ok("GET", `/room_keys/keys/${enc("!empty:backup.example")}?version=${version}`)).toEqual({ sessions: {} });
    await fails(bob, "GET", `/room_keys/keys/${enc(ROOM)}/nosuch?version=${version}`, undefined, 404, "M_NOT_FOUND");
    const info = await bob.ok("GET", `/room_keys/version/${version}`);
    expect({ count: info.count, etag: info.etag }).toEqual({ count: 4, etag: session.etag });
  });

  test("a key replaces a stored one only when it is better: verified, then a lower first index, then fewer forwards", async () => {
    const path = `/room_keys/keys/${enc(ROOM)}/rule?version=${version}`;
    const stored = async () => (await bob.ok("GET", path)).session_data.ciphertext;
    await bob.ok("PUT", path, key(5, 2, false, "first"));
    const unchanged = await bob.ok("PUT", path, key(6, 0, false, "later index"));
    expect(await stored()).toBe("first");
    expect((await bob.ok("PUT", path, key(5, 1, false, "fewer forwards"))).etag).not.toBe(unchanged.etag);
    expect(await stored()).toBe("fewer forwards");
    await bob.ok("PUT", path, key(5, 1, false, "a tie"));
    expect(await stored()).toBe("fewer forwards");
    await bob.ok("PUT", path, key(9, 9, true, "verified"));
    expect(await stored()).toBe("verified");
    await bob.ok("PUT", path, key(0, 0, false, "unverified but earlier"));
    expect(await stored()).toBe("verified");
    expect(replacesBackedUpKey({ isVerified: false, firstMessageIndex: 1, forwardedCount: 0 }, { isVerified: false, firstMessageIndex: 2, forwardedCount: 0 })).toBe(true);
  });

  test("only the current version takes keys: 403 M_WRONG_ROOM_KEYS_VERSION naming it; an unknown version is 404", async () => {
    const newer = (await bob.ok("POST", "/room_keys/version", { algorithm: ALGORITHM, auth_data: { public_key: "newer" } })).version;
    const wrong = await fails(bob, "PUT", `/room_keys/keys/${enc(ROOM)}/x?version=${version}`, key(0, 0, false, "x"), 403, "M_WRONG_ROOM_KEYS_VERSION");
    expect(wrong.current_version).toBe(newer);
    await fails(bob, "PUT", `/room_keys/keys?version=999`, { rooms: {} }, 404, "M_NOT_FOUND");
    await fails(bob, "PUT", `/room_keys/keys/${enc(ROOM)}?version=x`, { sessions: {} }, 404, "M_NOT_FOUND");
    await fails(bob, "GET", `/room_keys/keys?version=999`, undefined, 404, "M_NOT_FOUND");
    await fails(bob, "GET", `/room_keys/keys`, undefined, 400, "M_MISSING_PARAM");
    await fails(bob, "PUT", `/room_keys/keys/${enc(ROOM)}/x?version=${newer}`, { first_message_index: -1, forwarded_count: 0, is_verified: false, session_data: {} }, 400, "M_BAD_JSON");
    await fails(bob, "PUT", `/room_keys/keys/${enc(ROOM)}/x?version=${newer}`, { first_message_index: 0 }, 400, "M_MISSING_PARAM");
    // The older version's keys can still be read.
    expect(Object.keys((await bob.ok("GET", `/room_keys/keys?version=${version}`)).rooms).length).toBe(2);
    expect((await bob.ok("GET", `/room_keys/keys?version=${newer}`)).rooms).toEqual({});
  });

  test("deleted at the three levels; deleting a version deletes its keys", async () => {
    const v = (await bob.ok("POST", "/room_keys/version", { algorithm: ALGORITHM, auth_data: { public_key: "del" } })).version;
    await bob.ok("PUT", `/room_keys/keys?version=${v}`, { rooms: { [ROOM]: { sessions: { a: key(0, 0, false, "a"), b: key(0, 0, false, "b") } }, [OTHER_ROOM]: { sessions: { c: key(0, 0, false, "c") } } } });
    expect((await bob.ok("DELETE", `/room_keys/keys/${enc(ROOM)}/a?version=${v}`)).count).toBe(2);
    expect((await bob.ok("DELETE", `/room_keys/keys/${enc(ROOM)}?version=${v}`)).count).toBe(1);
    const before = await bob.ok("GET", `/room_keys/version/${v}`);
    const none = await bob.ok("DELETE", `/room_keys/keys/${enc(ROOM)}?version=${v}`);
    expect(none).toEqual({ count: 1, etag: before.etag });
    expect((await bob.ok("DELETE", `/room_keys/keys?version=${v}`)).count).toBe(0);
    await fails(bob, "DELETE", `/room_keys/keys?version=999`, undefined, 404, "M_NOT_FOUND");
    await bob.ok("PUT", `/room_keys/keys/${enc(ROOM)}/z?version=${v}`, key(0, 0, false, "z"));
    await bob.ok("DELETE", `/room_keys/version/${v}`);
    const db = resolve(server.container, Tokens.Database);
    expect(Number((await db.get<{ n: number }>("SELECT count(*) AS n FROM room_key_backup_keys WHERE version = ?", Number(v)))!.n)).toBe(0);
  });
});

describe("integers and races", () => {
  let carol: TestClient;
  beforeAll(async () => {
    carol = await TestClient.register(server, "carol");
  });

  test("an index or count past what the INTEGER column holds exactly is 400 M_BAD_JSON at every level, not a 500", async () => {
    const v = (await carol.ok("POST", "/room_keys/version", { algorithm: ALGORITHM, auth_data: { public_key: "big" } })).version;
    // 1e300 is an integer to JSON Schema; the column (and a JS number, exactly) stops at 2^53 - 1.
    for (const huge of [key(1e300, 0, false, "a"), key(0, 1e300, false, "b"), key(Number.MAX_SAFE_INTEGER + 1, 0, false, "c")]) {
      await fails(carol, "PUT", `/room_keys/keys/${enc(ROOM)}/big?version=${v}`, huge, 400, "M_BAD_JSON");
      await fails(carol, "PUT", `/room_keys/keys/${enc(ROOM)}?version=${v}`, { sessions: { big: huge } }, 400, "M_BAD_JSON");
      await fails(carol, "PUT", `/room_keys/keys?version=${v}`, { rooms: { [ROOM]: { sessions: { big: huge } } } }, 400, "M_BAD_JSON");
    }
    // The largest safe integer is stored and read back as it was.
    const largest = key(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, false, "max");
    await carol.ok("PUT", `/room_keys/keys/${enc(ROOM)}/max?version=${v}`, largest);
    expect(await carol.ok("GET", `/room_keys/keys/${enc(ROOM)}/max?version=${v}`)).toEqual(largest);
    expect((await carol.ok("GET", `/room_keys/version/${v}`)).count).toBe(1);
  });

  test("keys put while their version is deleted never land in the deleted version", async () => {
    const db = resolve(server.container, Tokens.Database);
    for (let round = 0; round < 5; round++) {
      const v = (await carol.ok("POST", "/room_keys/version", { algorithm: ALGORITHM, auth_data: { public_key: `race${round}` } })).version;
      const [put, deleted] = await Promise.all([
        carol.call("PUT", `/room_keys/keys?version=${v}`, { rooms: { [ROOM]: { sessions: { s: key(0, 0, false, "s") } } } }),
        carol.call("DELETE", `/room_keys/version/${v}`),
      ]);
      expect(deleted.status).toBe(200);
      // Before the deletion (and deleted with the version) or after it (404): either way nothing stays.
      expect([200, 404]).toContain(put.status);
      expect(Number((await db.get<{ n: number }>("SELECT count(*) AS n FROM room_key_backup_keys WHERE user_id = ? AND version = ?", carol.userId, Number(v)))!.n)).toBe(0);
    }
  });
});
