// The iterative auth checks (v2-state-res.md "Iterative auth checks"), and the one primitive both
// state resolution algorithms use: do the authorization rules allow an event against a state.

import { authEventsForEvent } from "../auth";
import { M_ROOM_CREATE } from "../auth/power-levels";
import { type RoomEvent, type StateKey, type StateMap, stateKey } from "../events";
import { implicitCreateEvent, type ResolutionContext } from "./context";

/**
 * Runs the authorization rules for `event` against a state given as key -> event id, using
 * `fallback` for the keys that state lacks. The rules read state synchronously, so the events they
 * are likely to ask for (the auth events selection) are fetched first; should they ask for another
 * one not yet fetched, it is fetched and the rules run again.
 */
export async function isAllowedByState(
  context: ResolutionContext,
  event: RoomEvent,
  stateEventId: (key: StateKey) => string | undefined,
  fallback: ReadonlyMap<StateKey, RoomEvent> = new Map(),
): Promise<boolean> {
  if (event.state_key !== undefined) {
    for (const [type, key] of authEventsForEvent(event, context.version)) {
      const id = stateEventId(stateKey(type, key));
      if (id !== undefined) await context.events.get(id);
    }
  }
  for (;;) {
    const missing: string[] = [];
    const authState = (type: string, key: string): RoomEvent | undefined => {
      const k = stateKey(type, key);
      const id = stateEventId(k);
      if (id !== undefined) {
        if (!context.events.has(id)) missing.push(id);
        const inState = context.events.peek(id);
        if (inState) return inState;
      }
      return fallback.get(k);
    };
    const result = context.authorize(event, authState);
    if (missing.length === 0) return result.allowed;
    for (const id of missing) await context.events.get(id);
  }
}

/**
 * The iterative auth checks: starting from `initialState`, apply each event of `sortedEvents` in
 * turn when the authorization rules allow it against the state built so far; ignore it otherwise.
 * A (type, state_key) the rules need that the state lacks is taken from the event's own
 * auth_events, unless that auth event was rejected.
 */
export async function iterativeAuthChecks(
  context: ResolutionContext,
  initialState: StateMap,
  sortedEvents: readonly string[],
): Promise<StateMap> {
  const state: StateMap = new Map(initialState);
  for (const eventId of sortedEvents) {
    const event = await context.events.get(eventId);
    if (event === undefined || event.state_key === undefined) continue;

    const authEvents = new Map<StateKey, RoomEvent>();
    for (const authEventId of event.auth_events) {
      const authEvent = await context.events.get(authEventId);
      if (authEvent?.state_key === undefined) continue;
      if (await context.events.isRejected(authEventId)) continue;
      authEvents.set(stateKey(authEvent.type, authEvent.state_key), authEvent);
    }
    // v12 events do not cite the create event; it is the one their room ID names.
    const create = await implicitCreateEvent(context, event);
    const createKey = stateKey(M_ROOM_CREATE, "");
    if (create && !authEvents.has(createKey)) authEvents.set(createKey, create);

    if (await isAllowedByState(context, event, (k) => state.get(k), authEvents)) {
      state.set(stateKey(event.type, event.state_key), eventId);
    }
    await context.yielder.step();
  }
  return state;
}
