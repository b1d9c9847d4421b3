// Account data (client-server-api "Client Config"): per-user JSON objects, global or per room. Each
// write takes a position in the account data stream, which /sync reads through the store's
// accountDataSince / maxAccountDataStream.
import { MatrixError } from "../../protocol/errors";
import { parseRoomId, utf8Length } from "../../protocol/identifiers";
import type { AccountDataStore } from "../../storage/stores";

/** Called after a write, with the stream position it took (for waking /sync long-polls). */
export type AccountDataListener = (userId: string, roomId: string | undefined, type: string, streamPosition: number) => void;

/** Types the server manages itself; clients set them through their own APIs (read markers, push rules). */
const SERVER_MANAGED = new Set(["m.fully_read", "m.push_rules"]);
const MAX_TYPE_BYTES = 255;

function tagsOf(content: Record<string, unknown> | undefined): Record<string, unknown> {
  const tags = content?.tags;
  return tags !== null && typeof tags === "object" && !Array.isArray(tags) ? (tags as Record<string, unknown>) : {};
}

export class AccountDataService {
  private readonly listeners: AccountDataListener[] = [];

  constructor(private readonly store: AccountDataStore) {}

  onChange(listener: AccountDataListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** 404 M_NOT_FOUND when nothing is stored. */
  async get(requesterId: string, userId: string, roomId: string | undefined, type: string): Promise<Record<string, unknown>> {
    this.check(requesterId, userId, roomId, type);
    const content = await this.store.getAccountData(userId, roomId, type);
    if (!content) throw new MatrixError("M_NOT_FOUND", "Account data not found");
    return content;
  }

  /** A write by the client; refuses the types the server manages (405 M_BAD_JSON, account-data.yaml). */
  async put(requesterId: string, userId: string, roomId: string | undefined, type: string, content: Record<string, unknown>): Promise<number> {
    this.check(requesterId, userId, roomId, type);
    if (SERVER_MANAGED.has(type)) throw new MatrixError("M_BAD_JSON", `Cannot set ${type} through this API.`, 405);
    return this.write(userId, roomId, type, content);
  }

  /** A write by the server itself (push rules, read markers): no ownership or type checks. */
  async write(userId: string, roomId: string | undefined, type: string, content: Record<string, unknown>): Promise<number> {
    const position = await this.store.putAccountData(userId, roomId, type, content);
    for (const listener of [...this.listeners]) listener(userId, roomId, type, position);
    return position;
  }

  // Room tags (client-server-api "Room Tagging"): kept as the room's m.tag account data, which /sync
  // already carries, as {tags: {name: {order?}}}.

  /** GET .../tags: the room's tags ({} when none). */
  async tags(requesterId: string, userId: string, roomId: string): Promise<{ tags: Record<string, unknown> }> {
    this.check(requesterId, userId, roomId, "m.tag");
    return { tags: tagsOf(await this.store.getAccountData(userId, roomId, "m.tag")) };
  }

  /** PUT .../tags/{tag}: adds or replaces one tag; `order`, when given, must be a number. */
  async setTag(requesterId: string, userId: string, roomId: string, tag: string, content: Record<string, unknown>): Promise<void> {
    this.check(requesterId, userId, roomId, "m.tag");
    if (tag.length === 0 || utf8Length(tag) > MAX_TYPE_BYTES) throw new MatrixError("M_INVALID_PARAM", "Invalid tag name");
    if (content.order !== undefined && (typeof content.order !== "number" || !Number.isFinite(content.order))) throw new MatrixError("M_INVALID_PARAM", "order must be a number");
    const tags = tagsOf(await this.store.getAccountData(userId, roomId, "m.tag"));
    await this.write(userId, roomId, "m.tag", { tags: { ...tags, [tag]: content } });
  }

  /** DELETE .../tags/{tag}: removes one tag (a tag that is not there is no error, as in Synapse). */
  async deleteTag(requesterId: string, userId: string, roomId: string, tag: string): Promise<void> {
    this.check(requesterId, userId, roomId, "m.tag");
    const tags = tagsOf(await this.store.getAccountData(userId, roomId, "m.tag"));
    if (!(tag in tags)) return;
    const { [tag]: _removed, ...rest } = tags;
    await this.write(userId, roomId, "m.tag", { tags: rest });
  }

  /** The users a user ignores (client-server-api "Ignoring Users": m.ignored_user_list), never themself. */
  async ignoredUsers(userId: string): Promise<ReadonlySet<string>> {
    const users = (await this.store.getAccountData(userId, undefined, "m.ignored_user_list"))?.ignored_users;
    return users !== null && typeof users === "object" && !Array.isArray(users) ? new Set(Object.keys(users).filter((u) => u !== userId)) : new Set<string>();
  }

  /** What the server stored itself, without the requester checks. */
  read(userId: string, roomId: string | undefined, type: string): Promise<Record<string, unknown> | undefined> {
    return this.store.getAccountData(userId, roomId, type);
  }

  /** For /sync: entries written after `sinceStream`, global and per room. */
  since(userId: string, sinceStream: number) {
    return this.store.accountDataSince(userId, sinceStream);
  }

  /** For /sync tokens: the current end of the account data stream. */
  maxStream(): Promise<number> {
    return this.store.maxAccountDataStream();
  }

  private check(requesterId: string, userId: string, roomId: string | undefined, type: string): void {
    if (requesterId !== userId) throw new MatrixError("M_FORBIDDEN", "Cannot access account data of other users.");
    if (roomId !== undefined) {
      const parsed = parseRoomId(roomId);
      if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `Invalid room ID: ${parsed.error}`);
    }
    if (type.length === 0 || utf8Length(type) > MAX_TYPE_BYTES) throw new MatrixError("M_INVALID_PARAM", "Invalid account data type");
  }
}
