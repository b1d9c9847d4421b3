// The request body of simplified sliding sync (MSC4186) in the form its unstable endpoint takes
// (org.matrix.simplified_msc3575, as Synapse serves it and Element X sends it): lists with `ranges`,
// `required_state` as [type, state_key] pairs with "*", "$LAZY" and "$ME", room subscriptions and
// extensions. Here: the schema, and the room configs a request asks for, combined as the MSC says.
import { Type, type Static } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";

/** The most lists one request may hold (the MSC's limit). */
export const MAX_LISTS = 100;
/** The most timeline events one room may ask for (Synapse's cap). */
export const MAX_TIMELINE_LIMIT = 1000;

const RequiredState = Type.Array(Type.Tuple([Type.String(), Type.String()]));
const TimelineLimit = Type.Integer({ minimum: 0, maximum: MAX_TIMELINE_LIMIT });
const Range = Type.Tuple([Type.Integer({ minimum: 0 }), Type.Integer({ minimum: 0 })]);
const RoomType = Type.Union([Type.String(), Type.Null()]);
// Lists the extension applies to ("*": all) and subscribed rooms ("*": all); Synapse's defaults are ["*"].
const ExtensionScope = { lists: Type.Optional(Type.Array(Type.String())), rooms: Type.Optional(Type.Array(Type.String())) };

export const SlidingSyncBodySchema = Type.Object({
  conn_id: Type.Optional(Type.String({ maxLength: 255 })),
  lists: Type.Optional(
    Type.Record(
      Type.String({ maxLength: 64 }),
      Type.Object({
        ranges: Type.Optional(Type.Array(Range)),
        // The stable MSC's single `range`, taken as well.
        range: Type.Optional(Range),
        required_state: RequiredState,
        timeline_limit: TimelineLimit,
        filters: Type.Optional(
          Type.Object({
            is_dm: Type.Optional(Type.Boolean()),
            is_encrypted: Type.Optional(Type.Boolean()),
            is_invite: Type.Optional(Type.Boolean()),
            // The stable MSC's name for is_invite.
            is_invited: Type.Optional(Type.Boolean()),
            room_types: Type.Optional(Type.Array(RoomType)),
            not_room_types: Type.Optional(Type.Array(RoomType)),
            tags: Type.Optional(Type.Array(Type.String())),
            not_tags: Type.Optional(Type.Array(Type.String())),
          }),
        ),
      }),
    ),
  ),
  room_subscriptions: Type.Optional(Type.Record(Type.String(), Type.Object({ required_state: RequiredState, timeline_limit: TimelineLimit }))),
  extensions: Type.Optional(
    Type.Object({
      to_device: Type.Optional(Type.Object({ enabled: Type.Optional(Type.Boolean()), limit: Type.Optional(Type.Integer({ minimum: 0 })), since: Type.Optional(Type.String({ pattern: "^[0-9]{1,15}$" })) })),
      e2ee: Type.Optional(Type.Object({ enabled: Type.Optional(Type.Boolean()) })),
      account_data: Type.Optional(Type.Object({ enabled: Type.Optional(Type.Boolean()), ...ExtensionScope })),
      receipts: Type.Optional(Type.Object({ enabled: Type.Optional(Type.Boolean()), ...ExtensionScope })),
      typing: Type.Optional(Type.Object({ enabled: Type.Optional(Type.Boolean()), ...ExtensionScope })),
    }),
  ),
});

export type SlidingSyncBody = Static<typeof SlidingSyncBodySchema>;
export type ListConfig = NonNullable<SlidingSyncBody["lists"]>[string];
export type ListFilters = NonNullable<ListConfig["filters"]>;

/**
 * What state a room config asks for. Any entry with a "*" type asks for all state: Synapse takes
 * ["*", "*"] (and ["*", key]) as all of it and ignores the other entries then.
 */
export interface RequiredState {
  readonly all: boolean;
  /** type -> "*" (every state key) or the state keys named ("$ME" already replaced by the user). */
  readonly types: ReadonlyMap<string, "*" | ReadonlySet<string>>;
  /** ["m.room.member", "$LAZY"]: the members of the timeline's senders. */
  readonly lazyMembers: boolean;
}

