// Interop with a real Synapse, run by hand (never in CI): `npm run interop:synapse`.
// Needs the two Synapse peers of ../shared/peers/synapse running (./start.sh there): A serves
// clients on http://127.0.0.1:8008 and federation as server name 127.0.0.1:8448 (TLS).
// Starts one Portier in this process on 127.0.0.1:<free port> with a self-signed certificate, then
// plays each scenario through the client APIs of both servers and prints what happened. The last
// results are written to test/interop/synapse-RESULTS.md.
import "reflect-metadata";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { buildServer } from "../src/app";
import { resolveConfig } from "../src/config/loader";
import { generateSelfSignedCertificate } from "../src/services/federation/tls-certificate";
import { PORTIER_VERSION } from "../src/version";

const SYNAPSE_CLIENT = process.env.SYNAPSE_CLIENT ?? "http://127.0.0.1:8008";
const SYNAPSE_NAME = process.env.SYNAPSE_SERVER_NAME ?? "127.0.0.1:8448";
// The second Synapse, for rooms with three servers (a join relayed by the resident server).
const SYNAPSE_B_CLIENT = process.env.SYNAPSE_B_CLIENT ?? "http://127.0.0.1:8018";
const SYNAPSE_B_NAME = process.env.SYNAPSE_B_SERVER_NAME ?? "127.0.0.1:8458";
const enc = encodeURIComponent;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

class Client {
  constructor(readonly base: string, readonly userId: string, readonly token: string) {}

