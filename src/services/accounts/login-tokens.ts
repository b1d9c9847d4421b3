// Short-lived, one-use login tokens (client-server-api "Token-based", m.login.token): made when a
// user comes back from single sign-on, exchanged once at POST /login for an access token. Kept in
// memory: a token outliving a restart would be of no use to anyone, as it lasts two minutes.
import { randomBytes } from "node:crypto";
import { MatrixError } from "../../protocol/errors";
import type { Clock } from "../runtime";

/**
 * The spec asks for "around five seconds"; Portier, as Synapse, first shows the user a page naming
 * the client the token goes to (the spec's security considerations), so a person must click
 * through in time: two minutes, as Synapse's SSO login tokens.
 */
export const LOGIN_TOKEN_LIFETIME_MS = 2 * 60 * 1000;

interface Pending {
  readonly userId: string;
  readonly expiresTs: number;
}

export class LoginTokens {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly clock: Clock, private readonly lifetimeMs = LOGIN_TOKEN_LIFETIME_MS) {}

  issue(userId: string): string {
    this.expire();
    const token = `plt_${randomBytes(24).toString("base64url")}`;
    this.pending.set(token, { userId, expiresTs: this.clock.now() + this.lifetimeMs });
    return token;
  }

  /** The token's user; the token is spent. Unknown, spent or expired: 403 M_FORBIDDEN (login.yaml). */
  redeem(token: string): string {
    const found = this.pending.get(token);
    this.pending.delete(token);
    if (!found || found.expiresTs <= this.clock.now()) throw new MatrixError("M_FORBIDDEN", "Invalid or expired login token", 403);
    return found.userId;
  }

  private expire(): void {
    const now = this.clock.now();
    for (const [token, p] of this.pending) if (p.expiresTs <= now) this.pending.delete(token);
  }
}
