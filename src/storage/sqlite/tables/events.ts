// events, event_edges (prev_events), event_auth_edges (auth_events) and forward_extremities.
// The PDU is stored once as received; the columns beside it are what queries need.
import type { SqlDatabase, SqlParam } from "../driver";
import type { Migration } from "../migrations";
import type { NewEvent, StoredEvent } from "../../stores";

export const EVENTS_MIGRATION: Migration = {
  version: 3,
  name: "events",
  up: `
    CREATE TABLE events (
      event_nid INTEGER PRIMARY KEY,
      event_id TEXT NOT NULL UNIQUE,
      room_id TEXT NOT NULL,
      type TEXT NOT NULL,
      state_key TEXT,
      sender TEXT NOT NULL,
      depth INTEGER NOT NULL,
      origin_server_ts INTEGER NOT NULL,
      stream_ordering INTEGER UNIQUE,
      rejected_reason TEXT,
      outlier INTEGER NOT NULL DEFAULT 0,
      soft_failed INTEGER NOT NULL DEFAULT 0,
      state_snapshot INTEGER,
      json TEXT NOT NULL
    ) STRICT;
    CREATE INDEX events_room_stream ON events (room_id, stream_ordering);
    CREATE INDEX events_room_depth ON events (room_id, depth);
    CREATE TABLE event_edges (event_nid INTEGER NOT NULL, prev_event_id TEXT NOT NULL, PRIMARY KEY (event_nid, prev_event_id)) STRICT, WITHOUT ROWID;
    CREATE INDEX event_edges_prev ON event_edges (prev_event_id);
    CREATE TABLE event_auth_edges (event_nid INTEGER NOT NULL, auth_event_id TEXT NOT NULL, PRIMARY KEY (event_nid, auth_event_id)) STRICT, WITHOUT ROWID;
    CREATE TABLE forward_extremities (room_id TEXT NOT NULL, event_id TEXT NOT NULL, PRIMARY KEY (room_id, event_id)) STRICT, WITHOUT ROWID;
  `,
};

interface Row {
  event_nid: number;
  event_id: string;
  room_id: string;
  type: string;
  state_key: string | null;
  sender: string;
  depth: number;
  origin_server_ts: number;
  stream_ordering: number | null;
  rejected_reason: string | null;
  outlier: number;
  soft_failed: number;
  state_snapshot: number | null;
  json: string;
}

const COLUMNS = "event_nid, event_id, room_id, type, state_key, sender, depth, origin_server_ts, stream_ordering, rejected_reason, outlier, soft_failed, state_snapshot, json";

export class EventsTable {
  private readonly insertEvent;
  private readonly insertEdge;
  private readonly insertAuthEdge;
  private readonly selectById;
  private readonly selectPrev;
  private readonly selectAuth;
  private readonly selectMaxStream;
  private readonly selectBetween;
  private readonly selectBackwards;
  private readonly selectExtremities;
  private readonly deleteExtremity;
  private readonly insertExtremity;
  private readonly selectHasChild;

