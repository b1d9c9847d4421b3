// Room versions as data: one table of rules per version (content/rooms/v1.md .. v12.md).
// Code asks a RoomVersion for the rule it needs instead of comparing version strings.

/** How an event's ID is obtained (content/rooms/v1.md, v3.md, v4.md). */
export type EventIdFormat =
  /** v1, v2: chosen by the origin server, carried in the PDU; references are [id, {sha256}] pairs. */
  | "server-chosen"
  /** v3: "$" + unpadded standard base64 of the reference hash. */
  | "reference-hash-base64"
  /** v4+: "$" + unpadded URL-safe base64 of the reference hash. */
  | "reference-hash-urlsafe";

export type StateResolutionAlgorithm =
  | "v1" // room version 1
  | "v2" // room versions 2..11
  | "v2.1"; // room version 12 (MSC4297: empty starting state, conflicted subgraph)

/** Which keys the redaction algorithm keeps (content/rooms/fragments/*-redactions.md). */
export interface RedactionRules {
  /** Top-level `origin`, `membership` and `prev_state` are kept (v1..v10; dropped in v11). */
  readonly keepOriginMembershipPrevState: boolean;
  /** `m.room.aliases` keeps `aliases` (v1..v5). */
  readonly keepAliasesContent: boolean;
  /** `m.room.join_rules` keeps `allow` (v8+). */
  readonly keepJoinRulesAllow: boolean;
  /** `m.room.member` keeps `join_authorised_via_users_server` (v9+). */
  readonly keepJoinAuthorisedViaUsersServer: boolean;
  /** `m.room.create` keeps all of its content (v11+) instead of only `creator`. */
  readonly keepAllCreateContent: boolean;
  /** `m.room.power_levels` keeps `invite` (v11+). */
  readonly keepPowerLevelsInvite: boolean;
  /** `m.room.redaction` keeps `content.redacts` (v11+). */
  readonly keepRedactionRedacts: boolean;
  /** `m.room.member` keeps `content.third_party_invite.signed` (v11+). */
  readonly keepThirdPartyInviteSigned: boolean;
}

export interface RoomVersion {
  readonly id: string;
  /** Listed as stable in /capabilities. */
  readonly stable: boolean;
  readonly eventIdFormat: EventIdFormat;
  readonly stateResolution: StateResolutionAlgorithm;
  readonly redaction: RedactionRules;
  /** Ignore a signing key's `valid_until_ts` when false (v1..v4); enforce it from v5. */
  readonly enforceKeyValidity: boolean;
  /** Auth of `m.room.aliases` special-cased by state key (v1..v5). */
  readonly specialCaseAliasesAuth: boolean;
  /** Reject floats and integers outside ±(2^53-1) in PDUs (v6+). */
  readonly strictCanonicalJson: boolean;
  /** `notifications` power levels are checked when changing power levels (v6+). */
  readonly limitNotificationsPowerLevels: boolean;
  /** The `knock` membership and join rule exist (v7+). */
  readonly knocking: boolean;
  /** The `restricted` join rule exists (v8+). */
  readonly restrictedJoinRule: boolean;
  /** The `knock_restricted` join rule exists (v10+). */
  readonly knockRestrictedJoinRule: boolean;
  /** Power level values must be integers, not strings (v10+). */
  readonly integerPowerLevels: boolean;
  /** `m.room.create` has no `creator`; the creator is its sender (v11+). */
  readonly createUsesSender: boolean;
  /** `redacts` lives in the content of `m.room.redaction` (v11+). */
  readonly redactsInContent: boolean;
  /** Room creators (sender + `additional_creators`) have infinite power (v12). */
  readonly privilegedCreators: boolean;
  /** The room ID is "!" + the create event's reference hash; the create event has no room_id (v12). */
  readonly roomIdFromCreateEvent: boolean;
  /** The create event is never listed in auth_events (v12). */
  readonly createEventNotInAuthEvents: boolean;
}

const V1: RoomVersion = {
  id: "1",
  stable: true,
  eventIdFormat: "server-chosen",
  stateResolution: "v1",
  redaction: {
    keepOriginMembershipPrevState: true,
    keepAliasesContent: true,
    keepJoinRulesAllow: false,
    keepJoinAuthorisedViaUsersServer: false,
    keepAllCreateContent: false,
    keepPowerLevelsInvite: false,
    keepRedactionRedacts: false,
    keepThirdPartyInviteSigned: false,
  },
  enforceKeyValidity: false,
  specialCaseAliasesAuth: true,
  strictCanonicalJson: false,
  limitNotificationsPowerLevels: false,
  knocking: false,
  restrictedJoinRule: false,
  knockRestrictedJoinRule: false,
  integerPowerLevels: false,
  createUsesSender: false,
  redactsInContent: false,
  privilegedCreators: false,
  roomIdFromCreateEvent: false,
  createEventNotInAuthEvents: false,
};
const V2: RoomVersion = { ...V1, id: "2", stateResolution: "v2" };
const V3: RoomVersion = { ...V2, id: "3", eventIdFormat: "reference-hash-base64" };
const V4: RoomVersion = { ...V3, id: "4", eventIdFormat: "reference-hash-urlsafe" };
const V5: RoomVersion = { ...V4, id: "5", enforceKeyValidity: true };
const V6: RoomVersion = {
  ...V5,
  id: "6",
  redaction: { ...V5.redaction, keepAliasesContent: false },
  specialCaseAliasesAuth: false,
  strictCanonicalJson: true,
  limitNotificationsPowerLevels: true,
};
const V7: RoomVersion = { ...V6, id: "7", knocking: true };
const V8: RoomVersion = {
  ...V7,
  id: "8",
  redaction: { ...V7.redaction, keepJoinRulesAllow: true },
  restrictedJoinRule: true,
};
const V9: RoomVersion = {
  ...V8,
  id: "9",
  redaction: { ...V8.redaction, keepJoinAuthorisedViaUsersServer: true },
};
const V10: RoomVersion = { ...V9, id: "10", knockRestrictedJoinRule: true, integerPowerLevels: true };
const V11: RoomVersion = {
  ...V10,
  id: "11",
  redaction: {
    ...V10.redaction,
    keepOriginMembershipPrevState: false,
    keepAllCreateContent: true,
    keepPowerLevelsInvite: true,
    keepRedactionRedacts: true,
    keepThirdPartyInviteSigned: true,
  },
  createUsesSender: true,
  redactsInContent: true,
};
const V12: RoomVersion = {
  ...V11,
  id: "12",
  stateResolution: "v2.1",
  privilegedCreators: true,
  roomIdFromCreateEvent: true,
  createEventNotInAuthEvents: true,
};

export const ROOM_VERSIONS: ReadonlyMap<string, RoomVersion> = new Map(
  [V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12].map((v) => [v.id, Object.freeze(v)]),
);

/** The version new rooms get unless asked otherwise (spec recommends 10 as of v1.19's /capabilities default). */
export const DEFAULT_ROOM_VERSION = "10";

/** Looks a room version up by its identifier; undefined for versions this server does not know. */
export function roomVersion(id: string): RoomVersion | undefined {
  return ROOM_VERSIONS.get(id);
}
