// Synapse's shared-secret registration (/_synapse/admin/v1/register), which admin tools and sytest
// use to create users: the caller fetches a nonce, then proves knowledge of the configured secret
// with HMAC-SHA1 over nonce\0username\0password\0(admin|notadmin)[\0user_type].
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { MatrixError } from "../../protocol/errors";
import type { Clock } from "../runtime";
import type { AccountService, Session } from "./account-service";
import type { ProfileService } from "./profile-service";

/** As Synapse: a nonce is good for one minute, and for one registration. */
const NONCE_LIFETIME_MS = 60_000;

export interface SharedSecretRegisterInput {
  nonce: string;
  username: string;
  password: string;
  admin: boolean;
  mac: string;
  userType?: string;
  displayname?: string;
}

export function sharedSecretMac(secret: string, input: Omit<SharedSecretRegisterInput, "mac" | "displayname">): string {
  const hmac = createHmac("sha1", secret);
  hmac.update(input.nonce).update("\0").update(input.username).update("\0").update(input.password).update("\0").update(input.admin ? "admin" : "notadmin");
  if (input.userType !== undefined) hmac.update("\0").update(input.userType);
  return hmac.digest("hex");
}

export class SharedSecretRegistration {
  private readonly nonces = new Map<string, number>();

  constructor(
    private readonly secret: string | undefined,
    private readonly accounts: AccountService,
    private readonly profiles: ProfileService,
    private readonly clock: Clock,
  ) {}

  newNonce(): string {
    this.requireEnabled();
    this.expire();
    const nonce = randomBytes(32).toString("hex");
    this.nonces.set(nonce, this.clock.now());
    return nonce;
  }

  async register(input: SharedSecretRegisterInput): Promise<Session> {
    const secret = this.requireEnabled();
    this.expire();
    // Used up whatever follows: a nonce never gets a second try.
    if (!this.nonces.delete(input.nonce)) throw new MatrixError("M_UNKNOWN", "unrecognised nonce", 400);
    for (const [name, value] of [["username", input.username], ["password", input.password]] as const) {
      if (value.length > 512 || value.includes("\0")) throw new MatrixError("M_INVALID_PARAM", `Invalid ${name}`);
    }
    const want = Buffer.from(sharedSecretMac(secret, input), "utf8");
    const got = Buffer.from(input.mac, "utf8");
    if (want.length !== got.length || !timingSafeEqual(want, got)) throw new MatrixError("M_FORBIDDEN", "HMAC incorrect", 403);
    const result = await this.accounts.register({ username: input.username.toLowerCase(), password: input.password, admin: input.admin, byAdmin: true });
    if (input.displayname !== undefined) await this.profiles.setField(result.userId, result.userId, "displayname", input.displayname);
    return result.session!;
  }

  private requireEnabled(): string {
    if (this.secret === undefined) throw new MatrixError("M_UNKNOWN", "Shared secret registration is not enabled", 400);
    return this.secret;
  }

  private expire(): void {
    const cutoff = this.clock.now() - NONCE_LIFETIME_MS;
    for (const [nonce, created] of this.nonces) if (created < cutoff) this.nonces.delete(nonce);
  }
}
