// The outbound federation queue: one sender per destination, over the real store (in-memory SQLite),
// a fake FederationClient, and an injected clock and timer, so retries are driven by the test.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testStores } from "../../helpers/databases";
import type { Stores } from "../../../src/storage/open";
import { FederationSenderService, type FederationOutbox, type FederationSenderOptions, type Timer } from "../../../src/services/federation/sender";
import { FederationUnreachableError, RemoteMatrixError, type FederationClient, type FederationRequestOptions } from "../../../src/services/federation/contracts";
import type { Clock, Logger, LogLevel } from "../../../src/services/runtime";
import { LosslessNumber, type JsonObject } from "../../../src/protocol/json";

const OWN = "own.example";
const A = "a.example";
const B = "b.example";
const START = 1_700_000_000_000;

class FakeClock implements Clock {
  t = START;
  now(): number {
    return this.t;
  }
}

interface Task {
  due: number;
  delayMs: number;
  fire: () => void;
  done: boolean;
}

/** Fires scheduled callbacks only when the test advances time. */
class FakeTimer implements Timer {
  private readonly tasks: Task[] = [];
  constructor(private readonly clock: FakeClock) {}

  schedule(delayMs: number, fire: () => void): { cancel(): void } {
    const task: Task = { due: this.clock.t + delayMs, delayMs, fire, done: false };
    this.tasks.push(task);
    return { cancel: () => void (task.done = true) };
  }

  /** The delays of the callbacks still to fire. */
  pending(): number[] {
    return this.tasks.filter((t) => !t.done).map((t) => t.delayMs);
  }

  /** Moves the clock forward, firing what falls due on the way, in order. */
  advance(ms: number): void {
    const end = this.clock.t + ms;
    for (;;) {
      const next = this.tasks.filter((t) => !t.done && t.due <= end).sort((x, y) => x.due - y.due)[0];
      if (!next) break;
      this.clock.t = Math.max(this.clock.t, next.due);
      next.done = true;
      next.fire();
    }
    this.clock.t = end;
  }
}

interface Call {
  method: string;
  destination: string;
  path: string;
  txnId: string;
  /** The body as it went over the wire. */
  body: { origin: string; origin_server_ts: number; pdus: JsonObject[]; edus: { edu_type: string; content: JsonObject }[] };
  wire: string;
  respond(value: unknown): void;
  fail(error: Error): void;
}

const HOLD = Symbol("hold");
type Answer = unknown | Error | typeof HOLD;

class FakeFederation implements FederationClient {
  readonly calls: Call[] = [];
  /** How each call is answered; HOLD leaves it open for the test. Default: 200 with no PDU errors. */
  answer: (call: Call) => Answer = () => ({ pdus: {} });

  request(method: "GET" | "PUT" | "POST", destination: string, path: string, options?: FederationRequestOptions): Promise<unknown> {
    const wire = JSON.stringify(options?.body);
    return new Promise((resolve, reject) => {
      const call: Call = {
        method,
        destination,
        path,
        txnId: decodeURIComponent(path.split("/").pop()!),
        body: JSON.parse(wire),
        wire,
        respond: resolve,
        fail: reject,
      };
      this.calls.push(call);
      const answer = this.answer(call);
      if (answer === HOLD) return;
      if (answer instanceof Error) reject(answer);
      else resolve(answer);
    });
  }

  to(destination: string): Call[] {
    return this.calls.filter((c) => c.destination === destination);
  }
}

class MemoryLogger implements Logger {
  readonly lines: { level: LogLevel; message: string; fields?: Record<string, unknown> }[] = [];
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level, message, fields });
  }
}

/** Lets queued async work (store writes, loops) run: a fixed number of event-loop turns, no clock involved. */
async function settle(turns = 200): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

/** Event-loop turns until `condition` holds (fails the test if it never does). */
async function until(condition: () => boolean, turns = 5000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (condition()) return;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error("condition never held");
}

const pdu = (n: number, extra: JsonObject = {}): JsonObject => ({ event_id: `$e${n}`, type: "m.room.message", content: { body: `message ${n}` }, ...extra });
const eventIds = (calls: Call[]) => calls.map((c) => c.body.pdus.map((p) => p.event_id));

