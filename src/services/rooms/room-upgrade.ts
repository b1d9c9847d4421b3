// POST /rooms/{roomId}/upgrade (client-server-api "Room Upgrades", server behaviour): a new room of
// the asked version whose m.room.create names the old one as predecessor, with the old room's
// state that defines it copied (name, topic, avatar, join rules, history visibility, guest access,
// encryption, server ACL, canonical alias, power levels); an m.room.tombstone in the old room
// pointing at the new one; the old room's local aliases moved to the new one; and the old room's
// power levels raised so that ordinary members can no longer speak or invite there. Checked before
// anything is created: the room exists, the version is known, the user may send the tombstone.
//
// "When a user joins the new room, the server should automatically transfer/replicate some of the
// user's personalized settings such as notifications, tags, etc.": a local user's first join of a
// room with a predecessor copies their push rules for the old room and its m.tag account data.
import { eventSendLevel, userPowerLevel } from "../../protocol/auth";
import { MatrixError } from "../../protocol/errors";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { roomVersion } from "../../protocol/room-versions";
import type { RoomAccess } from "./room-access";
import type { RoomEngine } from "./room-engine";
import type { CreateRoomInput } from "./room-service";
import type { RoomEventStore } from "../../storage/stores";
import type { PushRule, PushRuleKind } from "../../protocol/push-rules";
import { serverNameOf } from "../../protocol/identifiers";
import type { Logger } from "../runtime";

/** State copied to the new room as it is (Synapse copies the same types). */
const COPIED_STATE = ["m.room.join_rules", "m.room.history_visibility", "m.room.guest_access", "m.room.name", "m.room.topic", "m.room.avatar", "m.room.encryption", "m.room.server_acl", "m.room.canonical_alias"];

export interface RoomUpgradeDeps {
  engine: Pick<RoomEngine, "currentStateEvent" | "versionOf"> & Partial<Pick<RoomEngine, "onEvent">>;
  store: Pick<RoomEventStore, "forwardExtremities">;
  access: Pick<RoomAccess, "membership" | "currentAuthState">;
  rooms: {
    createRoom(input: CreateRoomInput): Promise<string>;
    setState(roomId: string, userId: string, type: string, stateKey: string, content: JsonObject): Promise<string>;
  };
  directory?: { moveLocalAliases(fromRoomId: string, toRoomId: string): Promise<string[]> };
  /** What a user's join of an upgraded room carries over (without them: nothing). */
  carryOver?: {
    serverName: string;
    pushRules: {
      ruleset(userId: string): Promise<Record<PushRuleKind, readonly PushRule[]>>;
      putRule(userId: string, kind: PushRuleKind, ruleId: string, input: { actions: unknown[]; conditions?: unknown[]; pattern?: string }): Promise<void>;
    };
    accountData: {
      read(userId: string, roomId: string | undefined, type: string): Promise<Record<string, unknown> | undefined>;
      write(userId: string, roomId: string | undefined, type: string, content: Record<string, unknown>): Promise<number>;
    };
    logger?: Logger;
  };
}

export class RoomUpgradeService {
  constructor(private readonly deps: RoomUpgradeDeps) {
    const carryOver = deps.carryOver;
    if (carryOver && deps.engine.onEvent) {
      deps.engine.onEvent(async (roomId, stored, pdu) => {
        if (stored.type !== "m.room.member" || (pdu.content as JsonObject | undefined)?.membership !== "join") return;
        const userId = pdu.state_key;
        if (typeof userId !== "string" || serverNameOf(userId) !== carryOver.serverName) return;
        try {
          await this.carryOverToUpgradedRoom(roomId, userId);
        } catch (error) {
          carryOver.logger?.log("warn", "room upgrade: carrying a user's settings over failed", { roomId, userId, error: String(error) });
        }
      });
    }
  }

  /**
   * A local user joined `roomId`: when it replaces another room, their enabled push rules for the
   * old room (a room rule, or override/underride rules with a room_id condition on it) and their
   * tags are copied to it, as Synapse does on a join. Nothing already set for the new room is
   * overwritten, so a later join event (a profile change is one too) changes nothing the user set
   * since; unlike Synapse, which copies on the first join only, it copies again a rule deleted since.
   */
  private async carryOverToUpgradedRoom(roomId: string, userId: string): Promise<void> {
    const carryOver = this.deps.carryOver!;
    const predecessor = (await this.deps.engine.currentStateEvent(roomId, "m.room.create", ""))?.content.predecessor;
    if (!isJsonObject(predecessor) || typeof predecessor.room_id !== "string") return;
    const oldRoomId = predecessor.room_id;

    const ruleset = await carryOver.pushRules.ruleset(userId);
    const has = (kind: PushRuleKind, ruleId: string) => ruleset[kind].some((r) => r.rule_id === ruleId);
    const roomRule = ruleset.room.find((r) => r.rule_id === oldRoomId && !r.default && r.enabled);
    if (roomRule && !has("room", roomId)) await carryOver.pushRules.putRule(userId, "room", roomId, { actions: roomRule.actions });
    for (const kind of ["override", "underride"] as const) {
      for (const rule of ruleset[kind]) {
        if (rule.default || !rule.enabled) continue;
        const conditions = rule.conditions ?? [];
        if (!conditions.some((c) => c.key === "room_id" && c.pattern === oldRoomId)) continue;
        // The copy's rule ID is the new room's ID, as in Synapse (clients name a room's mute rule so).
        const newRuleId = roomId;
        if (has(kind, newRuleId)) continue;
        const copied = conditions.map((c) => (c.key === "room_id" && c.pattern === oldRoomId ? { ...c, pattern: roomId } : c));
        await carryOver.pushRules.putRule(userId, kind, newRuleId, { actions: rule.actions, conditions: copied });
      }
    }

    const oldTags = await carryOver.accountData.read(userId, oldRoomId, "m.tag");
    if (oldTags && isJsonObject(oldTags.tags) && Object.keys(oldTags.tags).length > 0 && !(await carryOver.accountData.read(userId, roomId, "m.tag"))) {
      await carryOver.accountData.write(userId, roomId, "m.tag", oldTags);
    }
  }

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
    // Step 4: the local aliases go to the new room (its canonical alias event was copied above); the
    // old room's canonical alias is cleared where the upgrader may send it. After the tombstone, as
    // Synapse orders it, so that the tombstone is the first thing members of the old room see.
    if (this.deps.directory) {
      await this.deps.directory.moveLocalAliases(roomId, replacement);
      const canonical = (await this.deps.engine.currentStateEvent(roomId, "m.room.canonical_alias", ""))?.content;
      if (canonical && Object.keys(canonical).length > 0) {
        try {
          await this.deps.rooms.setState(roomId, userId, "m.room.canonical_alias", "", {});
        } catch (error) {
          if (!(error instanceof MatrixError)) throw error;
        }
      }
    }

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
