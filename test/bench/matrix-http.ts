// The client side of the HTTP benches: requests over real HTTP to a Portier on loopback, users,
// rooms and sends, and latency summaries.

export const V3 = "/_matrix/client/v3";
export const PASSWORD = "bench password";
export const enc = encodeURIComponent;
export const now = () => performance.now();
export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
export const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
export const ms = (n: number) => `${n.toFixed(2)} ms`;

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}
export function summary(values: number[]): string {
  const s = [...values].sort((a, b) => a - b);
  return `p50 ${ms(percentile(s, 0.5))}, p99 ${ms(percentile(s, 0.99))}, max ${ms(s[s.length - 1]!)}`;
}
export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export function rss(): string {
  Bun.gc(true);
  const m = process.memoryUsage();
  return `rss ${mb(m.rss)} (JS heap used ${mb(m.heapUsed)})`;
}

export interface Reply {
  status: number;
  body: any;
  bytes: number;
}

export interface User {
  userId: string;
  token: string;
}

/** Runs fn over items with at most `width` in flight. */
export async function pool<T, R>(items: T[], width: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}

/** A client of one server: every call throws unless the answer is 200. */
export class MatrixHttp {
  private txn = 0;
  constructor(readonly base: string) {}

  async call(method: string, path: string, token?: string, body?: unknown): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(`${this.base}${V3}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    const reply = { status: response.status, body: text.length ? JSON.parse(text) : undefined, bytes: Buffer.byteLength(text) };
    if (reply.status !== 200) throw new Error(`${method} ${path}: ${reply.status} ${text.slice(0, 300)}`);
    return reply;
  }

  async register(username: string): Promise<User> {
    const r = await this.call("POST", "/register", undefined, { username, password: PASSWORD, auth: { type: "m.login.dummy" } });
    return { userId: r.body.user_id, token: r.body.access_token };
  }

  async loginFresh(user: User): Promise<User> {
    const r = await this.call("POST", "/login", undefined, { type: "m.login.password", identifier: { type: "m.id.user", user: user.userId }, password: PASSWORD });
    return { userId: r.body.user_id, token: r.body.access_token };
  }

  send(user: User, roomId: string, body: string): Promise<Reply> {
    return this.call("PUT", `/rooms/${enc(roomId)}/send/m.room.message/bench-${++this.txn}`, user.token, { msgtype: "m.text", body });
  }

  /** Sends and returns the latency to the 200, in ms. */
  async timedSend(user: User, roomId: string, body: string): Promise<number> {
    const t = now();
    await this.send(user, roomId, body);
    return now() - t;
  }

  async createRoom(user: User, body: Record<string, unknown>): Promise<string> {
    return (await this.call("POST", "/createRoom", user.token, body)).body.room_id;
  }
}