describe("FederationSenderService", () => {
  let stores: Stores;
  let clock: FakeClock;
  let timer: FakeTimer;
  let client: FakeFederation;
  let logger: MemoryLogger;
  const senders: FederationSenderService[] = [];

  const newSender = (options: Partial<FederationSenderOptions> = {}) => {
    const sender = new FederationSenderService({ store: stores.federationOutbox, client, ownServerName: OWN, clock, timer, logger, ...options });
    senders.push(sender);
    return sender;
  };

  beforeEach(async () => {
    stores = await testStores();
    clock = new FakeClock();
    timer = new FakeTimer(clock);
    client = new FakeFederation();
    logger = new MemoryLogger();
  });
  afterEach(async () => {
    // Release whatever a test left open, so stop() need not wait for its timeout.
    client.answer = () => ({ pdus: {} });
    for (const s of senders.splice(0)) {
      const stopping = s.stop();
      timer.advance(60_000);
      await stopping;
    }
    await stores.db.close();
  });

  test("a transaction is a PUT /send/{txnId} with origin, origin_server_ts, the PDUs in queue order and the EDUs", async () => {
    const sender = newSender();
    // Queued before start: persisted, and sent together when the sender starts.
    await sender.queuePdu([A], pdu(1));
    await sender.queueEdu([A], "m.receipt", { "!r:own.example": { "m.read": {} } });
    await sender.queuePdu([A], pdu(2));
    await sender.queuePdu([A], pdu(3));
    expect(client.calls).toEqual([]);
    clock.t += 5;
    await sender.start();
    await sender.idle();

    expect(client.calls.length).toBe(1);
    const [call] = client.calls;
    expect(call.method).toBe("PUT");
    expect(call.destination).toBe(A);
    expect(call.path).toBe(`/_matrix/federation/v1/send/${call.txnId}`);
    expect(call.txnId).toMatch(/^\d+-\d+$/);
    expect(call.body).toEqual({
      origin: OWN,
      origin_server_ts: START + 5,
      pdus: [pdu(1), pdu(2), pdu(3)],
      edus: [{ edu_type: "m.receipt", content: { "!r:own.example": { "m.read": {} } } }],
    });
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
    expect(sender.counters).toMatchObject({ pdusQueued: 3, edusQueued: 1, transactionsSent: 1, pdusSent: 3, edusSent: 1, failedAttempts: 0 });
  });

  test("queueing persists before it resolves, skips our own server and invalid names, and takes each destination once", async () => {
    const sender = newSender();
    await sender.queuePdu([A, OWN, A, "not a server", B], pdu(1));
    expect(await stores.federationOutbox.queuedCount(A)).toBe(1);
    expect(await stores.federationOutbox.queuedCount(B)).toBe(1);
    expect(await stores.federationOutbox.queuedCount(OWN)).toBe(0);
    expect(await stores.federationOutbox.queuedCount()).toBe(2);
    await sender.queueEdu([OWN], "m.typing", { room_id: "!r:own.example", user_id: "@u:own.example", typing: true });
    expect(await stores.federationOutbox.queuedCount()).toBe(2);
    expect(logger.lines.some((l) => l.message.includes("invalid server name"))).toBe(true);
  });

  test("a long queue goes in transactions of at most 50 PDUs and 100 EDUs, in order", async () => {
    const sender = newSender();
    for (let i = 0; i < 120; i++) await sender.queuePdu([A], pdu(i));
    for (let i = 0; i < 230; i++) await sender.queueEdu([A], "m.receipt", { i });
    await sender.start();
    await sender.idle();

    expect(client.calls.map((c) => [c.body.pdus.length, c.body.edus.length])).toEqual([
      [50, 100],
      [50, 100],
      [20, 30],
    ]);
    expect(eventIds(client.calls).flat()).toEqual(Array.from({ length: 120 }, (_, i) => `$e${i}`));
    expect(client.calls.flatMap((c) => c.body.edus.map((e) => e.content.i))).toEqual(Array.from({ length: 230 }, (_, i) => i));
    expect(new Set(client.calls.map((c) => c.txnId)).size).toBe(3);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
  });

  test("the limits are settings", async () => {
    const sender = newSender({ maxPdusPerTransaction: 2, maxEdusPerTransaction: 1 });
    for (let i = 0; i < 5; i++) await sender.queuePdu([A], pdu(i));
    for (let i = 0; i < 2; i++) await sender.queueEdu([A], "m.receipt", { i });
    await sender.start();
    await sender.idle();
    expect(client.calls.map((c) => [c.body.pdus.length, c.body.edus.length])).toEqual([
      [2, 1],
      [2, 1],
      [1, 0],
    ]);
  });

  test("one transaction in flight per destination, while other destinations proceed", async () => {
    const sender = newSender();
    await sender.start();
    client.answer = (call) => (call.destination === A ? HOLD : { pdus: {} });
    await sender.queuePdu([A, B], pdu(1));
    await until(() => client.calls.length === 2);

    await sender.queuePdu([A, B], pdu(2));
    await sender.queuePdu([A, B], pdu(3));
    await settle();
    // B is answered at once and goes on; A waits for its first answer.
    expect(eventIds(client.to(A))).toEqual([["$e1"]]);
    expect(eventIds(client.to(B)).flat()).toEqual(["$e1", "$e2", "$e3"]);

    client.to(A)[0].respond({ pdus: {} });
    await until(() => client.to(A).length === 2);
    expect(eventIds(client.to(A))).toEqual([["$e1"], ["$e2", "$e3"]]);
    client.to(A)[1].respond({ pdus: {} });
    await sender.idle();
    expect(client.to(A).length).toBe(2);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
  });

  test("a unit queued while the loop finds its queue empty is not left behind", async () => {
    // The loop has read "nothing queued" but not yet ended when the new unit commits and wakes it.
    const real = stores.federationOutbox;
    let gate: Promise<void> | undefined;
    let claimsRead = 0;
    const gated: FederationOutbox = {
      enqueue: (...args) => real.enqueue(...args),
      claimTransaction: async (...args) => {
        const txn = await real.claimTransaction(...args);
        claimsRead++;
        if (gate) await gate;
        return txn;
      },
      completeTransaction: (...args) => real.completeTransaction(...args),
      setRetryState: (...args) => real.setRetryState(...args),
      pendingDestinations: () => real.pendingDestinations(),
    };
    const sender = newSender({ store: gated });
    await sender.start();
    client.answer = () => HOLD;
    await sender.queuePdu([A], pdu(1));
    await until(() => client.calls.length === 1);
    let open = () => {};
    gate = new Promise((resolve) => (open = resolve));
    client.calls[0].respond({ pdus: {} });
    await until(() => claimsRead === 2);
    client.answer = () => ({ pdus: {} });
    await sender.queuePdu([A], pdu(2));
    open();
    await until(() => client.calls.length === 2);
    await sender.idle();
    expect(eventIds(client.calls)).toEqual([["$e1"], ["$e2"]]);
    expect(await real.queuedCount()).toBe(0);
  });

  test("an unreachable destination gets the same transaction again, same txnId, after a growing delay", async () => {
    const sender = newSender();
    await sender.start();
    let failuresLeft = 3;
    client.answer = (call) => (failuresLeft-- > 0 ? new FederationUnreachableError(call.destination, "connection refused") : { pdus: {} });
    await sender.queuePdu([A], pdu(1));
    await sender.idle();
    expect(client.calls.length).toBe(1);
    const txnId = client.calls[0].txnId;
    expect(timer.pending()).toEqual([2_000]);
    expect(sender.backingOff()).toEqual([{ destination: A, failures: 1 }]);
    // The retry state is persisted.
    expect(await stores.federationOutbox.pendingDestinations()).toEqual([{ destination: A, failures: 1, retryAtTs: START + 2_000 }]);

    // New units wait for the retry: no different txnId before the first one is accepted.
    await sender.queuePdu([A], pdu(2));
    await settle();
    expect(client.calls.length).toBe(1);

    timer.advance(1_999);
    await settle();
    expect(client.calls.length).toBe(1);
    timer.advance(1);
    await until(() => client.calls.length === 2);
    await sender.idle();
    expect(timer.pending()).toEqual([4_000]);
    timer.advance(4_000);
    await until(() => client.calls.length === 3);
    await sender.idle();
    expect(timer.pending()).toEqual([8_000]);
    timer.advance(8_000);
    await until(() => client.calls.length >= 4);
    await sender.idle();

    expect(client.calls.slice(0, 4).map((c) => c.txnId)).toEqual([txnId, txnId, txnId, txnId]);
    expect(client.calls.slice(0, 4).map((c) => c.body.pdus.map((p) => p.event_id))).toEqual([["$e1"], ["$e1"], ["$e1"], ["$e1"]]);
    // Then the PDU queued meanwhile, under a new txnId.
    expect(client.calls.length).toBe(5);
    expect(client.calls[4].txnId).not.toBe(txnId);
    expect(eventIds([client.calls[4]])).toEqual([["$e2"]]);
    expect(sender.counters.failedAttempts).toBe(3);
    expect(sender.counters.transactionsSent).toBe(2);
    expect(await stores.federationOutbox.pendingDestinations()).toEqual([]);
    expect(timer.pending()).toEqual([]);
  });

  test("the delay doubles up to the cap", () => {
    const sender = newSender({ backoff: { initialMs: 2_000, maxMs: 60_000 } });
    expect([1, 2, 3, 4, 5, 6, 7, 20].map((n) => sender.retryDelay(n))).toEqual([2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    expect(newSender().retryDelay(40)).toBe(3_600_000);
  });

  test("jitter shortens a delay by up to its fraction, from the injected random source", () => {
    const sender = newSender({ backoff: { jitter: 0.5 }, random: () => 0.5 });
    expect(sender.retryDelay(1)).toBe(1_500);
    expect(sender.retryDelay(3)).toBe(6_000);
  });

  test("5xx is retried; 429 waits at least its retry_after_ms", async () => {
    const sender = newSender();
    await sender.start();
    const answers: Answer[] = [
      new RemoteMatrixError(A, "M_UNKNOWN", "internal error", 502),
      new RemoteMatrixError(A, "M_LIMIT_EXCEEDED", "slow down", 429, { retry_after_ms: 30_000 }),
      { pdus: {} },
    ];
    client.answer = () => answers.shift();
    await sender.queuePdu([A], pdu(1));
    await sender.idle();
    expect(timer.pending()).toEqual([2_000]);
    timer.advance(2_000);
    await until(() => client.calls.length === 2);
    await sender.idle();
    expect(timer.pending()).toEqual([30_000]);
    timer.advance(30_000);
    await until(() => client.calls.length === 3);
    await sender.idle();
    expect(new Set(client.calls.map((c) => c.txnId)).size).toBe(1);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
    expect(sender.counters).toMatchObject({ failedAttempts: 2, transactionsSent: 1, transactionsRefused: 0 });
  });

  test("a 400 refuses the whole transaction: it is logged and dropped, and the queue moves on", async () => {
    const sender = newSender({ maxPdusPerTransaction: 1 });
    for (let i = 1; i <= 3; i++) await sender.queuePdu([A], pdu(i));
    const answers: Answer[] = [new RemoteMatrixError(A, "M_BAD_JSON", "bad transaction", 400), new RemoteMatrixError(A, "M_FORBIDDEN", "no", 403), { pdus: {} }];
    client.answer = () => answers.shift();
    await sender.start();
    await sender.idle();
    expect(eventIds(client.calls)).toEqual([["$e1"], ["$e2"], ["$e3"]]);
    expect(timer.pending()).toEqual([]);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
    expect(sender.counters).toMatchObject({ transactionsRefused: 2, transactionsSent: 1, failedAttempts: 0 });
    expect(logger.lines.filter((l) => l.message.includes("refused")).map((l) => l.fields?.status)).toEqual([400, 403]);
  });

  test("errors the receiver reports for single PDUs are logged, not retried", async () => {
    const sender = newSender();
    client.answer = () => ({ pdus: { "$e1": {}, "$e2": { error: "You are not allowed to send a message to this room." } } });
    await sender.queuePdu([A], pdu(1));
    await sender.queuePdu([A], pdu(2));
    await sender.start();
    await sender.idle();
    expect(client.calls.length).toBe(1);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
    const rejected = logger.lines.filter((l) => l.message.includes("rejected a PDU"));
    expect(rejected.map((l) => l.fields?.event_id)).toEqual(["$e2"]);
  });

  test("markReachable retries a backing-off destination at once, with the same txnId", async () => {
    const sender = newSender();
    await sender.start();
    const answers: Answer[] = [new FederationUnreachableError(A, "timeout"), new FederationUnreachableError(A, "timeout")];
    client.answer = () => answers.shift() ?? { pdus: {} };
    await sender.queuePdu([A], pdu(1));
    await sender.idle();
    timer.advance(2_000);
    await until(() => client.calls.length === 2);
    await sender.idle();
    expect(timer.pending()).toEqual([4_000]);

    sender.markReachable(B); // not queued for: nothing
    sender.markReachable(A);
    expect(timer.pending()).toEqual([]);
    await until(() => client.calls.length === 3);
    await sender.idle();
    expect(client.calls.map((c) => c.txnId)).toEqual([client.calls[0].txnId, client.calls[0].txnId, client.calls[0].txnId]);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
    // Nothing left to do: marking it again sends nothing.
    sender.markReachable(A);
    await settle();
    expect(client.calls.length).toBe(3);
  });

  test("a loop woken from inside a database transaction does not join it", async () => {
    const sender = newSender();
    await sender.start();
    const answers: Answer[] = [new FederationUnreachableError(A, "down"), HOLD];
    client.answer = () => answers.shift() ?? { pdus: {} };
    await sender.queuePdu([A], pdu(1));
    await sender.idle();
    // E.g. an inbound request handled in a transaction proves A is up; the transaction ends first.
    await stores.db.transaction(async () => {
      sender.markReachable(A);
    });
    await until(() => client.calls.length === 2);
    client.calls[1].respond({ pdus: {} });
    await sender.idle();
    expect(logger.lines.filter((l) => l.level === "error")).toEqual([]);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
    expect(sender.counters.transactionsSent).toBe(1);
  });

  test("after markReachable, a new failure starts the backoff over", async () => {
    const sender = newSender();
    await sender.start();
    client.answer = (call) => new FederationUnreachableError(call.destination, "refused");
    await sender.queuePdu([A], pdu(1));
    await sender.idle();
    timer.advance(2_000);
    await until(() => client.calls.length === 2);
    await sender.idle();
    expect(timer.pending()).toEqual([4_000]);
    sender.markReachable(A);
    await until(() => client.calls.length === 3);
    await sender.idle();
    expect(timer.pending()).toEqual([2_000]);
  });

  test("a new sender over the same store resumes: queued units go out, a pending retry keeps its time and txnId", async () => {
    const first = newSender();
    await first.start();
    client.answer = (call) => (call.destination === A ? new FederationUnreachableError(A, "down") : HOLD);
    await first.queuePdu([A], pdu(1));
    await first.queuePdu([B], pdu(2));
    await until(() => client.calls.length === 2);
    await until(() => first.backingOff().length === 1);
    const txnA = client.to(A)[0].txnId;
    const txnB = client.to(B)[0].txnId;
    // Stop with B unanswered: stop gives up waiting after its timeout, and B's late answer is ignored.
    const stopping = first.stop();
    timer.advance(10_000);
    await stopping;
    client.to(B)[0].respond({ pdus: {} });
    await settle();
    // Queued while no sender runs.
    await first.queuePdu([A], pdu(3));
    expect(await stores.federationOutbox.queuedCount()).toBe(3);

    client.answer = () => ({ pdus: {} });
    clock.t = START + 500;
    const second = newSender();
    await second.start();
    await until(() => client.to(B).length === 2);
    await second.idle();
    // B had no backoff: resent at once, same txnId.
    expect(client.to(B)[1].txnId).toBe(txnB);
    // A's retry was due at START + 2000: 1500 ms from now.
    expect(client.to(A).length).toBe(1);
    expect(timer.pending()).toEqual([1_500]);
    timer.advance(1_500);
    await until(() => client.to(A).length === 3);
    await second.idle();
    expect(client.to(A)[1].txnId).toBe(txnA);
    expect(eventIds(client.to(A))).toEqual([["$e1"], ["$e1"], ["$e3"]]);
    expect(client.to(A)[2].txnId).not.toBe(txnA);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
  });

  test("txnIds are never reused for different content, across restarts on a clock that did not move", async () => {
    const ids: string[] = [];
    for (let round = 0; round < 3; round++) {
      const sender = newSender();
      await sender.start();
      await sender.queuePdu([A], pdu(round));
      await sender.idle();
      await sender.stop();
    }
    for (const c of client.calls) ids.push(c.txnId);
    expect(new Set(ids).size).toBe(3);
  });

  test("stop() waits for a transaction in flight and records its outcome", async () => {
    const sender = newSender();
    await sender.start();
    client.answer = () => HOLD;
    await sender.queuePdu([A], pdu(1));
    await until(() => client.calls.length === 1);
    let stopped = false;
    const stopping = sender.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    client.calls[0].respond({ pdus: {} });
    await stopping;
    expect(stopped).toBe(true);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
    expect(timer.pending()).toEqual([]);
    // Stopped: queueing persists but sends nothing.
    await sender.queuePdu([A], pdu(2));
    await settle();
    expect(client.calls.length).toBe(1);
    expect(await stores.federationOutbox.queuedCount()).toBe(1);
  });

  test("stop() cancels scheduled retries", async () => {
    const sender = newSender();
    await sender.start();
    client.answer = () => new FederationUnreachableError(A, "down");
    await sender.queuePdu([A], pdu(1));
    await sender.idle();
    expect(timer.pending()).toEqual([2_000]);
    await sender.stop();
    expect(timer.pending()).toEqual([]);
    timer.advance(10_000);
    await settle();
    expect(client.calls.length).toBe(1);
  });

  test("a typing EDU older than its 30 s is left out; other EDUs are kept however old", async () => {
    const sender = newSender();
    const typing = { room_id: "!r:own.example", user_id: "@u:own.example", typing: true };
    await sender.queueEdu([A], "m.typing", typing);
    await sender.queueEdu([A], "m.receipt", { old: true });
    clock.t += 30_001;
    await sender.queueEdu([A], "m.typing", { ...typing, typing: false });
    await sender.start();
    await sender.idle();
    expect(client.calls.length).toBe(1);
    expect(client.calls[0].body.edus).toEqual([
      { edu_type: "m.receipt", content: { old: true } },
      { edu_type: "m.typing", content: { ...typing, typing: false } },
    ]);
    expect(sender.counters.staleEdusDropped).toBe(1);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
  });

  test("a transaction of stale EDUs only is not sent at all", async () => {
    const sender = newSender();
    await sender.queueEdu([A], "m.typing", { room_id: "!r:own.example", user_id: "@u:own.example", typing: true });
    clock.t += 60_000;
    await sender.start();
    await sender.idle();
    expect(client.calls).toEqual([]);
    expect(await stores.federationOutbox.queuedCount()).toBe(0);
  });

  test("PDU numbers go out exactly as queued (room versions 1-5 allow floats)", async () => {
    const sender = newSender();
    await sender.queuePdu([A], pdu(1, { content: { body: "x", weight: new LosslessNumber("1.0"), huge: new LosslessNumber("18446744073709551616") } }));
    await sender.start();
    await sender.idle();
    expect(client.calls[0].wire).toContain(`"weight":1.0`);
    expect(client.calls[0].wire).toContain(`"huge":18446744073709551616`);
  });

  test("a failing store is logged and retried later, not fatal to the destination", async () => {
    const real = stores.federationOutbox;
    let claimFailures = 1;
    const flaky: FederationOutbox = {
      enqueue: (...args) => real.enqueue(...args),
      claimTransaction: (...args) => (claimFailures-- > 0 ? Promise.reject(new Error("disk I/O error")) : real.claimTransaction(...args)),
      completeTransaction: (...args) => real.completeTransaction(...args),
      setRetryState: (...args) => real.setRetryState(...args),
      pendingDestinations: () => real.pendingDestinations(),
    };
    const sender = newSender({ store: flaky });
    await sender.start();
    await sender.queuePdu([A], pdu(1));
    await sender.idle();
    expect(client.calls).toEqual([]);
    expect(logger.lines.some((l) => l.level === "error" && String(l.fields?.error).includes("disk I/O error"))).toBe(true);
    expect(timer.pending()).toEqual([2_000]);
    timer.advance(2_000);
    await until(() => client.calls.length === 1);
    await sender.idle();
    expect(await real.queuedCount()).toBe(0);
  });
});
