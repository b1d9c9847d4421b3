// What other servers ask this one about its own users and rooms (server-server-api "Querying for
// information", "Published Room Directory", "Device Management", "End-to-End Encryption"):
// room aliases, profiles, the published room directory, device lists and device keys.
//
// Only local things are answered: an alias or user of another server is 400 M_INVALID_PARAM (the
// requester should have asked that server), an unknown local one 404 M_NOT_FOUND.
//
// End-to-end encryption keys come in through DeviceKeySource, which the key service
// (e2ee/e2ee-keys.ts) implements over what clients uploaded with /keys/upload and
// /keys/device_signing/upload: /user/devices lists the devices with keys (the spec requires `keys`
// on every listed device, so a device without uploaded keys is not listed), /user/keys/query answers
// device and cross-signing keys with the signatures everyone may see, /user/keys/claim takes a
// one-time key (else the fallback key). Without a source (NO_DEVICE_KEYS) the answers are empty.
import { MatrixError } from "../../protocol/errors";
import type { JsonObject } from "../../protocol/json";
import { parseRoomAlias, parseUserId } from "../../protocol/identifiers";
import type { AccountService } from "../accounts/account-service";
import type { ProfileService } from "../accounts/profile-service";
import type { DirectoryService } from "../directory/directory-service";
import { MAX_PUBLIC_ROOMS_LIMIT, type PublicRoomsRequest, type PublicRoomsResponse } from "../directory/public-rooms";

/** The end-to-end encryption keys of local users, as the client API's /keys/upload stored them. */
export interface DeviceKeySource {
  /** Signed device keys (client-server device_keys.yaml) by device ID; only `deviceIds` when given and not empty. */
  deviceKeys(userId: string, deviceIds?: readonly string[]): Promise<Record<string, JsonObject>>;
  /** The user's master and self-signing keys, when uploaded. */
  crossSigningKeys(userId: string): Promise<{ master?: JsonObject; selfSigning?: JsonObject }>;
  /** Takes one one-time key (else the fallback key) of a device for an algorithm: key ID -> key, or undefined. */
  claimOneTimeKey(userId: string, deviceId: string, algorithm: string): Promise<Record<string, JsonObject | string> | undefined>;
  /** The position of the user's device list, matched by stream_id in m.device_list_update EDUs. */
  deviceListStreamId(userId: string): Promise<number>;
}

/** No E2EE keys: the answer of a FederationQueries built without a key source (unit tests). */
export const NO_DEVICE_KEYS: DeviceKeySource = {
  deviceKeys: async () => ({}),
  crossSigningKeys: async () => ({}),
  claimOneTimeKey: async () => undefined,
  deviceListStreamId: async () => 0,
};

export interface FederationQueryOptions {
  serverName: string;
  directory: DirectoryService;
  profiles: ProfileService;
  accounts: AccountService;
  /** Default NO_DEVICE_KEYS. */
  deviceKeys?: DeviceKeySource;
  /**
   * Whether /user/devices tells other servers the names users gave their devices. Off by default:
   * device names often say more about a person than they meant to share (Synapse hides them too).
   */
  shareDeviceNames?: boolean;
}

export interface UserDevice {
  device_id: string;
  keys: JsonObject;
  device_display_name?: string;
}

export interface UserDevicesResponse {
  user_id: string;
  stream_id: number;
  devices: UserDevice[];
  master_key?: JsonObject;
  self_signing_key?: JsonObject;
}

export interface KeysQueryResponse {
  device_keys: Record<string, Record<string, JsonObject>>;
  master_keys?: Record<string, JsonObject>;
  self_signing_keys?: Record<string, JsonObject>;
}

export interface KeysClaimResponse {
  one_time_keys: Record<string, Record<string, Record<string, JsonObject | string>>>;
}

export class FederationQueries {
  private readonly deviceKeys: DeviceKeySource;

  constructor(private readonly options: FederationQueryOptions) {
    this.deviceKeys = options.deviceKeys ?? NO_DEVICE_KEYS;
  }

