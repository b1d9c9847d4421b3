// The parts of a sync filter (client-server-api "Filtering", definitions/sync_filter.yaml) that
// /sync applies: which rooms, the timeline limit and event filters, the state filter with
// lazy-loaded members, include_leave, and type filters on account data.
import type { Filter } from "../accounts/filter-service";
import { filterAllows, filterAllowsLoading, type RoomEventFilter } from "../rooms/room-event-filter";
import type { StoredEvent } from "../../storage/stores";

export const DEFAULT_TIMELINE_LIMIT = 10;
export const MAX_TIMELINE_LIMIT = 1000;

type RoomFilterPart = NonNullable<NonNullable<Filter["room"]>["timeline"]>;

export interface SyncFilter {
  /** Rooms a room event filter (room.rooms / room.not_rooms) lets through. */
  includesRoom(roomId: string): boolean;
  readonly includeLeave: boolean;
  readonly timelineLimit: number;
  readonly timeline: SectionFilter;
  readonly state: SectionFilter;
  readonly ephemeral: SectionFilter;
  readonly roomAccountData: SectionFilter;
  /** Global account data: only types / not_types matter. */
  readonly accountData: SectionFilter;
  /** Presence: types / not_types and senders / not_senders. */
  readonly presence: { allowsType(type: string): boolean; allowsSender(userId: string): boolean };
  readonly lazyLoadMembers: boolean;
  /** include_redundant_members: with lazy loading, send members again that the client was already sent. */
  readonly includeRedundantMembers: boolean;
  /** event_format "federation": room events as their PDUs (with event_id), not client events. */
  readonly federationFormat: boolean;
}

export interface SectionFilter {
  includesRoom(roomId: string): boolean;
  /** `content` is called only when the filter needs it (contains_url). */
  allows(event: StoredEvent, content: () => Promise<Record<string, unknown>>): Promise<boolean>;
  allowsType(type: string): boolean;
}

function section(part: RoomFilterPart | undefined): SectionFilter {
  const f: RoomEventFilter = {
    types: part?.types,
    not_types: part?.not_types,
    senders: part?.senders,
    not_senders: part?.not_senders,
    contains_url: part?.contains_url,
  };
  return {
    includesRoom: (roomId) => !part?.not_rooms?.includes(roomId) && (part?.rooms === undefined || part.rooms.includes(roomId)),
    allows: (event, content) => filterAllowsLoading(f, event, content),
    allowsType: (type) => filterAllows({ types: f.types, not_types: f.not_types }, { type } as StoredEvent, () => ({})),
  };
}

export function syncFilter(filter: Filter | undefined): SyncFilter {
  const room = filter?.room;
  const limit = room?.timeline?.limit;
  return {
    includesRoom: (roomId) => !room?.not_rooms?.includes(roomId) && (room?.rooms === undefined || room.rooms.includes(roomId)),
    includeLeave: room?.include_leave === true,
    timelineLimit: limit === undefined ? DEFAULT_TIMELINE_LIMIT : Math.max(0, Math.min(MAX_TIMELINE_LIMIT, limit)),
    timeline: section(room?.timeline),
    state: section(room?.state),
    ephemeral: section(room?.ephemeral),
    roomAccountData: section(room?.account_data),
    accountData: section(filter?.account_data),
    presence: {
      allowsType: (type) => section(filter?.presence).allowsType(type),
      allowsSender: (userId) => !filter?.presence?.not_senders?.includes(userId) && (filter?.presence?.senders === undefined || filter.presence.senders.includes(userId)),
    },
    lazyLoadMembers: room?.state?.lazy_load_members === true,
    includeRedundantMembers: room?.state?.include_redundant_members === true,
    federationFormat: filter?.event_format === "federation",
  };
}
