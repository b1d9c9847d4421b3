// Per-domain store interfaces: what services see of storage. Every method is async: the same
// services run on SQLite and on PostgreSQL (src/storage/database.ts says what the engines promise).
import type { TransactionOptions } from "./database";

/** Small facts about this server that must outlive a restart (the server name it was created with, ...). */
export interface ServerMetaStore {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
}

/** An event as stored: the PDU exactly as received or built, plus what the server decided about it. */
export interface StoredEvent {
  readonly eventId: string;
  readonly roomId: string;
  /** The PDU JSON text as stored (all top-level keys kept, for hashes and signatures). */
  readonly json: string;
  readonly type: string;
  readonly stateKey: string | undefined;
  readonly sender: string;
  readonly depth: number;
  readonly originServerTs: number;
  /** Position in the room's timeline for /sync; undefined for outliers. */
  readonly streamOrdering: number | undefined;
  readonly rejectedReason: string | undefined;
  readonly outlier: boolean;
  readonly softFailed: boolean;
  /** The state snapshot holding the room's state after this event (before it, for rejected ones). */
  readonly stateSnapshot: number | undefined;
  readonly prevEvents: readonly string[];
  readonly authEvents: readonly string[];
}

/** A client's transaction id and the device it was sent from (the user is the event's sender). */
export interface ClientTransactionId {
  readonly deviceId: string;
  readonly txnId: string;
}

export interface NewEvent {
  readonly eventId: string;
  readonly roomId: string;
  readonly json: string;
  readonly type: string;
  readonly stateKey: string | undefined;
  readonly sender: string;
  readonly depth: number;
  readonly originServerTs: number;
  readonly prevEvents: readonly string[];
  readonly authEvents: readonly string[];
  readonly rejectedReason?: string;
  readonly outlier?: boolean;
  readonly softFailed?: boolean;
  /** content.membership of m.room.member events, kept beside current state for member queries. */
  readonly membership?: string;
  /** The client transaction (PUT /send, /redact) a local event was sent with: its sender's device sees it as unsigned.transaction_id. */
  readonly transaction?: ClientTransactionId;
  /**
   * The event is held already as an outlier (a join's state, an auth event) and backfill has now
   * reached it in the room's history: its row moves into the timeline at the historical ordering,
   * with its state, instead of a new row (which would clash with it).
   */
  readonly promoteOutlier?: boolean;
}

/** A change to a state map: key -> event id, or null where resolution removed the key. */
export type StateDelta = ReadonlyMap<string, string | null>;

export interface PersistEventInput {
  readonly event: NewEvent;
  /**
   * The state after this event, as a change to a parent snapshot (usually the state before it; for
   * a state event the delta adds the event itself). Absent for outliers, which have no state.
   */
  readonly stateAfter?: { readonly parent: number | undefined; readonly delta: StateDelta };
  /** Whether the event becomes a forward extremity, replacing its prev_events (not for outliers or rejected events). */
  readonly updateForwardExtremities: boolean;
  /**
   * An event this server has just created: no stored event can list it among its prev_events yet,
   * so it becomes a forward extremity without the check for one that builds on it.
   */
  readonly createdHere?: boolean;
  /**
   * true: the room's current state becomes the state after this event. A parent+delta: it becomes
   * that state instead (the resolution of several forward extremities). false: it stays.
   */
  readonly updateCurrentState: boolean | { readonly parent: number | undefined; readonly delta: StateDelta };
  /** For a room's m.room.create event: the room record, written in the same transaction. */
  readonly createRoom?: RoomRecord;
  /**
   * For history fetched from other servers (backfill): the event's stream ordering, below every one
   * held (see minStreamOrdering). Such an event moves neither forward extremities nor current state.
   */
  readonly historicalOrdering?: number;
}

export interface RoomRecord {
  readonly roomId: string;
  readonly roomVersion: string;
  readonly creator: string;
  readonly createdTs: number;
}

