// Third-party invites across two Portier servers over TLS: the room and the inviter live on A, the
// invitee on B. B hears of the binding (/3pid/onbind), is not in the room, and asks A over
// /exchange_third_party_invite; A checks the signed token and the key's validity, and sends B the
// invite over /invite; the invitee joins over federation. A refused exchange fails the onbind.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { TestClient, enc } from "../helpers/rooms";
import { request } from "../helpers/server";
import { eventually, federatedServer, type FederatedServer } from "../helpers/federation";
import { FakeIdentityServer, ID_ACCESS_TOKEN } from "../helpers/identity-server";

let a: FederatedServer;
let b: FederatedServer;
let ids: FakeIdentityServer;

beforeAll(async () => {
  ids = new FakeIdentityServer();
  const identity = { plain_http_servers: [ids.name], allow_loopback: true };
  a = await federatedServer({ registration: { enabled: true }, identity });
  b = await federatedServer({ registration: { enabled: true }, identity });
});

afterAll(async () => {
  await a?.server.stop();
  await b?.server.stop();
  ids?.server.stop(true);
});

const invite3pid = (address: string) => ({ id_server: ids.name, id_access_token: ID_ACCESS_TOKEN, medium: "email", address });

describe("third-party invites over federation", () => {
  test("B exchanges the signed token with A, A invites B's user over /invite, and the user joins", async () => {
    const alice = await TestClient.register(a.server, "tpi_fed_alice");
    const bob = await TestClient.register(b.server, "tpi_fed_bob");
    const roomId = await alice.createRoom({ preset: "private_chat" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, invite3pid("fed@example.org"));

    const bound = await ids.bind(b.server, "email", "fed@example.org", bob.userId);
    expect(bound).toMatchObject({ status: 200, body: {} });
    const member = await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`);
    expect(member.membership).toBe("invite");
    expect(member.third_party_invite).toMatchObject({ display_name: "Bob", signed: { mxid: bob.userId } });

    // B heard of it over /invite: its user sees the invite, and joins through A.
    await eventually(async () => (await bob.ok("GET", "/sync?timeout=0")).rooms.invite?.[roomId], 10_000, "the invite on B");
    await bob.ok("POST", `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    expect((await alice.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`)).membership).toBe("join");
  });

  test("A refuses an exchange whose signature is under no key of the invite, and B's onbind fails", async () => {
    const alice = await TestClient.register(a.server, "tpi_fed_alice2");
    const carol = await TestClient.register(b.server, "tpi_fed_carol");
    const roomId = await alice.createRoom({ preset: "private_chat" });
    await alice.ok("POST", `/rooms/${enc(roomId)}/invite`, invite3pid("fed2@example.org"));
    ids.rotateKeys();
    const bound = await ids.bind(b.server, "email", "fed2@example.org", carol.userId);
    expect({ status: bound.status, errcode: bound.body.errcode }).toEqual({ status: 403, errcode: "M_FORBIDDEN" });
    expect((await alice.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(carol.userId)}`)).status).toBe(404);
  });

  test("exchange_third_party_invite needs X-Matrix", async () => {
    const r = await request(a.server, "PUT", `/_matrix/federation/v1/exchange_third_party_invite/${enc("!r:example.org")}`, { type: "m.room.member" });
    expect(r.status).toBe(401);
  });
});
