// Per-connection state of simplified sliding sync (MSC4186 "Connections"), in memory: for each
// (user, device, conn_id), what each room was last sent with, keyed by the `pos` that answer gave.
// A request with `pos` P derives the next state from P's; once P is used, states before it go
// (a retry with P still works, an older pos does not). Connections are bounded in number and expire
// when idle; a pos this server no longer knows (expired, evicted, or from before a restart) answers
// 400 M_UNKNOWN_POS, and the client starts again without one, as with Synapse.
import { randomBytes } from "node:crypto";
import type { ErrCode } from "../../protocol/errors";
import { MatrixError } from "../../protocol/errors";
import type { Clock } from "../runtime";
import type { RoomConfig } from "./sliding-sync-request";

/** What a room was last sent with on a connection. */
export interface SentRoom {
  /** The event stream position the client has this room's data up to. */
  readonly sentAt: number;
  readonly membership: string;
  readonly config: RoomConfig;
  /** The room fields last sent (name, avatar, counts, ...), as JSON text each, to send only changes. */
  readonly fields: Readonly<Record<string, string>>;
  /** Users whose member event $LAZY loading has sent (bounded). */
  readonly lazyMembers: readonly string[];
  /**
   * The stream positions the room's extension data (account data, receipts, typing) was given up
   * to: a room that left the windows gets what it missed when it comes back.
   */
  readonly extensionsAt: Pick<StreamPositions, "accountData" | "receipts" | "typing">;
}

export interface StreamPositions {
  readonly events: number;
  readonly accountData: number;
  readonly receipts: number;
  readonly typing: number;
  readonly e2ee: number;
}

export interface ConnectionState {
  readonly streams: StreamPositions;
  readonly rooms: ReadonlyMap<string, SentRoom>;
  /** Each list's count as last sent: a change is news for a waiting request. */
  readonly listCounts: ReadonlyMap<string, number>;
}

export interface ConnectionLimits {
  /** Connections kept in all (least recently used evicted first). */
  readonly maxConnections: number;
  /** conn_ids one device may hold at once. */
  readonly maxPerDevice: number;
  /** A connection unused this long is dropped. */
  readonly idleMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = { maxConnections: 10_000, maxPerDevice: 16, idleMs: 24 * 60 * 60 * 1000 };

/** States one connection keeps (a pos and the answers to its retries). */
const MAX_STATES_PER_CONNECTION = 8;

/** MSC4186's code for a position the server no longer holds (not in the spec's errcode list yet). */
export const M_UNKNOWN_POS: ErrCode = "M_UNKNOWN_POS";

interface Connection {
  readonly device: string;
  lastUsed: number;
  /** pos serial -> state; at most the one last used as `pos` and those made from it. */
  readonly states: Map<number, ConnectionState>;
}

export class SlidingSyncConnections {
  /** Names this process in positions: a pos from before a restart is unknown, never another's. */
  private readonly boot = randomBytes(4).readUInt32BE(0).toString(36);
  private serial = 0;
  /** Key -> connection, in order of last use. */
  private readonly connections = new Map<string, Connection>();

  constructor(
    private readonly clock: Clock,
    private readonly limits: ConnectionLimits = DEFAULT_CONNECTION_LIMITS,
  ) {}

  /** The state a `pos` names on this connection; 400 M_UNKNOWN_POS when there is none. */
  stateAt(userId: string, deviceId: string | undefined, connId: string | undefined, pos: string): ConnectionState {
    const key = connectionKey(userId, deviceId, connId);
    const connection = this.connections.get(key);
    const serial = this.serialOf(pos);
    const state = serial === undefined ? undefined : connection?.states.get(serial);
    if (!connection || !state || this.clock.now() - connection.lastUsed > this.limits.idleMs) {
      if (connection && this.clock.now() - connection.lastUsed > this.limits.idleMs) this.connections.delete(key);
      throw new MatrixError(M_UNKNOWN_POS, "Unknown position");
    }
    return state;
  }

  /**
   * Keeps the state an answer leads to and returns its pos. `from` is the pos the request gave
   * (undefined: a new connection, which replaces any of that conn_id).
   */
  save(userId: string, deviceId: string | undefined, connId: string | undefined, from: string | undefined, state: ConnectionState): string {
    const key = connectionKey(userId, deviceId, connId);
    const now = this.clock.now();
    let connection = this.connections.get(key);
    if (from === undefined || !connection) {
      connection = { device: `${userId}\u0000${deviceId ?? ""}`, lastUsed: now, states: new Map() };
    } else {
      const fromSerial = this.serialOf(from);
      for (const serial of [...connection.states.keys()]) if (fromSerial === undefined || serial < fromSerial) connection.states.delete(serial);
    }
    connection.lastUsed = now;
    const serial = ++this.serial;
    connection.states.set(serial, state);
    // Retries of one pos each add a state: keep the newest few (and the pos itself).
    const fromSerial = from === undefined ? undefined : this.serialOf(from);
    for (const old of connection.states.keys()) {
      if (connection.states.size <= MAX_STATES_PER_CONNECTION) break;
      if (old !== fromSerial) connection.states.delete(old);
    }
    // Most recently used last.
    this.connections.delete(key);
    this.connections.set(key, connection);
    this.evict(connection.device, now);
    return `${this.boot}_${serial}`;
  }

  /** Connections held (for tests and metrics). */
  size(): number {
    return this.connections.size;
  }

  private evict(device: string, now: number): void {
    let ofDevice = 0;
    for (const c of this.connections.values()) if (c.device === device) ofDevice++;
    for (const [key, c] of this.connections) {
      const idle = now - c.lastUsed > this.limits.idleMs;
      const overTotal = this.connections.size > this.limits.maxConnections;
      const overDevice = c.device === device && ofDevice > this.limits.maxPerDevice;
      if (!idle && !overTotal && !overDevice) {
        if (this.connections.size <= this.limits.maxConnections && ofDevice <= this.limits.maxPerDevice) break;
        continue;
      }
      this.connections.delete(key);
      if (c.device === device) ofDevice--;
    }
  }

  private serialOf(pos: string): number | undefined {
    const match = /^([0-9a-z]+)_(\d{1,15})$/.exec(pos);
    return match && match[1] === this.boot ? Number(match[2]) : undefined;
  }
}

function connectionKey(userId: string, deviceId: string | undefined, connId: string | undefined): string {
  return `${userId}\u0000${deviceId ?? ""}\u0000${connId ?? ""}`;
}
