// GET /_matrix/client/v1/rooms/{roomId}/hierarchy (space_hierarchy.yaml): a breadth-first walk of
// m.space.child links from a space, listing each room the user may preview (the same rules as the
// room summary, so knock and knock_restricted rooms are listed as knockable). Local rooms only:
// children on other servers need federation and are left out.
import { MatrixError } from "../../protocol/errors";
import { compareCodePoints } from "../../protocol/canonical-json";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import { splitStateKey } from "../../protocol/events";
import type { RoomAccess } from "../rooms/room-access";
import type { RoomSummary, RoomSummaryService } from "./room-summary";

export const DEFAULT_HIERARCHY_LIMIT = 50;
export const MAX_HIERARCHY_LIMIT = 100;
export const DEFAULT_MAX_DEPTH = 5;
export const MAX_MAX_DEPTH = 10;

export interface HierarchyRequest {
  suggestedOnly: boolean;
  limit?: number;
  maxDepth?: number;
  from?: string;
}

interface Token {
  offset: number;
  maxDepth: number;
  suggestedOnly: boolean;
}

type ChildEvent = { type: string; state_key: string; sender: string; content: JsonObject; origin_server_ts: number };

export class SpaceHierarchyService {
  constructor(
    private readonly access: RoomAccess,
    private readonly summaries: RoomSummaryService,
  ) {}

  async hierarchy(roomId: string, userId: string, request: HierarchyRequest): Promise<{ rooms: (RoomSummary & { children_state: ChildEvent[] })[]; next_batch?: string }> {
    const limit = request.limit ?? DEFAULT_HIERARCHY_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1) throw new MatrixError("M_INVALID_PARAM", "limit must be an integer greater than zero");
    const maxDepth = request.maxDepth ?? DEFAULT_MAX_DEPTH;
    if (!Number.isSafeInteger(maxDepth) || maxDepth < 0) throw new MatrixError("M_INVALID_PARAM", "max_depth must be a non-negative integer");
    let offset = 0;
    if (request.from !== undefined) {
      const token = decodeToken(request.from);
      if (token.maxDepth !== Math.min(maxDepth, MAX_MAX_DEPTH) || token.suggestedOnly !== request.suggestedOnly) {
        throw new MatrixError("M_INVALID_PARAM", "suggested_only and max_depth cannot change on paginated requests");
      }
      offset = token.offset;
    }
    if (!(await this.summaries.describe(roomId, userId))) throw new MatrixError("M_FORBIDDEN", "You are not allowed to view this room.");

    const all = await this.walk(roomId, userId, Math.min(maxDepth, MAX_MAX_DEPTH), request.suggestedOnly);
    const page = all.slice(offset, offset + Math.min(limit, MAX_HIERARCHY_LIMIT));
    const next = offset + page.length;
    const result: { rooms: typeof page; next_batch?: string } = { rooms: page };
    if (next < all.length) result.next_batch = encodeToken({ offset: next, maxDepth: Math.min(maxDepth, MAX_MAX_DEPTH), suggestedOnly: request.suggestedOnly });
    return result;
  }

  private async walk(root: string, userId: string, maxDepth: number, suggestedOnly: boolean) {
    const rooms: (RoomSummary & { children_state: ChildEvent[] })[] = [];
    const seen = new Set<string>([root]);
    let layer = [root];
    for (let depth = 0; layer.length > 0; depth++) {
      const nextLayer: string[] = [];
      for (const roomId of layer) {
        const summary = await this.summaries.describe(roomId, userId);
        if (!summary) continue;
        const children = await this.childEvents(roomId);
        rooms.push({ ...summary, children_state: children });
        if (depth >= maxDepth) continue;
        for (const child of children) {
          if (suggestedOnly && child.content.suggested !== true) continue;
          if (!seen.has(child.state_key)) {
            seen.add(child.state_key);
            nextLayer.push(child.state_key);
          }
        }
      }
      layer = nextLayer;
    }
    return rooms;
  }

  /**
   * A space's m.space.child events with a non-empty `via` (an empty one removes the link), in the
   * spec's order: by `order` (valid strings first), then origin_server_ts, then room ID.
   */
  private async childEvents(roomId: string): Promise<ChildEvent[]> {
    const out: ChildEvent[] = [];
    for (const key of (await this.access.store.currentState(roomId)).keys()) {
      const [type, stateKey] = splitStateKey(key);
      if (type !== "m.space.child") continue;
      const event = await this.access.engine.currentStateEvent(roomId, type, stateKey);
      if (!event || !Array.isArray(event.content.via) || event.content.via.length === 0) continue;
      out.push({ type, state_key: stateKey, sender: event.sender, content: event.content, origin_server_ts: event.origin_server_ts });
    }
    const order = (e: ChildEvent) => {
      const o = e.content.order;
      return typeof o === "string" && o.length <= 50 && /^[\x20-\x7E]*$/.test(o) ? o : undefined;
    };
    return out.sort((a, b) => {
      const oa = order(a);
      const ob = order(b);
      if (oa !== undefined && ob === undefined) return -1;
      if (oa === undefined && ob !== undefined) return 1;
      if (oa !== undefined && ob !== undefined && oa !== ob) return compareCodePoints(oa, ob);
      if (a.origin_server_ts !== b.origin_server_ts) return a.origin_server_ts - b.origin_server_ts;
      return compareCodePoints(a.state_key, b.state_key);
    });
  }
}

function encodeToken(token: Token): string {
  return Buffer.from(JSON.stringify(token)).toString("base64url");
}

function decodeToken(text: string): Token {
  try {
    const t = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
    if (isJsonObject(t) && Number.isSafeInteger(t.offset) && (t.offset as number) >= 0 && Number.isSafeInteger(t.maxDepth) && typeof t.suggestedOnly === "boolean") {
      return { offset: t.offset as number, maxDepth: t.maxDepth as number, suggestedOnly: t.suggestedOnly };
    }
  } catch {
    /* falls through */
  }
  throw new MatrixError("M_INVALID_PARAM", "Unknown pagination token (from)");
}
