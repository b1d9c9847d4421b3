// Send-to-device messaging (client-server-api "Send-to-Device messaging"): PUT /sendToDevice puts a
// message in each target device's queue; the device gets it in /sync `to_device`, and it is
// deleted once a later sync acknowledges it (its `since` token is at or past the message). A
// transaction ID is used once per sending device: a retry sends nothing again.
//
// Messages for users of other servers leave as m.direct_to_device EDUs (server-server-api
// "Send-to-device messaging") through whoever listens with onRemote (the federation sender), queued
// in the same transaction as the transaction ID: a 200 means every message is on its way, and a
// failure leaves the ID unused for the client's retry. Those arriving from other servers are queued
// for our users' devices like local ones, once per (sender, message_id) however often they come.
import { randomBytes } from "node:crypto";
import { MatrixError } from "../../protocol/errors";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { parseUserId } from "../../protocol/identifiers";
import type { DeviceKeyStore, NewToDeviceMessage, ToDeviceStore } from "../../storage/stores";
import type { AccountService } from "../accounts/account-service";
import type { Clock, Logger } from "../runtime";

/** The most to-device messages one /sync gives a device (Synapse's limit); the rest come in the next. */
export const TO_DEVICE_SYNC_LIMIT = 100;
/** How long the message IDs of other servers' to-device EDUs are remembered (Synapse: a week). */
export const REMOTE_MESSAGE_ID_TTL_MS = 7 * 24 * 3600_000;
/** How often the remembered IDs are pruned (at most; on the next EDU after that). */
const PRUNE_EVERY_MS = 3600_000;

/** An m.direct_to_device EDU's content (server-server-api to_device.yaml). */
export type DirectToDeviceContent = {
  sender: string;
  type: string;
  message_id: string;
  messages: Record<string, Record<string, JsonObject>>;
};

export interface ToDeviceDeps {
  serverName: string;
  store: ToDeviceStore;
  /** The e2ee stream the messages take their positions from, and its transactions. */
  positions: Pick<DeviceKeyStore, "takePositions" | "atomically">;
  accounts: Pick<AccountService, "devices">;
  clock: Clock;
  logger: Logger;
}

export class ToDeviceService {
  private readonly localListeners: ((userId: string) => void)[] = [];
  private readonly remoteListeners: ((server: string, content: DirectToDeviceContent) => Promise<void>)[] = [];
  private lastPrune = Number.NEGATIVE_INFINITY;

  constructor(private readonly deps: ToDeviceDeps) {}

  /** Called with each local user who has new messages (the notifier wakes their syncs). */
  onMessage(listener: (userId: string) => void): void {
    this.localListeners.push(listener);
  }

  /**
   * Called with the messages for each other server (the federation sender queues them), inside the
   * transaction that records the request: it may only write to the database (the sender's outbox
   * is a table), and a failure fails the request.
   */
  onRemote(listener: (server: string, content: DirectToDeviceContent) => Promise<void>): void {
    this.remoteListeners.push(listener);
  }

