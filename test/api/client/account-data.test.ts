import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { Tokens, resolve } from "../../../src/di/tokens";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { bearer, registerUser, type TestUser } from "../../helpers/accounts";

let server: PortierServer;
let alice: TestUser;
let bob: TestUser;
beforeAll(async () => {
  server = await testServer({ server_name: "ad.example", registration: { enabled: true } });
  alice = await registerUser(server, "alice");
  bob = await registerUser(server, "bob");
});
afterAll(() => server.stop());

const enc = encodeURIComponent;
const check = (method: string, path: string, status: number, body: unknown) => expectMatchesSpec({ api: "client-server", method, path, status, body });
const globalPath = (user: string, type: string, prefix = "/_matrix/client/v3") => `${prefix}/user/${enc(user)}/account_data/${type}`;
const roomPath = (user: string, room: string, type: string, prefix = "/_matrix/client/v3") => `${prefix}/user/${enc(user)}/rooms/${enc(room)}/account_data/${type}`;

describe("account data", () => {
  test("global: put then get, replace, under v3 and r0", async () => {
    for (const prefix of ["/_matrix/client/v3", "/_matrix/client/r0"]) {
      const path = globalPath(alice.userId, "org.example.settings", prefix);
      const put = await request(server, "PUT", path, { theme: "dark", prefix }, bearer(alice.token));
      expect(put.status).toBe(200);
      check("PUT", path, 200, put.body);
      const get = await request(server, "GET", path, undefined, bearer(alice.token));
      expect(get.status).toBe(200);
      expect(get.body).toEqual({ theme: "dark", prefix });
      check("GET", path, 200, get.body);
    }
  });

  test("per room: put then get; kept apart from global data of the same type", async () => {
    const room = "!abc:ad.example";
    const path = roomPath(alice.userId, room, "m.tag");
    const put = await request(server, "PUT", path, { tags: { "m.favourite": {} } }, bearer(alice.token));
    expect(put.status).toBe(200);
    check("PUT", path, 200, put.body);
    const get = await request(server, "GET", `/_matrix/client/r0/user/${enc(alice.userId)}/rooms/${enc(room)}/account_data/m.tag`, undefined, bearer(alice.token));
    expect(get.body).toEqual({ tags: { "m.favourite": {} } });
    check("GET", path, 200, get.body);
    expect((await request(server, "GET", globalPath(alice.userId, "m.tag"), undefined, bearer(alice.token))).status).toBe(404);
  });

  test("missing data is 404 M_NOT_FOUND", async () => {
    for (const path of [globalPath(alice.userId, "org.example.none"), roomPath(alice.userId, "!zzz:ad.example", "org.example.none")]) {
      const r = await request(server, "GET", path, undefined, bearer(alice.token));
      expect(r.status).toBe(404);
      expect(r.body.errcode).toBe("M_NOT_FOUND");
      check("GET", path, 404, r.body);
    }
  });

  test("someone else's account data is 403 M_FORBIDDEN; no token is 401", async () => {
    for (const path of [globalPath(alice.userId, "org.example.settings"), roomPath(alice.userId, "!abc:ad.example", "m.tag")]) {
      for (const method of ["GET", "PUT"]) {
        const r = await request(server, method, path, method === "PUT" ? { x: 1 } : undefined, bearer(bob.token));
        expect(r.status).toBe(403);
        expect(r.body.errcode).toBe("M_FORBIDDEN");
        check(method, path, 403, r.body);
      }
    }
    expect((await request(server, "GET", globalPath(alice.userId, "org.example.settings"))).status).toBe(401);
  });

  test("server-managed types are refused with 405 M_BAD_JSON", async () => {
    for (const path of [globalPath(alice.userId, "m.push_rules"), roomPath(alice.userId, "!abc:ad.example", "m.fully_read"), globalPath(alice.userId, "m.fully_read")]) {
      const r = await request(server, "PUT", path, { event_id: "$x" }, bearer(alice.token));
      expect(r.status).toBe(405);
      expect(r.body.errcode).toBe("M_BAD_JSON");
      check("PUT", path, 405, r.body);
    }
  });

  test("bodies that are not JSON objects, and invalid room IDs, are 400", async () => {
    const path = globalPath(alice.userId, "org.example.x");
    for (const [body, errcode] of [["[1,2]", "M_BAD_JSON"], ["\"s\"", "M_BAD_JSON"], ["{nope", "M_NOT_JSON"]] as const) {
      const r = await request(server, "PUT", path, body, bearer(alice.token));
      expect(r.status).toBe(400);
      expect(r.body.errcode).toBe(errcode);
      check("PUT", path, 400, r.body);
    }
    const bad = roomPath(alice.userId, "not-a-room", "m.tag");
    const put = await request(server, "PUT", bad, {}, bearer(alice.token));
    expect(put.status).toBe(400);
    expect(put.body.errcode).toBe("M_INVALID_PARAM");
    check("PUT", bad, 400, put.body);
    const get = await request(server, "GET", bad, undefined, bearer(alice.token));
    expect(get.body.errcode).toBe("M_INVALID_PARAM");
    check("GET", bad, 400, get.body);
  });

  test("stream positions: every write moves the stream; accountDataSince returns what changed", async () => {
    const service = resolve(server.container, Tokens.AccountData);
    const heard: number[] = [];
    const off = service.onChange((_u, _r, _t, position) => void heard.push(position));
    const start = await service.maxStream();
    await request(server, "PUT", globalPath(bob.userId, "org.example.a"), { n: 1 }, bearer(bob.token));
    await request(server, "PUT", roomPath(bob.userId, "!r1:ad.example", "org.example.b"), { n: 2 }, bearer(bob.token));
    await request(server, "PUT", globalPath(bob.userId, "org.example.a"), { n: 3 }, bearer(bob.token));
    off();
    expect(await service.maxStream()).toBe(start + 3);
    expect(heard).toEqual([start + 1, start + 2, start + 3]);

    const all = await service.since(bob.userId, 0);
    expect(all.global.map((e) => [e.type, e.content])).toEqual([["org.example.a", { n: 3 }]]);
    expect(all.rooms.get("!r1:ad.example")?.map((e) => [e.type, e.content, e.roomId])).toEqual([["org.example.b", { n: 2 }, "!r1:ad.example"]]);
    const later = await service.since(bob.userId, start + 2);
    expect(later.global.map((e) => e.streamPosition)).toEqual([start + 3]);
    expect(later.rooms.size).toBe(0);
    // Another user's writes do not show up in bob's stream.
    expect((await service.since(bob.userId, 0)).global.some((e) => e.type === "org.example.settings")).toBe(false);
  });
});

