// OpenID tokens (client-server-api "OpenID", server-server-api "OpenID"): a user asks for one to
// prove who they are to a third party (widgets, integration managers), which asks this server with
// /_matrix/federation/v1/openid/userinfo. Tokens live an hour (Synapse's default) and only in
// memory: a restart ends them early, and the client just asks for a new one.
import { randomBytes } from "node:crypto";
import { MatrixError } from "../../protocol/errors";
import type { Clock } from "../runtime";

export const OPENID_TOKEN_LIFETIME_MS = 3_600_000;
/** Live tokens kept at most (old ones are dropped first). */
const MAX_TOKENS = 100_000;

export class OpenIdTokens {
  private readonly tokens = new Map<string, { userId: string; expiresAt: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly serverName: string,
  ) {}

  /** POST /user/{userId}/openid/request_token, for the token's own user. */
  issue(requester: string, userId: string): { access_token: string; token_type: "Bearer"; matrix_server_name: string; expires_in: number } {
    if (requester !== userId) throw new MatrixError("M_FORBIDDEN", "Cannot request an OpenID token for another user");
    const now = this.clock.now();
    for (const [token, entry] of this.tokens) {
      if (entry.expiresAt > now && this.tokens.size < MAX_TOKENS) break;
      this.tokens.delete(token);
    }
    const token = randomBytes(24).toString("base64url");
    this.tokens.set(token, { userId, expiresAt: now + OPENID_TOKEN_LIFETIME_MS });
    return { access_token: token, token_type: "Bearer", matrix_server_name: this.serverName, expires_in: Math.floor(OPENID_TOKEN_LIFETIME_MS / 1000) };
  }

  /** GET /openid/userinfo: the token's user; 401 M_UNKNOWN_TOKEN when unknown or expired. */
  userInfo(token: string | undefined): { sub: string } {
    const entry = token === undefined ? undefined : this.tokens.get(token);
    if (!entry || entry.expiresAt <= this.clock.now()) throw new MatrixError("M_UNKNOWN_TOKEN", "Access token unknown or expired", 401);
    return { sub: entry.userId };
  }
}
