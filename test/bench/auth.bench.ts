// Authorization checks per second (src/protocol/auth) for the events a server sees most: a message,
// a join, a power-levels change and a knock, in room versions 10 and 12 (v12: the creator's
// infinite power level, the create event named by the room ID instead of listed in auth_events).
// Two figures per kind: authorizeEvent alone against a prebuilt lookup, and the whole check of a
// received PDU against its auth events (checkAuthEventsShape + authStateFromEvents + authorizeEvent).
import { defaultPowerLevels } from "../../src/services/rooms/room-creation";
import { authorizeEvent, authStateFromEvents, authEventsForEvent, checkAuthEventsShape, type AuthStateLookup } from "../../src/protocol/auth";
import { type RoomEvent, stateKey } from "../../src/protocol/events";
import type { JsonObject } from "../../src/protocol/json";
import { roomVersion, type RoomVersion } from "../../src/protocol/room-versions";
import { measure, ratio, report, type Measurement } from "./harness";

const ALICE = "@alice:example.org";
const BOB = "@bob:remote.example";
const KNOCKER = "@knocker:remote.example";
/** Users named in the power levels: a mid-sized room with a handful of moderators and bots. */
const PL_USERS = 30;
/** And a large room that has handed out levels to many users. */
const BIG_PL_USERS = 1000;

let counter = 0;
const eventId = () => `$${`bench${++counter}`.padEnd(43, "A")}`;

/** A room's state as RoomEvents, and a way to build new events citing the right auth events. */
class BenchRoom {
  readonly state = new Map<string, RoomEvent>();
  readonly roomId: string;
  readonly create: RoomEvent;

  constructor(
    readonly version: RoomVersion,
    joinRule: string,
    plUsers = PL_USERS,
  ) {
    const createId = eventId();
    // v12: the room ID is the create event's ID with "!" for "$", and the create event has no room_id.
    this.roomId = version.roomIdFromCreateEvent ? `!${createId.slice(1)}` : "!bench:example.org";
    const createContent: JsonObject = { room_version: version.id };
    if (!version.createUsesSender) createContent.creator = ALICE;
    this.create = {
      event_id: createId,
      ...(version.roomIdFromCreateEvent ? {} : { room_id: this.roomId }),
      type: "m.room.create",
      state_key: "",
      sender: ALICE,
      content: createContent,
      origin_server_ts: 1,
      depth: 1,
      prev_events: [],
      auth_events: [],
    };
    this.state.set(stateKey("m.room.create", ""), this.create);
    this.add(this.build("m.room.member", ALICE, ALICE, { membership: "join" }, [this.create.event_id]));
    const users: JsonObject = {};
    if (!version.privilegedCreators) users[ALICE] = 100;
    for (let i = 0; i < plUsers; i++) users[`@mod${i}:example.org`] = i % 2 === 0 ? 50 : 100;
    this.add(this.build("m.room.power_levels", ALICE, "", powerLevels(users)));
    this.add(this.build("m.room.join_rules", ALICE, "", { join_rule: joinRule }));
    this.add(this.build("m.room.history_visibility", ALICE, "", { history_visibility: "shared" }));
    this.add(this.build("m.room.member", BOB, BOB, { membership: "join" }));
  }

  add(event: RoomEvent): RoomEvent {
    if (event.state_key !== undefined) this.state.set(stateKey(event.type, event.state_key), event);
    return event;
  }

