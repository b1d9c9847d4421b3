// state_snapshots and state_snapshot_entries: room state stored as deltas on a parent snapshot.
// A message (no state change) reuses its parent's snapshot and writes no state rows; a state event
// writes one row. A snapshot is written whole only when the delta rows along its chain reach a
// quarter of the state's size, so a room of n members costs O(n) rows in all, not O(n^2), and
// reading any state reads at most 1.25x its size in rows (one recursive query per read).
import type { SqlDatabase } from "../driver";
import type { Migration } from "../migrations";
import type { StateDelta } from "../../stores";

export const STATE_SNAPSHOTS_MIGRATION: Migration = {
  version: 4,
  name: "state_snapshots",
  up: `
    CREATE TABLE state_snapshots (
      snapshot_nid INTEGER PRIMARY KEY,
      room_id TEXT NOT NULL,
      parent INTEGER REFERENCES state_snapshots (snapshot_nid),
      chain_length INTEGER NOT NULL
    ) STRICT;
    -- state_key is "type\\0state_key"; a NULL event_id removes the key inherited from the parent.
    CREATE TABLE state_snapshot_entries (
      snapshot_nid INTEGER NOT NULL,
      state_key TEXT NOT NULL,
      event_id TEXT,
      PRIMARY KEY (snapshot_nid, state_key)
    ) STRICT, WITHOUT ROWID;
  `,
};

/** Delta rows along a chain and the state's size, for deciding when to write a snapshot whole. */
export const STATE_SNAPSHOT_SIZES_MIGRATION: Migration = {
  version: 6,
  name: "state_snapshot_sizes",
  up: `
    ALTER TABLE state_snapshots ADD COLUMN chain_rows INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE state_snapshots ADD COLUMN state_size INTEGER NOT NULL DEFAULT 0;
  `,
};

/** Chains shorter than this many delta rows are never collapsed, however small the state. */
const MIN_CHAIN_ROWS = 64;

/**
 * Full snapshot maps kept in memory, least recently used evicted first, bounded by their total number
 * of entries rather than by count: a sync over a hundred small rooms keeps them all, while a few
 * rooms of 50,000 members cannot exhaust memory.
 */
const CACHE_ENTRIES = 500_000;

interface SnapshotRow {
  parent: number | null;
  chain_length: number;
  chain_rows: number;
  state_size: number;
}

export class StateSnapshotsTable {
  private readonly insertSnapshot;
  private readonly insertEntry;
  private readonly selectSnapshot;
  private readonly selectChainEntries;
  private readonly selectEntry;
  private readonly cache = new Map<number, ReadonlyMap<string, string>>();
  private cachedEntries = 0;

  constructor(db: SqlDatabase) {
    this.insertSnapshot = db.prepare("INSERT INTO state_snapshots (room_id, parent, chain_length, chain_rows, state_size) VALUES (?, ?, ?, ?, ?)");
    this.insertEntry = db.prepare("INSERT INTO state_snapshot_entries (snapshot_nid, state_key, event_id) VALUES (?, ?, ?)");
    this.selectSnapshot = db.prepare<SnapshotRow>("SELECT parent, chain_length, chain_rows, state_size FROM state_snapshots WHERE snapshot_nid = ?");
    const chain = `WITH RECURSIVE chain(nid, depth) AS (
        SELECT ?, 0
        UNION ALL
        SELECT s.parent, chain.depth + 1 FROM state_snapshots s JOIN chain ON s.snapshot_nid = chain.nid WHERE s.parent IS NOT NULL
      )`;
    // Every entry along the chain, farthest ancestor first, so nearer deltas overwrite.
    this.selectChainEntries = db.prepare<{ state_key: string; event_id: string | null }>(
      `${chain} SELECT e.state_key, e.event_id FROM chain JOIN state_snapshot_entries e ON e.snapshot_nid = chain.nid ORDER BY chain.depth DESC`,
    );
    this.selectEntry = db.prepare<{ event_id: string | null }>(
      `${chain} SELECT e.event_id FROM chain JOIN state_snapshot_entries e ON e.snapshot_nid = chain.nid AND e.state_key = ? ORDER BY chain.depth LIMIT 1`,
    );
  }

  /** Writes the state parent+delta; returns the parent itself when the delta changes nothing. */
  write(roomId: string, parent: number | undefined, delta: StateDelta): number {
    if (parent === undefined) return this.writeWhole(roomId, new Map([...delta].filter((e): e is [string, string] => e[1] !== null)));
    const row = this.selectSnapshot.get(parent);
    if (!row) throw new Error(`state snapshot ${parent} does not exist`);
    // Only the keys that really change count, looked up one by one rather than reading the whole state.
    const changes: [string, string | null][] = [];
    let size = row.state_size;
    for (const [key, value] of delta) {
      const before = this.entry(parent, key);
      if (before === (value ?? undefined)) continue;
      changes.push([key, value]);
      if (before === undefined) size++;
      else if (value === null) size--;
    }
    if (changes.length === 0) return parent;
    const chainRows = row.chain_rows + changes.length;
    if (chainRows > Math.max(MIN_CHAIN_ROWS, size / 4)) {
      const full = new Map(this.read(parent));
      for (const [k, v] of changes) v === null ? full.delete(k) : full.set(k, v);
      return this.writeWhole(roomId, full);
    }
    const nid = Number(this.insertSnapshot.run(roomId, parent, row.chain_length + 1, chainRows, size).lastInsertRowid);
    for (const [k, v] of changes) this.insertEntry.run(nid, k, v);
    return nid;
  }

  private writeWhole(roomId: string, state: Map<string, string>): number {
    const nid = Number(this.insertSnapshot.run(roomId, null, 0, 0, state.size).lastInsertRowid);
    for (const [k, v] of state) this.insertEntry.run(nid, k, v);
    this.remember(nid, state);
    return nid;
  }

  /** The whole state of a snapshot, from one query over its chain. */
  read(snapshot: number): ReadonlyMap<string, string> {
    const cached = this.cache.get(snapshot);
    if (cached) {
      this.cache.delete(snapshot);
      this.cache.set(snapshot, cached);
      return cached;
    }
    if (!this.selectSnapshot.get(snapshot)) throw new Error(`state snapshot ${snapshot} does not exist`);
    const state = new Map<string, string>();
    for (const e of this.selectChainEntries.all(snapshot)) e.event_id === null ? state.delete(e.state_key) : state.set(e.state_key, e.event_id);
    this.remember(snapshot, state);
    return state;
  }

  /** One key of a snapshot: the nearest entry for it along the chain. */
  entry(snapshot: number, key: string): string | undefined {
    const cached = this.cache.get(snapshot);
    if (cached) return cached.get(key);
    return this.selectEntry.get(snapshot, key)?.event_id ?? undefined;
  }

  private remember(nid: number, state: ReadonlyMap<string, string>): void {
    const previous = this.cache.get(nid);
    if (previous) this.cachedEntries -= previous.size;
    this.cache.delete(nid);
    this.cache.set(nid, state);
    this.cachedEntries += state.size;
    // Keep at least the newest map, however large.
    while (this.cachedEntries > CACHE_ENTRIES && this.cache.size > 1) {
      const oldest = this.cache.keys().next().value as number;
      this.cachedEntries -= this.cache.get(oldest)!.size;
      this.cache.delete(oldest);
    }
  }

  /** Forget cached maps (a rolled-back transaction may have cached snapshots that no longer exist). */
  clearCache(): void {
    this.cache.clear();
    this.cachedEntries = 0;
  }
}
