// Federation throughput and cost (issue 10), over TLS on loopback, servers in this process unless said:
//  (a) inbound /send ingest with full verification: 2,000 m.room.message PDUs of a user of B, a
//      chain on A's forward extremity, signed by B, PUT to A in transactions of 50, one after
//      another; PDUs/s and ms per transaction; in a room of 2 members, then (a') after ~1,000 users
//      of B joined through /send, in that room again. A and B run in this process, but the PUTs
//      come from a child process (this file with --send-child): the PDUs are built and signed here
//      with B's key and handed over in a temporary file; the child signs each request with X-Matrix
//      as B (B's key file), sends it over TLS trusting the test CA, and reports per-transaction times
//      and results as JSON on stdout. So B's request signing, serialising, TLS and waiting do not
//      take A's JS thread and the figure is A's own ingest rate (A still fetches B's key from B).
//      FED_SENDER=inprocess sends through B's FederationClient in this process instead, as before,
//      for comparison; the output says which sender ran.
//  (b) fan-out of one PDU to 50 destinations: 50 tiny plain-HTTP receivers (they count), A's
//      FederationSender.queuePdu to all 50; time until the last one has it.
//  (c) joining a synthetic room of 10,000 state events held by a fake resident server (a Bun.serve
//      TLS server written here with its own ed25519 key: key/v2/server, make_join, v2 send_join).
//      The joining Portier runs in a child process of its own (this file with --join-child), so its
//      peak RSS is the joining server's (plus the bench's client) and not the fake's.
// Figures only: nothing here asserts on time.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { federatedServer, eventually, type FederatedServer } from "../helpers/federation";
import { request, tempDir } from "../helpers/server";
import { resolve, Tokens } from "../../src/di/tokens";
import { roomVersion } from "../../src/protocol/room-versions";
import { computeEventId } from "../../src/protocol/signing/event-id";
import { signEvent } from "../../src/protocol/signing/event-signatures";
import { signJson } from "../../src/protocol/signing/sign-json";
import { parseSigningKeyFile, signingKeyFromSeed } from "../../src/protocol/signing/keys";
import { signRequest } from "../../src/protocol/x-matrix";
import { encodeBase64 } from "../../src/protocol/base64";
import { generateSelfSignedCertificate } from "../../src/services/federation/tls-certificate";
import type { PortierServer } from "../../src/app";
import type { JsonObject } from "../../src/protocol/json";

const V3 = "/_matrix/client/v3";
const enc = encodeURIComponent;
const now = () => performance.now();
const VERSION = roomVersion("10")!;
const N_PDUS = Number(process.env.FED_PDUS ?? 2000);
const TXN_SIZE = 50;
const N_DEST = Number(process.env.FED_DESTINATIONS ?? 50);
const FANOUT_ROUNDS = Number(process.env.FED_FANOUT_ROUNDS ?? 20);
const N_STATE = Number(process.env.FED_STATE ?? 10_000);
const SENDER = process.env.FED_SENDER ?? "child";
if (SENDER !== "child" && SENDER !== "inprocess") throw new Error(`FED_SENDER must be "child" or "inprocess", not ${JSON.stringify(SENDER)}`);

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

