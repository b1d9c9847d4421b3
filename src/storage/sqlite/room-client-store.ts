// The SQLite RoomClientStore: what the client-server room endpoints keep beside the room DAG —
// transaction ids, applied redactions, forgotten rooms and receipts.
import type { SqlDatabase } from "./driver";
import type { ReceiptRecord, RoomClientStore } from "../stores";
import { ClientTransactionsTable } from "./tables/client-transactions";
import { RedactionsTable } from "./tables/redactions";
import { ForgottenRoomsTable } from "./tables/forgotten-rooms";
import { ReceiptsTable } from "./tables/receipts";

export class SqliteRoomClientStore implements RoomClientStore {
  private readonly transactions: ClientTransactionsTable;
  private readonly redactions: RedactionsTable;
  private readonly forgotten: ForgottenRoomsTable;
  private readonly receipts: ReceiptsTable;

  constructor(db: SqlDatabase) {
    this.transactions = new ClientTransactionsTable(db);
    this.redactions = new RedactionsTable(db);
    this.forgotten = new ForgottenRoomsTable(db);
    this.receipts = new ReceiptsTable(db);
  }

  transactionEvent(userId: string, deviceId: string, txnId: string): string | undefined {
    return this.transactions.get(userId, deviceId, txnId);
  }

  recordTransaction(userId: string, deviceId: string, txnId: string, roomId: string, eventId: string, ts: number): void {
    this.transactions.put(userId, deviceId, txnId, roomId, eventId, ts);
  }

  transactionOf(eventId: string): { userId: string; deviceId: string; txnId: string } | undefined {
    return this.transactions.ofEvent(eventId);
  }

  recordRedaction(redacts: string, redactionEventId: string, roomId: string): void {
    this.redactions.add(redacts, redactionEventId, roomId);
  }

  redactionsOf(eventId: string): string[] {
    return this.redactions.of(eventId);
  }

  setForgotten(userId: string, roomId: string, forgotten: boolean, ts: number): void {
    this.forgotten.set(userId, roomId, forgotten, ts);
  }

  isForgotten(userId: string, roomId: string): boolean {
    return this.forgotten.has(userId, roomId);
  }

  putReceipt(receipt: Omit<ReceiptRecord, "streamId">): number {
    return this.receipts.put(receipt);
  }

  receipt(roomId: string, userId: string, receiptType: string, threadId: string | undefined): ReceiptRecord | undefined {
    return this.receipts.get(roomId, userId, receiptType, threadId);
  }

  receiptsSince(roomId: string, streamIdExclusive: number): ReceiptRecord[] {
    return this.receipts.since(roomId, streamIdExclusive);
  }

  maxReceiptStreamId(): number {
    return this.receipts.maxStreamId();
  }
}
