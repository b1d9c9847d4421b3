import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PortierServer } from "../../../src/app";
import { expectMatchesSpec } from "../../helpers/openapi";
import { request, testServer } from "../../helpers/server";
import { bearer, registerUser, type TestUser } from "../../helpers/accounts";

let server: PortierServer;
let alice: TestUser;
let bob: TestUser;
beforeAll(async () => {
  server = await testServer({ server_name: "filt.example", registration: { enabled: true } });
  alice = await registerUser(server, "alice");
  bob = await registerUser(server, "bob");
});
afterAll(() => server.stop());

const enc = encodeURIComponent;
const check = (method: string, path: string, status: number, body: unknown) => expectMatchesSpec({ api: "client-server", method, path, status, body });

const FILTER = {
  event_fields: ["type", "content", "sender"],
  event_format: "client",
  presence: { not_senders: ["@spam:filt.example"] },
  room: { timeline: { limit: 10, lazy_load_members: true, types: ["m.room.message"] }, state: { lazy_load_members: true }, include_leave: false },
  "org.example.extra": true,
};

describe("filters", () => {
  test("upload and download under v3 and r0; ids differ per upload", async () => {
    const ids: string[] = [];
    for (const prefix of ["/_matrix/client/v3", "/_matrix/client/r0"]) {
      const path = `${prefix}/user/${enc(alice.userId)}/filter`;
      const up = await request(server, "POST", path, FILTER, bearer(alice.token));
      expect(up.status).toBe(200);
      check("POST", path, 200, up.body);
      expect(typeof up.body.filter_id).toBe("string");
      expect(up.body.filter_id.startsWith("{")).toBe(false);
      ids.push(up.body.filter_id);
      const getPath = `${path}/${up.body.filter_id}`;
      const down = await request(server, "GET", getPath, undefined, bearer(alice.token));
      expect(down.status).toBe(200);
      expect(down.body).toEqual(FILTER);
      check("GET", getPath, 200, down.body);
    }
    expect(new Set(ids).size).toBe(2);
    // An empty filter is a valid filter.
    expect((await request(server, "POST", `/_matrix/client/v3/user/${enc(alice.userId)}/filter`, {}, bearer(alice.token))).status).toBe(200);
  });

  test("another user's filters are 403; unknown ids are 404 M_NOT_FOUND", async () => {
    const up = await request(server, "POST", `/_matrix/client/v3/user/${enc(alice.userId)}/filter`, {}, bearer(alice.token));
    const post = await request(server, "POST", `/_matrix/client/v3/user/${enc(alice.userId)}/filter`, {}, bearer(bob.token));
    expect(post.status).toBe(403);
    expect(post.body.errcode).toBe("M_FORBIDDEN");
    const get = await request(server, "GET", `/_matrix/client/v3/user/${enc(alice.userId)}/filter/${up.body.filter_id}`, undefined, bearer(bob.token));
    expect(get.status).toBe(403);
    // Ids are per user: bob, who uploaded none, does not see alice's.
    for (const id of ["999", up.body.filter_id, "abc", "01", "{}"]) {
      const path = `/_matrix/client/v3/user/${enc(bob.userId)}/filter/${enc(id)}`;
      const r = await request(server, "GET", path, undefined, bearer(bob.token));
      expect(r.status).toBe(404);
      expect(r.body.errcode).toBe("M_NOT_FOUND");
      check("GET", path, 404, r.body);
    }
    expect((await request(server, "GET", `/_matrix/client/v3/user/${enc(alice.userId)}/filter/0`)).status).toBe(401);
  });

  test("invalid filters are 400", async () => {
    const path = `/_matrix/client/v3/user/${enc(alice.userId)}/filter`;
    const bad: [unknown, string][] = [
      [[1], "M_BAD_JSON"],
      ["{nope", "M_NOT_JSON"],
      [{ event_fields: "type" }, "M_BAD_JSON"],
      [{ event_format: "other" }, "M_BAD_JSON"],
      [{ room: { timeline: { limit: "ten" } } }, "M_BAD_JSON"],
      [{ room: { rooms: [5] } }, "M_BAD_JSON"],
      [{ presence: { types: "m.presence" } }, "M_BAD_JSON"],
      // Room and user ids are checked for their form.
      [{ room: { timeline: { rooms: ["not_a_room_id"] } } }, "M_BAD_JSON"],
      [{ room: { not_rooms: ["#alias:filt.example"] } }, "M_BAD_JSON"],
      [{ room: { timeline: { senders: ["not_a_sender_id"] } } }, "M_BAD_JSON"],
      [{ presence: { not_senders: ["@nohost"] } }, "M_BAD_JSON"],
    ];
    for (const [body, errcode] of bad) {
      const r = await request(server, "POST", path, body, bearer(alice.token));
      expect({ body, status: r.status, errcode: r.body.errcode }).toEqual({ body, status: 400, errcode });
    }
    // Well-formed ids pass, a version 12 room id (no server name) among them.
    const good = { room: { rooms: ["!abc:filt.example", "!hashonly"], timeline: { senders: ["@a:filt.example"], not_senders: ["@b:[::1]:8448"] } } };
    expect((await request(server, "POST", path, good, bearer(alice.token))).status).toBe(200);
  });
});
