// Memory trimming (memory.trim_interval_ms): a forced full garbage collection, which also has Bun's
// allocator hand freed pages back, at most once per interval and only after requests came in since
// the last one. Under load the engine collects on its own but keeps the pages its garbage occupied,
// so a server's resident memory stays near its busiest moment; after a trim it follows what is live
// (the /sync bench's mixed load: about 40 MiB less afterwards, for a pause of 15-35 ms per interval).
// An idle server is not woken: without requests there is nothing new to trim.
import type { IntervalTimer } from "../knocks/knock-expiry";
import type { Service } from "../runtime";

export class MemoryTrimmer implements Service {
  readonly name = "memory-trimmer";
  private activity = 0;
  private trimmedAt = 0;
  private ticking: { cancel(): void } | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly timer: IntervalTimer,
    private readonly collect: () => void = () => Bun.gc(true),
  ) {}

  /** Counts a request: the next tick trims. */
  noteActivity(): void {
    this.activity++;
  }

  start(): void {
    if (this.intervalMs <= 0) return;
    this.ticking = this.timer.every(this.intervalMs, async () => this.tick());
  }

  stop(): void {
    this.ticking?.cancel();
    this.ticking = undefined;
  }

  /** One interval's check (the timer calls it). */
  tick(): void {
    if (this.activity === this.trimmedAt) return;
    this.trimmedAt = this.activity;
    this.collect();
  }
}
