// The newest events of a room's timeline in a stream range that a user may be given, for the sync
// endpoints: read backwards in batches, each event kept or skipped by a predicate (history
// visibility, ignored senders, a filter), until one more than the limit is found.
import type { RoomEventStore, StoredEvent } from "../../storage/stores";

/** The most events one scan reads before calling the timeline limited (restrictive predicates on long histories). */
export const MAX_SCANNED_EVENTS = 5000;

export interface TimelineWindow {
  /** Oldest first. */
  readonly events: StoredEvent[];
  /** More wanted events exist in the range than were given. */
  readonly limited: boolean;
  /** No event of the range was skipped and none was cut by the limit. */
  readonly complete: boolean;
  /**
   * The state snapshot just before the first event, when the scan saw the event before it (or saw
   * that the room's timeline starts there): the state at the window's start, without a query.
   */
  readonly snapshotBeforeFirst?: { readonly value: number | undefined };
}

/** The newest `limit` events of (fromExclusive, toInclusive] that `wanted` keeps, oldest first. */
export async function timelineWindow(
  store: Pick<RoomEventStore, "roomEventsBackwards">,
  roomId: string,
  fromExclusive: number,
  toInclusive: number,
  limit: number,
  wanted: (stored: StoredEvent) => Promise<boolean>,
): Promise<TimelineWindow> {
  const kept: StoredEvent[] = [];
  let skipped = false;
  let scanned = 0;
  let position = toInclusive;
  // The first read is what the limit needs (most events are visible), one more to tell whether it is
  // limited and one for the event before the window; each further read doubles.
  let batchSize = Math.min(1000, limit + 3);
  // For each kept event, the snapshot of the event scanned right after it (the one before it).
  const before: (number | undefined)[] = [];
  let reachedStart = false;
  const window = (limited: boolean, complete: boolean): TimelineWindow => {
    const oldest = Math.min(limit, kept.length) - 1;
    const snapshotBeforeFirst = oldest < 0 ? undefined : oldest < before.length ? { value: before[oldest] } : reachedStart ? { value: undefined } : undefined;
    return { events: kept.slice(0, limit).reverse(), limited, complete, snapshotBeforeFirst };
  };
  scan: for (;;) {
    const batch = await store.roomEventsBackwards(roomId, position, fromExclusive, batchSize);
    for (const stored of batch) {
      position = stored.streamOrdering! - 1;
      scanned++;
      if (kept.length > before.length) before.push(stored.stateSnapshot);
      if (await wanted(stored)) {
        kept.push(stored);
        if (kept.length > limit) break scan;
      } else skipped = true;
      // Too far back to keep looking: call it limited (there may be more).
      if (scanned >= MAX_SCANNED_EVENTS) return window(true, false);
    }
    if (batch.length < batchSize) {
      // Nothing older in the room: the window's first event has no state before it.
      reachedStart = fromExclusive <= 0;
      break;
    }
    batchSize = Math.min(1000, batchSize * 2);
  }
  const limited = kept.length > limit;
  return window(limited, !limited && !skipped);
}

/** The newest stream position among the events a room's answer shows (undefined: none has one). */
export function newestOrdering(events: readonly StoredEvent[]): number | undefined {
  let newest: number | undefined;
  for (const e of events) if (e.streamOrdering !== undefined && (newest === undefined || e.streamOrdering > newest)) newest = e.streamOrdering;
  return newest;
}
