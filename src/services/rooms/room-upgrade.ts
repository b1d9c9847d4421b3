// POST /rooms/{roomId}/upgrade (client-server-api "Room Upgrades", server behaviour): a new room of
// the asked version whose m.room.create names the old one as predecessor, with the old room's
// state that defines it copied (name, topic, avatar, join rules, history visibility, guest access,
// encryption, server ACL, canonical alias, power levels); then an m.room.tombstone in the old room
// pointing at the new one, and the old room's power levels raised so that ordinary members can no
// longer speak or invite there. Checked before anything is created: the room exists, the version
// is known, the user may send the tombstone.
import { eventSendLevel, userPowerLevel } from "../../protocol/auth";
import { MatrixError } from "../../protocol/errors";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { roomVersion } from "../../protocol/room-versions";
import type { RoomAccess } from "./room-access";
import type { RoomEngine } from "./room-engine";
import type { CreateRoomInput } from "./room-service";
import type { RoomEventStore } from "../../storage/stores";

/** State copied to the new room as it is (Synapse copies the same types). */
const COPIED_STATE = ["m.room.join_rules", "m.room.history_visibility", "m.room.guest_access", "m.room.name", "m.room.topic", "m.room.avatar", "m.room.encryption", "m.room.server_acl", "m.room.canonical_alias"];

export interface RoomUpgradeDeps {
  engine: Pick<RoomEngine, "currentStateEvent" | "versionOf">;
  store: Pick<RoomEventStore, "forwardExtremities">;
  access: Pick<RoomAccess, "membership" | "currentAuthState">;
  rooms: {
    createRoom(input: CreateRoomInput): Promise<string>;
    setState(roomId: string, userId: string, type: string, stateKey: string, content: JsonObject): Promise<string>;
  };
}

export class RoomUpgradeService {
  constructor(private readonly deps: RoomUpgradeDeps) {}

  async upgrade(roomId: string, userId: string, newVersion: string): Promise<{ replacement_room: string }> {
    const version = await this.deps.engine.versionOf(roomId);
    const target = roomVersion(newVersion);
    if (!target) throw new MatrixError("M_UNSUPPORTED_ROOM_VERSION", `Room version ${newVersion} is not supported`);
    if ((await this.deps.access.membership(roomId, userId)) !== "join") throw new MatrixError("M_FORBIDDEN", "You are not in this room");
    const auth = await this.deps.access.currentAuthState(roomId, [userId]);
    if (userPowerLevel(userId, auth, version) < eventSendLevel("m.room.tombstone", true, auth, version)) {
      throw new MatrixError("M_FORBIDDEN", "You do not have permission to upgrade this room (it needs the power to send m.room.tombstone)");
    }

    const initialState: { type: string; state_key: string; content: JsonObject }[] = [];
    for (const type of COPIED_STATE) {
      const event = await this.deps.engine.currentStateEvent(roomId, type, "");
      if (event && Object.keys(event.content).length > 0) initialState.push({ type, state_key: "", content: event.content as JsonObject });
    }
    const powerLevels = (await this.deps.engine.currentStateEvent(roomId, "m.room.power_levels", ""))?.content as JsonObject | undefined;
    let override: JsonObject | undefined;
    if (powerLevels) {
      override = structuredClone(powerLevels);
      // In rooms where creators have infinite power (v12), a creator may not be listed in `users`.
      if (target.privilegedCreators && isJsonObject(override.users)) {
        const users = { ...override.users };
        delete users[userId];
        override.users = users;
      }
    }
    const [last] = await this.deps.store.forwardExtremities(roomId);
    const replacement = await this.deps.rooms.createRoom({
      creator: userId,
      roomVersion: target.id,
      creationContent: { predecessor: { room_id: roomId, ...(last ? { event_id: last } : {}) } },
      initialState,
      ...(override ? { powerLevelContentOverride: override } : {}),
    });

    await this.deps.rooms.setState(roomId, userId, "m.room.tombstone", "", { body: "This room has been replaced", replacement_room: replacement });
    // The old room is closed to ordinary members (as Synapse does): speaking and inviting need more
    // than the default user level now.
    if (powerLevels) {
      const usersDefault = typeof powerLevels.users_default === "number" ? powerLevels.users_default : 0;
      const restricted = Math.max(50, usersDefault + 1);
      const eventsDefault = typeof powerLevels.events_default === "number" ? powerLevels.events_default : 0;
      const invite = typeof powerLevels.invite === "number" ? powerLevels.invite : 0;
      if (eventsDefault < restricted || invite < restricted) {
        try {
          await this.deps.rooms.setState(roomId, userId, "m.room.power_levels", "", { ...powerLevels, events_default: Math.max(eventsDefault, restricted), invite: Math.max(invite, restricted) });
        } catch {
          // The upgrader may send the tombstone yet not change power levels: the room is replaced all the same.
        }
      }
    }
    return { replacement_room: replacement };
  }
}
