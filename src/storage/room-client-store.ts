// The RoomClientStore: what the client-server room endpoints keep beside the room DAG —
// transaction ids, applied redactions, forgotten rooms and receipts.
import type { Database } from "./database";
import type { ReceiptRecord, RoomClientStore } from "./stores";
import { ClientTransactionsTable } from "./tables/client-transactions";
import { RedactionsTable } from "./tables/redactions";
import { ForgottenRoomsTable } from "./tables/forgotten-rooms";
import { ReceiptsTable } from "./tables/receipts";
import { CommittedCache, ImmutableRowCache } from "./row-cache";

type TransactionOf = { userId: string; deviceId: string; txnId: string };

/** Events whose redactions (most often none) are kept: each /sync asks them for every event it gives. */
const REDACTION_CACHE = 50_000;
const NO_REDACTIONS: readonly string[] = [];

export class SqlRoomClientStore implements RoomClientStore {
  private readonly transactions: ClientTransactionsTable;
  private readonly redactions: RedactionsTable;
  private readonly forgotten: ForgottenRoomsTable;
  private readonly receipts: ReceiptsTable;

  /**
   * Which transaction sent an event: written in the event's own transaction, so once the event is
   * committed the answer (even "none") never changes. Asked for every event of every /sync.
   */
  private readonly transactionCache = new ImmutableRowCache<string, TransactionOf | null>(20_000);
  /** Per event, the redactions of it, oldest first: dropped by the write of a new one. */
  private readonly redactionCache: CommittedCache<string, readonly string[]>;

  constructor(private readonly db: Database) {
    this.transactions = new ClientTransactionsTable(db);
    this.redactions = new RedactionsTable(db);
    this.forgotten = new ForgottenRoomsTable(db);
    this.receipts = new ReceiptsTable(db);
    this.redactionCache = new CommittedCache(db, REDACTION_CACHE);
  }

  transactionEvent(userId: string, deviceId: string, txnId: string): Promise<string | undefined> {
    return this.transactions.get(userId, deviceId, txnId);
  }

  recordTransaction(userId: string, deviceId: string, txnId: string, roomId: string, eventId: string, ts: number): Promise<boolean> {
    return this.transactions.put(userId, deviceId, txnId, roomId, eventId, ts);
  }

  async transactionOf(eventId: string): Promise<TransactionOf | undefined> {
    const hit = this.transactionCache.get(eventId);
    if (hit !== undefined) return hit ?? undefined;
    const found = await this.transactions.ofEvent(eventId);
    // What an event's row says never changes; an event not held yet may still arrive with one.
    if (found !== undefined && !this.db.inTransaction()) this.transactionCache.set(eventId, found);
    return found ?? undefined;
  }

  recordRedaction(redacts: string, redactionEventId: string, roomId: string): Promise<void> {
    return this.redactionCache.write(redacts, () => this.redactions.add(redacts, redactionEventId, roomId));
  }

  async redactionsOf(eventId: string): Promise<string[]> {
    return [...(await this.redactionCache.read(eventId, () => this.redactions.of(eventId)))];
  }

  async redactionsOfMany(eventIds: readonly string[]): Promise<Map<string, string[]>> {
    if (eventIds.length === 0) return new Map();
    const all = await this.redactionCache.readMany(eventIds, (missing) => this.redactions.ofMany(missing), NO_REDACTIONS);
    const found = new Map<string, string[]>();
    for (const [eventId, ids] of all) if (ids.length > 0) found.set(eventId, [...ids]);
    return found;
  }

  setForgotten(userId: string, roomId: string, forgotten: boolean, ts: number): Promise<void> {
    return this.forgotten.set(userId, roomId, forgotten, ts);
  }

  isForgotten(userId: string, roomId: string): Promise<boolean> {
    return this.forgotten.has(userId, roomId);
  }

  putReceipt(receipt: Omit<ReceiptRecord, "streamId">): Promise<number> {
    return this.receipts.put(receipt);
  }

  receipt(roomId: string, userId: string, receiptType: string, threadId: string | undefined): Promise<ReceiptRecord | undefined> {
    return this.receipts.get(roomId, userId, receiptType, threadId);
  }

  receiptsSince(roomId: string, streamIdExclusive: number): Promise<ReceiptRecord[]> {
    return this.receipts.since(roomId, streamIdExclusive);
  }

  roomsWithReceiptsBetween(fromExclusive: number, toInclusive: number): Promise<string[]> {
    return this.receipts.roomsBetween(fromExclusive, toInclusive);
  }

  maxReceiptStreamId(): Promise<number> {
    return this.receipts.maxStreamId();
  }
}
