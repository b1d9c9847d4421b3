// One resolution asks for the same events many times (every walk of the auth DAG, every auth
// check); the caller's fetchEvent is asked once per event id.

import type { RoomEvent } from "../events";
import type { MaybePromise, StateResolutionLookups } from "./types";

export class EventCache {
  private readonly events = new Map<string, RoomEvent | undefined>();
  private readonly rejected = new Map<string, boolean>();

  constructor(private readonly lookups: StateResolutionLookups) {}

  /** Builds a cache over events held in memory (tests, callers with the events at hand). */
  static of(events: Iterable<RoomEvent>): EventCache {
    const byId = new Map<string, RoomEvent>();
    for (const event of events) byId.set(event.event_id, event);
    return new EventCache({ fetchEvent: (id) => byId.get(id) });
  }

  /** The event, from the cache or the caller's store; undefined when the store lacks it. */
  get(eventId: string): MaybePromise<RoomEvent | undefined> {
    if (this.events.has(eventId)) return this.events.get(eventId);
    const fetched = this.lookups.fetchEvent(eventId);
    if (fetched instanceof Promise) {
      return fetched.then((event) => {
        this.events.set(eventId, event);
        return event;
      });
    }
    this.events.set(eventId, fetched);
    return fetched;
  }

  /** The event if it was fetched already (synchronous, for the auth-rule lookups). */
  peek(eventId: string): RoomEvent | undefined {
    return this.events.get(eventId);
  }

  /** Whether `get(eventId)` was already answered (possibly with undefined). */
  has(eventId: string): boolean {
    return this.events.has(eventId);
  }

  async isRejected(eventId: string): Promise<boolean> {
    const known = this.rejected.get(eventId);
    if (known !== undefined) return known;
    const rejected = this.lookups.isRejected ? await this.lookups.isRejected(eventId) : false;
    this.rejected.set(eventId, rejected);
    return rejected;
  }

  get authChainLookup(): StateResolutionLookups["authChain"] {
    return this.lookups.authChain?.bind(this.lookups);
  }
}
