// Memory trimming (memory.trim_interval_ms): a forced full garbage collection, which also has Bun's
// allocator hand freed pages back, at most once per interval and only after requests came in since
// the last one. Under load the engine collects on its own but keeps the pages its garbage occupied,
// so a server's resident memory stays near its busiest moment; after a trim it follows what is live
// (the /sync bench's mixed load: about 40 MiB less afterwards). What a load leaves behind besides
// garbage goes too, in the first quiet trim after it (trimMemory): another ~50 MiB after that load.
//
// The collection pauses the one JS thread (15-80 ms with a few hundred MiB), so it waits for a quiet
// moment: no request for QUIET_MS. A server that is never quiet (many clients long-polling) is
// trimmed anyway once MAX_DEFERRALS intervals have passed, so the pause stays rare, never absent.
// An idle server is not woken: without requests there is nothing new to trim.
import { dlopen, FFIType } from "bun:ffi";
import { RecentCache } from "../../protocol/recent-cache";
import type { IntervalTimer } from "../knocks/knock-expiry";
import type { Service } from "../runtime";

/** How long without a request counts as quiet. */
export const QUIET_MS = 500;
/** Under constant load, a trim waits at most this many intervals for a quiet moment. */
export const MAX_DEFERRALS = 6;

export class MemoryTrimmer implements Service {
  readonly name = "memory-trimmer";
  private activity = 0;
  private trimmedActivity = 0;
  private lastActivityAt = 0;
  private trimmedAt: number;
  /** The last trim in a quiet moment: one forced under load does not delay the next quiet one. */
  private quietTrimmedAt: number;
  private ticking: { cancel(): void } | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly timer: IntervalTimer,
    /** One trim; quiet: in a quiet moment, not forced under load (see trimMemory). */
    private readonly collect: (quiet: boolean) => void = trimMemory(),
    private readonly now: () => number = Date.now,
  ) {
    this.trimmedAt = now();
    this.quietTrimmedAt = this.trimmedAt;
  }

  /** Counts a request: a later tick trims. */
  noteActivity(): void {
    this.activity++;
    this.lastActivityAt = this.now();
  }

  start(): void {
    if (this.intervalMs <= 0) return;
    // Checked several times per interval, so that a quiet moment is not missed by much.
    this.ticking = this.timer.every(Math.max(QUIET_MS, Math.floor(this.intervalMs / 10)), async () => this.tick());
  }

  stop(): void {
    this.ticking?.cancel();
    this.ticking = undefined;
  }

  /**
   * One check (the timer calls it): trims when there was activity, and either it is quiet and the
   * interval has passed since the last quiet trim, or it has waited long enough under load. The first
   * quiet moment after a long load trims even when one was forced during it: the garbage of the
   * load's end goes back at once, not an interval later.
   */
  tick(): void {
    if (this.activity === this.trimmedActivity) return;
    const now = this.now();
    const quiet = now - this.lastActivityAt >= QUIET_MS;
    if (quiet ? now - this.quietTrimmedAt < this.intervalMs : now - this.trimmedAt < this.intervalMs * MAX_DEFERRALS) return;
    this.trimmedActivity = this.activity;
    this.trimmedAt = now;
    if (quiet) this.quietTrimmedAt = now;
    this.collect(quiet);
  }
}

/**
 * The trim: a full collection. In a quiet moment after a load (some cache took in a quarter of its
 * capacity since the last quiet trim: RecentCache.dropChurned), those busy caches are emptied
 * first, `releaseAfterLoad` hands back what else keeps memory (the database's page cache), and the
 * C heap's free pages go back to the system after the collection. Why: JavaScriptCore does not move
 * objects, so the entries a cache took in under load lie scattered among the load's garbage and
 * keep most of its pages resident once the garbage is gone; glibc hands back free memory at the top
 * of its heap by itself, but free pages below live chunks only through malloc_trim. After the /sync
 * bench's 20 s mixed load: ~200 MiB resident after a plain collection, ~150 with the caches dropped,
 * ~133 with the page cache released and the C heap trimmed too (idle: 80). Refilling a cache
 * costs one read an entry, paid once the load returns. A quiet trim after light use drops nothing,
 * so a lightly used server keeps its caches warm.
 */
export function trimMemory(releaseAfterLoad?: () => void): (quiet: boolean) => void {
  return (quiet) => {
    // Only memory: a step that fails leaves the others to do (it runs from a timer: nothing may throw).
    const step = (fn: () => void) => {
      try {
        fn();
      } catch {
        /* nothing kept from it */
      }
    };
    let afterLoad = false;
    if (quiet) step(() => void (afterLoad = RecentCache.dropChurned() > 0));
    if (afterLoad && releaseAfterLoad) step(releaseAfterLoad);
    step(() => Bun.gc(true));
    if (afterLoad) step(trimCHeap);
  };
}

let mallocTrim: ((pad: number) => number) | null | undefined;

/**
 * glibc's malloc_trim(0): returns the free pages inside the C heap (where SQLite's page cache lives)
 * to the system, not only those at its top. Elsewhere (musl, macOS) there is none and nothing is done.
 */
function trimCHeap(): void {
  if (mallocTrim === undefined) {
    try {
      const lib = dlopen("libc.so.6", { malloc_trim: { args: [FFIType.u64], returns: FFIType.i32 } });
      mallocTrim = (pad) => lib.symbols.malloc_trim(pad);
    } catch {
      mallocTrim = null;
    }
  }
  mallocTrim?.(0);
}