export interface RoomConfig {
  readonly timelineLimit: number;
  readonly requiredState: RequiredState;
}

export function requiredState(pairs: readonly (readonly [string, string])[], userId: string): RequiredState {
  let all = false;
  let lazyMembers = false;
  const types = new Map<string, "*" | Set<string>>();
  for (const [type, key] of pairs) {
    if (type === "*") {
      all = true;
      continue;
    }
    if (type === "m.room.member" && key === "$LAZY") {
      lazyMembers = true;
      continue;
    }
    const existing = types.get(type);
    if (existing === "*") continue;
    if (key === "*") {
      types.set(type, "*");
      continue;
    }
    const set = existing ?? new Set<string>();
    set.add(key === "$ME" ? userId : key);
    types.set(type, set);
  }
  return { all, types, lazyMembers };
}

export function roomConfig(config: { required_state: readonly (readonly [string, string])[]; timeline_limit: number }, userId: string): RoomConfig {
  return { timelineLimit: config.timeline_limit, requiredState: requiredState(config.required_state, userId) };
}

/** The superset of two configs (MSC4186 "Combining room configs"). */
export function combineConfigs(a: RoomConfig, b: RoomConfig): RoomConfig {
  const types = new Map<string, "*" | Set<string>>();
  for (const source of [a.requiredState.types, b.requiredState.types]) {
    for (const [type, keys] of source) {
      const existing = types.get(type);
      if (existing === "*" || keys === "*") types.set(type, "*");
      else types.set(type, new Set([...(existing ?? []), ...keys]));
    }
  }
  return {
    timelineLimit: Math.max(a.timelineLimit, b.timelineLimit),
    requiredState: { all: a.requiredState.all || b.requiredState.all, types, lazyMembers: a.requiredState.lazyMembers || b.requiredState.lazyMembers },
  };
}

/** Whether a state entry is asked for (lazy members aside). */
export function stateWanted(rs: RequiredState, type: string, stateKey: string): boolean {
  if (rs.all) return true;
  const keys = rs.types.get(type);
  return keys === "*" || (keys !== undefined && keys.has(stateKey));
}

/** Whether reading the room's whole state is needed (wildcards); otherwise the named keys do. */
export function needsWholeState(rs: RequiredState): boolean {
  if (rs.all) return true;
  for (const keys of rs.types.values()) if (keys === "*") return true;
  return false;
}

/** The (type, state_key) pairs named explicitly. */
export function namedKeys(rs: RequiredState): [string, string][] {
  const out: [string, string][] = [];
  for (const [type, keys] of rs.types) if (keys !== "*") for (const key of keys) out.push([type, key]);
  return out;
}

/** A stable text of a required state config, to tell whether it changed between requests. */
export function requiredStateKey(rs: RequiredState): string {
  const types = [...rs.types].map(([type, keys]) => [type, keys === "*" ? "*" : [...keys].sort()] as const).sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  return JSON.stringify([rs.all, rs.lazyMembers, types]);
}

/** The inclusive index ranges of a list ("ranges", or the stable MSC's "range"); 400 when one is backwards. */
export function listRanges(list: ListConfig): [number, number][] {
  const ranges: [number, number][] = [...(list.ranges ?? []), ...(list.range ? [list.range] : [])].map(([a, b]) => [a, b]);
  for (const [start, end] of ranges) if (start > end) throw new MatrixError("M_INVALID_PARAM", `Invalid range [${start}, ${end}]: the start is after the end`);
  return ranges;
}

/** Checks what the schema cannot: the number of lists, the ranges. */
export function checkBody(body: SlidingSyncBody): void {
  const lists = Object.entries(body.lists ?? {});
  if (lists.length > MAX_LISTS) throw new MatrixError("M_INVALID_PARAM", `At most ${MAX_LISTS} lists`);
  for (const [, list] of lists) listRanges(list);
}
