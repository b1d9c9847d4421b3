// Other servers' users' device lists (server-server-api "Device Management"): the copy this server
// keeps of them, so that /keys/query answers from it (a remote server that is down changes nothing)
// and our users' clients learn of each change from /sync.
//
// A copy is kept only for a user who shares a room with one of ours. It is current to a stream_id:
// an m.device_list_update whose prev_id are all that stream_id is applied to it; one naming a
// prev_id we never saw means an update went missing, one without prev_id starts a sequence ("the
// first EDU in a sequence") after who knows what, and a user without a copy has none to apply it
// to: in each case the whole list is fetched again through GET /user/devices/{userId}, whose
// stream_id the next update's prev_id names. (The spec's prose
// says /user/keys/query, which carries no stream_id; /user/devices, the endpoint of that section,
// does, and is what Synapse fetches.) An update whose stream_id is not past the copy's was seen.
//
// Work about one user runs in order (a queue per user), in the background of the /send that brought
// it: a resync must not be overtaken by an older update, nor hold up the transaction. At most a few
// resyncs run at once. When no user of ours shares a room with the user any more, the copy is
// dropped: updates stop coming then, so a copy kept would go stale, and a later rejoin resyncs.
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { serverNameOf } from "../../protocol/identifiers";
import type { DeviceKeyStore, RemoteDevice, RemoteDeviceList, RoomEventStore } from "../../storage/stores";
import type { FederationClient } from "../federation/contracts";
import type { Logger } from "../runtime";
import type { DeviceListService } from "./device-lists";

/** At most this many /user/devices requests at once. */
const MAX_CONCURRENT_RESYNCS = 4;

export interface RemoteDeviceListDeps {
  serverName: string;
  store: Pick<DeviceKeyStore, "remoteDeviceList" | "replaceRemoteDeviceList" | "updateRemoteDevice" | "updateRemoteCrossSigning" | "forgetRemoteDeviceList" | "trackedRemoteUsers" | "atomically">;
  rooms: Pick<RoomEventStore, "roomsWithMembership" | "currentMemberships">;
  deviceLists: Pick<DeviceListService, "change" | "record" | "announce">;
  federation?: FederationClient;
  logger: Logger;
}

/** One m.device_list_update, checked. */
interface DeviceUpdate {
  readonly deviceId: string;
  readonly streamId: number;
  readonly prevIds: readonly number[];
  readonly deleted: boolean;
  readonly keys?: JsonObject;
  readonly displayName?: string;
}

/** A user's keys as /keys/query gives them, read from the copy. */
export interface HeldKeys {
  devices: Record<string, JsonObject>;
  master?: JsonObject;
  selfSigning?: JsonObject;
}

