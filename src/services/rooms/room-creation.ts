// Room creation (client-server-api createRoom): the room's first events, built and persisted in the
// order the spec lists — create, the creator's join, power levels, canonical alias, the preset's
// join rules / history visibility / guest access, initial_state, name, topic, then invites.
import { MatrixError } from "../../protocol/errors";
import type { JsonObject } from "../../protocol/json";
import { DEFAULT_ROOM_VERSION, roomVersion } from "../../protocol/room-versions";
import type { NewLocalEvent, RoomEngine } from "./room-engine";

export type RoomPreset = "private_chat" | "trusted_private_chat" | "public_chat";

export interface CreateRoomRequest {
  creator: string;
  roomVersion?: string;
  preset?: RoomPreset;
  /** "public" implies the public_chat preset, "private" private_chat (when no preset is given). */
  visibility?: "public" | "private";
  name?: string;
  topic?: string;
  canonicalAlias?: string;
  initialState?: { type: string; state_key?: string; content: JsonObject }[];
  powerLevelContentOverride?: JsonObject;
  creationContent?: JsonObject;
  invite?: string[];
  isDirect?: boolean;
  /** displayname / avatar_url for the creator's join event. */
  creatorProfile?: { displayname?: string; avatar_url?: string };
  /**
   * Leave the invite events out (the caller sends them once the room exists, after asking the spam
   * policies with the room's ID); the invitees still shape the power levels and creators.
   */
  deferInvites?: boolean;
  /**
   * The room's ID, chosen beforehand with RoomEngine.newRoomId (a room upgrade names the new room in
   * the old room's tombstone before creating it); not for versions whose ID is the create event's hash.
   */
  roomId?: string;
}

const PRESETS: Record<RoomPreset, { join_rule: string; history_visibility: string; guest_access: string }> = {
  private_chat: { join_rule: "invite", history_visibility: "shared", guest_access: "can_join" },
  trusted_private_chat: { join_rule: "invite", history_visibility: "shared", guest_access: "can_join" },
  public_chat: { join_rule: "public", history_visibility: "shared", guest_access: "forbidden" },
};

/** The default power levels (the values Synapse uses, which clients have come to expect). */
export function defaultPowerLevels(creator: string, privilegedCreators: boolean, trustedInvitees: readonly string[]): JsonObject {
  const users: JsonObject = {};
  // v12: creators have infinite power and must not be listed.
  if (!privilegedCreators) users[creator] = 100;
  for (const invitee of trustedInvitees) users[invitee] = 100;
  return {
    users,
    users_default: 0,
    events: {
      "m.room.name": 50,
      "m.room.power_levels": 100,
      "m.room.history_visibility": 100,
      "m.room.canonical_alias": 50,
      "m.room.avatar": 50,
      // v12: tombstones must need more than state_default (create_room.yaml step 3).
      "m.room.tombstone": privilegedCreators ? 150 : 100,
      "m.room.server_acl": 100,
      "m.room.encryption": 100,
    },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 0,
  };
}

/**
 * Creates the room with every event the request implies, in one transaction: when the auth rules
 * refuse any of them (say, a power_level_content_override that locks the creator out), nothing is
 * stored and the caller gets 400 M_INVALID_ROOM_STATE.
 */
export async function createRoom(engine: RoomEngine, request: CreateRoomRequest): Promise<string> {
  const versionId = request.roomVersion ?? DEFAULT_ROOM_VERSION;
  const version = roomVersion(versionId);
  if (!version) throw new MatrixError("M_UNSUPPORTED_ROOM_VERSION", `Room version ${versionId} is not supported`);
  const preset: RoomPreset = request.preset ?? (request.visibility === "public" ? "public_chat" : "private_chat");
  const invitees = [...new Set(request.invite ?? [])].filter((u) => u !== request.creator);
  const trusted = preset === "trusted_private_chat" ? invitees : [];

  const creationContent: JsonObject = { ...(request.creationContent ?? {}) };
  if (version.privilegedCreators && trusted.length > 0) {
    const extra = Array.isArray(creationContent.additional_creators) ? creationContent.additional_creators.filter((u) => typeof u === "string") : [];
    creationContent.additional_creators = [...new Set([...(extra as string[]), ...trusted])];
  }
  const events: NewLocalEvent[] = [];
  const send = (type: string, stateKey: string | undefined, content: JsonObject) => events.push({ type, sender: request.creator, stateKey, content });

  send("m.room.member", request.creator, { ...(request.creatorProfile ?? {}), membership: "join" });
  // v12 creators (and additional creators) are implicit; listing trusted invitees would be refused.
  const powerLevels = { ...defaultPowerLevels(request.creator, version.privilegedCreators, version.privilegedCreators ? [] : trusted), ...(request.powerLevelContentOverride ?? {}) };
  send("m.room.power_levels", "", powerLevels);
  if (request.canonicalAlias) send("m.room.canonical_alias", "", { alias: request.canonicalAlias });

  const initial = (request.initialState ?? []).map((e) => ({ ...e, state_key: e.state_key ?? "" }));
  const overridden = (type: string) => initial.some((e) => e.type === type && e.state_key === "");
  const presetState = PRESETS[preset];
  if (!overridden("m.room.join_rules")) send("m.room.join_rules", "", { join_rule: presetState.join_rule });
  if (!overridden("m.room.history_visibility")) send("m.room.history_visibility", "", { history_visibility: presetState.history_visibility });
  if (!overridden("m.room.guest_access")) send("m.room.guest_access", "", { guest_access: presetState.guest_access });
  for (const e of initial) send(e.type, e.state_key, e.content);

  if (request.name !== undefined) send("m.room.name", "", { name: request.name });
  if (request.topic !== undefined) send("m.room.topic", "", { topic: request.topic });
  for (const invitee of request.deferInvites ? [] : invitees) {
    send("m.room.member", invitee, { membership: "invite", ...(request.isDirect ? { is_direct: true } : {}) });
  }
  const { roomId } = await engine.createRoomWithEvents(request.creator, versionId, creationContent, events, request.roomId);
  return roomId;
}
