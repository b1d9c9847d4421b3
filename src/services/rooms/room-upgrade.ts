// POST /rooms/{roomId}/upgrade (client-server-api "Room Upgrades", server behaviour): a new room of
// the asked version whose m.room.create names the old one as predecessor (and keeps its room type
// and, as Synapse, m.federate: false), with the old room's state that defines it copied (name,
// topic, avatar, join rules, history visibility, guest access, encryption, server ACL, canonical
// alias, power levels) and its bans (as Synapse); an m.room.tombstone in the old room pointing at
// the new one; the old room's local aliases and published directory entry moved to the new one; and
// the old room's power levels raised so that ordinary members can no longer speak or invite there.
// Checked before anything is created: the room exists, the version is known, the user may send the
// tombstone.
//
// "When a user joins the new room, the server should automatically transfer/replicate some of the
// user's personalized settings such as notifications, tags, etc.": a local user's first join of a
// room with a predecessor copies their push rules for the old room, its m.tag account data and its
// place in m.direct.
import { eventSendLevel, userPowerLevel } from "../../protocol/auth";
import { MatrixError } from "../../protocol/errors";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { roomVersion, type RoomVersion } from "../../protocol/room-versions";
import type { RoomAccess } from "./room-access";
import type { RoomEngine } from "./room-engine";
import type { CreateRoomInput } from "./room-service";
import type { RoomEventStore } from "../../storage/stores";
import type { PushRule, PushRuleKind } from "../../protocol/push-rules";
import { isValidUserId, serverNameOf } from "../../protocol/identifiers";
import { encodeCanonicalJson } from "../../protocol/canonical-json";
import { defaultPowerLevels } from "./room-creation";
import type { Logger } from "../runtime";

/** State copied to the new room as it is (Synapse copies the same types). */
const COPIED_STATE = ["m.room.join_rules", "m.room.history_visibility", "m.room.guest_access", "m.room.name", "m.room.topic", "m.room.avatar", "m.room.encryption", "m.room.server_acl", "m.room.canonical_alias"];

export interface RoomUpgradeDeps {
  engine: Pick<RoomEngine, "currentStateEvent" | "versionOf" | "sendEvent" | "newRoomId"> & Partial<Pick<RoomEngine, "onEvent">>;
  store: Pick<RoomEventStore, "currentMemberships">;
  access: Pick<RoomAccess, "membership" | "currentAuthState">;
  rooms: {
    createRoom(input: CreateRoomInput): Promise<string>;
    setState(roomId: string, userId: string, type: string, stateKey: string, content: JsonObject): Promise<string>;
  };
  directory?: {
    moveLocalAliases(fromRoomId: string, toRoomId: string): Promise<string[]>;
    visibility(roomId: string): Promise<"public" | "private">;
    setVisibility(userId: string, roomId: string, visibility: "public" | "private"): Promise<void>;
  };
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

    // A direct chat stays one (m.direct lists the new room wherever it listed the old), as Synapse.
    const direct = await carryOver.accountData.read(userId, undefined, "m.direct");
    if (direct) {
      let changed = false;
      const updated: Record<string, unknown> = {};
      for (const [peer, rooms] of Object.entries(direct)) {
        if (Array.isArray(rooms) && rooms.includes(oldRoomId) && !rooms.includes(roomId)) {
          updated[peer] = [...rooms, roomId];
          changed = true;
        } else updated[peer] = rooms;
      }
      if (changed) await carryOver.accountData.write(userId, undefined, "m.direct", updated);
    }

