// Typing notifications (kept in memory: they expire in seconds) and receipts / read markers (stored),
// for the client endpoints and for /sync, which reads them through typingSince / receiptsSince.
import { MatrixError } from "../../protocol/errors";
import type { ReceiptRecord, RoomClientStore, RoomEventStore } from "../../storage/stores";
import type { Clock, Service } from "../runtime";
import type { RoomAccess } from "./room-access";

/** The longest a client may claim to be typing in one request. */
export const MAX_TYPING_TIMEOUT_MS = 120_000;
export const DEFAULT_TYPING_TIMEOUT_MS = 30_000;

export type EphemeralListener = (roomId: string) => void;

/**
 * Who is typing where. Each change (start, stop, expiry) takes the next serial, so /sync can ask
 * "has typing in this room changed since serial N?" and wake long-polls on onChange.
 */
export class TypingService implements Service {
  readonly name = "typing";
  private readonly rooms = new Map<string, { users: Map<string, number>; serial: number }>();
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly listeners: EphemeralListener[] = [];
  private serial = 0;

  constructor(
    private readonly access: RoomAccess,
    private readonly clock: Clock,
  ) {}

  onChange(listener: EphemeralListener): void {
    this.listeners.push(listener);
  }

  /** PUT /typing: only for yourself, only in rooms you are joined to. */
  async setTyping(roomId: string, requester: string, target: string, typing: boolean, timeoutMs = DEFAULT_TYPING_TIMEOUT_MS): Promise<void> {
    if (requester !== target) throw new MatrixError("M_FORBIDDEN", "You cannot set the typing state of another user");
    await this.access.versionOf(roomId);
    if ((await this.access.membership(roomId, requester)) !== "join") throw new MatrixError("M_FORBIDDEN", "You are not in this room");
    // From here on nothing awaits: the change below happens in one piece.
    const room = this.rooms.get(roomId) ?? { users: new Map<string, number>(), serial: 0 };
    this.rooms.set(roomId, room);
    const timerKey = `${roomId}\u0000${requester}`;
    clearTimeout(this.timers.get(timerKey));
    this.timers.delete(timerKey);
    const wasTyping = this.purge(roomId, room).has(requester);
    if (typing) {
      const timeout = Math.max(0, Math.min(MAX_TYPING_TIMEOUT_MS, timeoutMs));
      room.users.set(requester, this.clock.now() + timeout);
      // Expiry wakes /sync; the serial changes lazily when the entry is purged on the next read.
      const timer = setTimeout(() => {
        this.timers.delete(timerKey);
        this.changed(roomId);
      }, timeout + 5);
      (timer as { unref?: () => void }).unref?.();
      this.timers.set(timerKey, timer);
      if (!wasTyping) this.bump(roomId, room);
    } else if (wasTyping) {
      room.users.delete(requester);
      this.bump(roomId, room);
    }
  }

  /** Users typing in a room now. */
  typingUsers(roomId: string): string[] {
    const room = this.rooms.get(roomId);
    return room ? [...this.purge(roomId, room).keys()].sort() : [];
  }

  /** The typing users when they changed after `sinceSerial` (0: always), else undefined. */
  typingSince(roomId: string, sinceSerial: number): { serial: number; userIds: string[] } | undefined {
    const room = this.rooms.get(roomId);
    if (!room) return undefined;
    const users = [...this.purge(roomId, room).keys()].sort();
    return room.serial > sinceSerial ? { serial: room.serial, userIds: users } : undefined;
  }

  /** The latest serial: a /sync token can carry it. Expired entries are purged first. */
  currentSerial(): number {
    for (const [roomId, room] of this.rooms) this.purge(roomId, room);
    return this.serial;
  }

  stop(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private purge(roomId: string, room: { users: Map<string, number>; serial: number }): Map<string, number> {
    const now = this.clock.now();
    let expired = false;
    for (const [user, until] of room.users) {
      if (until <= now) {
        room.users.delete(user);
        expired = true;
      }
    }
    if (expired) room.serial = ++this.serial;
    return room.users;
  }

  private bump(roomId: string, room: { serial: number }): void {
    room.serial = ++this.serial;
    this.changed(roomId);
  }

  private changed(roomId: string): void {
    for (const listener of this.listeners) listener(roomId);
  }
}

export const RECEIPT_TYPES = ["m.read", "m.read.private", "m.fully_read"] as const;
export type ReceiptType = (typeof RECEIPT_TYPES)[number];

/** The m.receipt EDU content: event id -> receipt type -> user -> {ts, thread_id?}. */
export type ReceiptContent = Record<string, Record<string, Record<string, { ts: number; thread_id?: string }>>>;

export interface ReceiptServiceOptions {
  /**
   * Called for m.fully_read markers, which belong in the user's room account data (type
   * m.fully_read, content {event_id}); the account side wires this. They are also kept here.
   */
  onFullyRead?: (userId: string, roomId: string, eventId: string) => void | Promise<unknown>;
}

/** A receipt that moved (ReceiptService.onReceipt). */
export interface ReceiptChange {
  readonly roomId: string;
  readonly userId: string;
  readonly receiptType: string;
  readonly eventId: string;
  readonly threadId?: string;
  readonly ts: number;
}

/** Read receipts (public and private) and fully-read markers. */
export class ReceiptService {
  private readonly listeners: EphemeralListener[] = [];
  private readonly receiptListeners: ((change: ReceiptChange) => void)[] = [];