describe("room tags", () => {
  const tagsPath = (user: string, room: string, tag?: string) => `/_matrix/client/v3/user/${enc(user)}/rooms/${enc(room)}/tags${tag === undefined ? "" : `/${enc(tag)}`}`;

  test("add, list, replace and remove tags; they are the room's m.tag account data, which /sync carries", async () => {
    const room = "!tagged:ad.example";
    const empty = await request(server, "GET", tagsPath(alice.userId, room), undefined, bearer(alice.token));
    expect(empty.body).toEqual({ tags: {} });
    check("GET", tagsPath(alice.userId, room), 200, empty.body);

    for (const [tag, content] of [["m.favourite", { order: 0.25 }], ["u.work", {}]] as const) {
      const put = await request(server, "PUT", tagsPath(alice.userId, room, tag), content, bearer(alice.token));
      expect(put.status).toBe(200);
      check("PUT", tagsPath(alice.userId, room, "u.tag"), 200, put.body);
    }
    await request(server, "PUT", tagsPath(alice.userId, room, "m.favourite"), { order: 0.5 }, bearer(alice.token));
    const listed = await request(server, "GET", tagsPath(alice.userId, room), undefined, bearer(alice.token));
    expect(listed.body).toEqual({ tags: { "m.favourite": { order: 0.5 }, "u.work": {} } });
    expect((await request(server, "GET", roomPath(alice.userId, room, "m.tag"), undefined, bearer(alice.token))).body).toEqual(listed.body);

    const del = await request(server, "DELETE", tagsPath(alice.userId, room, "u.work"), undefined, bearer(alice.token));
    expect(del.status).toBe(200);
    check("DELETE", tagsPath(alice.userId, room, "u.tag"), 200, del.body);
    // Removing a tag that is not there is no error.
    expect((await request(server, "DELETE", tagsPath(alice.userId, room, "u.none"), undefined, bearer(alice.token))).status).toBe(200);
    expect((await request(server, "GET", tagsPath(alice.userId, room), undefined, bearer(alice.token))).body).toEqual({ tags: { "m.favourite": { order: 0.5 } } });
  });

  test("another user's tags 403; a non-number order 400; a bad room id 400; nothing stored", async () => {
    const room = "!private:ad.example";
    const r = await request(server, "PUT", tagsPath(alice.userId, room, "u.x"), {}, bearer(bob.token));
    expect({ status: r.status, errcode: r.body.errcode }).toEqual({ status: 403, errcode: "M_FORBIDDEN" });
    const bad = await request(server, "PUT", tagsPath(alice.userId, room, "u.x"), { order: "first" }, bearer(alice.token));
    expect({ status: bad.status, errcode: bad.body.errcode }).toEqual({ status: 400, errcode: "M_INVALID_PARAM" });
    const badRoom = await request(server, "GET", tagsPath(alice.userId, "not-a-room"), undefined, bearer(alice.token));
    expect(badRoom.status).toBe(400);
    expect((await request(server, "GET", tagsPath(alice.userId, room), undefined, bearer(alice.token))).body).toEqual({ tags: {} });
  });
});
