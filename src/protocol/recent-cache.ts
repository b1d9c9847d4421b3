// A bounded map that keeps what was used recently: recency in two generations rather than one
// ordered list, so that a hit on a recent entry is one map lookup (moving every hit to the end of one
// list was a delete and an insert, 3.6% of the /sync mixed load); the older generation is dropped
// whole when the young one fills. An entry used within the last capacity/2 insertions is kept (unless
// the memory trimmer empties the cache, below); at most `capacity` entries are held.
// Every cache is also known, weakly, to the process, so that the memory trimmer can drop the busy
// ones when the server goes quiet after a load (dropChurned; why: the trimmer's trimMemory). No user
// of a cache may rely on an entry staying between two awaits. Memory is the process's, as a
// collection is, so the registry is too: every server in a process shares it.
const known = new Set<WeakRef<RecentCache<unknown, unknown>>>();
const forget = new FinalizationRegistry<WeakRef<RecentCache<unknown, unknown>>>((ref) => known.delete(ref));

export class RecentCache<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly generation: number;
  /** New keys taken in since the last dropChurned (a value replaced under its key is not one). */
  private taken = 0;

  constructor(capacity: number) {
    this.generation = Math.max(1, Math.ceil(capacity / 2));
    const ref = new WeakRef<RecentCache<unknown, unknown>>(this);
    known.add(ref);
    forget.register(this, ref);
  }

  /**
   * Empties every cache of the process that took in new keys for at least a quarter of its
   * capacity since the last call; returns how many entries went. A cache used little in between
   * keeps what it has.
   */
  static dropChurned(): number {
    let dropped = 0;
    for (const ref of known) {
      const cache = ref.deref();
      if (cache === undefined) continue;
      if (cache.taken * 2 >= cache.generation) {
        dropped += cache.size;
        cache.clear();
      }
      cache.taken = 0;
    }
    return dropped;
  }

  get(key: K): V | undefined {
    const recent = this.young.get(key);
    if (recent !== undefined) return recent;
    const value = this.old.get(key);
    if (value !== undefined) {
      this.old.delete(key);
      this.insert(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    if (!this.old.delete(key) && !this.young.has(key)) this.taken++;
    this.insert(key, value);
  }

  delete(key: K): void {
    this.young.delete(key);
    this.old.delete(key);
  }

  clear(): void {
    this.young.clear();
    this.old.clear();
  }

  get size(): number {
    return this.young.size + this.old.size;
  }

  private insert(key: K, value: V): void {
    this.young.set(key, value);
    if (this.young.size >= this.generation) {
      this.old = this.young;
      this.young = new Map();
    }
  }
}