  static async register(base: string, username: string): Promise<Client> {
    const r = await fetch(`${base}/_matrix/client/v3/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password: "interop-password", auth: { type: "m.login.dummy" } }),
    });
    const body = (await r.json()) as { user_id: string; access_token: string };
    if (r.status !== 200) throw new Error(`register ${username} on ${base}: ${r.status} ${JSON.stringify(body)}`);
    return new Client(base, body.user_id, body.access_token);
  }

  async call(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const r = await fetch(`${this.base}/_matrix/client/v3${path}`, {
      method,
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* text */
    }
    return { status: r.status, body: parsed };
  }

  async ok(method: string, path: string, body?: unknown): Promise<any> {
    const r = await this.call(method, path, body);
    if (r.status !== 200) throw new Error(`${method} ${this.base}${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  send(roomId: string, text: string): Promise<any> {
    return this.ok("PUT", `/rooms/${enc(roomId)}/send/m.room.message/${crypto.randomUUID()}`, { msgtype: "m.text", body: text });
  }

  async membership(roomId: string, userId: string): Promise<string | undefined> {
    const r = await this.call("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(userId)}`);
    return r.status === 200 ? r.body.membership : undefined;
  }

  async bodies(roomId: string): Promise<string[]> {
    const r = await this.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
    return (r.chunk as { type: string; content: { body?: string } }[]).filter((e) => e.type === "m.room.message").map((e) => e.content.body!).reverse();
  }

  private syncs = 0;
  /** An initial /sync; a new filter each time, since Synapse answers repeated identical ones from a cache. */
  async sync(includeLeave = false): Promise<any> {
    const filter = { room: { include_leave: includeLeave, timeline: { limit: 10 + (this.syncs++ % 1000) } } };
    return this.ok("GET", `/sync?timeout=0&filter=${enc(JSON.stringify(filter))}`);
  }
}

async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (error) {
      last = error;
    }
    await Bun.sleep(200);
  }
  throw new Error(`timed out: ${what}${last ? ` (${String(last)})` : ""}`);
}

const results: { name: string; ok: boolean; detail: string; ms: number }[] = [];
async function scenario(name: string, run: () => Promise<string | void>): Promise<void> {
  const start = performance.now();
  try {
    const detail = (await run()) ?? "";
    results.push({ name, ok: true, detail, ms: performance.now() - start });
    console.log(`PASS ${name}${detail ? ` — ${detail}` : ""}`);
  } catch (error) {
    results.push({ name, ok: false, detail: String((error as Error).message ?? error), ms: performance.now() - start });
    console.log(`FAIL ${name} — ${String((error as Error).message ?? error)}`);
  }
}

async function main(): Promise<number> {
  const versions = await fetch(`${SYNAPSE_CLIENT}/_matrix/client/versions`).catch(() => undefined);
  if (!versions?.ok) {
    console.error(`Synapse is not running at ${SYNAPSE_CLIENT}: start it with ../shared/peers/synapse/start.sh`);
    return 2;
  }
  const port = await freePort();
  const serverName = `127.0.0.1:${port}`;
  const dir = mkdtempSync(join(tmpdir(), "portier-interop-"));
  const cert = generateSelfSignedCertificate(dir, serverName, { ipAddresses: ["127.0.0.1"] });
  const config = resolveConfig({
    server_name: serverName,
    // Clients over plain HTTP on a port of their own; federation over TLS on the server name's port.
    bind: `127.0.0.1:${await freePort()}`,
    data_dir: join(dir, "data"),
    registration: { enabled: true },
    // Policies for the plugin scenarios; they match only the users and words those scenarios use.
    plugins: [
      { name: "knock-policy", config: { deny: { users: ["@refused*:*"] } } },
      { name: "spam-policy", config: { messages: { keywords: ["crypto giveaway"] } } },
    ],
    log_level: process.env.PORTIER_INTEROP_LOG ?? "warn",
    federation: {
      bind: serverName,
      tls_certificate_path: cert.certificatePath,
      tls_private_key_path: cert.privateKeyPath,
      // The peers' certificates are self-signed.
      tls_skip_verify_servers: [SYNAPSE_NAME, SYNAPSE_B_NAME],
    },
  });
  const portier = await buildServer(config);
  const { url } = await portier.start();
  console.log(`Portier ${PORTIER_VERSION} at ${url} (server name ${serverName}); Synapse at ${SYNAPSE_CLIENT} (${SYNAPSE_NAME})`);
  const run = Date.now().toString(36);
  try {
    const p = await Client.register(url, `pat${run}`);
    const s = await Client.register(SYNAPSE_CLIENT, `sam${run}`);

    await scenario("a Portier user joins a public room on Synapse by alias; messages both ways", async () => {
      const roomId = (await s.ok("POST", "/createRoom", { preset: "public_chat", room_alias_name: `syn${run}`, name: "On Synapse" })).room_id;
      await s.send(roomId, "hello from synapse (before the join)");
      const joined = await p.ok("POST", `/join/${enc(`#syn${run}:${SYNAPSE_NAME}`)}`, {});
      if (joined.room_id !== roomId) throw new Error(`joined ${joined.room_id}, expected ${roomId}`);
      await eventually("Synapse sees the Portier join", async () => (await s.membership(roomId, p.userId)) === "join");
      await p.send(roomId, "hello from portier");
      await s.send(roomId, "hello back from synapse");
      await eventually("Portier's message on Synapse", async () => (await s.bodies(roomId)).includes("hello from portier"));
      await eventually("Synapse's message on Portier", async () => (await p.bodies(roomId)).includes("hello back from synapse"));
      await p.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
      await eventually("Synapse sees the Portier leave", async () => (await s.membership(roomId, p.userId)) === "leave");
      return roomId;
    });

    await scenario("a Synapse user joins a public room on Portier; messages both ways", async () => {
      const roomId = (await p.ok("POST", "/createRoom", { preset: "public_chat", room_alias_name: `por${run}`, name: "On Portier" })).room_id;
      await p.send(roomId, "hello from portier (before the join)");
      const joined = await s.ok("POST", `/join/${enc(`#por${run}:${serverName}`)}`, {});
      if (joined.room_id !== roomId) throw new Error(`joined ${joined.room_id}, expected ${roomId}`);
      await eventually("Portier sees the Synapse join", async () => (await p.membership(roomId, s.userId)) === "join");
      await s.send(roomId, "hi from synapse");
      await p.send(roomId, "hi back from portier");
      await eventually("Synapse's message on Portier", async () => (await p.bodies(roomId)).includes("hi from synapse"));
      await eventually("Portier's message on Synapse", async () => (await s.bodies(roomId)).includes("hi back from portier"));
      await s.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
      await eventually("Portier sees the Synapse leave", async () => (await p.membership(roomId, s.userId)) === "leave");
    });

    const t = await Client.register(SYNAPSE_B_CLIENT, `tess${run}`).catch(() => undefined);

    await scenario("three servers, room on Synapse A: Synapse B's join reaches Portier through A; B and Portier hear each other", async () => {
      if (!t) throw new Error(`the second Synapse is not running at ${SYNAPSE_B_CLIENT}`);
      const roomId = (await s.ok("POST", "/createRoom", { preset: "public_chat" })).room_id;
      await p.ok("POST", `/join/${enc(roomId)}?via=${enc(SYNAPSE_NAME)}`, {});
      await t.ok("POST", `/join/${enc(roomId)}?server_name=${enc(SYNAPSE_NAME)}`, {}); // 1.67 reads server_name, not via
      await eventually("Portier learns of B's join (relayed by A)", async () => (await p.membership(roomId, t.userId)) === "join");
      await t.send(roomId, "from the second synapse");
      await p.send(roomId, "from portier to both");
      await eventually("B's message on Portier", async () => (await p.bodies(roomId)).includes("from the second synapse"));
      await eventually("Portier's message on B", async () => (await t.bodies(roomId)).includes("from portier to both"));
    });

    await scenario("three servers, room on Portier: Synapse B's join reaches Synapse A through Portier", async () => {
      if (!t) throw new Error(`the second Synapse is not running at ${SYNAPSE_B_CLIENT}`);
      const roomId = (await p.ok("POST", "/createRoom", { preset: "public_chat" })).room_id;
      await s.ok("POST", `/join/${enc(roomId)}?server_name=${enc(serverName)}`, {});
      await t.ok("POST", `/join/${enc(roomId)}?server_name=${enc(serverName)}`, {});
      await eventually("A learns of B's join (relayed by Portier)", async () => (await s.membership(roomId, t.userId)) === "join");
      await t.send(roomId, "B speaks in a Portier room");
      await eventually("B's message on A", async () => (await s.bodies(roomId)).includes("B speaks in a Portier room"));
      await eventually("B's message on Portier", async () => (await p.bodies(roomId)).includes("B speaks in a Portier room"));
    });

    await scenario("Synapse invites a Portier user, who joins", async () => {
      const roomId = (await s.ok("POST", "/createRoom", { preset: "private_chat", name: "Synapse private" })).room_id;
      await s.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: p.userId });
      await eventually("the invite in Portier's /sync", async () => (await p.sync()).rooms?.invite?.[roomId]);
      await p.ok("POST", `/rooms/${enc(roomId)}/join`, {});
      await eventually("Synapse sees the join", async () => (await s.membership(roomId, p.userId)) === "join");
    });

    await scenario("Synapse invites a Portier user, who rejects", async () => {
      const roomId = (await s.ok("POST", "/createRoom", { preset: "private_chat" })).room_id;
      await s.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: p.userId });
      await eventually("the invite in Portier's /sync", async () => (await p.sync()).rooms?.invite?.[roomId]);
      await p.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
      await eventually("Synapse sees the rejection", async () => (await s.membership(roomId, p.userId)) === "leave");
    });

    await scenario("Portier invites a Synapse user, who joins", async () => {
      const roomId = (await p.ok("POST", "/createRoom", { preset: "private_chat", name: "Portier private" })).room_id;
      await p.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: s.userId });
      await eventually("the invite in Synapse's /sync", async () => (await s.sync()).rooms?.invite?.[roomId]);
      await s.ok("POST", `/rooms/${enc(roomId)}/join`, {});
      await eventually("Portier sees the join", async () => (await p.membership(roomId, s.userId)) === "join");
      await s.send(roomId, "joined by invite");
      await eventually("the message on Portier", async () => (await p.bodies(roomId)).includes("joined by invite"));
    });

    // Restricted joins (room version 10): the resident server names one of its users in
    // join_authorised_via_users_server and signs the join on send_join; the joining server keeps
    // that signature, without which no server would accept the join.
    const restricted = async (owner: Client, space: string, joinRule = "restricted") =>
      (await owner.ok("POST", "/createRoom", {
        room_version: "10",
        initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: joinRule, allow: [{ type: "m.room_membership", room_id: space }] } }],
      })).room_id as string;
    /** The Portier user knocks on a Synapse room, is invited (the knock accepted), joins and speaks; the knock as /sync showed it. */
    const knockLetInBySynapse = async (roomId: string, reason: string, text: string) => {
      await p.ok("POST", `/knock/${enc(roomId)}?via=${enc(SYNAPSE_NAME)}`, { reason });
      const knock = await eventually("the knock in Portier's /sync", async () => (await p.sync()).rooms?.knock?.[roomId]);
      await eventually("Synapse sees the knock", async () => (await s.membership(roomId, p.userId)) === "knock");
      await s.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: p.userId });
      await eventually("the invite in Portier's /sync", async () => (await p.sync()).rooms?.invite?.[roomId]);
      await p.ok("POST", `/rooms/${enc(roomId)}/join`, {});
      await eventually("Synapse sees the join", async () => (await s.membership(roomId, p.userId)) === "join");
      await p.send(roomId, text);
      await eventually("the message on Synapse", async () => (await s.bodies(roomId)).includes(text));
      return knock;
    };
    /** A space on the resident's server; the joiner joins it, then the room it allows, and speaks there. */
    const joinThroughSpace = async (resident: Client, residentName: string, joiner: Client, joinRule: string) => {
      const space = (await resident.ok("POST", "/createRoom", { preset: "public_chat", room_version: "10" })).room_id;
      const roomId = await restricted(resident, space, joinRule);
      await joiner.ok("POST", `/join/${enc(space)}?server_name=${enc(residentName)}`, {});
      await joiner.ok("POST", `/join/${enc(roomId)}?server_name=${enc(residentName)}`, {});
      await eventually("the resident sees the join", async () => (await resident.membership(roomId, joiner.userId)) === "join");
      const member = await joiner.ok("GET", `/rooms/${enc(roomId)}/state/m.room.member/${enc(joiner.userId)}`);
      if (member.join_authorised_via_users_server !== resident.userId) throw new Error(`join authorised via ${member.join_authorised_via_users_server}`);
      const text = `${joinRule}: in through the space`;
      await joiner.send(roomId, text);
      await eventually("the joiner's message at the resident", async () => (await resident.bodies(roomId)).includes(text));
      return `authorised via ${member.join_authorised_via_users_server}`;
    };

    await scenario("a Portier user joins a restricted room on Synapse through a room it is in; Synapse signs the join", () => joinThroughSpace(s, SYNAPSE_NAME, p, "restricted"));
    await scenario("a Synapse user joins a restricted room on Portier through a room it is in; Portier signs the join", () => joinThroughSpace(p, serverName, s, "restricted"));
    await scenario("knock_restricted on Portier: a Synapse user in the allowed room joins at once, Portier signing the join", () => joinThroughSpace(p, serverName, s, "knock_restricted"));

    await scenario("a Synapse user in no allowed room is refused a restricted room on Portier", async () => {
      const space = (await p.ok("POST", "/createRoom", { preset: "public_chat", room_version: "10" })).room_id;
      const roomId = await restricted(p, space);
      const r = await s.call("POST", `/join/${enc(roomId)}?server_name=${enc(serverName)}`, {});
      if (r.status !== 403) throw new Error(`Synapse answered its user ${r.status} ${JSON.stringify(r.body)}`);
      return `Synapse answers its user ${r.status} ${JSON.stringify(r.body)}`;
    });

    await scenario("knock_restricted on Synapse: a Portier user in no allowed room knocks, is let in by invite, joins and speaks", async () => {
      const space = (await s.ok("POST", "/createRoom", { preset: "public_chat", room_version: "10" })).room_id;
      await knockLetInBySynapse(await restricted(s, space, "knock_restricted"), "not in the space", "knocked my way in");
    });

    await scenario("profile lookups both ways", async () => {
      await p.ok("PUT", `/profile/${enc(p.userId)}/displayname`, { displayname: "Pat of Portier" });
      await s.ok("PUT", `/profile/${enc(s.userId)}/displayname`, { displayname: "Sam of Synapse" });
      const fromSynapse = await s.ok("GET", `/profile/${enc(p.userId)}`);
      if (fromSynapse.displayname !== "Pat of Portier") throw new Error(`Synapse sees ${JSON.stringify(fromSynapse)}`);
      const fromPortier = await p.call("GET", `/profile/${enc(s.userId)}`);
      return `Synapse reads Portier's profile; Portier reading Synapse's: ${fromPortier.status} ${JSON.stringify(fromPortier.body)}`;
    });

    await scenario("a Portier user knocks on a Synapse room, is accepted, joins and speaks", async () => {
      const roomId = (await s.ok("POST", "/createRoom", { room_version: "10", preset: "private_chat", name: "Knock here", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] })).room_id;
      const knock = await knockLetInBySynapse(roomId, "let me in", "thanks for letting me in");
      return `knock_state types: ${(knock.knock_state.events as { type: string }[]).map((e) => e.type).join(", ")}`;
    });

    await scenario("a Portier user knocks on a Synapse room and rescinds", async () => {
      const roomId = (await s.ok("POST", "/createRoom", { room_version: "10", preset: "private_chat", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] })).room_id;
      await p.ok("POST", `/knock/${enc(roomId)}?server_name=${enc(SYNAPSE_NAME)}`, {});
      await eventually("Synapse sees the knock", async () => (await s.membership(roomId, p.userId)) === "knock");
      await p.ok("POST", `/rooms/${enc(roomId)}/leave`, {});
      await eventually("Synapse sees the rescind", async () => (await s.membership(roomId, p.userId)) === "leave");
      await eventually("the leave in Portier's /sync", async () => (await p.sync(true)).rooms?.leave?.[roomId]);
    });

    await scenario("a Portier user knocks on a Synapse room and is rejected (Synapse does not tell the knocker's server)", async () => {
      const roomId = (await s.ok("POST", "/createRoom", { room_version: "10", preset: "private_chat", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] })).room_id;
      await p.ok("POST", `/knock/${enc(roomId)}?via=${enc(SYNAPSE_NAME)}`, {});
      await eventually("Synapse sees the knock", async () => (await s.membership(roomId, p.userId)) === "knock");
      await s.ok("POST", `/rooms/${enc(roomId)}/kick`, { user_id: p.userId, reason: "not now" });
      await eventually("Synapse records the rejection", async () => (await s.membership(roomId, p.userId)) === "leave");
      await Bun.sleep(1000);
      const sync = await p.sync(true);
      const where = sync.rooms?.leave?.[roomId] ? "leave" : sync.rooms?.knock?.[roomId] ? "knock" : "absent";
      return `the room is under rooms.${where} in the knocker's /sync`;
    });

    await scenario("a Synapse user knocks on a Portier room, is accepted, joins and speaks", async () => {
      const roomId = (await p.ok("POST", "/createRoom", { room_version: "10", preset: "private_chat", name: "Knock on Portier", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] })).room_id;
      await s.ok("POST", `/knock/${enc(roomId)}?server_name=${enc(serverName)}`, { reason: "hello" });
      await eventually("Portier sees the knock", async () => (await p.membership(roomId, s.userId)) === "knock");
      const knock = await eventually("the knock in Synapse's /sync", async () => (await s.sync()).rooms?.knock?.[roomId]);
      await p.ok("POST", `/rooms/${enc(roomId)}/invite`, { user_id: s.userId });
      await eventually("the invite in Synapse's /sync", async () => (await s.sync()).rooms?.invite?.[roomId]);
      await s.ok("POST", `/rooms/${enc(roomId)}/join`, {});
      await eventually("Portier sees the join", async () => (await p.membership(roomId, s.userId)) === "join");
      await s.send(roomId, "in via knock");
      await eventually("the message on Portier", async () => (await p.bodies(roomId)).includes("in via knock"));
      return `knock_state types on Synapse: ${(knock.knock_state.events as { type: string }[]).map((e) => e.type).join(", ")}`;
    });

    await scenario("a Synapse user knocks on a Portier room and is rejected", async () => {
      const roomId = (await p.ok("POST", "/createRoom", { room_version: "10", preset: "private_chat", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] })).room_id;
      await s.ok("POST", `/knock/${enc(roomId)}?server_name=${enc(serverName)}`, {});
      await eventually("Portier sees the knock", async () => (await p.membership(roomId, s.userId)) === "knock");
      await p.ok("POST", `/rooms/${enc(roomId)}/kick`, { user_id: s.userId, reason: "no" });
      if ((await p.membership(roomId, s.userId)) !== "leave") throw new Error("the kick did not stand");
      await Bun.sleep(1000);
      const sync = await s.sync(true);
      const where = sync.rooms?.leave?.[roomId] ? "leave" : sync.rooms?.knock?.[roomId] ? "knock" : "absent";
      return `the room is under rooms.${where} in the Synapse knocker's /sync`;
    });

    await scenario("a Synapse user knocks on a Portier room and tries to rescind", async () => {
      const roomId = (await p.ok("POST", "/createRoom", { room_version: "10", preset: "private_chat", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] })).room_id;
      await s.ok("POST", `/knock/${enc(roomId)}?server_name=${enc(serverName)}`, {});
      await eventually("Portier sees the knock", async () => (await p.membership(roomId, s.userId)) === "knock");
      const leave = await s.call("POST", `/rooms/${enc(roomId)}/leave`, {});
      await Bun.sleep(1000);
      return `Synapse answers its user's /leave with ${leave.status} ${JSON.stringify(leave.body)}; Portier's view: ${await p.membership(roomId, s.userId)}`;
    });

    await scenario("history from before the join is backfilled both ways as the user pages back", async () => {
      const history = Array.from({ length: 25 }, (_, i) => `history ${i}`);
      const pageBack = async (client: Client, roomId: string): Promise<string[]> => {
        const seen: string[] = [];
        let from: string | undefined;
        for (let page = 0; page < 20; page++) {
          const r = await client.ok("GET", `/rooms/${enc(roomId)}/messages?dir=b&limit=10${from ? `&from=${enc(from)}` : ""}`);
          for (const e of r.chunk as { type: string; content: { body?: string } }[]) if (e.type === "m.room.message" && e.content.body?.startsWith("history ")) seen.push(e.content.body);
          if (!r.end || r.chunk.length === 0) break;
          from = r.end;
        }
        return seen.reverse();
      };
      const onSynapse = (await s.ok("POST", "/createRoom", { preset: "public_chat", room_alias_name: `hist${run}` })).room_id;
      for (const body of history) await s.send(onSynapse, body);
      await p.ok("POST", `/join/${enc(`#hist${run}:${SYNAPSE_NAME}`)}`, {});
      const portierSaw = await pageBack(p, onSynapse);
      if (JSON.stringify(portierSaw) !== JSON.stringify(history)) throw new Error(`Portier paged back through ${portierSaw.length} of ${history.length}: ${portierSaw.slice(0, 3).join(", ")}...`);

      const onPortier = (await p.ok("POST", "/createRoom", { preset: "public_chat", room_alias_name: `histp${run}` })).room_id;
      for (const body of history) await p.send(onPortier, body);
      await s.ok("POST", `/join/${enc(`#histp${run}:${serverName}`)}`, {});
      const synapseSaw = await pageBack(s, onPortier);
      if (JSON.stringify(synapseSaw) !== JSON.stringify(history)) throw new Error(`Synapse paged back through ${synapseSaw.length} of ${history.length}`);
      return "all 25 messages, in order, on both sides";
    });

    await scenario("Portier's knock policy refuses a Synapse user's knock; Synapse passes the refusal to its user", async () => {
      const refused = await Client.register(SYNAPSE_CLIENT, `refused${run}`);
      const roomId = (await p.ok("POST", "/createRoom", { room_version: "10", preset: "private_chat", initial_state: [{ type: "m.room.join_rules", state_key: "", content: { join_rule: "knock" } }] })).room_id;
      const answer = await refused.call("POST", `/knock/${enc(roomId)}?server_name=${enc(serverName)}`, { reason: "let me in" });
      if (answer.status === 200) throw new Error("the denied knock was accepted");
      if ((await p.membership(roomId, refused.userId)) !== undefined) throw new Error("the denied knock was stored");
      return `Synapse answers its user ${answer.status} ${JSON.stringify(answer.body)}`;
    });

    await scenario("a Synapse user's spam in a Portier room is soft-failed by Portier's spam policy; the next message shows", async () => {
      const roomId = (await p.ok("POST", "/createRoom", { preset: "public_chat", room_alias_name: `spam${run}` })).room_id;
      await s.ok("POST", `/join/${enc(`#spam${run}:${serverName}`)}`, {});
      await eventually("Portier sees the join", async () => (await p.membership(roomId, s.userId)) === "join");
      await s.send(roomId, "a crypto giveaway for all");
      await s.send(roomId, "after the spam");
      await eventually("the second message on Portier", async () => (await p.bodies(roomId)).includes("after the spam"));
      if ((await p.bodies(roomId)).some((b) => b.includes("crypto giveaway"))) throw new Error("the spam shows on Portier");
      await s.send(roomId, "and one more");
      await eventually("a later message on Portier", async () => (await p.bodies(roomId)).includes("and one more"));
      return "Synapse's later events (built on the spam) still arrive";
    });

    await scenario("device lists both ways: each side's /keys/query lists the other's devices, and a new device reaches it (m.device_list_update with prev_id)", async () => {
      const pd = await Client.register(url, `pdev${run}`);
      const sd = await Client.register(SYNAPSE_CLIENT, `sdev${run}`);
      const roomId = (await pd.ok("POST", "/createRoom", { preset: "public_chat", room_alias_name: `dev${run}` })).room_id;
      await sd.ok("POST", `/join/${enc(`#dev${run}:${serverName}`)}`, {});
      await eventually("Portier sees the join", async () => (await pd.membership(roomId, sd.userId)) === "join");
      const upload = async (c: Client) => {
        const { device_id: deviceId } = await c.ok("GET", "/account/whoami");
        const key = (kind: string) => `${kind}${deviceId}${"A".repeat(43 - kind.length - String(deviceId).length)}`;
        await c.ok("POST", "/keys/upload", {
          device_keys: {
            user_id: c.userId,
            device_id: deviceId,
            algorithms: ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
            keys: { [`curve25519:${deviceId}`]: key("c"), [`ed25519:${deviceId}`]: key("e") },
            signatures: { [c.userId]: { [`ed25519:${deviceId}`]: "c2lnbmF0dXJl" } },
          },
        });
        return deviceId as string;
      };
      const devicesOf = async (asker: Client, userId: string) => Object.keys((await asker.ok("POST", "/keys/query", { device_keys: { [userId]: [] } })).device_keys?.[userId] ?? {}).sort();
      const secondDevice = async (c: Client) => {
        const r = await fetch(`${c.base}/_matrix/client/v3/login`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ type: "m.login.password", identifier: { type: "m.id.user", user: c.userId }, password: "interop-password" }),
        });
        const body = (await r.json()) as { access_token: string };
        return new Client(c.base, c.userId, body.access_token);
      };
      const notes: string[] = [];
      for (const [owner, asker, side] of [[sd, pd, "Synapse's user on Portier"], [pd, sd, "Portier's user on Synapse"]] as const) {
        const first = await upload(owner);
        await eventually(`${side}: the first device`, async () => (await devicesOf(asker, owner.userId)).includes(first));
        const second = await upload(await secondDevice(owner));
        const both = [first, second].sort();
        await eventually(`${side}: the second device`, async () => JSON.stringify(await devicesOf(asker, owner.userId)) === JSON.stringify(both));
        notes.push(`${side}: ${both.length} devices`);
      }
      return notes.join("; ");
    });
  } finally {
    await portier.stop();
  }

  const passed = results.filter((r) => r.ok).length;
  const lines = [
    "# Interop with Synapse: last results",
    "",
    `Run by \`npm run interop:synapse\` on ${new Date().toISOString().slice(0, 10)} against Synapse 1.67.0 (../shared/peers/synapse), Portier ${PORTIER_VERSION}. ${passed} of ${results.length} scenarios passed.`,
    "",
    "| scenario | result | notes |",
    "| --- | --- | --- |",
    ...results.map((r) => `| ${r.name} | ${r.ok ? "pass" : "FAIL"} (${(r.ms / 1000).toFixed(1)} s) | ${r.detail.replace(/\|/g, "\\|").replace(/\n/g, " ")} |`),
    "",
  ];
  mkdirSync(join(import.meta.dir, "..", "test", "interop"), { recursive: true });
  writeFileSync(join(import.meta.dir, "..", "test", "interop", "synapse-RESULTS.md"), lines.join("\n"));
  console.log(`\n${passed} passed, ${results.length - passed} failed`);
  return passed === results.length ? 0 : 1;
}

process.exit(await main());