    const oldTags = await carryOver.accountData.read(userId, oldRoomId, "m.tag");
    if (oldTags && isJsonObject(oldTags.tags) && Object.keys(oldTags.tags).length > 0 && !(await carryOver.accountData.read(userId, roomId, "m.tag"))) {
      await carryOver.accountData.write(userId, roomId, "m.tag", oldTags);
    }
  }

  /**
   * POST /rooms/{roomId}/upgrade. Before v12 the new room's ID is chosen first and the tombstone is
   * built, signed and authorized in the old room; the new room is created (in one transaction) with
   * the tombstone's ID as predecessor.event_id, as Synapse does, and the tombstone is stored last,
   * all while the old room's write queue is held. A failure before that stores no tombstone (and a
   * refused new room stores nothing), so the old room is never left pointing at a missing room.
   * From v12 on the room ID is the create event's hash and cannot be named beforehand: the new room
   * comes first and its predecessor has no event_id (allowed since spec v1.16; Synapse does so too).
   */
  async upgrade(roomId: string, userId: string, newVersion: string, additionalCreators?: readonly string[]): Promise<{ replacement_room: string }> {
    const version = await this.deps.engine.versionOf(roomId);
    const target = roomVersion(newVersion);
    if (!target) throw new MatrixError("M_UNSUPPORTED_ROOM_VERSION", `Room version ${newVersion} is not supported`);
    if ((await this.deps.access.membership(roomId, userId)) !== "join") throw new MatrixError("M_FORBIDDEN", "You are not in this room");
    const auth = await this.deps.access.currentAuthState(roomId, [userId]);
    if (userPowerLevel(userId, auth, version) < eventSendLevel("m.room.tombstone", true, auth, version)) {
      throw new MatrixError("M_FORBIDDEN", "You do not have permission to upgrade this room (it needs the power to send m.room.tombstone)");
    }
    const extraCreators = target.privilegedCreators ? [...new Set(additionalCreators ?? [])].filter((u) => u !== userId) : [];
    for (const creator of extraCreators) {
      if (!isValidUserId(creator)) throw new MatrixError("M_INVALID_PARAM", `Not a user ID in additional_creators: ${JSON.stringify(creator)}`);
    }

    const oldCreateEvent = await this.deps.engine.currentStateEvent(roomId, "m.room.create", "");
    const oldCreate = oldCreateEvent?.content ?? {};
    // A creator of a room whose creators have infinite power is not listed in its power levels.
    const oldCreators = version.privilegedCreators && oldCreateEvent ? [oldCreateEvent.sender, ...(Array.isArray(oldCreate.additional_creators) ? oldCreate.additional_creators : [])] : [];
    const creationContent: JsonObject = {};
    // The room type (spec step 2) and, as Synapse, a room closed to federation stays so.
    if (typeof oldCreate.type === "string") creationContent.type = oldCreate.type;
    if (oldCreate["m.federate"] === false) creationContent["m.federate"] = false;
    if (extraCreators.length > 0) creationContent.additional_creators = extraCreators;

    const initialState: { type: string; state_key: string; content: JsonObject }[] = [];
    for (const type of COPIED_STATE) {
      const event = await this.deps.engine.currentStateEvent(roomId, type, "");
      if (event && Object.keys(event.content).length > 0) initialState.push({ type, state_key: "", content: event.content as JsonObject });
    }
    // Bans carry over (as Synapse), so that a banned user cannot simply join the new room.
    for (const [banned, membership] of await this.deps.store.currentMemberships(roomId)) {
      if (membership !== "ban") continue;
      const ban = await this.deps.engine.currentStateEvent(roomId, "m.room.member", banned);
      if (ban && ban.content.membership === "ban") initialState.push({ type: "m.room.member", state_key: banned, content: ban.content as JsonObject });
    }
    const powerLevels = (await this.deps.engine.currentStateEvent(roomId, "m.room.power_levels", ""))?.content as JsonObject | undefined;
    const levels = powerLevels ? upgradedPowerLevels(powerLevels, userId, target, extraCreators, oldCreators.includes(userId)) : undefined;
    // The old room's power levels once everything else is in place, when the room was created with others.
    if (levels?.final) initialState.push({ type: "m.room.power_levels", state_key: "", content: levels.final });

    // The published room directory entry moves with the room (as Synapse).
    const published = this.deps.directory ? (await this.deps.directory.visibility(roomId)) === "public" : false;
    const create = (predecessor: JsonObject, chosenRoomId?: string) =>
      this.deps.rooms.createRoom({
        creator: userId,
        roomVersion: target.id,
        // Every state the presets set is copied from the old room; this one only fills what it lacks.
        preset: "private_chat",
        ...(published ? { visibility: "public" as const } : {}),
        creationContent: { ...creationContent, predecessor },
        initialState,
        ...(levels ? { powerLevelContentOverride: levels.initial } : {}),
        ...(chosenRoomId ? { roomId: chosenRoomId } : {}),
      });
    const tombstone = (replacement: string) => ({ type: "m.room.tombstone", sender: userId, stateKey: "", content: { body: "This room has been replaced", replacement_room: replacement } });

    let replacement: string;
    if (target.roomIdFromCreateEvent) {
      replacement = await create({ room_id: roomId });
      await this.deps.engine.sendEvent(roomId, tombstone(replacement));
    } else {
      const chosen = this.deps.engine.newRoomId();
      await this.deps.engine.sendEvent(roomId, {
        ...tombstone(chosen),
        beforePersist: async (tombstoneId) => {
          await create({ room_id: roomId, event_id: tombstoneId }, chosen);
        },
      });
      replacement = chosen;
    }

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
      if (published) {
        try {
          await this.deps.directory.setVisibility(userId, roomId, "private");
        } catch (error) {
          // Only room and server admins may unlist a room; the new room is listed all the same.
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

/**
 * The new room's power levels: `initial` for its creation, `final` (when it differs) to send once
 * the copied state and bans are in. As Synapse does, the upgrader gets, for the creation only, the
 * level that every copied state event and ban needs (a moderator allowed to send the tombstone
 * could not set history visibility otherwise); `final` puts the old room's levels back. In rooms
 * whose creators have infinite power (v12) the creators are left out of `users` (they may not be listed).
 */
export function upgradedPowerLevels(old: JsonObject, upgrader: string, target: RoomVersion, additionalCreators: readonly string[], upgraderWasCreator: boolean): { initial: JsonObject; final?: JsonObject } {
  const wanted = structuredClone(old);
  const level = (value: unknown, fallback: number) => (typeof value === "number" && Number.isFinite(value) ? value : fallback);
  if (!target.privilegedCreators && upgraderWasCreator) {
    // Out of a room where they had infinite power: they stay above everyone listed.
    const users = isJsonObject(wanted.users) ? { ...wanted.users } : {};
    users[upgrader] = Math.max(100, ...Object.values(users).map((v) => level(v, 0)));
    wanted.users = users;
  }
  if (target.privilegedCreators && isJsonObject(wanted.users)) {
    const users = { ...wanted.users };
    for (const creator of [upgrader, ...additionalCreators]) delete users[creator];
    wanted.users = users;
  }
  const initial = structuredClone(wanted);
  // createRoom lays the override over its defaults: the levels the room starts with.
  const merged: JsonObject = { ...defaultPowerLevels(upgrader, target.privilegedCreators, []), ...initial };
  if (!target.privilegedCreators) {
    const events = isJsonObject(merged.events) ? Object.values(merged.events).map((v) => level(v, 0)) : [];
    const needed = Math.max(level(merged.state_default, 50), level(merged.ban, 50), ...events);
    const users = isJsonObject(initial.users) ? { ...initial.users } : {};
    if (level(users[upgrader], level(merged.users_default, 0)) < needed) {
      users[upgrader] = needed;
      initial.users = users;
      merged.users = users;
    }
  }
  return encodeCanonicalJson(merged) === encodeCanonicalJson(wanted) ? { initial } : { initial, final: wanted };
}
