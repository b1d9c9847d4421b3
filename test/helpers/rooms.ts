// A small client for room tests: registers a user, then calls the client-server API with its token;
// `ok()` asserts a 200 and checks the body against the spec's OpenAPI.
import { expect } from "bun:test";
import type { PortierServer } from "../../src/app";
import { expectMatchesSpec } from "./openapi";
import { request } from "./server";

export const V3 = "/_matrix/client/v3";
export const R0 = "/_matrix/client/r0";

export const enc = encodeURIComponent;

export class TestClient {
  constructor(
    readonly server: PortierServer,
    readonly userId: string,
    readonly deviceId: string,
    readonly token: string,
  ) {}

  static async register(server: PortierServer, username: string, deviceId?: string): Promise<TestClient> {
    const r = await request(server, "POST", `${V3}/register`, { username, password: "pw", device_id: deviceId, auth: { type: "m.login.dummy" } });
    if (r.status !== 200) throw new Error(`registering ${username}: ${r.status} ${JSON.stringify(r.body)}`);
    return new TestClient(server, r.body.user_id, r.body.device_id, r.body.access_token);
  }

  /** Another device of the same user. */
  async login(deviceId: string): Promise<TestClient> {
    const r = await request(this.server, "POST", `${V3}/login`, { type: "m.login.password", identifier: { type: "m.id.user", user: this.userId }, password: "pw", device_id: deviceId });
    if (r.status !== 200) throw new Error(`login: ${r.status} ${JSON.stringify(r.body)}`);
    return new TestClient(this.server, this.userId, r.body.device_id, r.body.access_token);
  }

  call(method: string, path: string, body?: unknown) {
    return request(this.server, method, path.startsWith("/_matrix") ? path : `${V3}${path}`, body, { Authorization: `Bearer ${this.token}` });
  }

  /** Calls, expects 200, checks the body against the spec and returns it. */
  async ok(method: string, path: string, body?: unknown): Promise<any> {
    const r = await this.call(method, path, body);
    if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    // The spec writes the empty state key as a trailing slash; Portier also serves it without one.
    const specPath = (path.startsWith("/_matrix") ? path : `${V3}${path}`).replace(/\/state\/([^/?]+)(\?|$)/, "/state/$1/$2");
    expectMatchesSpec({ api: "client-server", method, path: specPath, status: 200, body: r.body });
    return r.body;
  }

  /** Calls and expects an error status and errcode. */
  async fails(method: string, path: string, body: unknown, status: number, errcode: string): Promise<any> {
    const r = await this.call(method, path, body);
    expect({ status: r.status, errcode: r.body?.errcode }).toEqual({ status, errcode });
    return r.body;
  }

  async createRoom(body: Record<string, unknown> = {}): Promise<string> {
    return (await this.ok("POST", "/createRoom", body)).room_id;
  }

  async send(roomId: string, body: Record<string, unknown> = { msgtype: "m.text", body: "hi" }, type = "m.room.message"): Promise<string> {
    return (await this.ok("PUT", `/rooms/${enc(roomId)}/send/${enc(type)}/${crypto.randomUUID()}`, body)).event_id;
  }
}
