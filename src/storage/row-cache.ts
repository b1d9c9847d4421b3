import type { Database } from "./database";
import { RecentCache } from "../protocol/recent-cache";

// A bounded cache of rows that never change once committed (events, room records, entries of a
// state snapshot), the least recently used evicted first (RecentCache). Reads made outside a
// transaction fill it: those see committed rows only, so a rolled-back write can never be cached
// (the one user that also fills it inside transactions, the snapshot entries, clears it on every
// rollback). On PostgreSQL each hit saves a network round trip; on SQLite a query and the parse of its row.
export { RecentCache as ImmutableRowCache };

/**
 * Values read from committed rows that writes change (a room's newest events, a device's key
 * counts), kept per key until a write of that key: dropped when the write begins and again once it
 * is durable (at its caller's commit when it ran inside a transaction), so that a read another
 * connection made while the write was open is not kept past it. A read is not kept when a write of
 * its key began or ended while it ran (each key counts its writes; writes of other keys, and
 * commits of them, do not matter). A write may instead extend the kept value with what it wrote
 * (writeExtending): the extended value is kept once the write is durable.
 */
export class CommittedCache<K, V> {
  private readonly rows: RecentCache<K, V>;
  /** Per key, how often a write of it began or ended; past a bound, all are forgotten and `epoch` moves. */
  private readonly versions = new Map<K, number>();
  private readonly maxVersions: number;
  private epoch = 0;
  /**
   * Keys being written, with how many writes of each are open: a read of one is never kept, since
   * it may have been made before the write's commit on another connection. A write outside a
   * transaction ends when it resolves (its own commit is durable then); one inside a transaction
   * at the next commit (a rollback, which may be one unit's of a batch whose others commit, leaves
   * it to that commit).
   */
  private readonly writing = new Map<K, number>();
  /** Keys written inside transactions not committed yet, and how often. */
  private readonly written = new Map<K, number>();
  /** Values extended by writes inside transactions, kept once they commit (undefined: none). */
  private readonly extended = new Map<K, V | undefined>();
  /** Reads in flight outside transactions, per key; a write of the key forgets its read (later readers read again). */
  private readonly loading = new Map<K, Promise<V>>();
  /** Writes of every key open (writeAll), and those inside transactions not committed yet: as `writing` and `written`, for all keys at once. */
  private writingAll = 0;
  private writtenAll = 0;

  constructor(
    private readonly db: Database,
    capacity: number,
  ) {
    this.rows = new RecentCache<K, V>(capacity);
    this.maxVersions = capacity * 4;
    db.onCommit(() => {
      if (this.writtenAll > 0) {
        this.writingAll -= this.writtenAll;
        this.writtenAll = 0;
        this.forgetAll();
      }
      for (const [key, count] of this.written) this.end(key, count);
      this.written.clear();
      for (const [key, value] of this.extended) if (value !== undefined) this.rows.set(key, value);
      this.extended.clear();
    });
    // Which unit's extension a rollback undid is not known: none is kept, and a later write of the
    // same batch must not extend what a reader kept meanwhile either.
    db.onRollback(() => {
      if (this.writtenAll > 0) this.forgetAll();
      for (const key of this.written.keys()) this.drop([key]);
      for (const key of this.extended.keys()) this.extended.set(key, undefined);
    });
  }

  get(key: K): V | undefined {
    return this.rows.get(key);
  }

  /**
   * The kept value, else `read`'s (kept when nothing was written meanwhile, outside transactions).
   * Readers of a key already being read outside transactions share that read (the members of a
   * room that a message wakes all ask for it at once).
   */
  async read(key: K, read: () => Promise<V>): Promise<V> {
    const kept = this.rows.get(key);
    if (kept !== undefined) return kept;
    if (this.db.inTransaction()) return this.load(key, read);
    const pending = this.loading.get(key);
    if (pending) return pending;
    const loading = this.load(key, read);
    this.loading.set(key, loading);
    try {
      return await loading;
    } finally {
      if (this.loading.get(key) === loading) this.loading.delete(key);
    }
  }

  /** `read`'s value, always read again, and kept as `read` keeps it. */
  async load(key: K, read: () => Promise<V>): Promise<V> {
    const epoch = this.epoch;
    const version = this.versions.get(key);
    const value = await read();
    if (epoch === this.epoch && version === this.versions.get(key) && !this.writing.has(key) && this.writingAll === 0 && !this.db.inTransaction()) this.rows.set(key, value);
    return value;
  }

