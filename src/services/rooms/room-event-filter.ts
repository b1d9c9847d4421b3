// RoomEventFilter (client-server-api "Filtering"), the parts /messages and /context apply: types,
// not_types (with "*" wildcards), senders, not_senders, contains_url and limit.
import { MatrixError } from "../../protocol/errors";
import type { StoredEvent } from "../../storage/stores";

export interface RoomEventFilter {
  types?: string[];
  not_types?: string[];
  senders?: string[];
  not_senders?: string[];
  contains_url?: boolean;
  limit?: number;
  /** /messages and /context: `state` holds the member events of the senders in the answer. */
  lazy_load_members?: boolean;
  include_redundant_members?: boolean;
}

const stringList = (value: unknown, name: string): string[] | undefined => {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) throw new MatrixError("M_INVALID_PARAM", `filter.${name} must be a list of strings`);
  return value as string[];
};

/** Parses the JSON `filter` query parameter; M_INVALID_PARAM when it is not a filter object. */
export function parseRoomEventFilter(text: string | undefined): RoomEventFilter {
  if (text === undefined || text === "") return {};
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new MatrixError("M_INVALID_PARAM", "filter is not valid JSON");
  }
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new MatrixError("M_INVALID_PARAM", "filter must be a JSON object");
  const r = raw as Record<string, unknown>;
  const filter: RoomEventFilter = {
    types: stringList(r.types, "types"),
    not_types: stringList(r.not_types, "not_types"),
    senders: stringList(r.senders, "senders"),
    not_senders: stringList(r.not_senders, "not_senders"),
  };
  if (r.contains_url !== undefined) {
    if (typeof r.contains_url !== "boolean") throw new MatrixError("M_INVALID_PARAM", "filter.contains_url must be a boolean");
    filter.contains_url = r.contains_url;
  }
  for (const key of ["lazy_load_members", "include_redundant_members"] as const) {
    if (r[key] === undefined) continue;
    if (typeof r[key] !== "boolean") throw new MatrixError("M_INVALID_PARAM", `filter.${key} must be a boolean`);
    filter[key] = r[key];
  }
  if (r.limit !== undefined) {
    if (!Number.isInteger(r.limit) || (r.limit as number) < 1) throw new MatrixError("M_INVALID_PARAM", "filter.limit must be a positive integer");
    filter.limit = r.limit as number;
  }
  return filter;
}

const typeMatches = (pattern: string, type: string): boolean => {
  if (!pattern.includes("*")) return pattern === type;
  const regex = new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
  return regex.test(type);
};

/** Whether an event passes the filter; `content` is only read for contains_url. */
export function filterAllows(filter: RoomEventFilter, event: StoredEvent, content: () => Record<string, unknown>): boolean {
  if (filter.not_types?.some((p) => typeMatches(p, event.type))) return false;
  if (filter.types && !filter.types.some((p) => typeMatches(p, event.type))) return false;
  if (filter.not_senders?.includes(event.sender)) return false;
  if (filter.senders && !filter.senders.includes(event.sender)) return false;
  if (filter.contains_url !== undefined && (typeof content().url === "string") !== filter.contains_url) return false;
  return true;
}

/** filterAllows for callers that load content asynchronously: it is loaded only when contains_url needs it. */
export async function filterAllowsLoading(filter: RoomEventFilter, event: StoredEvent, content: () => Promise<Record<string, unknown>>): Promise<boolean> {
  const { contains_url, ...rest } = filter;
  if (!filterAllows(rest, event, () => ({}))) return false;
  if (contains_url === undefined) return true;
  const loaded = await content();
  return filterAllows({ contains_url }, event, () => loaded);
}