/** The room DAG: events, edges, forward extremities, state snapshots and current state. */
export interface RoomEventStore {
  createRoom(room: RoomRecord): Promise<void>;
  getRoom(roomId: string): Promise<RoomRecord | undefined>;
  getEvent(eventId: string): Promise<StoredEvent | undefined>;
  getEvents(eventIds: readonly string[]): Promise<Map<string, StoredEvent>>;
  /** Stores an event, its edges and (for non-outliers) its state snapshot in one transaction. */
  persistEvent(input: PersistEventInput): Promise<StoredEvent>;
  forwardExtremities(roomId: string): Promise<string[]>;
  /** key (type\0state_key) -> event id, for a snapshot. */
  stateAt(snapshot: number): Promise<Map<string, string>>;
  /** One entry of a snapshot without reading the whole state. */
  stateEntryAt(snapshot: number, type: string, stateKey: string): Promise<string | undefined>;
  currentStateSnapshot(roomId: string): Promise<number | undefined>;
  currentState(roomId: string): Promise<Map<string, string>>;
  currentStateEvent(roomId: string, type: string, stateKey: string): Promise<string | undefined>;
  /** Several current state entries at once: key (type\0state_key) -> event id, for those present. */
  currentStateEvents(roomId: string, keys: readonly (readonly [type: string, stateKey: string])[]): Promise<Map<string, string>>;
  /** Members of a room by current membership: user id -> membership. */
  currentMemberships(roomId: string): Promise<ReadonlyMap<string, string>>;
  /** Rooms where a user's current membership is the given one. */
  roomsWithMembership(userId: string, membership: string): Promise<string[]>;
  /** Every room the user is joined to, invited to, knocking on, left or banned from, with that membership and its event, by room ID. */
  roomsOfMember(userId: string): Promise<MemberOf[]>;
  /** Every (room, user) whose current membership is the given one, in all rooms (e.g. all pending knocks). */
  membersWithMembership(membership: string): Promise<{ roomId: string; userId: string; eventId: string }[]>;
  /** All events in the auth chains of the given events (not including them). */
  authChain(eventIds: readonly string[]): Promise<Set<string>>;
  /** Highest stream ordering so far (0 when empty). */
  maxStreamOrdering(): Promise<number>;
  /** The lowest stream ordering held, 0 or below (backfilled history is below zero). */
  minStreamOrdering(): Promise<number>;
  /** Rooms with a timeline event in (fromExclusive, toInclusive] of the stream. */
  roomsWithEventsBetween(fromExclusive: number, toInclusive: number): Promise<string[]>;
  /** Timeline events of a room with stream ordering in (from, to], oldest first, at most `limit`. */
  roomEventsBetween(roomId: string, fromExclusive: number, toInclusive: number, limit: number): Promise<StoredEvent[]>;
  /** Timeline events of a room with stream ordering in (afterExclusive, beforeInclusive], newest first, at most `limit`. */
  roomEventsBackwards(roomId: string, beforeInclusive: number, afterExclusive: number, limit: number): Promise<StoredEvent[]>;
  /** The state snapshot after a room's last timeline event at or before a (positive) stream position; undefined before its first. */
  snapshotAtPosition(roomId: string, position: number): Promise<number | undefined>;
  /**
   * Runs fn in one transaction (with every store's writes it makes): if it throws, all of them are
   * gone again. `alone`: bulk work, in a database transaction of its own (TransactionOptions).
   */
  atomically<T>(fn: () => Promise<T>, options?: TransactionOptions): Promise<T>;
}

/** A user's latest receipt of one type (and thread) in a room. */
export interface ReceiptRecord {
  readonly roomId: string;
  readonly userId: string;
  /** m.read, m.read.private or m.fully_read. */
  readonly receiptType: string;
  /** undefined for an unthreaded receipt. */
  readonly threadId: string | undefined;
  readonly eventId: string;
  readonly ts: number;
  /** Position in the receipt stream: every write takes a higher one than all before it. */
  readonly streamId: number;
}

/** What the client room endpoints keep beside the DAG: transaction ids, redactions, forgotten rooms, receipts. */
export interface RoomClientStore {
  /** The event a (user, device, txnId) already created, if any. */
  transactionEvent(userId: string, deviceId: string, txnId: string): Promise<string | undefined>;
  /** Records the event a client transaction made; false when the transaction id was taken already (nothing written). */
  recordTransaction(userId: string, deviceId: string, txnId: string, roomId: string, eventId: string, ts: number): Promise<boolean>;
  /** Who sent an event through a transaction, for unsigned.transaction_id. */
  transactionOf(eventId: string): Promise<{ userId: string; deviceId: string; txnId: string } | undefined>;
  recordRedaction(redacts: string, redactionEventId: string, roomId: string): Promise<void>;
  /** The redaction events applied to an event, oldest first. */
  redactionsOf(eventId: string): Promise<string[]>;
  /** redactionsOf for many events in one go: only events that have any are in the map. */
  redactionsOfMany(eventIds: readonly string[]): Promise<Map<string, string[]>>;
  setForgotten(userId: string, roomId: string, forgotten: boolean, ts: number): Promise<void>;
  isForgotten(userId: string, roomId: string): Promise<boolean>;
  /** Stores (or replaces) a receipt and returns the stream position it took. */
  putReceipt(receipt: Omit<ReceiptRecord, "streamId">): Promise<number>;
  receipt(roomId: string, userId: string, receiptType: string, threadId: string | undefined): Promise<ReceiptRecord | undefined>;
  /** Receipts of a room written after `streamIdExclusive`, oldest first. */
  receiptsSince(roomId: string, streamIdExclusive: number): Promise<ReceiptRecord[]>;
  maxReceiptStreamId(): Promise<number>;
  /** Rooms with a receipt written in (fromExclusive, toInclusive]. */
  roomsWithReceiptsBetween(fromExclusive: number, toInclusive: number): Promise<string[]>;
}

