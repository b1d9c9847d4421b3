// State resolution (src/protocol/state-res, v2, room version 10) over 10, 100, 1,000 and 10,000
// conflicted events: the curve, not one number.
//
// The room: a netsplit. Before it, a public room of N/2 members (an admin on each side, a few
// moderators). During it, two forks grow apart, each event authorised against its own fork's state
// and citing the auth events selection, so the auth DAG is the one a server would hold:
//   fork A: the admin demotes a moderator and hands out levels (a chain of power levels), bans a
//           few members, switches the join rule to knock, members change display names, new users
//           join and, after the switch, knock;
//   fork B: another admin hands out levels too, the moderators kick members, members leave, new
//           users join.
// The forks share keys (power levels, join rules, the members both touched) and each holds keys the
// other lacks (its own joiners and knockers), so the conflicted state set is about N events, with
// power events (power levels, join rules, kicks, bans) for the reverse topological power ordering,
// kicks by a moderator whom fork A demoted (dropped should A's power levels win), and knocks that
// the resolved join rule refuses, so the iterative auth checks reject as well as accept.
// resolveState gets only fetchEvent (an in-memory map), so the auth chains are walked by the
// algorithm itself; a second series adds an auth chain lookup, as the SQLite store supplies one.
import { createHash } from "node:crypto";
import { authEventsForEvent, authorizeEvent } from "../../src/protocol/auth";
import { type RoomEvent, type StateMap, stateKey } from "../../src/protocol/events";
import type { JsonObject } from "../../src/protocol/json";
import { roomVersion } from "../../src/protocol/room-versions";
import { resolveState, separateStateSets, type StateResolutionLookups } from "../../src/protocol/state-res";

const version = roomVersion("10")!;
const ROOM_ID = "!netsplit:a.example";
const ALICE = "@alice:a.example"; // admin, fork A's side
const BOB = "@bob:b.example"; // admin, fork B's side
const MODS = ["@mod0:b.example", "@mod1:b.example", "@mod2:a.example"];

class Room {
  readonly events = new Map<string, RoomEvent>();
  private seq = 0;

  /** Adds an event on top of a fork (its state and its last event), authorised against the fork's state. */
  send(fork: Fork, type: string, sender: string, key: string | undefined, content: JsonObject, ts: number): void {
    const state = fork.state;
    const draft = { type, sender, content, ...(key !== undefined ? { state_key: key } : {}) };
    const authEvents = authEventsForEvent(draft, version)
      .map(([t, k]) => state.get(stateKey(t, k)))
      .filter((id): id is string => id !== undefined);
    this.seq += 1;
    // Event IDs shaped like v4+ reference hashes, so comparisons and map keys cost what they do live.
    const eventId = `$${createHash("sha256").update(`event ${this.seq}`).digest("base64url")}`;
    const event: RoomEvent = {
      event_id: eventId,
      room_id: ROOM_ID,
      ...draft,
      origin_server_ts: ts,
      depth: this.seq,
      prev_events: fork.tip === undefined ? [] : [fork.tip],
      auth_events: authEvents,
    };
    const verdict = authorizeEvent(event, (t, k) => this.events.get(state.get(stateKey(t, k)) ?? ""), version);
    if (!verdict.allowed) throw new Error(`bench room: ${type} by ${sender} refused: ${verdict.reason}`);
    this.events.set(eventId, event);
    if (key !== undefined) state.set(stateKey(type, key), eventId);
    fork.tip = eventId;
  }
}

interface Fork {
  state: StateMap;
  tip?: string;
}

interface Scenario {
  room: Room;
  stateSets: StateMap[];
  conflicted: number;
  powerEvents: number;
  totalEvents: number;
}

const member = (i: number) => `@member${i}:${i % 2 === 0 ? "a" : "b"}.example`;

