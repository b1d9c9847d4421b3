// POST /account/deactivate: UIA first; then the user has left every room (joined ones left, invites
// rejected), cannot log in or use any token, cannot be registered again; erase clears the profile.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request, testServer } from "../../helpers/server";
import { TestClient, V3, enc } from "../../helpers/rooms";
import { expectMatchesSpec } from "../../helpers/openapi";
import type { PortierServer } from "../../../src/app";

let server: PortierServer;
beforeAll(async () => {
  server = await testServer({ registration: { enabled: true } });
});
afterAll(() => server.stop());

const passwordAuth = (userId: string, password: string, session: string) => ({ type: "m.login.password", identifier: { type: "m.id.user", user: userId }, password, session });

describe("POST /account/deactivate", () => {
  test("after UIA: rooms left, invites rejected, tokens dead, login refused, the name stays taken, the profile erased", async () => {
    const alice = await TestClient.register(server, "leaving");
    const bob = await TestClient.register(server, "staying");
    await alice.ok("PUT", `/profile/${enc(alice.userId)}/displayname`, { displayname: "Soon gone" });
    const joined = await bob.createRoom({ preset: "public_chat" });
    await alice.ok("POST", `/join/${enc(joined)}`, {});
    const invited = await bob.createRoom({ preset: "private_chat" });
    await bob.ok("POST", `/rooms/${enc(invited)}/invite`, { user_id: alice.userId });

    const first = await alice.call("POST", "/account/deactivate", { erase: true });
    expect(first.status).toBe(401);
    expect(first.body.flows).toEqual([{ stages: ["m.login.password"] }]);
    // A wrong password changes nothing.
    const wrong = await alice.call("POST", "/account/deactivate", { erase: true, auth: passwordAuth(alice.userId, "nope", first.body.session) });
    expect(wrong.status).toBe(401);
    expect((await alice.call("GET", "/account/whoami")).status).toBe(200);

    const done = await alice.call("POST", "/account/deactivate", { erase: true, auth: passwordAuth(alice.userId, "pw", first.body.session) });
    expect(done.status).toBe(200);
    expect(done.body).toEqual({ id_server_unbind_result: "no-support" });
    expectMatchesSpec({ api: "client-server", method: "POST", path: `${V3}/account/deactivate`, status: 200, body: done.body });

    expect((await alice.call("GET", "/account/whoami")).status).toBe(401);
    const membership = async (roomId: string) => (await bob.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(alice.userId)}`)).membership;
    expect(await membership(joined)).toBe("leave");
    expect(await membership(invited)).toBe("leave");
    const login = await request(server, "POST", `${V3}/login`, { type: "m.login.password", identifier: { type: "m.id.user", user: alice.userId }, password: "pw" });
    expect(login.status).toBe(403);
    const again = await request(server, "POST", `${V3}/register`, { username: "leaving", password: "pw", auth: { type: "m.login.dummy" } });
    expect({ status: again.status, errcode: again.body.errcode }).toEqual({ status: 400, errcode: "M_USER_IN_USE" });
    expect((await bob.ok("GET", `/profile/${enc(alice.userId)}`)).displayname).toBeUndefined();
  });
});
