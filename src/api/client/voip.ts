// GET /voip/turnServer (client-server-api "Voice over IP"): the TURN server a client uses for calls,
// from the config. With a shared secret (coturn's static-auth-secret, TURN REST API scheme), each
// user gets a username "<expiry seconds>:<user id>" and its HMAC-SHA1 as the password, valid for
// turn_user_lifetime_ms; else the fixed username and password. Without turn_uris the answer is {},
// which is what Synapse answers when no TURN server is configured (clients then call without one).
import { createHmac } from "node:crypto";
import { Elysia } from "elysia";
import type { Config } from "../../config/schema";
import type { AccountService } from "../../services/accounts/account-service";
import type { Clock } from "../../services/runtime";
import { requireUser } from "../middleware/auth";
import { CLIENT_PREFIXES } from "./paths";

export function turnCredentials(voip: Config["voip"], userId: string, nowMs: number): Record<string, unknown> {
  if (voip.turn_uris.length === 0) return {};
  const ttl = Math.floor(voip.turn_user_lifetime_ms / 1000);
  if (voip.turn_shared_secret !== undefined) {
    const username = `${Math.floor(nowMs / 1000) + ttl}:${userId}`;
    const password = createHmac("sha1", voip.turn_shared_secret).update(username).digest("base64");
    return { username, password, uris: voip.turn_uris, ttl };
  }
  if (voip.turn_username !== undefined && voip.turn_password !== undefined) return { username: voip.turn_username, password: voip.turn_password, uris: voip.turn_uris, ttl };
  return {};
}

export function voipRoutes({ accounts, voip, clock }: { accounts: AccountService; voip: Config["voip"]; clock: Clock }) {
  const app = new Elysia({ name: "client-voip" });
  for (const prefix of CLIENT_PREFIXES) {
    app.get(`${prefix}/voip/turnServer`, async ({ request }) => {
      const me = await requireUser(accounts, request);
      return turnCredentials(voip, me.userId, clock.now());
    });
  }
  return app;
}
