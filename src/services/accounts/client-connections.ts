// Where and how each device was last seen: the address and user agent of the requests made with its
// access tokens. GET /admin/whois reports them (client-server-api "Server Administration"), and GET
// /devices shows a device's last_seen_ip and last_seen_ts.
//
// Each request is noted in memory; the device's row is written at most once a minute (or when its
// address changes), as Synapse batches these writes rather than paying one per request. User agents
// are kept in memory only: after a restart, whois shows each device's stored address and time.
import type { Clock } from "../runtime";

export interface ConnectionInfo {
  ip: string;
  last_seen: number;
  /** Unknown for what was read back from the database after a restart. */
  user_agent?: string;
}

export interface ClientConnectionsDeps {
  devices(userId: string): Promise<readonly { deviceId: string; lastSeenTs: number | undefined; lastSeenIp: string | undefined }[]>;
  touchDevice(userId: string, deviceId: string, ts: number, ip: string | undefined): Promise<void>;
  clock: Clock;
  /** Reports a failed write; the request it came with is answered anyway. */
  onError?(error: unknown): void;
}

interface DeviceConnections {
  /** "ip\0user agent" -> last seen */
  seen: Map<string, number>;
  writtenTs: number;
  writtenIp: string | undefined;
}

const WRITE_INTERVAL_MS = 60_000;
/** Distinct address and user-agent pairs kept per device: the most recent ones. */
const MAX_PER_DEVICE = 10;
/** Devices kept in memory; the least recently seen go first. */
const MAX_DEVICES = 100_000;

export class ClientConnections {
  private readonly devices = new Map<string, DeviceConnections>();

  constructor(private readonly deps: ClientConnectionsDeps) {}

  /** Notes a request made with one of the device's access tokens. */
  record(userId: string, deviceId: string, ip: string | undefined, userAgent: string | undefined): void {
    const now = this.deps.clock.now();
    const key = `${userId}\0${deviceId}`;
    let device = this.devices.get(key);
    if (device) this.devices.delete(key); // re-inserted below: the map stays in least-recent-first order
    else device = { seen: new Map(), writtenTs: 0, writtenIp: undefined };
    this.devices.set(key, device);
    if (this.devices.size > MAX_DEVICES) this.devices.delete(this.devices.keys().next().value!);
    if (ip !== undefined) {
      const connection = `${ip}\0${userAgent ?? ""}`;
      device.seen.delete(connection);
      device.seen.set(connection, now);
      if (device.seen.size > MAX_PER_DEVICE) device.seen.delete(device.seen.keys().next().value!);
    }
    if (now - device.writtenTs >= WRITE_INTERVAL_MS || (ip !== undefined && ip !== device.writtenIp)) {
      device.writtenTs = now;
      device.writtenIp = ip ?? device.writtenIp;
      this.deps.touchDevice(userId, deviceId, now, ip).catch((error) => this.deps.onError?.(error));
    }
  }

  /** GET /admin/whois: each device of the user, with one session holding its connections, newest first. */
  async whois(userId: string): Promise<{ user_id: string; devices: Record<string, { sessions: { connections: ConnectionInfo[] }[] }> }> {
    const devices: Record<string, { sessions: { connections: ConnectionInfo[] }[] }> = {};
    for (const device of await this.deps.devices(userId)) {
      const seen = this.devices.get(`${userId}\0${device.deviceId}`)?.seen;
      let connections: ConnectionInfo[];
      if (seen && seen.size > 0) {
        connections = [...seen].reverse().map(([key, lastSeen]) => {
          const [ip, userAgent] = key.split("\0");
          // As Synapse, a request without a User-Agent header counts as an empty one.
          return { ip, last_seen: lastSeen, user_agent: userAgent };
        });
      } else {
        connections = device.lastSeenIp !== undefined && device.lastSeenTs !== undefined ? [{ ip: device.lastSeenIp, last_seen: device.lastSeenTs }] : [];
      }
      devices[device.deviceId] = { sessions: [{ connections }] };
    }
    return { user_id: userId, devices };
  }
}
