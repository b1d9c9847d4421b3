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