export interface UserRecord {
  readonly userId: string;
  readonly passwordHash: string | undefined;
  readonly createdTs: number;
  readonly isAdmin: boolean;
  readonly deactivated: boolean;
  /** A guest account (kind=guest registration), not yet upgraded; absent for full accounts. */
  readonly isGuest?: boolean;
}

export interface DeviceRecord {
  readonly userId: string;
  readonly deviceId: string;
  readonly displayName: string | undefined;
  readonly lastSeenTs: number | undefined;
  readonly lastSeenIp: string | undefined;
}

/** Accounts, devices and access tokens (stored as hashes, never in clear). */
export interface AccountStore {
  /** False when the user id is taken. */
  createUser(user: { userId: string; passwordHash: string | undefined; createdTs: number; isAdmin: boolean; isGuest?: boolean }): Promise<boolean>;
  getUser(userId: string): Promise<UserRecord | undefined>;
  setPasswordHash(userId: string, passwordHash: string): Promise<void>;
  /** Marks the account deactivated and forgets its password (it can never log in again). */
  deactivate(userId: string): Promise<void>;
  /** Creates the device, or renames it when it exists and a name is given. */
  upsertDevice(userId: string, deviceId: string, displayName: string | undefined, ts: number): Promise<void>;
  getDevice(userId: string, deviceId: string): Promise<DeviceRecord | undefined>;
  listDevices(userId: string): Promise<DeviceRecord[]>;
  setDeviceDisplayName(userId: string, deviceId: string, displayName: string): Promise<boolean>;
  touchDevice(userId: string, deviceId: string, ts: number, ip: string | undefined): Promise<void>;
  /** Deletes the device and every access token of it. */
  deleteDevice(userId: string, deviceId: string): Promise<boolean>;
  addAccessToken(tokenHash: string, userId: string, deviceId: string, createdTs: number): Promise<void>;
  /** isGuest is present (true) only for a guest's token. */
  findAccessToken(tokenHash: string): Promise<{ userId: string; deviceId: string; isGuest?: boolean } | undefined>;
  /** Makes a guest a full account with this password; false when the user is not a guest (any more). */
  upgradeGuest(userId: string, passwordHash: string | undefined): Promise<boolean>;
  deleteAccessToken(tokenHash: string): Promise<void>;
  /** Every token of one device (a login that names the device again replaces them). */
  deleteDeviceTokens(userId: string, deviceId: string): Promise<void>;
  /** Every token of a user's devices except the device given (for password changes) or all. */
  deleteAccessTokens(userId: string, exceptDeviceId?: string): Promise<void>;
}

/** Profile fields of local users (displayname, avatar_url, m.tz, custom keys), each a JSON value. */
export interface ProfileStore {
  /** Every field of the user's profile; {} when none is set. */
  getProfile(userId: string): Promise<Record<string, unknown>>;
  setProfileField(userId: string, field: string, value: unknown): Promise<void>;
  deleteProfileField(userId: string, field: string): Promise<void>;
}

/** Sync filters uploaded by users; ids are per user. */
export interface FilterStore {
  /** Stores the filter (JSON text) and returns its new id. */
  createFilter(userId: string, filterJson: string): Promise<string>;
  getFilter(userId: string, filterId: string): Promise<string | undefined>;
}

/** One account data entry; roomId is undefined for global account data. */
export interface AccountDataEntry {
  readonly type: string;
  readonly roomId: string | undefined;
  readonly content: Record<string, unknown>;
  /** Position in the account data stream: every write takes a higher one than all before it. */
  readonly streamPosition: number;
}