  /**
   * The kept values of many keys, the others from one `read` of those missing (a key it does not
   * return has `absent`), kept as `load` keeps them.
   */
  async readMany(keys: readonly K[], read: (missing: K[]) => Promise<Map<K, V>>, absent: V): Promise<Map<K, V>> {
    const found = new Map<K, V>();
    const inTransaction = this.db.inTransaction();
    const missing = new Set<K>();
    const shared: [K, Promise<V>][] = [];
    for (const key of keys) {
      const value = this.rows.get(key);
      if (value !== undefined) found.set(key, value);
      else {
        const pending = inTransaction ? undefined : this.loading.get(key);
        if (pending) shared.push([key, pending]);
        else missing.add(key);
      }
    }
    if (missing.size > 0) {
      const list = [...missing];
      const epoch = this.epoch;
      const versions = list.map((key) => this.versions.get(key));
      const batch = read(list);
      const own = new Map<K, Promise<V>>();
      if (!inTransaction) {
        for (const key of list) {
          const one = batch.then((loaded) => loaded.get(key) ?? absent);
          one.catch(() => undefined); // the batch's own await reports the failure
          own.set(key, one);
          this.loading.set(key, one);
        }
      }
      let loaded: Map<K, V>;
      try {
        loaded = await batch;
      } finally {
        for (const [key, one] of own) if (this.loading.get(key) === one) this.loading.delete(key);
      }
      const keep = epoch === this.epoch && this.writingAll === 0 && !inTransaction;
      list.forEach((key, i) => {
        const value = loaded.get(key) ?? absent;
        found.set(key, value);
        if (keep && versions[i] === this.versions.get(key) && !this.writing.has(key)) this.rows.set(key, value);
      });
    }
    for (const [key, pending] of shared) found.set(key, await pending);
    return found;
  }

  /** A write that changes what `key` names. */
  write<T>(key: K, fn: () => Promise<T>): Promise<T> {
    return this.writeMany([key], fn);
  }

  /** A write that changes what each of `keys` names. */
  async writeMany<T>(keys: Iterable<K>, fn: () => Promise<T>): Promise<T> {
    const list = [...keys];
    for (const key of list) this.writing.set(key, (this.writing.get(key) ?? 0) + 1);
    this.drop(list);
    try {
      return await fn();
    } finally {
      if (this.db.inTransaction()) for (const key of list) this.written.set(key, (this.written.get(key) ?? 0) + 1);
      else for (const key of list) this.end(key, 1);
    }
  }

  /**
   * A write that may change what any key names (one whose keys are not known: every token of a
   * user, say): nothing is kept from its start until it is durable, and all that was kept is forgotten.
   */
  async writeAll<T>(fn: () => Promise<T>): Promise<T> {
    this.writingAll++;
    this.forgetAll();
    try {
      return await fn();
    } finally {
      if (this.db.inTransaction()) this.writtenAll++;
      else {
        this.writingAll--;
        this.forgetAll();
      }
    }
  }

  /**
   * A write that changes what `key` names in a way `extend` can apply to the kept value (a room's
   * newest events and the one just written): kept extended once the write is durable, instead of
   * read again. Writes of one key must not overlap (a room's go through its write queue).
   */
  async writeExtending<T>(key: K, fn: () => Promise<T>, extend: (value: V, written: T) => V | undefined): Promise<T> {
    const inTransaction = this.db.inTransaction();
    const before = inTransaction && this.extended.has(key) ? this.extended.get(key) : this.rows.get(key);
    let result: T;
    try {
      result = await this.writeMany([key], fn);
    } catch (error) {
      if (inTransaction) this.extended.set(key, undefined);
      throw error;
    }
    const after = before === undefined ? undefined : extend(before, result);
    if (inTransaction) this.extended.set(key, after);
    else if (after !== undefined) this.rows.set(key, after);
    return result;
  }

  /** `count` writes of the key are over: what is read from now on may be kept again. */
  private end(key: K, count: number): void {
    const left = (this.writing.get(key) ?? 0) - count;
    if (left > 0) this.writing.set(key, left);
    else this.writing.delete(key);
    this.drop([key]);
  }

  /** Everything kept and every read in flight is forgotten; reads that began before are not kept. */
  private forgetAll(): void {
    this.rows.clear();
    this.loading.clear();
    this.versions.clear();
    for (const key of this.extended.keys()) this.extended.set(key, undefined);
    this.epoch++;
  }

  private drop(keys: readonly K[]): void {
    if (this.versions.size + keys.length > this.maxVersions) {
      this.versions.clear();
      this.epoch++;
    }
    for (const key of keys) {
      this.rows.delete(key);
      this.loading.delete(key);
      this.versions.set(key, (this.versions.get(key) ?? 0) + 1);
    }
  }
}
