// state_snapshots and state_snapshot_entries: room state stored as deltas on a parent snapshot.
// A message (no state change) reuses its parent's snapshot and writes no state rows; a state event
// writes one row. Chains are bounded: past MAX_CHAIN deltas the next snapshot is written whole, so
// reading any state walks at most MAX_CHAIN + 1 snapshots.
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

export const MAX_CHAIN = 32;

/** Full snapshot maps kept in memory, newest use last; current state is read far more than it changes. */
const CACHE_SIZE = 64;

export class StateSnapshotsTable {
  private readonly insertSnapshot;
  private readonly insertEntry;
  private readonly selectSnapshot;
  private readonly selectEntries;
  private readonly selectEntry;
  private readonly cache = new Map<number, ReadonlyMap<string, string>>();

  constructor(db: SqlDatabase) {
    this.insertSnapshot = db.prepare("INSERT INTO state_snapshots (room_id, parent, chain_length) VALUES (?, ?, ?)");
    this.insertEntry = db.prepare("INSERT INTO state_snapshot_entries (snapshot_nid, state_key, event_id) VALUES (?, ?, ?)");
    this.selectSnapshot = db.prepare<{ parent: number | null; chain_length: number }>("SELECT parent, chain_length FROM state_snapshots WHERE snapshot_nid = ?");
    this.selectEntries = db.prepare<{ state_key: string; event_id: string | null }>("SELECT state_key, event_id FROM state_snapshot_entries WHERE snapshot_nid = ?");
    this.selectEntry = db.prepare<{ event_id: string | null }>("SELECT event_id FROM state_snapshot_entries WHERE snapshot_nid = ? AND state_key = ?");
  }

  /** Writes the state parent+delta; returns the parent itself when the delta changes nothing. */
  write(roomId: string, parent: number | undefined, delta: StateDelta): number {
    let parentLength = -1;
    let parentState: ReadonlyMap<string, string> | undefined;
    if (parent !== undefined) {
      const row = this.selectSnapshot.get(parent);
      if (!row) throw new Error(`state snapshot ${parent} does not exist`);
      parentLength = row.chain_length;
      parentState = this.read(parent);
      const changes = [...delta].some(([k, v]) => (v === null ? parentState!.has(k) : parentState!.get(k) !== v));
      if (!changes) return parent;
    }
    if (parent === undefined || parentLength + 1 > MAX_CHAIN) {
      const full = new Map(parentState ?? []);
      for (const [k, v] of delta) v === null ? full.delete(k) : full.set(k, v);
      const nid = Number(this.insertSnapshot.run(roomId, null, 0).lastInsertRowid);
      for (const [k, v] of full) this.insertEntry.run(nid, k, v);
      this.remember(nid, full);
      return nid;
    }
    const nid = Number(this.insertSnapshot.run(roomId, parent, parentLength + 1).lastInsertRowid);
    for (const [k, v] of delta) {
      if (v === null ? parentState!.has(k) : parentState!.get(k) !== v) this.insertEntry.run(nid, k, v);
    }
    return nid;
  }

  /** The whole state of a snapshot: walks the chain to its root, nearer deltas winning. */
  read(snapshot: number): ReadonlyMap<string, string> {
    const cached = this.cache.get(snapshot);
    if (cached) {
      this.cache.delete(snapshot);
      this.cache.set(snapshot, cached);
      return cached;
    }
    const chain: number[] = [];
    let base: ReadonlyMap<string, string> | undefined;
    for (let nid: number | null = snapshot; nid !== null; ) {
      const hit = this.cache.get(nid);
      if (hit) {
        base = hit;
        break;
      }
      chain.push(nid);
      const row = this.selectSnapshot.get(nid);
      if (!row) throw new Error(`state snapshot ${nid} does not exist`);
      nid = row.parent;
    }
    const state = new Map(base ?? []);
    for (let i = chain.length - 1; i >= 0; i--) {
      for (const e of this.selectEntries.all(chain[i])) e.event_id === null ? state.delete(e.state_key) : state.set(e.state_key, e.event_id);
    }
    this.remember(snapshot, state);
    return state;
  }

  /** One key of a snapshot, reading only until the nearest delta that mentions it. */
  entry(snapshot: number, key: string): string | undefined {
    const cached = this.cache.get(snapshot);
    if (cached) return cached.get(key);
    for (let nid: number | null = snapshot; nid !== null; ) {
      const hit = this.selectEntry.get(nid, key);
      if (hit) return hit.event_id ?? undefined;
      nid = this.selectSnapshot.get(nid)?.parent ?? null;
    }
    return undefined;
  }

  private remember(nid: number, state: ReadonlyMap<string, string>): void {
    this.cache.set(nid, state);
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as number);
  }

  /** Forget cached maps (a rolled-back transaction may have cached snapshots that no longer exist). */
  clearCache(): void {
    this.cache.clear();
  }
}
