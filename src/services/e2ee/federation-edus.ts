// End-to-end encryption over federation (server-server-api "Device Management", "End-to-End
// Encryption", "Send-to-device messaging"): the EDUs other servers send about their users, and the
// ones we send about ours.
//
// Inbound: an m.device_list_update or m.signing_key_update about a user of the sending server marks
// that user's device list changed for our users sharing a room with them (their clients then ask
// /keys/query, which asks that server again: no copy of other servers' keys is kept, so nothing
// here can go stale); updates about users we share no room with are dropped, as Synapse does.
// m.direct_to_device messages are queued for our users' devices.
//
// Outbound: each change of our users' devices or keys goes to every other server sharing a room
// with them. m.device_list_update carries an empty prev_id, which tells the receiver to fetch the
// whole list again through /user/devices rather than trust a chain of updates it may have gaps in
// (Synapse resyncs on an empty prev_id).
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { parseUserId } from "../../protocol/identifiers";
import type { RoomEventStore } from "../../storage/stores";
import type { Logger } from "../runtime";
import type { DeviceListService, DeviceListUpdate } from "./device-lists";
import type { EndToEndKeyService } from "./e2ee-keys";
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
  /** The other servers with a user joined to one of the rooms (FederationRoomReader.joinedServers). */
  joinedServers(roomId: string): Promise<readonly string[]>;
  queueEdu(destinations: readonly string[], eduType: string, content: JsonObject): Promise<void>;
  logger: Logger;
}

export class E2eeFederation implements E2eeEduHandler {
  constructor(private readonly deps: E2eeFederationDeps) {}

  async deviceListUpdate(origin: string, content: JsonObject): Promise<void> {
    await this.remoteChange(origin, content.user_id);
  }

  async signingKeyUpdate(origin: string, content: JsonObject): Promise<void> {
    await this.remoteChange(origin, content.user_id);
  }

  async directToDevice(origin: string, content: JsonObject): Promise<void> {
    await this.deps.toDevice.receiveRemote(origin, content);
  }

  /** A user of `origin` whose devices or keys changed: listed for our users who share a room with them. */
  private async remoteChange(origin: string, userId: unknown): Promise<void> {
    if (typeof userId !== "string") return;
    const parsed = parseUserId(userId);
    if (!parsed.ok || parsed.value.serverName !== origin || origin === this.deps.serverName) return;
    if ((await this.deps.rooms.roomsWithMembership(userId, "join")).length === 0) return;
    await this.deps.deviceLists.change({ kind: "remote", userId });
  }

  /** The EDU (if any) that tells other servers of a change of one of our users. */
  async outbound(update: DeviceListUpdate): Promise<void> {
    if (update.kind === "remote" || (update.kind === "signature" && update.observer !== undefined)) return;
    const { userId } = update;
    const parsed = parseUserId(userId);
    if (!parsed.ok || parsed.value.serverName !== this.deps.serverName) return;
    const destinations = new Set<string>();
    for (const roomId of await this.deps.rooms.roomsWithMembership(userId, "join")) for (const server of await this.deps.joinedServers(roomId)) destinations.add(server);
    destinations.delete(this.deps.serverName);
    if (destinations.size === 0) return;
    if (update.kind === "device") {
      const content: JsonObject = { user_id: userId, device_id: update.deviceId, stream_id: update.position, prev_id: [] };
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