/** A client-server call through the app in-process (no client-side HTTP); throws unless 200. */
async function call(server: PortierServer, method: string, path: string, token?: string, body?: unknown): Promise<any> {
  const r = await request(server, method, `${V3}${path}`, body, token ? { Authorization: `Bearer ${token}` } : {});
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 300)}`);
  return r.body;
}

async function register(server: PortierServer, name: string): Promise<{ userId: string; token: string }> {
  const r = await call(server, "POST", "/register", undefined, { username: name, password: "pw", auth: { type: "m.login.dummy" } });
  return { userId: r.user_id, token: r.access_token };
}

// ---------------------------------------------------------------------------------------------
// (a), child side: B's outbound /send transactions from a process of their own.
// ---------------------------------------------------------------------------------------------
/** What the parent hands the send child (a JSON file): B's PDUs, already signed, by transaction. */
interface SendJob {
  /** B's server name: the X-Matrix origin and each transaction's origin. */
  origin: string;
  /** A's server name: the X-Matrix destination. */
  destination: string;
  /** https://127.0.0.1:PORT of A. */
  url: string;
  /** B's signing key file (Synapse's format). */
  keyPath: string;
  /** The test CA that issued A's certificate. */
  caPath: string;
  txns: JsonObject[][];
}

/** Per-transaction times and A's answers; the child prints it as one JSON line on stdout. */
interface SendReport {
  perTxn: number[];
  seconds: number;
  accepted: number;
  errors: number;
  firstError?: string;
  /** From the child's start until its first PUT (Bun start, imports, reading the file). */
  startupMs?: number;
}

function countAnswer(report: SendReport, answer: { pdus?: Record<string, { error?: string }> }): void {
  for (const result of Object.values(answer.pdus ?? {})) {
    if (result.error) {
      report.errors++;
      report.firstError ??= result.error;
    } else report.accepted++;
  }
}

async function sendChild(jobPath: string): Promise<void> {
  const job = JSON.parse(readFileSync(jobPath, "utf8")) as SendJob;
  const [key] = parseSigningKeyFile(readFileSync(job.keyPath, "utf8"));
  if (!key) throw new Error(`${job.keyPath} holds no key`);
  const signer = { keyId: key.keyId, sign: <T extends JsonObject>(o: T, options?: { strict?: boolean }) => signJson(o, job.origin, key.keyId, key.seed, options) };
  // Only the test CA: A's certificate is issued by it, and nothing else is contacted.
  const ca = readFileSync(job.caPath, "utf8");
  const report: SendReport = { perTxn: [], seconds: 0, accepted: 0, errors: 0, startupMs: now() };
  const start = now();
  for (const pdus of job.txns) {
    const t = now();
    // Signed and serialised per request, as B's FederationClient does.
    const path = `/_matrix/federation/v1/send/${enc(`bench-${crypto.randomUUID()}`)}`;
    const content = { origin: job.origin, origin_server_ts: Date.now(), pdus };
    const authorization = signRequest({ method: "PUT", uri: path, origin: job.origin, destination: job.destination, content }, signer);
    const response = await fetch(`${job.url}${path}`, {
      method: "PUT",
      headers: { Authorization: authorization, "Content-Type": "application/json", Accept: "application/json", Host: job.destination },
      body: JSON.stringify(content),
      signal: AbortSignal.timeout(120_000),
      tls: { ca: [ca] },
    });
    const text = await response.text();
    report.perTxn.push(now() - t);
    if (response.status === 200) countAnswer(report, JSON.parse(text));
    else {
      report.errors += pdus.length;
      report.firstError ??= `HTTP ${response.status}: ${text.slice(0, 300)}`;
    }
  }
  report.seconds = (now() - start) / 1000;
  process.stdout.write(JSON.stringify(report) + "\n");
}

// ---------------------------------------------------------------------------------------------
// (c), child side: a Portier joins the fake's room; wall time of POST /join and peak RSS.
// ---------------------------------------------------------------------------------------------
function vmHwmMiB(): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

async function joinChild(): Promise<void> {
  const fakeName = process.env.FAKE_NAME!;
  const roomId = process.env.FAKE_ROOM!;
  const b = await federatedServer({ registration: { enabled: true }, federation: { tls_skip_verify_servers: [fakeName], request_timeout_ms: 60_000 } });
  try {
    const user = await register(b.server, "joiner");
    await call(b.server, "GET", "/sync?timeout=0", user.token);
    Bun.gc(true);
    const mib = (bytes: number) => bytes / 1024 / 1024;
    const baseline = mib(process.memoryUsage().rss);
    const hwmBefore = vmHwmMiB();
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, mib(process.memoryUsage().rss));
    }, 50);
    const start = now();
    let error: string | undefined;
    try {
      await call(b.server, "POST", `/join/${enc(roomId)}?server_name=${enc(fakeName)}`, user.token, {});
    } catch (e) {
      error = String(e);
    }
    const took = now() - start;
    clearInterval(sampler);
    peak = Math.max(peak, mib(process.memoryUsage().rss));
    const hwmAfter = vmHwmMiB();
    console.log(`POST /join (v3), ${N_STATE} state events       ${(took / 1000).toFixed(2)} s${error ? `  FAILED: ${error}` : ""}   [target < 5 s]`);
    console.log(`peak RSS during the join (50 ms samples)     ${peak.toFixed(0)} MiB (baseline ${baseline.toFixed(0)} MiB, +${(peak - baseline).toFixed(0)} MiB)   [target < 500 MiB]`);
    if (hwmAfter !== undefined) console.log(`VmHWM before / after the join                ${hwmBefore!.toFixed(0)} / ${hwmAfter.toFixed(0)} MiB`);
    if (error) return;
    const syncStart = now();
    const sync = await call(b.server, "GET", "/sync?timeout=0", user.token);
    const syncTook = now() - syncStart;
    const room = sync.rooms?.join?.[roomId];
    const members = new Set<string>();
    for (const e of [...(room?.state?.events ?? []), ...(room?.timeline?.events ?? [])]) {
      if (e.type === "m.room.member" && e.content?.membership === "join") members.add(e.state_key);
    }
    const expected = N_STATE - 4 + 2; // the fake's members and creator, plus the joiner
    console.log(
      `B's initial /sync afterwards                 ${syncTook.toFixed(0)} ms: room listed ${room ? "yes" : "NO"}, ` +
        `summary m.joined_member_count ${room?.summary?.["m.joined_member_count"] ?? "-"}, joined members in state+timeline ${members.size} (expected ${expected}), peak RSS now ${mib(process.memoryUsage().rss).toFixed(0)} MiB`,
    );
  } finally {
    await b.server.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// (c), parent side: the fake resident server and its room.
// ---------------------------------------------------------------------------------------------
async function fakeResident(): Promise<{ name: string; roomId: string; stop: () => void; served: Record<string, number> }> {
  const key = signingKeyFromSeed("bench", new Uint8Array(32).fill(42));
  const cert = generateSelfSignedCertificate(tempDir("portier-fake-"), "127.0.0.1", { ipAddresses: ["127.0.0.1"] });
  const served: Record<string, number> = {};
  let state: JsonObject[] = [];
  let authChain: JsonObject[] = [];
  let last: { id: string; depth: number } = { id: "", depth: 0 };
  let ids: { create: string; pl: string; jr: string } = { create: "", pl: "", jr: "" };
  let name = "";
  let roomId = "";
  const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    tls: { cert: Bun.file(cert.certificatePath), key: Bun.file(cert.privateKeyPath) },
    async fetch(req) {
      const url = new URL(req.url);
      const path = url.pathname;
      const tag = path.split("/").slice(0, 5).join("/");
      served[tag] = (served[tag] ?? 0) + 1;
      if (req.method === "GET" && path === "/_matrix/key/v2/server") {
        return json(signJson({ server_name: name, valid_until_ts: Date.now() + 86_400_000, verify_keys: { [key.keyId]: { key: encodeBase64(key.publicKey) } }, old_verify_keys: {} }, name, key.keyId, key.seed));
      }
      let m = /^\/_matrix\/federation\/v1\/make_join\/([^/]+)\/([^/]+)$/.exec(path);
      if (req.method === "GET" && m) {
        const userId = decodeURIComponent(m[2]!);
        return json({
          room_version: "10",
          event: {
            room_id: roomId,
            sender: userId,
            state_key: userId,
            type: "m.room.member",
            content: { membership: "join" },
            origin_server_ts: Date.now(),
            depth: last.depth + 1,
            prev_events: [last.id],
            auth_events: [ids.create, ids.pl, ids.jr],
            origin: name,
          },
        });
      }
      m = /^\/_matrix\/federation\/v2\/send_join\/([^/]+)\/([^/]+)$/.exec(path);
      if (req.method === "PUT" && m) {
        await req.arrayBuffer();
        return json({ origin: name, members_omitted: false, servers_in_room: [name], state, auth_chain: authChain });
      }
      if (req.method === "PUT" && path.startsWith("/_matrix/federation/v1/send/")) return json({ pdus: {} });
      return json({ errcode: "M_UNRECOGNIZED", error: "not here" }, 404);
    },
  });
  name = `127.0.0.1:${server.port}`;
  roomId = `!synthetic:${name}`;
  const sign = (pdu: JsonObject) => {
    const signed = signEvent(pdu, VERSION, name, key.keyId, key.seed);
    return { signed, id: computeEventId(signed, VERSION) };
  };
  const creator = `@creator:${name}`;
  let depth = 0;
  let prev: string[] = [];
  const ts = Date.now() - 3_600_000;
  const add = (type: string, stateKey: string, content: JsonObject, auth: string[], sender = creator) => {
    const { signed, id } = sign({ room_id: roomId, sender, type, state_key: stateKey, content, origin_server_ts: ts + depth, depth: ++depth, prev_events: prev, auth_events: auth });
    prev = [id];
    state.push(signed);
    last = { id, depth };
    return id;
  };
  const t0 = now();
  const create = add("m.room.create", "", { creator, room_version: "10" }, []);
  const creatorJoin = add("m.room.member", creator, { membership: "join" }, [create]);
  const pl = add("m.room.power_levels", "", { users: { [creator]: 100 }, users_default: 0, events_default: 0, state_default: 50, ban: 50, kick: 50, redact: 50, invite: 0 }, [create, creatorJoin]);
  const jr = add("m.room.join_rules", "", { join_rule: "public" }, [create, creatorJoin, pl]);
  ids = { create, pl, jr };
  for (let i = 0; state.length < N_STATE; i++) add("m.room.member", `@u${i}:${name}`, { membership: "join" }, [create, pl, jr], `@u${i}:${name}`);
  authChain = state.slice(0, 4);
  const bytes = JSON.stringify({ state, auth_chain: authChain }).length;
  console.log(`(built ${state.length} signed state events in ${((now() - t0) / 1000).toFixed(2)} s; send_join answer ${(bytes / 1024 / 1024).toFixed(1)} MiB)`);
  return { name, roomId, stop: () => server.stop(true), served };
}