/** Builds the netsplit for a target of about `n` conflicted events. */
function buildScenario(n: number): Scenario {
  const room = new Room();
  let ts = 1_700_000_000_000;
  const levels: JsonObject = { [ALICE]: 100, [BOB]: 100, [MODS[0]]: 50, [MODS[1]]: 50, [MODS[2]]: 50 };
  const plContent = (users: JsonObject): JsonObject => ({
    users,
    users_default: 0,
    events: { "m.room.name": 50, "m.room.power_levels": 100, "m.room.history_visibility": 100 },
    events_default: 0,
    state_default: 50,
    ban: 50,
    kick: 50,
    redact: 50,
    invite: 0,
  });

  const base: Fork = { state: new Map() };
  room.send(base, "m.room.create", ALICE, "", { creator: ALICE, room_version: version.id }, ts++);
  room.send(base, "m.room.member", ALICE, ALICE, { membership: "join" }, ts++);
  room.send(base, "m.room.power_levels", ALICE, "", plContent(levels), ts++);
  room.send(base, "m.room.join_rules", ALICE, "", { join_rule: "public" }, ts++);
  room.send(base, "m.room.history_visibility", ALICE, "", { history_visibility: "shared" }, ts++);
  for (const user of [BOB, ...MODS]) room.send(base, "m.room.member", user, user, { membership: "join" }, ts++);
  const baseMembers = Math.max(4, Math.round(n / 2));
  for (let i = 0; i < baseMembers; i++) room.send(base, "m.room.member", member(i), member(i), { membership: "join", displayname: `Member ${i}` }, ts++);

  // Per fork, about n/2 new events; keys touched in one fork only also pull their pre-split event
  // into the conflicted set, so the fork sizes are scaled to land near n conflicted events overall.
  const perFork = Math.max(3, Math.round(n * 0.49));
  const plChanges = Math.max(1, Math.round(perFork / 250));
  const kicks = Math.max(1, Math.round(perFork * 0.03));
  const bans = Math.max(1, Math.round(perFork * 0.01));
  const touched = Math.round(perFork * 0.2); // base members both forks change (display name in A, leave in B)
  const a: Fork = { state: new Map(base.state), tip: base.tip };
  const b: Fork = { state: new Map(base.state), tip: base.tip };
  const aLevels = { ...levels, [MODS[0]]: 0 }; // A's first change demotes mod0, who kicks in B
  const bLevels = { ...levels };
  let nextMember = baseMembers;
  const scheduleA: (() => void)[] = [];
  const scheduleB: (() => void)[] = [];

  // Members both forks touch: the first `touched` base members. Kicks and bans take the next ones.
  for (let i = 0; i < touched; i++) {
    const user = member(i);
    scheduleA.push(() => room.send(a, "m.room.member", user, user, { membership: "join", displayname: `Renamed ${i}` }, ts++));
    scheduleB.push(() => room.send(b, "m.room.member", user, user, { membership: "leave" }, ts++));
  }
  for (let i = 0; i < kicks; i++) {
    const user = member(touched + i);
    scheduleB.push(() => room.send(b, "m.room.member", MODS[i % 2], user, { membership: "leave", reason: "spam" }, ts++));
  }
  for (let i = 0; i < bans; i++) {
    const user = member(touched + kicks + i);
    scheduleA.push(() => room.send(a, "m.room.member", MODS[2], user, { membership: "ban", reason: "abuse" }, ts++));
  }
  const joinsA = Math.max(1, perFork - scheduleA.length - plChanges - 2);
  const joinsB = Math.max(1, perFork - scheduleB.length - plChanges);
  // A knock window: the join rule goes to knock for a tenth of fork A's newcomers, then back to public.
  const knockFrom = Math.floor(joinsA * 0.8);
  const knockUntil = Math.floor(joinsA * 0.9);
  for (let i = 0; i < joinsA; i++) {
    const user = member(nextMember++);
    if (i === knockFrom) scheduleA.push(() => room.send(a, "m.room.join_rules", ALICE, "", { join_rule: "knock" }, ts++));
    if (i === knockUntil) scheduleA.push(() => room.send(a, "m.room.join_rules", ALICE, "", { join_rule: "public" }, ts++));
    const membership = i >= knockFrom && i < knockUntil ? "knock" : "join";
    scheduleA.push(() => room.send(a, "m.room.member", user, user, { membership }, ts++));
  }
  for (let i = 0; i < joinsB; i++) {
    const user = member(nextMember++);
    scheduleB.push(() => room.send(b, "m.room.member", user, user, { membership: "join" }, ts++));
  }
  // Power level changes spread through each fork, the first one at its start.
  for (let p = plChanges - 1; p >= 0; p--) {
    scheduleA.splice(Math.floor((p * scheduleA.length) / plChanges), 0, () => {
      if (p > 0) aLevels[`@helper${p}:a.example`] = 50;
      room.send(a, "m.room.power_levels", ALICE, "", plContent({ ...aLevels }), ts++);
    });
    scheduleB.splice(Math.floor((p * scheduleB.length) / plChanges), 0, () => {
      bLevels[`@helper${p}:b.example`] = 50;
      room.send(b, "m.room.power_levels", BOB, "", plContent({ ...bLevels }), ts++);
    });
  }
  // The forks grow side by side: their timestamps interleave as a real netsplit's would.
  const steps = Math.max(scheduleA.length, scheduleB.length);
  for (let i = 0; i < steps; i++) {
    scheduleA[i]?.();
    scheduleB[i]?.();
  }

  const stateSets = [a.state, b.state];
  const { conflicted } = separateStateSets(stateSets);
  let powerEvents = 0;
  for (const id of conflicted) {
    const e = room.events.get(id)!;
    const membership = e.content.membership;
    if (e.type !== "m.room.member" || ((membership === "leave" || membership === "ban") && e.sender !== e.state_key)) powerEvents++;
  }
  return { room, stateSets, conflicted: conflicted.size, powerEvents, totalEvents: room.events.size };
}

