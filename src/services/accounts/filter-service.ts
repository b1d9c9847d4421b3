// Sync filters (client-server-api "Filtering"): uploaded once, named by id in /sync and /messages.
import { Type, type Static } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { FilterStore } from "../../storage/stores";

const StringList = Type.Array(Type.String());
// Room and user ids in a filter are checked for their sigil (and a user id for its server name), as
// Synapse does: a filter naming "not_a_room_id" is a client's mistake better told at upload.
// (Room ids of version 12 rooms have no server name.)
const RoomIdList = Type.Array(Type.String({ pattern: "^![^\\s]+$" }));
const UserIdList = Type.Array(Type.String({ pattern: "^@[^:\\s]*:[^\\s]+$" }));

/** definitions/event_filter.yaml */
export const EventFilterSchema = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 0 })),
  not_senders: Type.Optional(UserIdList),
  not_types: Type.Optional(StringList),
  senders: Type.Optional(UserIdList),
  types: Type.Optional(StringList),
});

/** definitions/room_event_filter.yaml */
export const RoomEventFilterSchema = Type.Composite([
  EventFilterSchema,
  Type.Object({
    unread_thread_notifications: Type.Optional(Type.Boolean()),
    lazy_load_members: Type.Optional(Type.Boolean()),
    include_redundant_members: Type.Optional(Type.Boolean()),
    not_rooms: Type.Optional(RoomIdList),
    rooms: Type.Optional(RoomIdList),
    contains_url: Type.Optional(Type.Boolean()),
  }),
]);

/** definitions/sync_filter.yaml; unknown keys are allowed and kept. */
export const FilterSchema = Type.Object({
  event_fields: Type.Optional(StringList),
  event_format: Type.Optional(Type.Union([Type.Literal("client"), Type.Literal("federation")])),
  presence: Type.Optional(EventFilterSchema),
  account_data: Type.Optional(EventFilterSchema),
  room: Type.Optional(
    Type.Object({
      not_rooms: Type.Optional(RoomIdList),
      rooms: Type.Optional(RoomIdList),
      ephemeral: Type.Optional(RoomEventFilterSchema),
      include_leave: Type.Optional(Type.Boolean()),
      state: Type.Optional(RoomEventFilterSchema),
      timeline: Type.Optional(RoomEventFilterSchema),
      account_data: Type.Optional(RoomEventFilterSchema),
    }),
  ),
});

export type Filter = Static<typeof FilterSchema>;

export class FilterService {
  constructor(private readonly store: FilterStore) {}

  /** Stores a filter the caller has validated against FilterSchema; returns its id. */
  async create(requesterId: string, userId: string, filter: Filter): Promise<string> {
    this.requireSelf(requesterId, userId, "upload");
    return this.store.createFilter(userId, JSON.stringify(filter));
  }

  /** 404 M_NOT_FOUND for an id the user never got. */
  async get(requesterId: string, userId: string, filterId: string): Promise<Filter> {
    this.requireSelf(requesterId, userId, "download");
    const json = await this.store.getFilter(userId, filterId);
    if (json === undefined) throw new MatrixError("M_NOT_FOUND", "No such filter");
    return JSON.parse(json) as Filter;
  }

  private requireSelf(requesterId: string, userId: string, what: string): void {
    if (requesterId !== userId) throw new MatrixError("M_FORBIDDEN", `Cannot ${what} filters for other users`);
  }
}