// ---------------------------------------------------------------------------------------------
// (a) and (b), and the parent of (c).
// ---------------------------------------------------------------------------------------------
async function main(): Promise<void> {
  const commit = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: import.meta.dir }).stdout.toString().trim();
  const nproc = Bun.spawnSync(["nproc"]).stdout.toString().trim();
  console.log(`\n## Federation (nproc ${nproc}, Bun ${Bun.version}, commit ${commit}; TLS on loopback, servers in this process; (a)'s sender: ${SENDER === "child" ? "a child process" : "in this process"})`);

  // (b)'s receivers first: A must know their names (plain_http_servers) when it is built.
  const receivers: { name: string; count: number; stop: () => void; waiters: (() => void)[] }[] = [];
  for (let i = 0; i < N_DEST; i++) {
    const r = { name: "", count: 0, stop: () => {}, waiters: [] as (() => void)[] };
    const s = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        const url = new URL(req.url);
        if (req.method === "PUT" && url.pathname.startsWith("/_matrix/federation/v1/send/")) {
          const body = (await req.json()) as { pdus?: unknown[] };
          r.count += body.pdus?.length ?? 0;
          for (const w of r.waiters.splice(0)) w();
          return Response.json({ pdus: {} });
        }
        return Response.json({ errcode: "M_UNRECOGNIZED", error: "not here" }, { status: 404 });
      },
    });
    r.name = `127.0.0.1:${s.port}`;
    r.stop = () => s.stop(true);
    receivers.push(r);
  }

  let a: FederatedServer | undefined;
  let b: FederatedServer | undefined;
  try {
    a = await federatedServer({ registration: { enabled: true }, federation: { plain_http_servers: receivers.map((r) => r.name) } });
    b = await federatedServer({ registration: { enabled: true } });
    const A = a, B = b;

    // ---- (a) inbound /send ingest ----
    const alice = await register(A.server, "alice");
    const bob = await register(B.server, "bob");
    const roomId = (await call(A.server, "POST", "/createRoom", alice.token, { preset: "public_chat", room_version: "10" })).room_id as string;
    await call(B.server, "POST", `/join/${enc(roomId)}?server_name=${enc(A.serverName)}`, bob.token, {});
    const storeA = resolve(A.server.container, Tokens.RoomEventStore);
    await eventually(async () => (await storeA.currentStateEvent(roomId, "m.room.member", bob.userId)) !== undefined, 10_000, "the join on A");
    const signerB = resolve(B.server.container, Tokens.ServerKeys);
    const clientB = resolve(B.server.container, Tokens.FederationClient);
    const keyPathB = B.server.config.signing_key_path ?? join(B.server.config.data_dir, "signing.key");
    const [fileKeyB] = parseSigningKeyFile(readFileSync(keyPathB, "utf8"));
    if (fileKeyB?.keyId !== signerB.keyId) throw new Error(`${keyPathB} does not hold B's key ${signerB.keyId}`);
    const caPath = A.server.config.federation.tls_trusted_ca_path!;
    let childPid = 0;
    console.log(
      SENDER === "child"
        ? "(a) sender: a child process (--send-child, own JS thread) PUTs B's transactions; A and B stay here [FED_SENDER=inprocess: B's client in this process]"
        : "(a) sender: B's FederationClient in this process, on A's JS thread [FED_SENDER=inprocess; unset for a child process]",
    );

    /** PUTs the PDUs to A as B, in transactions of TXN_SIZE, one after another, from the chosen sender. */
    async function send(pdus: JsonObject[]): Promise<SendReport> {
      const txns: JsonObject[][] = [];
      for (let i = 0; i < pdus.length; i += TXN_SIZE) txns.push(pdus.slice(i, i + TXN_SIZE));
      if (SENDER === "inprocess") {
        const report: SendReport = { perTxn: [], seconds: 0, accepted: 0, errors: 0 };
        const start = now();
        for (const batch of txns) {
          const t = now();
          try {
            const answer = (await clientB.request("PUT", A.serverName, `/_matrix/federation/v1/send/${enc(`bench-${crypto.randomUUID()}`)}`, {
              body: { origin: B.serverName, origin_server_ts: Date.now(), pdus: batch },
            })) as { pdus: Record<string, { error?: string }> };
            report.perTxn.push(now() - t);
            countAnswer(report, answer);
          } catch (error) {
            report.perTxn.push(now() - t);
            report.errors += batch.length;
            report.firstError ??= String(error);
          }
        }
        report.seconds = (now() - start) / 1000;
        return report;
      }
      const workDir = tempDir("portier-fed-send-");
      const jobPath = join(workDir, "job.json");
      const job: SendJob = { origin: B.serverName, destination: A.serverName, url: A.url, keyPath: keyPathB, caPath, txns };
      writeFileSync(jobPath, JSON.stringify(job));
      try {
        const child = Bun.spawn([process.execPath, import.meta.path, "--send-child", jobPath], { stdout: "pipe", stderr: "inherit" });
        childPid = child.pid;
        // Awaited, not blocking: A and B serve on this thread meanwhile.
        const [out, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
        if (code !== 0) throw new Error(`the send child exited with ${code}`);
        const line = out.trim().split("\n").at(-1)!;
        return JSON.parse(line) as SendReport;
      } finally {
        rmSync(workDir, { recursive: true, force: true });
      }
    }
    const senderNote = () => (SENDER === "child" ? `sender: child process ${childPid}` : "sender: in this process");

    async function ingest(label: string, sender: string, count: number): Promise<void> {
      const extremities = await storeA.forwardExtremities(roomId);
      const prevs = await Promise.all(extremities.map((id) => storeA.getEvent(id)));
      let depth = Math.max(...prevs.map((e) => e!.depth));
      const auth: string[] = [];
      for (const [type, key] of [["m.room.create", ""], ["m.room.power_levels", ""], ["m.room.member", sender]] as const) {
        const id = await storeA.currentStateEvent(roomId, type, key);
        if (id) auth.push(id);
      }
      let prev = extremities;
      const pdus: JsonObject[] = [];
      const t0 = now();
      for (let i = 0; i < count; i++) {
        const signed = signerB.signEvent({ room_id: roomId, sender, type: "m.room.message", content: { msgtype: "m.text", body: `bench message ${i}` }, origin_server_ts: Date.now(), depth: ++depth, prev_events: prev, auth_events: auth }, VERSION);
        prev = [computeEventId(signed, VERSION)];
        pdus.push(signed);
      }
      const buildMs = now() - t0;
      const { perTxn, seconds, accepted, errors, firstError, startupMs } = await send(pdus);
      const head = (await storeA.forwardExtremities(roomId))[0] === prev[0];
      console.log(`${label.padEnd(44)} ${(count / seconds).toFixed(0).padStart(8)} PDUs/s   [target >= 2,000 PDUs/s]`);
      console.log(`  ${count} PDUs in ${perTxn.length} txns of ${TXN_SIZE}: ${seconds.toFixed(2)} s; per txn p50 ${quantile(perTxn, 0.5).toFixed(1)} ms, p99 ${quantile(perTxn, 0.99).toFixed(1)} ms, max ${Math.max(...perTxn).toFixed(1)} ms`);
      console.log(`  accepted ${accepted}, errors ${errors}${firstError ? ` (first: ${firstError})` : ""}; A's forward extremity is the last PDU: ${head ? "yes" : "NO"}; (building+signing them took ${buildMs.toFixed(0)} ms)`);
      console.log(`  ${senderNote()}${startupMs !== undefined ? ` (its own JS thread; its start until the first PUT, ${startupMs.toFixed(0)} ms, not counted)` : " (on A's JS thread)"}`);
    }
    await ingest("(a) /send ingest, room of 2 members", bob.userId, N_PDUS);

    // The same room with ~1,000 more members (users of B joining through /send: cheap, no registration).
    const MEMBERS = Number(process.env.FED_MEMBERS ?? 1000);
    if (MEMBERS > 0) {
      const extremities = await storeA.forwardExtremities(roomId);
      let depth = Math.max(...(await Promise.all(extremities.map((id) => storeA.getEvent(id)))).map((e) => e!.depth));
      const create = (await storeA.currentStateEvent(roomId, "m.room.create", ""))!;
      const pl = (await storeA.currentStateEvent(roomId, "m.room.power_levels", ""))!;
      const jr = (await storeA.currentStateEvent(roomId, "m.room.join_rules", ""))!;
      let prev = extremities;
      const joins: JsonObject[] = [];
      for (let i = 0; i < MEMBERS; i++) {
        const user = `@m${i}:${B.serverName}`;
        const signed = signerB.signEvent({ room_id: roomId, sender: user, type: "m.room.member", state_key: user, content: { membership: "join" }, origin_server_ts: Date.now(), depth: ++depth, prev_events: prev, auth_events: [create, pl, jr] }, VERSION);
        prev = [computeEventId(signed, VERSION)];
        joins.push(signed);
      }
      const { seconds, errors, firstError } = await send(joins);
      console.log(`(a') ${MEMBERS} member joins of B's users via /send  ${(MEMBERS / seconds).toFixed(0).padStart(8)} PDUs/s (${seconds.toFixed(2)} s, errors ${errors}${firstError ? `: ${firstError}` : ""}; ${senderNote()})`);
      await ingest(`(a) /send ingest, room of ${MEMBERS + 2} members`, bob.userId, N_PDUS);
    }

    // ---- (b) fan-out to N_DEST destinations ----
    const sender = resolve(A.server.container, Tokens.FederationSender);
    const destinations = receivers.map((r) => r.name);
    const probe: JsonObject = signerB.signEvent({ room_id: roomId, sender: bob.userId, type: "m.room.message", content: { msgtype: "m.text", body: "fan-out" }, origin_server_ts: Date.now(), depth: 1, prev_events: [], auth_events: [] }, VERSION);
    const times: number[] = [];
    const queueTimes: number[] = [];
    const before = { ...sender.counters };
    for (let round = 0; round < FANOUT_ROUNDS + 2; round++) {
      const target = receivers.map((r) => r.count + 1);
      const all = Promise.all(receivers.map((r, i) => new Promise<void>((done) => {
        const check = () => (r.count >= target[i]! ? done() : r.waiters.push(check));
        check();
      })));
      const start = now();
      await sender.queuePdu(destinations, { ...probe, content: { msgtype: "m.text", body: `fan-out ${round}` } });
      const queued = now();
      await all;
      if (round >= 2) {
        times.push(now() - start);
        queueTimes.push(queued - start);
      }
      await sender.idle();
    }
    const p50 = quantile(times, 0.5);
    console.log(`(b) one PDU to ${N_DEST} destinations (plain HTTP)     p50 ${p50.toFixed(2)} ms, p99 ${quantile(times, 0.99).toFixed(2)} ms until the last has it (${times.length} rounds); ${(p50 / N_DEST * 1000).toFixed(0)} µs per destination`);
    console.log(`  of which queuePdu (persisting ${N_DEST} rows) p50 ${quantile(queueTimes, 0.5).toFixed(2)} ms; sender counters: +${sender.counters.transactionsSent - before.transactionsSent} txns sent, +${sender.counters.failedAttempts - before.failedAttempts} failed attempts, +${sender.counters.transactionsRefused - before.transactionsRefused} refused`);
  } finally {
    await a?.server.stop().catch(() => {});
    await b?.server.stop().catch(() => {});
    for (const r of receivers) r.stop();
  }

  // ---- (c) join a room of N_STATE state events, the joiner in a child process ----
  const fake = await fakeResident();
  try {
    const child = Bun.spawn([process.execPath, import.meta.path, "--join-child"], {
      env: { ...process.env, FAKE_NAME: fake.name, FAKE_ROOM: fake.roomId },
      stdout: "inherit",
      stderr: "inherit",
    });
    const code = await child.exited;
    if (code !== 0) {
      console.error(`the join child exited with ${code}`);
      process.exitCode = 1;
    }
    console.log(`  fake resident served: ${Object.entries(fake.served).map(([k, v]) => `${k} x${v}`).join(", ")}`);
  } finally {
    fake.stop();
  }
}

if (process.argv[2] === "--join-child") await joinChild();
else if (process.argv[2] === "--send-child") await sendChild(process.argv[3]!);
else await main();