  /**
   * PUT /sendToDevice/{eventType}/{txnId}: `messages` maps user IDs to device IDs ("*": all of the
   * user's devices) to message contents. Unknown users and devices are skipped, as Synapse does.
   */
  async send(sender: { userId: string; deviceId: string }, eventType: string, txnId: string, messages: Readonly<Record<string, Readonly<Record<string, JsonObject>>>>): Promise<void> {
    const remote = new Map<string, Record<string, Record<string, JsonObject>>>();
    const local: Record<string, Record<string, JsonObject>> = {};
    for (const [userId, byDevice] of Object.entries(messages)) {
      const parsed = parseUserId(userId);
      if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID ${JSON.stringify(userId)}: ${parsed.error}`);
      for (const [deviceId, content] of Object.entries(byDevice)) {
        if (!isJsonObject(content)) throw new MatrixError("M_BAD_JSON", `The message for ${userId} ${deviceId} must be an object`);
      }
      if (parsed.value.serverName === this.deps.serverName) local[userId] = { ...byDevice };
      else {
        const forServer = remote.get(parsed.value.serverName) ?? {};
        forServer[userId] = { ...byDevice };
        remote.set(parsed.value.serverName, forServer);
      }
    }
    const rows = await this.localRows(sender.userId, eventType, local);
    const sent = await this.deps.positions.atomically(async () => {
      if (!(await this.deps.store.recordTransaction(sender.userId, sender.deviceId, txnId, this.deps.clock.now()))) return false;
      await this.store(rows);
      for (const [server, forServer] of remote) {
        const content: DirectToDeviceContent = { sender: sender.userId, type: eventType, message_id: randomBytes(12).toString("base64url"), messages: forServer };
        for (const listener of this.remoteListeners) await listener(server, content);
      }
      return true;
    });
    if (!sent) return;
    this.announce(rows);
  }

  /**
   * An m.direct_to_device EDU from `origin`: its messages for our users' devices, unless its
   * message_id was seen before (a resent EDU). Returns how many were queued. Malformed EDUs are
   * dropped; a failure to store throws, so that the origin's transaction fails and is sent again.
   */
  async receiveRemote(origin: string, content: JsonObject): Promise<number> {
    const { sender, type, message_id: messageId, messages } = content;
    if (typeof sender !== "string" || typeof type !== "string" || typeof messageId !== "string" || !isJsonObject(messages)) return 0;
    const parsed = parseUserId(sender);
    if (!parsed.ok || parsed.value.serverName !== origin) return 0;
    const local: Record<string, Record<string, JsonObject>> = {};
    for (const [userId, byDevice] of Object.entries(messages)) {
      const target = parseUserId(userId);
      if (!target.ok || target.value.serverName !== this.deps.serverName || !isJsonObject(byDevice)) continue;
      const kept: Record<string, JsonObject> = {};
      for (const [deviceId, message] of Object.entries(byDevice)) if (isJsonObject(message)) kept[deviceId] = message;
      local[userId] = kept;
    }
    const rows = await this.localRows(sender, type, local);
    if (rows.length === 0) return 0;
    const now = this.deps.clock.now();
    const stored = await this.deps.positions.atomically(async () => {
      if (!(await this.deps.store.recordRemoteMessageId(sender, messageId, now))) return false;
      if (now - this.lastPrune >= PRUNE_EVERY_MS) {
        this.lastPrune = now;
        await this.deps.store.pruneRemoteMessageIds(now - REMOTE_MESSAGE_ID_TTL_MS);
      }
      await this.store(rows);
      return true;
    });
    if (!stored) return 0;
    this.announce(rows);
    return rows.length;
  }

  /**
   * The messages a device gets in /sync: first those its `since` position acknowledges are deleted,
   * then up to TO_DEVICE_SYNC_LIMIT after it up to `now`. `position` is where the answer's token
   * stands: `now`, or the last message given when more wait.
   */
  async forSync(userId: string, deviceId: string, since: number | undefined, now: number): Promise<{ events: JsonObject[]; position: number }> {
    if (since !== undefined && since > 0) await this.deps.store.deleteUpTo(userId, deviceId, since);
    const messages = await this.deps.store.messagesFor(userId, deviceId, since ?? 0, now, TO_DEVICE_SYNC_LIMIT);
    const position = messages.length === TO_DEVICE_SYNC_LIMIT ? messages[messages.length - 1]!.position : now;
    return { events: messages.map((m) => JSON.parse(m.messageJson) as JsonObject), position };
  }

  /** Drops a deleted device's queue and its transaction IDs. */
  deleteDevice(userId: string, deviceId: string): Promise<void> {
    return this.deps.store.deleteDevice(userId, deviceId);
  }

  /** One row per existing target device ("*" expanded to every device of the user). */
  private async localRows(sender: string, type: string, messages: Readonly<Record<string, Readonly<Record<string, JsonObject>>>>): Promise<NewToDeviceMessage[]> {
    const rows: NewToDeviceMessage[] = [];
    for (const [userId, byDevice] of Object.entries(messages)) {
      const devices = new Set((await this.deps.accounts.devices(userId)).map((d) => d.deviceId));
      const targets = new Map<string, JsonObject>();
      // A message for "*" goes to every device; one for a named device (given too) replaces it there.
      if (byDevice["*"] !== undefined) for (const deviceId of devices) targets.set(deviceId, byDevice["*"]);
      for (const [deviceId, content] of Object.entries(byDevice)) if (deviceId !== "*" && devices.has(deviceId)) targets.set(deviceId, content);
      for (const [deviceId, content] of targets) rows.push({ userId, deviceId, messageJson: JSON.stringify({ sender, type, content }) });
    }
    return rows;
  }

  private async store(rows: readonly NewToDeviceMessage[]): Promise<void> {
    if (rows.length === 0) return;
    const last = await this.deps.positions.takePositions(rows.length);
    await this.deps.store.addMessages(last - rows.length + 1, rows);
  }

  private announce(rows: readonly NewToDeviceMessage[]): void {
    for (const userId of new Set(rows.map((r) => r.userId))) for (const listener of [...this.localListeners]) listener(userId);
  }
}
