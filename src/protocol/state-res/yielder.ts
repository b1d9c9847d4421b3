// Long CPU work yields to the event loop every N steps (ARCHITECTURE.md "Style"): a 10,000-event
// resolution must not stall every other client of the server.

// 64 auth checks take a few ms even before the JIT warms up; a yield (setImmediate) costs ~1 µs.
export const DEFAULT_YIELD_EVERY = 64;

export class Yielder {
  private steps = 0;

  constructor(private readonly every: number = DEFAULT_YIELD_EVERY) {
    if (!(every >= 1)) throw new RangeError(`yieldEvery must be at least 1, got ${every}`);
  }

  /**
   * Counts one unit of work. Every `every` units it returns a promise that settles after a
   * macrotask (setImmediate), so timers and I/O callbacks run; otherwise it returns undefined and
   * `await` costs only a microtask.
   */
  step(): Promise<void> | undefined {
    if (++this.steps < this.every) return undefined;
    this.steps = 0;
    return new Promise<void>((resolve) => setImmediate(resolve));
  }
}
