// GET/POST /publicRooms (client-server-api "Published room directory"): the published rooms as
// PublishedRoomsChunk entries, filtered by generic_search_term and room_types, ordered by joined
// members (most first, then room ID, a stable order), and paged by keyset tokens: a token names the
// (members, room ID) of the page's edge, so rooms joining or leaving the list between two requests
// never make a page repeat or skip a room that stayed put.
import { MatrixError } from "../../protocol/errors";
import type { JsonObject } from "../../protocol/json";
import type { PublishedRoom } from "../../storage/stores";

export const DEFAULT_PUBLIC_ROOMS_LIMIT = 100;
export const MAX_PUBLIC_ROOMS_LIMIT = 500;

export interface PublicRoomsRequest {
  /** undefined: DEFAULT_PUBLIC_ROOMS_LIMIT; 0 answers only the counts and tokens. */
  limit?: number;
  since?: string;
  filter?: {
    genericSearchTerm?: string;
    /** Room types to keep; null keeps rooms without a type. */
    roomTypes?: (string | null)[];
  };
  /** A third-party network: the list of the application service's network (none: nothing matches). */
  thirdPartyInstanceId?: string;
  /** This server's list and every network's. */
  includeAllNetworks?: boolean;
}

export interface PublicRoomsChunk {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  join_rule: string;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  room_type?: string;
}