function lookups(room: Room, withAuthChain: boolean): StateResolutionLookups {
  const fetchEvent = (id: string) => room.events.get(id);
  if (!withAuthChain) return { fetchEvent };
  // What a store's auth chain index answers: the union of the auth chains of the given events.
  const authChain = (ids: readonly string[]) => {
    const chain = new Set<string>();
    const stack: string[] = [];
    for (const id of ids) for (const auth of room.events.get(id)?.auth_events ?? []) stack.push(auth);
    while (stack.length > 0) {
      const id = stack.pop()!;
      if (chain.has(id)) continue;
      chain.add(id);
      for (const auth of room.events.get(id)?.auth_events ?? []) stack.push(auth);
    }
    return chain;
  };
  return { fetchEvent, authChain };
}

interface Timing {
  runs: number[];
  /** The longest gap between ticks of a 1 ms interval during a run, and when it began (ms into the run). */
  stall?: { ms: number; at: number };
  resolved: StateMap;
}

async function time(s: Scenario, runs: number, withAuthChain: boolean, watchStalls: boolean): Promise<Timing> {
  const times: number[] = [];
  let resolved: StateMap = new Map();
  let stall: Timing["stall"];
  for (let r = 0; r < runs; r++) {
    const start = performance.now();
    let last = start;
    const gap = (now: number) => {
      if (!stall || now - last > stall.ms) stall = { ms: now - last, at: last - start };
      last = now;
    };
    const timer = watchStalls ? setInterval(() => gap(performance.now()), 1) : undefined;
    resolved = await resolveState(version, s.stateSets, lookups(s.room, withAuthChain));
    const end = performance.now();
    times.push(end - start);
    if (timer) {
      gap(end);
      clearInterval(timer);
    }
  }
  return { runs: times, stall, resolved };
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];

