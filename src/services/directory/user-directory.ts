// The user directory (client-server-api "User directory"): POST /user_directory/search finds users
// by user ID or display name among those the searcher may know of. The spec leaves the set to the
// server; as Synapse does by default (user_directory.search_all_users off): users in public rooms
// (join rule "public" or history visibility "world_readable", whether published or not) and users
// who share a private room with the searcher. The searcher is found only through a public room, as
// in Synapse (one shares no private room with oneself). Read from current room state when asked (no
// separate index), so the public rooms looked at are those the searcher is in and those of the
// published room directory: a public room that is neither is not searched, unlike Synapse. At most
// MAX_CANDIDATES users are looked at per search.
import { MatrixError } from "../../protocol/errors";
import { serverNameOf } from "../../protocol/identifiers";
import type { ProfileStore, RoomDirectoryStore, RoomEventStore } from "../../storage/stores";
import type { RoomEngine } from "../rooms/room-engine";

export interface UserDirectoryResult {
  user_id: string;
  display_name?: string;
  avatar_url?: string;
}

const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 100;
const MAX_CANDIDATES = 5_000;

export class UserDirectoryService {
  constructor(
    private readonly deps: {
      serverName: string;
      store: Pick<RoomEventStore, "roomsWithMembership" | "currentMemberships">;
      engine: Pick<RoomEngine, "currentStateEvent">;
      directory: Pick<RoomDirectoryStore, "publishedRooms">;
      profiles: Pick<ProfileStore, "getProfile">;
    },
  ) {}

  async search(searcher: string, term: string, limit = DEFAULT_LIMIT): Promise<{ results: UserDirectoryResult[]; limited: boolean }> {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new MatrixError("M_INVALID_PARAM", "limit must be a non-negative integer");
    const wanted = Math.min(limit, MAX_LIMIT);
    const needle = term.trim().toLowerCase();
    // Where each candidate was seen (a room to read their member event from).
    const seenIn = new Map<string, string>();
    const shared = new Set(await this.deps.store.roomsWithMembership(searcher, "join"));
    const rooms = new Set([...shared, ...(await this.deps.directory.publishedRooms()).map((r) => r.roomId)]);
    scan: for (const roomId of rooms) {
      const isPublic = await this.isPublicRoom(roomId);
      // A published room that is not public shows its members only to those who share it.
      if (!isPublic && !shared.has(roomId)) continue;
      for (const [userId, membership] of await this.deps.store.currentMemberships(roomId)) {
        if (membership !== "join" || seenIn.has(userId)) continue;
        if (!isPublic && userId === searcher) continue;
        seenIn.set(userId, roomId);
        if (seenIn.size >= MAX_CANDIDATES) break scan;
      }
    }
    const matches: UserDirectoryResult[] = [];
    for (const [userId, roomId] of seenIn) {
      const profile = await this.profileOf(userId, roomId);
      const name = profile.display_name?.toLowerCase() ?? "";
      if (needle !== "" && !userId.toLowerCase().includes(needle) && !name.includes(needle)) continue;
      matches.push(profile);
    }
    // Closest first: an ID or name that starts with the term, then the rest, each alphabetically.
    const starts = (r: UserDirectoryResult) => r.user_id.slice(1).toLowerCase().startsWith(needle) || (r.display_name ?? "").toLowerCase().startsWith(needle);
    matches.sort((a, b) => Number(starts(b)) - Number(starts(a)) || (a.user_id < b.user_id ? -1 : a.user_id > b.user_id ? 1 : 0));
    return { results: matches.slice(0, wanted), limited: matches.length > wanted };
  }

  /** Public for the directory, as Synapse counts it: anyone may join, or anyone may read. */
  private async isPublicRoom(roomId: string): Promise<boolean> {
    const [joinRules, visibility] = await Promise.all([
      this.deps.engine.currentStateEvent(roomId, "m.room.join_rules", ""),
      this.deps.engine.currentStateEvent(roomId, "m.room.history_visibility", ""),
    ]);
    return joinRules?.content.join_rule === "public" || visibility?.content.history_visibility === "world_readable";
  }

  /** A local user's own profile; another server's user as their member event in the room shows them. */
  private async profileOf(userId: string, roomId: string): Promise<UserDirectoryResult> {
    let fields: Record<string, unknown>;
    if (serverNameOf(userId) === this.deps.serverName) fields = await this.deps.profiles.getProfile(userId);
    else {
      const content = (await this.deps.engine.currentStateEvent(roomId, "m.room.member", userId))?.content ?? {};
      fields = { displayname: content.displayname, avatar_url: content.avatar_url };
    }
    return {
      user_id: userId,
      ...(typeof fields.displayname === "string" ? { display_name: fields.displayname } : {}),
      ...(typeof fields.avatar_url === "string" ? { avatar_url: fields.avatar_url } : {}),
    };
  }
}