  /** An event on the current state, citing the auth events selection. */
  build(type: string, sender: string, stateKeyValue: string | undefined, content: JsonObject, prevEvents: string[] = ["$prevAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]): RoomEvent {
    const draft = { type, sender, content, ...(stateKeyValue !== undefined ? { state_key: stateKeyValue } : {}) };
    const authEvents = authEventsForEvent(draft, this.version)
      .map(([t, k]) => this.state.get(stateKey(t, k))?.event_id)
      .filter((id): id is string => id !== undefined);
    return { event_id: eventId(), room_id: this.roomId, ...draft, origin_server_ts: 1_700_000_000_000, depth: 10, prev_events: prevEvents, auth_events: authEvents };
  }

  authEventsOf(event: RoomEvent): RoomEvent[] {
    const byId = new Map([...this.state.values()].map((e) => [e.event_id, e]));
    return event.auth_events.map((id) => byId.get(id)!);
  }

  /** The implicit create event of v12 (undefined before: auth_events carry it). */
  get implicitCreate(): RoomEvent | undefined {
    return this.version.roomIdFromCreateEvent ? this.create : undefined;
  }
}

/** The power levels createRoom gives a room, with `users` as listed. */
function powerLevels(users: JsonObject): JsonObject {
  return { ...defaultPowerLevels("@unused:bench", true, []), users };
}

interface Case {
  name: string;
  room: BenchRoom;
  event: RoomEvent;
}

function cases(version: RoomVersion): Case[] {
  const pub = new BenchRoom(version, "public");
  const knockRoom = new BenchRoom(version, "knock");
  const plBefore = pub.state.get(stateKey("m.room.power_levels", ""))!;
  const raisedUsers = { ...(plBefore.content.users as JsonObject), [BOB]: 50 };
  const creatorLabel = version.privilegedCreators ? "creator" : "PL 100";
  const list: Case[] = [
    { name: "message", room: pub, event: pub.build("m.room.message", BOB, undefined, { msgtype: "m.text", body: "hello" }) },
    { name: "join (public)", room: pub, event: pub.build("m.room.member", "@new:remote.example", "@new:remote.example", { membership: "join", displayname: "New" }) },
    { name: `PL change by ${creatorLabel}`, room: pub, event: pub.build("m.room.power_levels", ALICE, "", { ...plBefore.content, users: raisedUsers }) },
    { name: "knock", room: knockRoom, event: knockRoom.build("m.room.member", KNOCKER, KNOCKER, { membership: "knock", reason: "let me in" }) },
  ];
  // Rule 10.3 validates every user ID the new power levels list, so the cost grows with `users`.
  const big = new BenchRoom(version, "public", BIG_PL_USERS);
  const bigBefore = big.state.get(stateKey("m.room.power_levels", ""))!;
  const bigUsers = { ...(bigBefore.content.users as JsonObject), [BOB]: 50 };
  list.push({ name: `PL change, ${BIG_PL_USERS} users`, room: big, event: big.build("m.room.power_levels", ALICE, "", { ...bigBefore.content, users: bigUsers }) });
  return list;
}

function run(versionId: string): Measurement[] {
  const version = roomVersion(versionId)!;
  const rows: Measurement[] = [];
  for (const c of cases(version)) {
    const authEvents = c.room.authEventsOf(c.event);
    const lookup: AuthStateLookup = authStateFromEvents(authEvents, c.room.implicitCreate);
    const verdict = authorizeEvent(c.event, lookup, version);
    const shape = checkAuthEventsShape(c.event, authEvents, version);
    if (!verdict.allowed || !shape.allowed) {
      throw new Error(`v${versionId} ${c.name} is not allowed: ${verdict.allowed ? "" : verdict.reason} ${shape.allowed ? "" : shape.reason}`);
    }
    const authorizeOnly = () => authorizeEvent(c.event, lookup, version);
    const fullCheck = () =>
      checkAuthEventsShape(c.event, authEvents, version).allowed && authorizeEvent(c.event, authStateFromEvents(authEvents, c.room.implicitCreate), version);
    // A discarded warm-up round, so that the first case measured is not the one paying for the JIT.
    measure("warm-up", authorizeOnly, 0.1, 100);
    measure("warm-up", fullCheck, 0.1, 100);
    rows.push(measure(`v${versionId} ${c.name}`, authorizeOnly, 0.4, 100));
    rows.push(measure(`v${versionId} ${c.name}, full PDU check`, fullCheck, 0.4, 100));
  }
  return rows;
}

const v10 = run("10");
const v12 = run("12");
console.log(
  `\nEach kind twice: authorizeEvent against a prebuilt lookup, then the full check of a received PDU against its auth_events` +
    ` (checkAuthEventsShape + authStateFromEvents + authorizeEvent). Power levels list ${PL_USERS} users besides the creator unless said.`,
);
report("Authorization, room version 10", v10);
report("Authorization, room version 12", v12);
const row = (rows: Measurement[], name: string) => rows.find((r) => r.name.endsWith(` ${name}`))!;
ratio("v10 message / PL change (authorizeEvent)", row(v10, "message"), row(v10, "PL change by PL 100"));
ratio(`v10 PL change, ${PL_USERS} users / ${BIG_PL_USERS} users`, row(v10, "PL change by PL 100"), row(v10, `PL change, ${BIG_PL_USERS} users`));
ratio("v12 / v10, message (authorizeEvent)", row(v12, "message"), row(v10, "message"));
ratio("v12 / v10, knock (authorizeEvent)", row(v12, "knock"), row(v10, "knock"));
ratio("v12 creator / v10 PL 100, PL change (authorizeEvent)", row(v12, "PL change by creator"), row(v10, "PL change by PL 100"));
