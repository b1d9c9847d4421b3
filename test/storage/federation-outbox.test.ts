// The outbound federation queue's store, on every engine of this run.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { testDatabases, type TestDatabase } from "../helpers/databases";
import { storesOver, type Stores } from "../../src/storage/open";
import { SqlFederationOutboxStore, type FederationOutboxStore } from "../../src/storage/tables/federation-outbox";

const LIMITS = { maxPdus: 50, maxEdus: 100 };
const txnId = (seq: number) => `t-${seq}`;
const pdu = (n: number) => ({ json: JSON.stringify({ event_id: `$e${n}`, n }) });
const edu = (n: number) => ({ eduType: "m.receipt", json: JSON.stringify({ n }) });

describe.each(testDatabases.map((d) => [d.name, d] as const))("federation outbox on %s", (_name, database: TestDatabase) => {
  let stores: Stores;
  let outbox: FederationOutboxStore;
  beforeEach(async () => {
    stores = storesOver(await database.open());
    outbox = stores.federationOutbox;
  });
  afterEach(async () => {
    await stores.db.close();
  });
  const count = async (table: string) => (await stores.db.get<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))!.n;

  test("a unit queued for several destinations is stored once, with one row per distinct destination", async () => {
    await outbox.enqueue(["a.example", "b.example", "a.example"], pdu(1), 1000);
    expect(await outbox.queuedCount()).toBe(2);
    expect(await outbox.queuedCount("a.example")).toBe(1);
    expect(await outbox.queuedCount("b.example")).toBe(1);
    expect(await outbox.queuedCount("c.example")).toBe(0);
    expect(await count("federation_outbox_payloads")).toBe(1);
    await outbox.enqueue([], pdu(2), 1000);
    expect(await count("federation_outbox_payloads")).toBe(1);
  });

  test("a claim takes PDUs and EDUs in arrival order, within the limits, with their JSON and queue time", async () => {
    for (let i = 0; i < 5; i++) {
      await outbox.enqueue(["a.example"], pdu(i), 100 + i);
      await outbox.enqueue(["a.example"], edu(i), 200 + i);
    }
    const txn = await outbox.claimTransaction("a.example", { maxPdus: 3, maxEdus: 2 }, txnId);
    expect(txn?.txnId).toBe("t-1");
    expect(txn?.destination).toBe("a.example");
    expect(txn!.pdus.map((p) => JSON.parse(p.json).n)).toEqual([0, 1, 2]);
    expect(txn!.pdus.map((p) => p.queuedTs)).toEqual([100, 101, 102]);
    expect(txn!.pdus.every((p) => p.eduType === undefined)).toBe(true);
    expect(txn!.edus.map((e) => [e.eduType, JSON.parse(e.json).n, e.queuedTs])).toEqual([
      ["m.receipt", 0, 200],
      ["m.receipt", 1, 201],
    ]);
    const ids = [...txn!.pdus, ...txn!.edus].map((e) => e.id);
    expect(new Set(ids).size).toBe(5);
  });

  test("an unsettled claim is returned again, unchanged, with its txnId, until completed", async () => {
    await outbox.enqueue(["a.example"], pdu(1), 1);
    await outbox.enqueue(["a.example"], edu(1), 1);
    const first = await outbox.claimTransaction("a.example", LIMITS, txnId);
    await outbox.enqueue(["a.example"], pdu(2), 2);
    const again = await outbox.claimTransaction("a.example", LIMITS, txnId);
    expect(again).toEqual(first!);
    // Another store over the same database (a restart) sees the same claim.
    const restarted = await new SqlFederationOutboxStore(stores.db).claimTransaction("a.example", LIMITS, txnId);
    expect(restarted).toEqual(first!);

    expect(await outbox.completeTransaction("a.example", first!.txnId)).toBe(2);
    const next = await outbox.claimTransaction("a.example", LIMITS, txnId);
    expect(next?.txnId).toBe("t-2");
    expect(next!.pdus.map((p) => JSON.parse(p.json).n)).toEqual([2]);
    expect(next!.edus).toEqual([]);
    expect(await outbox.completeTransaction("a.example", next!.txnId)).toBe(1);
    expect(await outbox.claimTransaction("a.example", LIMITS, txnId)).toBeUndefined();
    expect(await outbox.queuedCount()).toBe(0);
  });

  test("txn sequence numbers are per destination and never reused, also by a new store over the same database", async () => {
    for (let round = 1; round <= 3; round++) {
      await outbox.enqueue(["a.example"], pdu(round), round);
      const txn = await outbox.claimTransaction("a.example", LIMITS, txnId);
      expect(txn?.txnId).toBe(`t-${round}`);
      await outbox.completeTransaction("a.example", txn!.txnId);
    }
    await outbox.enqueue(["b.example"], pdu(9), 9);
    expect((await outbox.claimTransaction("b.example", LIMITS, txnId))?.txnId).toBe("t-1");

    const restarted = new SqlFederationOutboxStore(stores.db);
    await restarted.enqueue(["a.example"], pdu(4), 4);
    expect((await restarted.claimTransaction("a.example", LIMITS, txnId))?.txnId).toBe("t-4");
  });

  test("destinations are independent: claiming or completing one leaves the other's rows alone", async () => {
    await outbox.enqueue(["a.example", "b.example"], pdu(1), 1);
    await outbox.enqueue(["b.example"], pdu(2), 2);
    const a = await outbox.claimTransaction("a.example", LIMITS, txnId);
    expect(a!.pdus.map((p) => JSON.parse(p.json).n)).toEqual([1]);
    // A txnId of one destination completes nothing of another.
    expect(await outbox.completeTransaction("b.example", a!.txnId)).toBe(0);
    expect(await outbox.queuedCount("b.example")).toBe(2);
    const b = await outbox.claimTransaction("b.example", LIMITS, txnId);
    expect(b!.pdus.map((p) => JSON.parse(p.json).n)).toEqual([1, 2]);
    await outbox.completeTransaction("a.example", a!.txnId);
    expect(await outbox.queuedCount("a.example")).toBe(0);
    expect(await outbox.queuedCount("b.example")).toBe(2);
  });

  test("a payload is deleted with the last row that refers to it", async () => {
    await outbox.enqueue(["a.example", "b.example"], pdu(1), 1);
    await outbox.enqueue(["a.example"], edu(1), 1);
    expect(await count("federation_outbox_payloads")).toBe(2);
    const a = await outbox.claimTransaction("a.example", LIMITS, txnId);
    await outbox.completeTransaction("a.example", a!.txnId);
    // The EDU was only a's; the PDU is still owed to b.
    expect(await count("federation_outbox_payloads")).toBe(1);
    const b = await outbox.claimTransaction("b.example", LIMITS, txnId);
    expect(JSON.parse(b!.pdus[0].json)).toEqual({ event_id: "$e1", n: 1 });
    await outbox.completeTransaction("b.example", b!.txnId);
    expect(await count("federation_outbox_payloads")).toBe(0);
    expect(await count("federation_outbox")).toBe(0);
  });

  test("retry state is kept per destination, listed with the queued destinations, and cleared by completion", async () => {
    await outbox.enqueue(["a.example", "b.example"], pdu(1), 1);
    const a = await outbox.claimTransaction("a.example", LIMITS, txnId);
    await outbox.setRetryState("a.example", 3, 50_000);
    expect(await outbox.pendingDestinations()).toEqual([
      { destination: "a.example", failures: 3, retryAtTs: 50_000 },
      { destination: "b.example", failures: 0, retryAtTs: undefined },
    ]);
    // A new store over the same database (a restart) reads the same state.
    expect(await new SqlFederationOutboxStore(stores.db).pendingDestinations()).toEqual(await outbox.pendingDestinations());
    await outbox.completeTransaction("a.example", a!.txnId);
    expect(await outbox.pendingDestinations()).toEqual([{ destination: "b.example", failures: 0, retryAtTs: undefined }]);
    await outbox.enqueue(["a.example"], pdu(2), 2);
    expect((await outbox.pendingDestinations())[0]).toEqual({ destination: "a.example", failures: 0, retryAtTs: undefined });
  });

  test("a claim of many rows, and JSON text kept byte for byte", async () => {
    const odd = JSON.stringify({ body: "héllo \u{1F600} \"quoted\"", big: 1.5 });
    for (let i = 0; i < 70; i++) await outbox.enqueue(["a.example"], { eduType: "m.typing", json: i === 0 ? odd : JSON.stringify({ i }) }, i);
    const txn = await outbox.claimTransaction("a.example", { maxPdus: 50, maxEdus: 64 }, txnId);
    expect(txn!.edus.length).toBe(64);
    expect(txn!.edus[0].json).toBe(odd);
    expect(await outbox.completeTransaction("a.example", txn!.txnId)).toBe(64);
    expect(await outbox.queuedCount("a.example")).toBe(6);
  });
});
