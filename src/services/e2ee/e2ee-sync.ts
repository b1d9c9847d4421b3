// The end-to-end encryption parts of /sync (client-server-api "Extensions to /sync", "Send-to-Device
// messaging": "Extensions to /sync") and GET /keys/changes, over the e2ee services.
import type { RoomEventStore } from "../../storage/stores";
import type { SyncE2ee } from "../sync/sync-service";
import { parseSyncToken } from "../sync/sync-token";
import type { DeviceListService } from "./device-lists";
import type { EndToEndKeyService } from "./e2ee-keys";
import type { ToDeviceService } from "./to-device";

export class E2eeSyncSection implements SyncE2ee {
  constructor(
    private readonly keys: EndToEndKeyService,
    private readonly toDevice: ToDeviceService,
    private readonly deviceLists: DeviceListService,
    private readonly rooms: Pick<RoomEventStore, "roomsWithMembership" | "maxStreamOrdering">,
  ) {}

  async section(input: Parameters<SyncE2ee["section"]>[0]): ReturnType<SyncE2ee["section"]> {
    const { userId, deviceId, since, now } = input;
    const messages = deviceId === undefined ? { events: [], position: now.e2ee } : await this.toDevice.forSync(userId, deviceId, since?.e2ee, now.e2ee);
    // Device lists only in an incremental sync (the spec: after an initial one, clients query keys).
    const lists = since === undefined ? { changed: [], left: [] } : await this.deviceLists.changesBetween(userId, since, { events: now.events, e2ee: messages.position }, input.rooms);
    return {
      position: messages.position,
      toDevice: messages.events,
      changed: lists.changed,
      left: lists.left,
      oneTimeKeyCounts: deviceId === undefined ? {} : await this.keys.oneTimeKeyCounts(userId, deviceId),
      unusedFallbackKeyTypes: deviceId === undefined ? [] : await this.keys.unusedFallbackKeyTypes(userId, deviceId),
    };
  }

  /**
   * GET /keys/changes?from=&to= (keys.yaml): the users whose device lists changed between two sync
   * tokens, among those sharing a room with the user, and those who stopped sharing any. `to` is
   * taken as the end (never past the present); a `from` past it lists nothing.
   */
  async keysChanges(userId: string, from: string, to: string): Promise<{ changed: string[]; left: string[] }> {
    const start = parseSyncToken(from);
    const end = parseSyncToken(to);
    const nowEvents = await this.rooms.maxStreamOrdering();
    const nowE2ee = await this.deviceLists.currentPosition();
    const endPositions = { events: Math.min(end.events, nowEvents), e2ee: Math.min(end.e2ee ?? 0, nowE2ee) };
    const startPositions = { events: Math.min(start.events, endPositions.events), e2ee: Math.min(start.e2ee ?? 0, endPositions.e2ee) };
    const rooms = {
      join: await this.rooms.roomsWithMembership(userId, "join"),
      left: [...(await this.rooms.roomsWithMembership(userId, "leave")), ...(await this.rooms.roomsWithMembership(userId, "ban"))],
    };
    return this.deviceLists.changesBetween(userId, startPositions, endPositions, rooms);
  }
}