/** How the resolved state split between the forks, as a sanity check that both sides won something. */
function outcome(s: Scenario, resolved: StateMap): string {
  const [a, b] = s.stateSets;
  let fromA = 0;
  let fromB = 0;
  let dropped = 0;
  const { conflicted } = separateStateSets(s.stateSets);
  const keys = new Set([...a.keys(), ...b.keys()].filter((k) => a.get(k) !== b.get(k)));
  for (const k of keys) {
    const id = resolved.get(k);
    if (id === undefined || !conflicted.has(id)) dropped++;
    else if (id === a.get(k)) fromA++;
    else if (id === b.get(k)) fromB++;
  }
  const pl = resolved.get(stateKey("m.room.power_levels", ""));
  const jr = resolved.get(stateKey("m.room.join_rules", ""));
  const side = (id: string | undefined) => (id === a.get(stateKey("m.room.power_levels", "")) || id === a.get(stateKey("m.room.join_rules", "")) ? "A" : "B");
  return `${keys.size} conflicted keys: ${fromA} to A, ${fromB} to B, ${dropped} neither; power levels from ${side(pl)}, join rules from ${side(jr)}`;
}

const SIZES: [n: number, runs: number][] = [
  [10, 200],
  [100, 50],
  [1_000, 10],
  [10_000, 3],
];
const ONLY = process.env.STATE_RES_BENCH_ONLY; // e.g. "10000", to profile one size

console.log(`\n## State resolution v2, room version 10, two forks (${Bun.version}, ${navigator.hardwareConcurrency} cores)`);
// Warm the JIT on a mid-sized room so the small sizes are not timing the compiler.
const warm = buildScenario(300);
await time(warm, 3, false, false);
await time(warm, 3, true, false);

const rows: string[] = [];
for (const [n, runs] of SIZES) {
  if (ONLY !== undefined && String(n) !== ONLY) continue;
  const buildStart = performance.now();
  const s = buildScenario(n);
  const buildMs = performance.now() - buildStart;
  const walk = await time(s, runs, false, n >= 10_000);
  const indexed = await time(s, runs, true, n >= 10_000);
  const walkMs = median(walk.runs);
  const indexedMs = median(indexed.runs);
  const range = (xs: number[]) => (xs.length > 1 ? ` (min ${Math.min(...xs).toFixed(2)}, max ${Math.max(...xs).toFixed(2)})` : "");
  console.log(
    `N=${n}: ${s.conflicted} conflicted events (${s.powerEvents} power events), ${s.totalEvents} events in the room, ${s.stateSets[0].size}/${s.stateSets[1].size} keys per state set; built in ${buildMs.toFixed(0)} ms`,
  );
  console.log(`  ${outcome(s, walk.resolved)}`);
  console.log(`  walk: median ${walkMs.toFixed(2)} ms${range(walk.runs)}; auth chain lookup: median ${indexedMs.toFixed(2)} ms${range(indexed.runs)}`);
  const same = walk.resolved.size === indexed.resolved.size && [...walk.resolved].every(([k, v]) => indexed.resolved.get(k) === v);
  if (!same) console.log("  WARNING: the two lookups resolved differently");
  rows.push(
    `${String(s.conflicted).padStart(8)} ${String(runs).padStart(5)} ${walkMs.toFixed(2).padStart(11)} ${((walkMs * 1000) / s.conflicted).toFixed(1).padStart(9)} ` +
      `${indexedMs.toFixed(2).padStart(13)} ${((indexedMs * 1000) / s.conflicted).toFixed(1).padStart(9)}` +
      (walk.stall && indexed.stall
        ? `   longest event-loop stall: ${walk.stall.ms.toFixed(1)} ms at ${walk.stall.at.toFixed(0)} ms (walk), ${indexed.stall.ms.toFixed(1)} ms at ${indexed.stall.at.toFixed(0)} ms (auth chain lookup)`
        : ""),
  );
}
console.log(`\n conflicted  runs   walk: ms  µs/event  auth chain: ms  µs/event   (median of runs)`);
for (const row of rows) console.log(row);
