// GET /_matrix/client/v1/room_summary/{roomIdOrAlias} (room_summary.yaml, spec 1.15): what a room
// is before joining it. Who may see it follows the spec's "MAY allow" list, as Synapse does:
// anyone (even without a token) for rooms whose join rule is public, knock or knock_restricted or
// whose history is world_readable; members and invitees/knockers otherwise; for restricted rooms
// also users in an allowed room. Anything else is answered like an unknown room (404), so the
// summary does not reveal that a private room exists.
import { MatrixError } from "../../protocol/errors";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import type { RoomAccess } from "../rooms/room-access";
import type { DirectoryService } from "./directory-service";
import { roomChunk, type PublicRoomsChunk } from "./public-rooms";

export type RoomSummary = PublicRoomsChunk & {
  room_version?: string;
  encryption?: string;
  allowed_room_ids?: string[];
  membership?: string;
};

const OPEN_JOIN_RULES = new Set(["public", "knock", "knock_restricted"]);

export class RoomSummaryService {
  constructor(
    private readonly access: RoomAccess,
    private readonly directory: DirectoryService,
  ) {}

  /** The summary of a local room for `userId` (undefined: no access token). */
  async summary(roomIdOrAlias: string, userId: string | undefined): Promise<RoomSummary> {
    const notFound = () => new MatrixError("M_NOT_FOUND", "Room not found.");
    let roomId: string;
    try {
      roomId = (await this.directory.resolveRoomIdOrAlias(roomIdOrAlias)).roomId;
    } catch (error) {
      if (error instanceof MatrixError && (error.errcode === "M_NOT_FOUND" || error.errcode === "M_INVALID_PARAM")) throw notFound();
      throw error;
    }
    const described = await this.describe(roomId, userId);
    if (!described) throw notFound();
    return described;
  }

  /**
   * The summary of a room this server has, or undefined when `userId` may not preview it (the
   * spec's list: member, invited or knocking; public, knock, knock_restricted or world_readable;
   * restricted with an allowed room the user is in).
   */
  async describe(roomId: string, userId: string | undefined): Promise<RoomSummary | undefined> {
    let version;
    try {
      version = await this.access.versionOf(roomId);
    } catch (error) {
      if (error instanceof MatrixError && error.errcode === "M_NOT_FOUND") return undefined;
      throw error;
    }
    const state = async (type: string): Promise<JsonObject | undefined> => (await this.access.engine.currentStateEvent(roomId, type, ""))?.content;
    const chunk = await roomChunk(roomId, (await this.access.joinedMembers(roomId)).length, this.directory.stateReader);
    const allowed = this.allowedRoomIds(await state("m.room.join_rules"));
    const membership = userId === undefined ? undefined : await this.access.membership(roomId, userId);

    const open = OPEN_JOIN_RULES.has(chunk.join_rule) || chunk.world_readable;
    const member = membership === "join" || membership === "invite" || membership === "knock";
    const viaAllowedRoom =
      userId !== undefined && (chunk.join_rule === "restricted" || chunk.join_rule === "knock_restricted") && (await this.joinedToAny(allowed, userId));
    if (!open && !member && !viaAllowedRoom) return undefined;

    const summary: RoomSummary = { ...chunk, room_version: version.id };
    const encryption = (await state("m.room.encryption"))?.algorithm;
    if (typeof encryption === "string") summary.encryption = encryption;
    if (chunk.join_rule === "restricted" || chunk.join_rule === "knock_restricted") summary.allowed_room_ids = allowed;
    if (userId !== undefined) summary.membership = membership ?? "leave";
    return summary;
  }

  /** Whether the user is joined to one of the rooms (checked in order, stopping at the first). */
  private async joinedToAny(roomIds: readonly string[], userId: string): Promise<boolean> {
    for (const id of roomIds) {
      try {
        if ((await this.access.membership(id, userId)) === "join") return true;
      } catch {
        // A room this server cannot read counts as not joined.
      }
    }
    return false;
  }

  private allowedRoomIds(joinRules: JsonObject | undefined): string[] {
    if (!Array.isArray(joinRules?.allow)) return [];
    return joinRules.allow.filter((e): e is JsonObject => isJsonObject(e) && e.type === "m.room_membership" && typeof e.room_id === "string").map((e) => e.room_id as string);
  }
}