  constructor(private readonly db: SqlDatabase) {
    this.insertEvent = db.prepare(
      `INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_server_ts, stream_ordering, rejected_reason, outlier, soft_failed, state_snapshot, json)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.insertEdge = db.prepare("INSERT OR IGNORE INTO event_edges (event_nid, prev_event_id) VALUES (?, ?)");
    this.insertAuthEdge = db.prepare("INSERT OR IGNORE INTO event_auth_edges (event_nid, auth_event_id) VALUES (?, ?)");
    this.selectById = db.prepare<Row>(`SELECT ${COLUMNS} FROM events WHERE event_id = ?`);
    this.selectPrev = db.prepare<{ prev_event_id: string }>("SELECT prev_event_id FROM event_edges WHERE event_nid = ?");
    this.selectAuth = db.prepare<{ auth_event_id: string }>("SELECT auth_event_id FROM event_auth_edges WHERE event_nid = ?");
    this.selectMaxStream = db.prepare<{ m: number | null }>("SELECT max(stream_ordering) AS m FROM events");
    this.selectBetween = db.prepare<Row>(
      `SELECT ${COLUMNS} FROM events WHERE room_id = ? AND stream_ordering > ? AND stream_ordering <= ? ORDER BY stream_ordering LIMIT ?`,
    );
    this.selectBackwards = db.prepare<Row>(
      `SELECT ${COLUMNS} FROM events WHERE room_id = ? AND stream_ordering <= ? AND stream_ordering > ? ORDER BY stream_ordering DESC LIMIT ?`,
    );
    this.selectExtremities = db.prepare<{ event_id: string }>("SELECT event_id FROM forward_extremities WHERE room_id = ? ORDER BY event_id");
    this.deleteExtremity = db.prepare("DELETE FROM forward_extremities WHERE room_id = ? AND event_id = ?");
    this.insertExtremity = db.prepare("INSERT OR IGNORE INTO forward_extremities (room_id, event_id) VALUES (?, ?)");
    // An event already referenced as a prev_event by an accepted, non-outlier event is not an extremity.
    this.selectHasChild = db.prepare(
      `SELECT 1 FROM event_edges ed JOIN events e ON e.event_nid = ed.event_nid
       WHERE ed.prev_event_id = ? AND e.outlier = 0 AND e.rejected_reason IS NULL LIMIT 1`,
    );
  }

  insert(event: NewEvent, streamOrdering: number | undefined, stateSnapshot: number | undefined): number {
    const nid = Number(
      this.insertEvent.run(
        event.eventId,
        event.roomId,
        event.type,
        event.stateKey ?? null,
        event.sender,
        event.depth,
        event.originServerTs,
        streamOrdering ?? null,
        event.rejectedReason ?? null,
        event.outlier ? 1 : 0,
        event.softFailed ? 1 : 0,
        stateSnapshot ?? null,
        event.json,
      ).lastInsertRowid,
    );
    for (const prev of event.prevEvents) this.insertEdge.run(nid, prev);
    for (const auth of event.authEvents) this.insertAuthEdge.run(nid, auth);
    return nid;
  }

  get(eventId: string): StoredEvent | undefined {
    const row = this.selectById.get(eventId);
    return row && this.toStored(row);
  }

  private toStored(row: Row): StoredEvent {
    return {
      eventId: row.event_id,
      roomId: row.room_id,
      json: row.json,
      type: row.type,
      stateKey: row.state_key ?? undefined,
      sender: row.sender,
      depth: row.depth,
      originServerTs: row.origin_server_ts,
      streamOrdering: row.stream_ordering ?? undefined,
      rejectedReason: row.rejected_reason ?? undefined,
      outlier: row.outlier === 1,
      softFailed: row.soft_failed === 1,
      stateSnapshot: row.state_snapshot ?? undefined,
      prevEvents: this.selectPrev.all(row.event_nid).map((r) => r.prev_event_id),
      authEvents: this.selectAuth.all(row.event_nid).map((r) => r.auth_event_id),
    };
  }

  maxStreamOrdering(): number {
    return this.selectMaxStream.get()?.m ?? 0;
  }

  between(roomId: string, fromExclusive: number, toInclusive: number, limit: number): StoredEvent[] {
    return this.selectBetween.all(roomId, fromExclusive, toInclusive, limit).map((r) => this.toStored(r));
  }

  backwards(roomId: string, beforeInclusive: number, afterExclusive: number, limit: number): StoredEvent[] {
    return this.selectBackwards.all(roomId, beforeInclusive, afterExclusive, limit).map((r) => this.toStored(r));
  }

  forwardExtremities(roomId: string): string[] {
    return this.selectExtremities.all(roomId).map((r) => r.event_id);
  }

  /** The new event replaces its prev_events as extremities (unless something already builds on it). */
  advanceExtremities(roomId: string, eventId: string, prevEvents: readonly string[]): void {
    for (const prev of prevEvents) this.deleteExtremity.run(roomId, prev);
    if (!this.selectHasChild.get(eventId)) this.insertExtremity.run(roomId, eventId);
  }

  /** Every event reachable through auth_events from the given ones (the auth chain), by recursive query. */
  authChain(eventIds: readonly string[]): Set<string> {
    if (eventIds.length === 0) return new Set();
    const placeholders = eventIds.map(() => "?").join(", ");
    const rows = this.db
      .prepare<{ id: string }>(
        `WITH RECURSIVE chain(id) AS (
           SELECT a.auth_event_id FROM events e JOIN event_auth_edges a ON a.event_nid = e.event_nid WHERE e.event_id IN (${placeholders})
           UNION
           SELECT a.auth_event_id FROM chain JOIN events e ON e.event_id = chain.id JOIN event_auth_edges a ON a.event_nid = e.event_nid
         ) SELECT id FROM chain`,
      )
      .all(...(eventIds as SqlParam[]));
    return new Set(rows.map((r) => r.id));
  }
}
