// End-to-end encryption over federation (server-server-api "Device Management", "End-to-End
// Encryption", "Send-to-device messaging"): the EDUs other servers send about their users, and the
// ones we send about ours.
//
// Inbound: an m.device_list_update or m.signing_key_update about a user of the sending server goes
// to the copy of that user's device list (remote-device-lists.ts: applied, or the list fetched
// again), which tells our users sharing a room with them; updates about users we share no room
// with are dropped, as Synapse does. m.direct_to_device messages are queued for our users' devices.
//
// Outbound: each change of our users' devices or keys goes to every other server sharing a room
// with them. Each m.device_list_update names in prev_id the stream_id of the one sent before it
// about the same user (none for the first), so that a receiver holding that one can apply it and one
// that missed it knows to fetch the whole list. The updates about one user are sent one after the
// other, in the order the changes were announced, so that each names the one before.
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { parseUserId } from "../../protocol/identifiers";
import type { DeviceKeyStore, RoomEventStore } from "../../storage/stores";
import type { Logger } from "../runtime";
import type { DeviceListService, DeviceListUpdate } from "./device-lists";
import type { EndToEndKeyService } from "./e2ee-keys";
import type { RemoteDeviceLists } from "./remote-device-lists";
import type { ToDeviceService } from "./to-device";

/** What the transaction receiver hands on (TransactionReceiverDeps.e2ee). */
export interface E2eeEduHandler {
  deviceListUpdate(origin: string, content: JsonObject): Promise<void>;
  signingKeyUpdate(origin: string, content: JsonObject): Promise<void>;
  directToDevice(origin: string, content: JsonObject): Promise<void>;
}

export interface E2eeFederationDeps {
  serverName: string;
  deviceLists: DeviceListService;
  keys: EndToEndKeyService;
  toDevice: ToDeviceService;
  rooms: Pick<RoomEventStore, "roomsWithMembership">;
  /** Where the last m.device_list_update sent about each of our users is recorded. */
  sent: Pick<DeviceKeyStore, "takeSentStreamId">;
  /** The copies of other servers' users' device lists; without it an update only marks the user changed. */
  remoteLists?: RemoteDeviceLists;
  /** The other servers with a user joined to one of the rooms (FederationRoomReader.joinedServers). */
  joinedServers(roomId: string): Promise<readonly string[]>;
  queueEdu(destinations: readonly string[], eduType: string, content: JsonObject): Promise<void>;
  logger: Logger;
}

export class E2eeFederation implements E2eeEduHandler {
  /** The tail of the updates being sent about each of our users. */
  private readonly sending = new Map<string, Promise<void>>();

  constructor(private readonly deps: E2eeFederationDeps) {}

  async deviceListUpdate(origin: string, content: JsonObject): Promise<void> {
    if (!this.fromItsServer(origin, content.user_id)) return;
    if (this.deps.remoteLists) this.deps.remoteLists.deviceListUpdate(content.user_id, content);
    else await this.remoteChange(content.user_id);
  }

  async signingKeyUpdate(origin: string, content: JsonObject): Promise<void> {
    if (!this.fromItsServer(origin, content.user_id)) return;
    if (this.deps.remoteLists) this.deps.remoteLists.signingKeyUpdate(content.user_id, content);
    else await this.remoteChange(content.user_id);
  }

  async directToDevice(origin: string, content: JsonObject): Promise<void> {
    await this.deps.toDevice.receiveRemote(origin, content);
  }

  /** Whether an EDU is about a user of the server that sent it (no server speaks for another's users). */
  private fromItsServer(origin: string, userId: unknown): userId is string {
    if (typeof userId !== "string") return false;
    const parsed = parseUserId(userId);
    return parsed.ok && parsed.value.serverName === origin && origin !== this.deps.serverName;
  }

  /** Without copies: a remote user whose devices or keys changed is listed for our users who share a room with them. */
  private async remoteChange(userId: string): Promise<void> {
    if ((await this.deps.rooms.roomsWithMembership(userId, "join")).length === 0) return;
    await this.deps.deviceLists.change({ kind: "remote", userId });
  }

  /** The EDU (if any) that tells other servers of a change of one of our users; after those announced before it about the same user. */
  outbound(update: DeviceListUpdate): Promise<void> {
    if (update.kind === "remote" || (update.kind === "signature" && update.observer !== undefined)) return Promise.resolve();
    const { userId } = update;
    const run = (this.sending.get(userId) ?? Promise.resolve()).then(() => this.send(update));
    const tail = run.catch(() => {});
    this.sending.set(userId, tail);
    void tail.then(() => {
      if (this.sending.get(userId) === tail) this.sending.delete(userId);
    });
    return run;
  }

  private async send(update: Exclude<DeviceListUpdate, { kind: "remote" }>): Promise<void> {
    const { userId } = update;
    const parsed = parseUserId(userId);
    if (!parsed.ok || parsed.value.serverName !== this.deps.serverName) return;
    const destinations = new Set<string>();
    for (const roomId of await this.deps.rooms.roomsWithMembership(userId, "join")) for (const server of await this.deps.joinedServers(roomId)) destinations.add(server);
    destinations.delete(this.deps.serverName);
    if (destinations.size === 0) return;
    if (update.kind === "device") {
      const before = await this.deps.sent.takeSentStreamId(userId, update.position);
      const content: JsonObject = { user_id: userId, device_id: update.deviceId, stream_id: update.position, prev_id: before === undefined ? [] : [before] };
      if (update.deleted) content.deleted = true;
      else {
        const keys = (await this.deps.keys.deviceKeys(userId, [update.deviceId]))[update.deviceId];
        if (keys) content.keys = keys;
      }
      await this.deps.queueEdu([...destinations], "m.device_list_update", content);
      return;
    }
    // Cross-signing keys replaced, or a signature added to the user's keys: the keys as they are now.
    const cross = await this.deps.keys.crossSigningKeys(userId);
    const content: JsonObject = { user_id: userId };
    if (isJsonObject(cross.master)) content.master_key = cross.master;
    if (isJsonObject(cross.selfSigning)) content.self_signing_key = cross.selfSigning;
    await this.deps.queueEdu([...destinations], "m.signing_key_update", content);
  }
}