  /** GET /query/directory?room_alias=: the room of a local alias and servers to join it through. */
  async roomAlias(alias: string): Promise<{ room_id: string; servers: string[] }> {
    const parsed = parseRoomAlias(alias);
    if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `Room alias invalid: ${parsed.error}`);
    if (parsed.value.serverName !== this.options.serverName) throw new MatrixError("M_INVALID_PARAM", `Room alias ${alias} is not hosted on this server`);
    const { roomId, servers } = await this.options.directory.resolveAlias(alias);
    return { room_id: roomId, servers };
  }

  /**
   * GET /query/profile?user_id=&field=: the whole profile, or only `field`. A field the user has not
   * set is left out (query.yaml: "MUST either exclude it from the response body or give it the value null").
   */
  async profile(userId: string, field?: string): Promise<Record<string, unknown>> {
    await this.requireLocalUser(userId);
    if (field !== undefined) this.options.profiles.checkKeyName(field);
    const profile = await this.options.profiles.profile(userId);
    if (field === undefined) return { ...profile };
    return Object.hasOwn(profile, field) ? { [field]: profile[field] } : {};
  }

  /**
   * GET and POST /publicRooms: this server's published rooms. public_rooms.yaml: no limit, or 0,
   * means no limit; pages still hold at most MAX_PUBLIC_ROOMS_LIMIT rooms (with next_batch for more).
   */
  publicRooms(request: PublicRoomsRequest): Promise<PublicRoomsResponse> {
    const limit = request.limit === undefined || request.limit === 0 ? MAX_PUBLIC_ROOMS_LIMIT : request.limit;
    return this.options.directory.publicRooms({ ...request, limit });
  }

  /** GET /user/devices/{userId}: the devices of a local user that have keys (see the file comment). */
  async userDevices(userId: string): Promise<UserDevicesResponse> {
    await this.requireLocalUser(userId);
    const keys = await this.deviceKeys.deviceKeys(userId);
    const devices: UserDevice[] = [];
    for (const device of await this.options.accounts.devices(userId)) {
      const deviceKeys = keys[device.deviceId];
      if (deviceKeys === undefined) continue;
      const entry: UserDevice = { device_id: device.deviceId, keys: deviceKeys };
      if (this.options.shareDeviceNames && device.displayName !== undefined) entry.device_display_name = device.displayName;
      devices.push(entry);
    }
    const response: UserDevicesResponse = { user_id: userId, stream_id: await this.deviceKeys.deviceListStreamId(userId), devices };
    const cross = await this.deviceKeys.crossSigningKeys(userId);
    if (cross.master) response.master_key = cross.master;
    if (cross.selfSigning) response.self_signing_key = cross.selfSigning;
    return response;
  }

  /**
   * POST /user/keys/query: device keys (and cross-signing keys) of local users; an empty device list
   * asks for every device. Users of other servers and unknown users are left out.
   */
  async queryKeys(query: Readonly<Record<string, readonly string[]>>): Promise<KeysQueryResponse> {
    const response: KeysQueryResponse = { device_keys: {} };
    for (const [userId, deviceIds] of Object.entries(query)) {
      if (!(await this.isLocalUser(userId))) continue;
      response.device_keys[userId] = await this.deviceKeys.deviceKeys(userId, deviceIds);
      const cross = await this.deviceKeys.crossSigningKeys(userId);
      if (cross.master) (response.master_keys ??= {})[userId] = cross.master;
      if (cross.selfSigning) (response.self_signing_keys ??= {})[userId] = cross.selfSigning;
    }
    return response;
  }

  /** POST /user/keys/claim: one key per (local user, device, algorithm) asked for, where one is left. */
  async claimKeys(claim: Readonly<Record<string, Readonly<Record<string, string>>>>): Promise<KeysClaimResponse> {
    const response: KeysClaimResponse = { one_time_keys: {} };
    for (const [userId, devices] of Object.entries(claim)) {
      if (!(await this.isLocalUser(userId))) continue;
      for (const [deviceId, algorithm] of Object.entries(devices)) {
        const key = await this.deviceKeys.claimOneTimeKey(userId, deviceId, algorithm);
        if (key !== undefined) (response.one_time_keys[userId] ??= {})[deviceId] = key;
      }
    }
    return response;
  }

  // ---------------------------------------------------------------------------------------------

  private async isLocalUser(userId: string): Promise<boolean> {
    const parsed = parseUserId(userId);
    return parsed.ok && parsed.value.serverName === this.options.serverName && (await this.options.accounts.userExists(userId));
  }

  /** 400 for an invalid or another server's user ID; 404 for a local user that does not exist. */
  private async requireLocalUser(userId: string): Promise<void> {
    const parsed = parseUserId(userId);
    if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID: ${parsed.error}`);
    if (parsed.value.serverName !== this.options.serverName) throw new MatrixError("M_INVALID_PARAM", `User ${userId} is not hosted on this server`);
    if (!(await this.options.accounts.userExists(userId))) throw new MatrixError("M_NOT_FOUND", `User ${userId} not found`);
  }
}
