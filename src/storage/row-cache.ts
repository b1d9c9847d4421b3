import type { Database } from "./database";

// A bounded cache of rows that never change once committed (events, room records, entries of a
// state snapshot), least recently used evicted first. Reads made outside a transaction fill it:
// those see committed rows only, so a rolled-back write can never be cached (the one user that also
// fills it inside transactions, the snapshot entries, clears it on every rollback). On PostgreSQL each hit
// saves a network round trip; on SQLite a query and the parse of its row.
export class ImmutableRowCache<K, V> {
  private readonly map = new Map<K, V>();

  constructor(private readonly capacity: number) {}

  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

/**
 * Values read from committed rows that writes change (a room's newest events, a device's key
 * counts), kept per key until a write of that key: dropped when the write begins and again once it
 * is durable (at its caller's commit when it ran inside a transaction), so that a read another
 * connection made while the write was open is not kept past it. A read that overlapped any write,
 * commit or rollback is not kept at all.
 */
export class CommittedCache<K, V> {
  private readonly rows: ImmutableRowCache<K, V>;
  /** Moves on every write and every commit or rollback. */
  private epoch = 0;
  /** Keys written inside transactions not ended yet: dropped again when they end. */
  private readonly written = new Set<K>();

  constructor(
    private readonly db: Database,
    capacity: number,
  ) {
    this.rows = new ImmutableRowCache<K, V>(capacity);
    const settle = () => {
      for (const key of this.written) this.rows.delete(key);
      this.written.clear();
      this.epoch++;
    };
    db.onCommit(settle);
    db.onRollback(settle);
  }

  get(key: K): V | undefined {
    return this.rows.get(key);
  }

  /** The kept value, else `read`'s (kept when nothing was written meanwhile, outside transactions). */
  async read(key: K, read: () => Promise<V>): Promise<V> {
    return this.rows.get(key) ?? this.load(key, read);
  }

  /** `read`'s value, always read again, and kept as `read` keeps it. */
  async load(key: K, read: () => Promise<V>): Promise<V> {
    const epoch = this.epoch;
    const value = await read();
    if (epoch === this.epoch && !this.db.inTransaction()) this.rows.set(key, value);
    return value;
  }

  /** A write that changes what `key` names. */
  async write<T>(key: K, fn: () => Promise<T>): Promise<T> {
    this.drop(key);
    try {
      return await fn();
    } finally {
      if (this.db.inTransaction()) this.written.add(key);
      this.drop(key);
    }
  }

  private drop(key: K): void {
    this.rows.delete(key);
    this.epoch++;
  }
}