export class RemoteDeviceLists {
  /** The tail of each user's queue of work. */
  private readonly queues = new Map<string, Promise<unknown>>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly deps: RemoteDeviceListDeps) {}

  // ---------------------------------------------------------------------------------------------
  // Inbound EDUs (queued; they return at once)

  /** An m.device_list_update from `origin` (already known to be about one of its users). */
  deviceListUpdate(userId: string, content: JsonObject): void {
    const update = parseUpdate(userId, content);
    if (!update) {
      this.deps.logger.log("info", "dropped a malformed m.device_list_update", { user_id: userId });
      return;
    }
    void this.enqueue(userId, () => this.applyUpdate(userId, update)).catch((error) =>
      this.deps.logger.log("warn", "could not apply a device list update", { user_id: userId, error: String(error) }));
  }

  /** An m.signing_key_update: the copy's cross-signing keys replaced, and our users told. */
  signingKeyUpdate(userId: string, content: JsonObject): void {
    const master = ownKey(content.master_key, userId);
    const selfSigning = ownKey(content.self_signing_key, userId);
    void this.enqueue(userId, async () => {
      if (!(await this.sharesRoom(userId))) return;
      await this.changing(userId, async () => {
        if (master !== undefined || selfSigning !== undefined) {
          await this.deps.store.updateRemoteCrossSigning(userId, master && JSON.stringify(master), selfSigning && JSON.stringify(selfSigning));
        }
      });
    }).catch((error) => this.deps.logger.log("warn", "could not apply a signing key update", { user_id: userId, error: String(error) }));
  }

  private async applyUpdate(userId: string, update: DeviceUpdate): Promise<void> {
    if (!(await this.sharesRoom(userId))) {
      await this.deps.store.forgetRemoteDeviceList(userId);
      return;
    }
    const held = await this.deps.store.remoteDeviceList(userId);
    if (held !== undefined && update.streamId <= held.streamId) return;
    if (held !== undefined && update.prevIds.length > 0 && update.prevIds.every((id) => id === held.streamId)) {
      const device = update.deleted ? ({ deleted: true } as const) : { deleted: false as const, keysJson: JSON.stringify(update.keys ?? {}), ...(update.displayName !== undefined ? { displayName: update.displayName } : {}) };
      await this.changing(userId, () => this.deps.store.updateRemoteDevice(userId, update.streamId, update.deviceId, device));
      return;
    }
    // No copy, an update went missing, or a new sequence began (no prev_id: what came before it is
    // unknown, so Synapse resyncs too): the whole list again (a failure is logged by the caller).
    await this.resyncInQueue(userId, undefined, true);
  }

  // ---------------------------------------------------------------------------------------------
  // What /keys/query reads

  /** The keys of a user as the copy holds them (only `deviceIds` when given and not empty); undefined without a copy. */
  async heldKeys(userId: string, deviceIds?: readonly string[]): Promise<HeldKeys | undefined> {
    const list = await this.deps.store.remoteDeviceList(userId);
    return list && keysOf(list, deviceIds);
  }

  /**
   * The keys of a user we have no copy of, fetched through /user/devices and kept when they share a
   * room with one of ours; undefined when they share none (the caller asks /user/keys/query then).
   * Throws when the remote server does not answer.
   */
  async fetchKeys(userId: string, deviceIds: readonly string[] | undefined, timeoutMs: number): Promise<HeldKeys | undefined> {
    if (!(await this.sharesRoom(userId))) return undefined;
    // In the user's queue, behind a resync an update may have started: its result is used.
    const list = await this.enqueue(userId, async () => (await this.deps.store.remoteDeviceList(userId)) ?? (await this.resyncInQueue(userId, timeoutMs, false)));
    return keysOf(list, deviceIds);
  }

  // ---------------------------------------------------------------------------------------------
  // Memberships

  /** A user left a room (or was kicked or banned): copies of users no longer sharing a room with ours are dropped. */
  async membershipEnded(roomId: string, userId: string): Promise<void> {
    let candidates: string[];
    if (serverNameOf(userId) !== this.deps.serverName) candidates = [userId];
    else {
      candidates = [];
      for (const [member, membership] of await this.deps.rooms.currentMemberships(roomId)) {
        if (membership === "join" && serverNameOf(member) !== this.deps.serverName) candidates.push(member);
      }
    }
    if (candidates.length === 0) return;
    const tracked = await this.deps.store.trackedRemoteUsers(candidates);
    await Promise.all(
      [...tracked].map((user) =>
        this.enqueue(user, async () => {
          if (!(await this.sharesRoom(user))) await this.deps.store.forgetRemoteDeviceList(user);
        }),
      ),
    );
  }

  /** Whether some user of ours is joined to a room the user is joined to. */
  async sharesRoom(userId: string): Promise<boolean> {
    for (const roomId of await this.deps.rooms.roomsWithMembership(userId, "join")) {
      for (const [member, membership] of await this.deps.rooms.currentMemberships(roomId)) {
        if (membership === "join" && serverNameOf(member) === this.deps.serverName) return true;
      }
    }
    return false;
  }

  /** Resolves once every queued piece of work has run (tests; shutdown). */
  async settled(): Promise<void> {
    while (this.queues.size > 0) await Promise.allSettled([...this.queues.values()]);
  }

  // ---------------------------------------------------------------------------------------------

  /**
   * Fetches the whole list (called from the user's queue) and keeps it; each resync tells our users
   * the list changed. When it cannot be fetched, the copy is dropped (the next /keys/query asks
   * again); after an update (`changed`) our users are told, since the update said something changed
   * (not after a failed /keys/query, whose client would only ask again, and fail again).
   */
  private async resyncInQueue(userId: string, timeoutMs: number | undefined, changed: boolean): Promise<RemoteDeviceList> {
    let list: RemoteDeviceList;
    try {
      list = await this.fetchList(userId, timeoutMs);
    } catch (error) {
      this.deps.logger.log("info", "could not fetch a remote user's device list", { user_id: userId, error: String(error) });
      if (changed) await this.changing(userId, () => this.deps.store.forgetRemoteDeviceList(userId));
      else await this.deps.store.forgetRemoteDeviceList(userId);
      throw error;
    }
    if (!(await this.sharesRoom(userId))) return list;
    await this.changing(userId, () => this.deps.store.replaceRemoteDeviceList(userId, list));
    return list;
  }

  /** GET /user/devices/{userId}, checked, a few at a time. */
  private async fetchList(userId: string, timeoutMs: number | undefined): Promise<RemoteDeviceList> {
    const server = serverNameOf(userId);
    if (!this.deps.federation || server === undefined) throw new Error("Federation is not available");
    const federation = this.deps.federation;
    const reply = await this.limited(() => federation.request("GET", server, `/_matrix/federation/v1/user/devices/${encodeURIComponent(userId)}`, timeoutMs === undefined ? {} : { timeoutMs }));
    if (!isJsonObject(reply) || reply.user_id !== userId || !Number.isSafeInteger(reply.stream_id) || !Array.isArray(reply.devices)) {
      throw new Error(`${server} answered /user/devices for ${userId} with something else than a device list`);
    }
    const devices: RemoteDevice[] = [];
    const seen = new Set<string>();
    for (const entry of reply.devices) {
      if (!isJsonObject(entry) || typeof entry.device_id !== "string" || seen.has(entry.device_id)) continue;
      const keys = entry.keys === undefined ? {} : entry.keys;
      if (!isJsonObject(keys) || !keysAreOf(keys, userId, entry.device_id)) continue;
      seen.add(entry.device_id);
      devices.push({ deviceId: entry.device_id, keysJson: JSON.stringify(keys), ...(typeof entry.device_display_name === "string" ? { displayName: entry.device_display_name } : {}) });
    }
    const master = ownKey(reply.master_key, userId);
    const selfSigning = ownKey(reply.self_signing_key, userId);
    return {
      streamId: reply.stream_id as number,
      ...(master ? { masterJson: JSON.stringify(master) } : {}),
      ...(selfSigning ? { selfSigningJson: JSON.stringify(selfSigning) } : {}),
      devices,
    };
  }

  /** Writes a change of the user's copy and records it for our users' /sync in one transaction; announced once committed. */
  private async changing(userId: string, write: () => Promise<void>): Promise<void> {
    const update = await this.deps.store.atomically(async () => {
      await write();
      return this.deps.deviceLists.record({ kind: "remote", userId });
    });
    this.deps.deviceLists.announce([update]);
  }

  private enqueue<T>(userId: string, work: () => Promise<T>): Promise<T> {
    const before = this.queues.get(userId) ?? Promise.resolve();
    const run = before.then(work, work);
    const tail = run.catch(() => {});
    this.queues.set(userId, tail);
    void tail.then(() => {
      if (this.queues.get(userId) === tail) this.queues.delete(userId);
    });
    return run;
  }

  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    while (this.running >= MAX_CONCURRENT_RESYNCS) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