export interface PublicRoomsResponse {
  chunk: PublicRoomsChunk[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate: number;
}

export interface RoomStateReader {
  /** The content of a current state event, if the room has one. */
  state(roomId: string, type: string, stateKey: string): Promise<JsonObject | undefined>;
  localAliases(roomId: string): Promise<string[]>;
}

interface Entry {
  chunk: PublicRoomsChunk;
  /** Lower-cased text generic_search_term is matched against. */
  searchable: string[];
}

type Key = readonly [members: number, roomId: string];

/** Order: most joined members first, then room ID ascending. */
function compare(a: Key, b: Key): number {
  if (a[0] !== b[0]) return b[0] - a[0];
  return a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

/** Keys that sort before and after every room. */
const BEFORE_ALL: Key = [Number.MAX_SAFE_INTEGER, ""];
const AFTER_ALL: Key = [-1, ""];

const keyOf = (chunk: PublicRoomsChunk): Key => [chunk.num_joined_members, chunk.room_id];

function encodeToken(direction: "n" | "p", key: Key): string {
  return direction + Buffer.from(JSON.stringify(key)).toString("base64url");
}

function decodeToken(token: string): { direction: "n" | "p"; key: Key } {
  const direction = token[0];
  if (direction === "n" || direction === "p") {
    try {
      const key = JSON.parse(Buffer.from(token.slice(1), "base64url").toString("utf8"));
      if (Array.isArray(key) && key.length === 2 && Number.isSafeInteger(key[0]) && typeof key[1] === "string") {
        return { direction, key: [key[0], key[1]] };
      }
    } catch {
      /* falls through to the error below */
    }
  }
  throw new MatrixError("M_INVALID_PARAM", "Invalid pagination token (since)");
}

const stringField = (content: JsonObject | undefined, field: string): string | undefined => {
  const value = content?.[field];
  return typeof value === "string" && value.length > 0 ? value : undefined;
};

/** The plain-text topic: the text/plain representation in m.topic, else the `topic` string. */
function plainTopic(content: JsonObject | undefined): string | undefined {
  const block = content?.["m.topic"];
  const texts = block && typeof block === "object" && !Array.isArray(block) ? (block as JsonObject)["m.text"] : undefined;
  if (Array.isArray(texts)) {
    for (const t of texts) {
      if (!t || typeof t !== "object" || Array.isArray(t)) continue;
      const mimetype = (t as JsonObject).mimetype ?? "text/plain";
      const body = (t as JsonObject).body;
      if (mimetype === "text/plain" && typeof body === "string") return body;
    }
  }
  return stringField(content, "topic");
}

/** The directory's description of one room (also the base of /room_summary and /hierarchy). */
export async function roomChunk(roomId: string, joinedMembers: number, reader: RoomStateReader): Promise<PublicRoomsChunk> {
  return (await entryOf({ roomId, joinedMembers } as PublishedRoom, reader)).chunk;
}

/** The state types a room's description reads (all with state key ""). */
const DESCRIBED_TYPES = [
  "m.room.history_visibility",
  "m.room.guest_access",
  "m.room.join_rules",
  "m.room.name",
  "m.room.topic",
  "m.room.canonical_alias",
  "m.room.avatar",
  "m.room.create",
] as const;

async function entryOf(room: PublishedRoom, reader: RoomStateReader): Promise<Entry> {
  const [contents, localAliases] = await Promise.all([
    Promise.all(DESCRIBED_TYPES.map((type) => reader.state(room.roomId, type, ""))),
    reader.localAliases(room.roomId),
  ]);
  const byType = new Map<string, JsonObject | undefined>(DESCRIBED_TYPES.map((type, i) => [type, contents[i]]));
  const state = (type: (typeof DESCRIBED_TYPES)[number]) => byType.get(type);
  const chunk: PublicRoomsChunk = {
    room_id: room.roomId,
    num_joined_members: room.joinedMembers,
    world_readable: state("m.room.history_visibility")?.history_visibility === "world_readable",
    guest_can_join: state("m.room.guest_access")?.guest_access === "can_join",
    // No m.room.join_rules event means "invite" under the auth rules; the chunk's absent value would mean "public".
    join_rule: stringField(state("m.room.join_rules"), "join_rule") ?? "invite",
  };
  const name = stringField(state("m.room.name"), "name");
  if (name !== undefined) chunk.name = name;
  const topic = plainTopic(state("m.room.topic"));
  if (topic !== undefined) chunk.topic = topic;
  const canonical = state("m.room.canonical_alias");
  const alias = stringField(canonical, "alias");
  if (alias !== undefined && alias.startsWith("#")) chunk.canonical_alias = alias;
  const avatar = stringField(state("m.room.avatar"), "url");
  if (avatar !== undefined) chunk.avatar_url = avatar;
  const roomType = stringField(state("m.room.create"), "type");
  if (roomType !== undefined) chunk.room_type = roomType;

  const altAliases = Array.isArray(canonical?.alt_aliases) ? canonical.alt_aliases.filter((a): a is string => typeof a === "string") : [];
  const searchable = [name, topic, alias, ...altAliases, ...localAliases]
    .filter((s): s is string => s !== undefined)
    .map((s) => s.toLowerCase());
  return { chunk, searchable };
}

function matches(entry: Entry, filter: PublicRoomsRequest["filter"]): boolean {
  if (filter?.roomTypes !== undefined) {
    const type = entry.chunk.room_type ?? null;
    if (!filter.roomTypes.includes(type)) return false;
  }
  const term = filter?.genericSearchTerm?.trim().toLowerCase();
  if (term) {
    // A room ID matches only exactly (as in Synapse); text fields by case-insensitive substring.
    if (entry.chunk.room_id.toLowerCase() !== term && !entry.searchable.some((s) => s.includes(term))) return false;
  }
  return true;
}

export async function listPublicRooms(published: readonly PublishedRoom[], request: PublicRoomsRequest, reader: RoomStateReader): Promise<PublicRoomsResponse> {
  const limit = Math.min(request.limit ?? DEFAULT_PUBLIC_ROOMS_LIMIT, MAX_PUBLIC_ROOMS_LIMIT);
  if (!Number.isSafeInteger(limit) || limit < 0) throw new MatrixError("M_INVALID_PARAM", "limit must be a non-negative integer");
  const since = request.since ? decodeToken(request.since) : undefined;
  if (request.thirdPartyInstanceId !== undefined) return { chunk: [], total_room_count_estimate: 0 };

  // One room at a time: a large directory must not put thousands of reads in flight at once.
  const entries: Entry[] = [];
  for (const room of published) entries.push(await entryOf(room, reader));
  const rooms = entries
    .filter((entry) => matches(entry, request.filter))
    .map((entry) => entry.chunk)
    .sort((a, b) => compare(keyOf(a), keyOf(b)));

  // The page's first index: after the key of a forward token; `limit` rooms before the key of a backward one.
  let start = 0;
  if (since?.direction === "n") {
    start = rooms.findIndex((room) => compare(keyOf(room), since.key) > 0);
    if (start < 0) start = rooms.length;
  } else if (since?.direction === "p") {
    let end = rooms.findIndex((room) => compare(keyOf(room), since.key) >= 0);
    if (end < 0) end = rooms.length;
    start = Math.max(0, end - limit);
  }
  const chunk = rooms.slice(start, start + limit);
  const response: PublicRoomsResponse = { chunk, total_room_count_estimate: rooms.length };
  // Edge keys of an empty page (limit 0, or past the end): just before / after the position it stands at.
  const before = start > 0 ? keyOf(rooms[start - 1]!) : BEFORE_ALL;
  const at = start < rooms.length ? keyOf(rooms[start]!) : AFTER_ALL;
  if (start + chunk.length < rooms.length) response.next_batch = encodeToken("n", chunk.length ? keyOf(chunk[chunk.length - 1]!) : before);
  if (start > 0) response.prev_batch = encodeToken("p", chunk.length ? keyOf(chunk[0]!) : at);
  return response;
}
