// A tiny room for auth-rule tests: builds unsigned RoomEvents with made-up IDs and keeps a state
// map to authorise them against. No hashing or signing: the auth rules do not look at either.

import { expect } from "bun:test";
import { authorizeEvent, type AuthChecks, type AuthResult, type AuthStateLookup } from "../../src/protocol/auth";
import type { RoomEvent } from "../../src/protocol/events";
import type { JsonObject } from "../../src/protocol/json";
import { ROOM_VERSIONS, type RoomVersion } from "../../src/protocol/room-versions";

export const ALICE = "@alice:a.example";
export const BOB = "@bob:b.example";
export const CAROL = "@carol:c.example";
export const DAVE = "@dave:a.example";

export const ALL_VERSIONS: readonly RoomVersion[] = [...ROOM_VERSIONS.values()];
export const versionsWhere = (pick: (v: RoomVersion) => boolean): RoomVersion[] => ALL_VERSIONS.filter(pick);
export const version = (id: string): RoomVersion => {
  const v = ROOM_VERSIONS.get(id);
  if (!v) throw new Error(`unknown room version ${id}`);
  return v;
};

let counter = 0;
/** A fresh event ID in the version's shape (v1/v2 carry a server name, later ones a 43-char hash). */
export function fakeEventId(v: RoomVersion, server = "a.example"): string {
  counter += 1;
  if (v.eventIdFormat === "server-chosen") return `$ev${counter}:${server}`;
  return `$${`ev${counter}`.padEnd(43, "A")}`;
}

export interface EventSpec {
  type: string;
  sender: string;
  state_key?: string;
  content?: JsonObject;
  prev_events?: string[];
  auth_events?: string[];
  room_id?: string;
  redacts?: string;
  event_id?: string;
}

export interface RoomOptions {
  creator?: string;
  /** Extra content for the create event (e.g. m.federate, additional_creators). */
  createContent?: JsonObject;
  /** Join rule set at creation; undefined = "invite". */
  joinRule?: string;
  /** Only the create event: no creator join, power levels or join rules. */
  bare?: boolean;
  /** Power levels at creation; default gives the creator 100 (v12: creators are implicit). */
  powerLevels?: JsonObject;
}

const key = (type: string, stateKey: string) => `${type}\u0000${stateKey}`;

export class AuthRoom {
  readonly version: RoomVersion;
  readonly roomId: string;
  readonly create: RoomEvent;
  readonly creator: string;
  private readonly state = new Map<string, RoomEvent>();
  private last: string;
  private depth = 1;

  constructor(versionId: string, options: RoomOptions = {}) {
    this.version = version(versionId);
    this.creator = options.creator ?? ALICE;
    const v = this.version;
    const createId = fakeEventId(v);
    this.roomId = v.roomIdFromCreateEvent ? `!${createId.slice(1)}` : "!room:a.example";
    const createContent: JsonObject = { room_version: v.id, ...(options.createContent ?? {}) };
    if (!v.createUsesSender) createContent.creator = this.creator;
    this.create = {
      event_id: createId,
      ...(v.roomIdFromCreateEvent ? {} : { room_id: this.roomId }),
      type: "m.room.create",
      state_key: "",
      sender: this.creator,
      content: createContent,
      origin_server_ts: 1,
      depth: 1,
      prev_events: [],
      auth_events: [],
    };
    this.state.set(key("m.room.create", ""), this.create);
    this.last = createId;
    if (options.bare) return;
    this.force(this.member(this.creator, this.creator, "join"));
    const users: JsonObject = v.privilegedCreators ? {} : { [this.creator]: 100 };
    this.force(this.stateEvent("m.room.power_levels", "", this.creator, options.powerLevels ?? { users }));
    this.force(this.stateEvent("m.room.join_rules", "", this.creator, { join_rule: options.joinRule ?? "invite" }));
  }

  /** The room state as an auth lookup. */
  readonly lookup: AuthStateLookup = (type, stateKey) => this.state.get(key(type, stateKey));

  get(type: string, stateKey = ""): RoomEvent | undefined {
    return this.state.get(key(type, stateKey));
  }

  /** Builds an event on top of the room's latest one. */
  event(spec: EventSpec): RoomEvent {
    this.depth += 1;
    const event: RoomEvent = {
      event_id: spec.event_id ?? fakeEventId(this.version),
      room_id: spec.room_id ?? this.roomId,
      type: spec.type,
      sender: spec.sender,
      content: spec.content ?? {},
      origin_server_ts: 1000 + this.depth,
      depth: this.depth,
      prev_events: spec.prev_events ?? [this.last],
      auth_events: spec.auth_events ?? [],
      ...(spec.state_key === undefined ? {} : { state_key: spec.state_key }),
      ...(spec.redacts === undefined ? {} : { redacts: spec.redacts }),
    };
    return event;
  }

  stateEvent(type: string, stateKey: string, sender: string, content: JsonObject = {}): RoomEvent {
    return this.event({ type, state_key: stateKey, sender, content });
  }

  member(sender: string, target: string, membership: string, content: JsonObject = {}): RoomEvent {
    return this.stateEvent("m.room.member", target, sender, { membership, ...content });
  }

  message(sender: string, content: JsonObject = { msgtype: "m.text", body: "hi" }): RoomEvent {
    return this.event({ type: "m.room.message", sender, content });
  }

  check(event: RoomEvent, checks?: AuthChecks): AuthResult {
    return authorizeEvent(event, this.lookup, this.version, checks);
  }

  /** Authorises the event, fails the test if it is rejected, and applies it to the state. */
  apply(event: RoomEvent, checks?: AuthChecks): RoomEvent {
    expect(this.check(event, checks)).toEqual({ allowed: true });
    return this.force(event);
  }

  /** Puts the event into the state without authorising it (test set-up). */
  force(event: RoomEvent): RoomEvent {
    if (event.state_key !== undefined) this.state.set(key(event.type, event.state_key), event);
    this.last = event.event_id;
    return event;
  }

  setMembership(user: string, membership: string, content: JsonObject = {}): RoomEvent {
    return this.force(this.member(user, user, membership, content));
  }

  setPowerLevels(content: JsonObject): RoomEvent {
    return this.force(this.stateEvent("m.room.power_levels", "", this.creator, content));
  }

  setJoinRule(joinRule: string, extra: JsonObject = {}): RoomEvent {
    return this.force(this.stateEvent("m.room.join_rules", "", this.creator, { join_rule: joinRule, ...extra }));
  }

  remove(type: string, stateKey = ""): void {
    this.state.delete(key(type, stateKey));
  }
}

/**
 * A `users` map for power levels: the creator at 100 plus `extra`, except in v12 where creators
 * are implicit (and may not be listed).
 */
export function usersWithCreator(v: RoomVersion, extra: JsonObject = {}, creator = ALICE): JsonObject {
  return v.privilegedCreators ? { ...extra } : { [creator]: 100, ...extra };
}

/** Expects a rejection, optionally with a reason matching `pattern`. */
export function expectRejected(result: AuthResult, pattern?: RegExp): void {
  expect(result.allowed).toBe(false);
  if (pattern && !result.allowed) expect(result.reason).toMatch(pattern);
}

export function expectAllowed(result: AuthResult): void {
  expect(result).toEqual({ allowed: true });
}