// -----------------------------------------------------------------------------------------------

function parseUpdate(userId: string, content: JsonObject): DeviceUpdate | undefined {
  const { device_id: deviceId, stream_id: streamId, prev_id: prevId, deleted, keys, device_display_name: displayName } = content;
  if (typeof deviceId !== "string" || deviceId === "" || !Number.isSafeInteger(streamId)) return undefined;
  if (prevId !== undefined && (!Array.isArray(prevId) || !prevId.every((id) => Number.isSafeInteger(id)))) return undefined;
  if (keys !== undefined && (!isJsonObject(keys) || !keysAreOf(keys, userId, deviceId))) return undefined;
  return {
    deviceId,
    streamId: streamId as number,
    prevIds: (prevId ?? []) as number[],
    deleted: deleted === true,
    ...(isJsonObject(keys) ? { keys } : {}),
    ...(typeof displayName === "string" ? { displayName } : {}),
  };
}

/**
 * Whether device keys may be kept as the device's: those that name a user or device must name this
 * one (another server may not speak for a device that is not its user's). Keys naming neither are
 * kept as given, as Synapse keeps them.
 */
function keysAreOf(keys: JsonObject, userId: string, deviceId: string): boolean {
  return (keys.user_id === undefined || keys.user_id === userId) && (keys.device_id === undefined || keys.device_id === deviceId);
}

/** A cross-signing key that says it is the user's, else undefined. */
function ownKey(key: unknown, userId: string): JsonObject | undefined {
  return isJsonObject(key) && key.user_id === userId ? key : undefined;
}

/** The copy as /keys/query answers it: devices without keys left out, each name in `unsigned`. */
function keysOf(list: RemoteDeviceList, deviceIds: readonly string[] | undefined): HeldKeys {
  const wanted = deviceIds !== undefined && deviceIds.length > 0 ? new Set(deviceIds) : undefined;
  const devices: Record<string, JsonObject> = {};
  for (const device of list.devices) {
    if (wanted && !wanted.has(device.deviceId)) continue;
    const keys = JSON.parse(device.keysJson) as JsonObject;
    if (Object.keys(keys).length === 0) continue;
    if (device.displayName !== undefined) keys.unsigned = { ...(isJsonObject(keys.unsigned) ? keys.unsigned : {}), device_display_name: device.displayName };
    devices[device.deviceId] = keys;
  }
  return {
    devices,
    ...(list.masterJson !== undefined ? { master: JSON.parse(list.masterJson) as JsonObject } : {}),
    ...(list.selfSigningJson !== undefined ? { selfSigning: JSON.parse(list.selfSigningJson) as JsonObject } : {}),
  };
}
