// Registers users on a test server and builds auth headers.
import { createHmac } from "node:crypto";
import type { PortierServer } from "../../src/app";
import { request } from "./server";

export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

export interface TestUser {
  userId: string;
  deviceId: string;
  token: string;
  password: string;
}

/** Registers `username` (registration must be enabled on the server) and returns its session. */
export async function registerUser(server: PortierServer, username: string, password = "correct horse", deviceId?: string): Promise<TestUser> {
  const r = await request(server, "POST", "/_matrix/client/v3/register", { username, password, device_id: deviceId, auth: { type: "m.login.dummy" } });
  if (r.status !== 200) throw new Error(`registering ${username}: ${r.status} ${JSON.stringify(r.body)}`);
  return { userId: r.body.user_id, deviceId: r.body.device_id, token: r.body.access_token, password };
}

/** A new device (and token) for an existing user by password login. */
export async function login(server: PortierServer, user: string, password: string, deviceId?: string): Promise<TestUser> {
  const r = await request(server, "POST", "/_matrix/client/v3/login", { type: "m.login.password", identifier: { type: "m.id.user", user }, password, device_id: deviceId });
  if (r.status !== 200) throw new Error(`login ${user}: ${r.status} ${JSON.stringify(r.body)}`);
  return { userId: r.body.user_id, deviceId: r.body.device_id, token: r.body.access_token, password };
}

/**
 * A server admin, made the way operators make one: shared-secret registration with admin: true (the
 * server's registration.shared_secret must be `secret`).
 */
export async function registerAdmin(server: PortierServer, username: string, secret: string): Promise<TestUser> {
  const nonce = (await request(server, "GET", "/_synapse/admin/v1/register")).body.nonce as string;
  const mac = createHmac("sha1", secret).update(`${nonce}\0${username}\0pw\0admin`).digest("hex");
  const r = await request(server, "POST", "/_synapse/admin/v1/register", { nonce, username, password: "pw", admin: true, mac });
  if (r.status !== 200) throw new Error(`admin registration: ${r.status} ${JSON.stringify(r.body)}`);
  return { userId: r.body.user_id, deviceId: r.body.device_id, token: r.body.access_token, password: "pw" };
}