/** Global and per-room account data, with a stream position per write for /sync. */
export interface AccountDataStore {
  getAccountData(userId: string, roomId: string | undefined, type: string): Promise<Record<string, unknown> | undefined>;
  /** Stores (or replaces) the entry and returns the stream position the write took. */
  putAccountData(userId: string, roomId: string | undefined, type: string, content: Record<string, unknown>): Promise<number>;
  /** Entries written after `sinceStream` (0: all), the latest per (room, type). */
  accountDataSince(userId: string, sinceStream: number): Promise<{ global: AccountDataEntry[]; rooms: Map<string, AccountDataEntry[]> }>;
  /** The highest stream position written so far (0 when none). */
  maxAccountDataStream(): Promise<number>;
  /** Every entry of the user, global and per room (erasure on deactivation); how many there were. */
  deleteAllAccountData(userId: string): Promise<number>;
}

/** Each user's own push rules and changes to server-default rules, as one JSON document. */
export interface PushRuleStore {
  getUserPushRules(userId: string): Promise<string | undefined>;
  setUserPushRules(userId: string, rulesJson: string): Promise<void>;
}

/** A local room alias and who created it (client-server-api "Room aliases"). */
export interface RoomAliasRecord {
  readonly alias: string;
  readonly roomId: string;
  readonly creator: string;
  readonly createdTs: number;
}

/** A room listed in the published room directory, with its current joined-member count. */
export interface PublishedRoom {
  readonly roomId: string;
  readonly joinedMembers: number;
}

/** The room directory: local aliases and the rooms published in GET/POST /publicRooms. */
export interface RoomDirectoryStore {
  /** False when the alias is taken. */
  createAlias(record: RoomAliasRecord): Promise<boolean>;
  getAlias(alias: string): Promise<RoomAliasRecord | undefined>;
  /** False when there was no such alias. */
  deleteAlias(alias: string): Promise<boolean>;
  /** The local aliases pointing at a room, sorted. */
  aliasesOfRoom(roomId: string): Promise<string[]>;
  setPublished(roomId: string, published: boolean, ts: number): Promise<void>;
  isPublished(roomId: string): Promise<boolean>;
  publishedRooms(): Promise<PublishedRoom[]>;
}

// The federation and out-of-band stores keep their interfaces beside their tables; services see
// them through this module, as they see every store.
import type { MemberOf } from "./tables/current-state";
export type { MemberOf };
export type { ServerKeyRecord, ServerKeyStore } from "./tables/server-keys";
export type { OutOfBandMembershipKind, OutOfBandMembershipRecord, NewOutOfBandMembership, OutOfBandMembershipStore } from "./tables/out-of-band-memberships";
export type { OutboxUnit, OutboxEntry, OutboxTransaction, DestinationRetryState, FederationOutboxStore } from "./tables/federation-outbox";
// End-to-end encryption: device keys and the device list stream, one-time and fallback keys,
// cross-signing keys and signatures, to-device messages, key backups.
export type { DeviceListChange, DeviceKeyStore, RemoteDevice, RemoteDeviceList } from "./tables/device-keys";
export type { UploadedKey, OneTimeKeyStore } from "./tables/one-time-keys";
export type { CrossSigningKeyType, StoredCrossSigningKey, KeySignature, CrossSigningStore } from "./tables/cross-signing";
export type { NewToDeviceMessage, ToDeviceMessage, ToDeviceStore } from "./tables/to-device";
export type { BackupVersion, BackedUpKey, KeyBackupStore } from "./tables/key-backup";
// Push: pushers, and the notifications push rules produced with the read marks that count them.
export type { PusherRecord, PusherStore } from "./tables/pushers";
export type { NewNotification, NotificationRecord, UnreadCounts, NotificationStore } from "./tables/notifications";
// The content repository: media ids, their content and cached thumbnails.
export type { MediaContent, MediaRecord, ThumbnailRecord, MediaStore } from "./tables/media";
// Sliding sync: a user's rooms with activity positions, current state of many rooms at once.
export type { UserRoomActivity, SlidingSyncRoomStore } from "./tables/sliding-sync-rooms";
export type { ThreepidBinding, ThreepidBindingStore } from "./tables/threepid-bindings";
export type { LocalThreepid, LocalThreepidStore } from "./tables/local-threepids";
export type { InboundTransactionStore } from "./tables/federation-inbound-transactions";
export type { StreamHeads, StreamHeadStore } from "./stream-heads";
export type { AppServiceQueueStore, QueuedAppServiceEvent } from "./tables/appservice-queue";
export type { AppServiceRoomListStore } from "./tables/appservice-room-lists";
export type { ErasedUserStore } from "./tables/erased-users";