  constructor(
    private readonly store: RoomEventStore,
    private readonly clientStore: RoomClientStore,
    private readonly access: RoomAccess,
    private readonly clock: Clock,
    private readonly options: ReceiptServiceOptions = {},
  ) {}

  onChange(listener: EphemeralListener): void {
    this.listeners.push(listener);
  }

  /** Hears each receipt that moved, after it is stored (the federation sends its users' public ones on). */
  onReceipt(listener: (change: ReceiptChange) => void): void {
    this.receiptListeners.push(listener);
  }

  /** POST /receipt/{type}/{eventId}. */
  async setReceipt(roomId: string, userId: string, receiptType: string, eventId: string, threadId?: string): Promise<void> {
    if (!(RECEIPT_TYPES as readonly string[]).includes(receiptType)) throw new MatrixError("M_INVALID_PARAM", `Unknown receipt type ${receiptType}`);
    if (threadId !== undefined) {
      if (threadId === "") throw new MatrixError("M_INVALID_PARAM", "thread_id field must be a non-empty string");
      if (receiptType === "m.fully_read") throw new MatrixError("M_INVALID_PARAM", "thread_id is not allowed for m.fully_read");
      if (threadId !== "main" && !threadId.startsWith("$")) throw new MatrixError("M_INVALID_PARAM", "thread_id must be an event ID or 'main'");
    }
    await this.access.versionOf(roomId);
    if ((await this.access.membership(roomId, userId)) !== "join") throw new MatrixError("M_FORBIDDEN", "You are not in this room");
    const target = await this.store.getEvent(eventId);
    if (!target || target.roomId !== roomId || !(await this.access.canSee(userId, target))) throw new MatrixError("M_NOT_FOUND", "Event not found");
    // Receipts only move forward: an older event than the current receipt's leaves it in place. The
    // check and the write are one transaction, so two receipts at once cannot both pass the check.
    const ts = this.clock.now();
    const moved = await this.store.atomically(async () => {
      const existing = await this.clientStore.receipt(roomId, userId, receiptType, threadId);
      const existingOrdering = existing && (await this.store.getEvent(existing.eventId))?.streamOrdering;
      if (existingOrdering !== undefined && target.streamOrdering !== undefined && target.streamOrdering <= existingOrdering) return false;
      await this.clientStore.putReceipt({ roomId, userId, receiptType, threadId, eventId, ts });
      return true;
    });
    if (!moved) return;
    if (receiptType === "m.fully_read") await this.options.onFullyRead?.(userId, roomId, eventId);
    for (const listener of this.listeners) listener(roomId);
    for (const listener of this.receiptListeners) {
      try {
        listener({ roomId, userId, receiptType, eventId, threadId, ts });
      } catch {
        // a listener's failure is its own: the receipt is stored
      }
    }
  }

  /** POST /read_markers: any of m.fully_read, m.read, m.read.private. */
  async setReadMarkers(roomId: string, userId: string, markers: { fullyRead?: string; read?: string; readPrivate?: string }): Promise<void> {
    await this.access.versionOf(roomId);
    if (markers.fullyRead !== undefined) await this.setReceipt(roomId, userId, "m.fully_read", markers.fullyRead);
    if (markers.read !== undefined) await this.setReceipt(roomId, userId, "m.read", markers.read);
    if (markers.readPrivate !== undefined) await this.setReceipt(roomId, userId, "m.read.private", markers.readPrivate);
  }

  /** The user's fully-read marker in a room. */
  async fullyReadOf(userId: string, roomId: string): Promise<string | undefined> {
    return (await this.clientStore.receipt(roomId, userId, "m.fully_read", undefined))?.eventId;
  }

  /**
   * The m.receipt content of the receipts written after `sinceStreamId` (and up to `untilStreamId`,
   * the position a /sync token names), as `viewer` may see them: public m.read receipts, and the
   * viewer's own m.read.private. Undefined when there are none.
   */
  async receiptsSince(roomId: string, sinceStreamId: number, viewer: string, untilStreamId = Infinity): Promise<ReceiptContent | undefined> {
    // Nothing can lie in an empty range (an incremental sync whose receipts did not move).
    if (sinceStreamId >= untilStreamId) return undefined;
    const records = (await this.clientStore.receiptsSince(roomId, sinceStreamId)).filter(
      (r) => r.streamId <= untilStreamId && (r.receiptType === "m.read" || (r.receiptType === "m.read.private" && r.userId === viewer)),
    );
    if (records.length === 0) return undefined;
    return receiptContent(records);
  }

  /** The latest receipt stream position: a /sync token can carry it. */
  currentStreamId(): Promise<number> {
    return this.clientStore.maxReceiptStreamId();
  }
}

export function receiptContent(records: readonly ReceiptRecord[]): ReceiptContent {
  const content: ReceiptContent = {};
  for (const r of records) {
    const byType = (content[r.eventId] ??= {});
    const byUser = (byType[r.receiptType] ??= {});
    byUser[r.userId] = r.threadId === undefined ? { ts: r.ts } : { ts: r.ts, thread_id: r.threadId };
  }
  return content;
}
