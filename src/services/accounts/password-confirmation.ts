// The m.login.password stage of user-interactive authentication (client-server-api "Password-based"),
// used where the spec asks a logged-in user to confirm a sensitive change (deleting devices,
// changing the password); with single sign-on configured, m.login.sso is a flow of its own (the
// client sends the user through /auth/m.login.sso/fallback/web, then retries with the session).
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "./account-service";
import type { Flow, UserInteractiveAuth } from "./user-interactive-auth";

export const PASSWORD_FLOWS: Flow[] = [{ stages: ["m.login.password"] }];
const PASSWORD_OR_SSO_FLOWS: Flow[] = [...PASSWORD_FLOWS, { stages: ["m.login.sso"] }];

/** The `auth` object of a request (definitions/auth_data.yaml), as far as this stage reads it. */
export interface AuthData {
  type?: string;
  session?: string;
  identifier?: { type?: string; user?: string };
  /** Deprecated top-level user, still sent by older clients. */
  user?: string;
  password?: string;
}

export class PasswordConfirmation {
  private readonly flows: Flow[];

  constructor(
    private readonly accounts: AccountService,
    private readonly uia: UserInteractiveAuth,
    /** Single sign-on is configured: m.login.sso is offered beside the password. */
    private readonly sso = false,
  ) {
    this.flows = sso ? PASSWORD_OR_SSO_FLOWS : PASSWORD_FLOWS;
  }

  /**
   * Resolves with the user whose password was given; otherwise throws the 401 that starts or
   * continues the flow. With `expectedUserId` (the requester), a password of another account is 403.
   * `operation` ("METHOD /path") binds the session to one API call: another call naming it is 403.
   */
  async confirm(auth: AuthData | undefined, expectedUserId: string | undefined, operation: string): Promise<string> {
    const flows = this.flows;
    const session = this.uia.open(auth?.session, operation);
    if (auth?.type === undefined) {
      // Only the session: the client says it completed m.login.sso through the fallback page.
      const ssoUser = this.sso ? this.uia.ssoUser(session) : undefined;
      if (ssoUser === undefined) throw this.uia.challenge(flows, session);
      // As Synapse: single sign-on as another user than the requester is 403, the session kept.
      if (expectedUserId !== undefined && ssoUser !== expectedUserId) throw new MatrixError("M_FORBIDDEN", "Authenticated user does not match the requester", 403);
      this.uia.complete(flows, session, undefined);
      return ssoUser;
    }
    if (auth.type !== "m.login.password") throw this.uia.challenge(flows, session, new MatrixError("M_UNRECOGNIZED", `Unknown auth stage ${auth.type}`));
    if (auth.identifier !== undefined && auth.identifier.type !== "m.id.user") {
      throw this.uia.challenge(flows, session, new MatrixError("M_UNKNOWN", `Unknown identifier type ${auth.identifier.type}`));
    }
    const user = auth.identifier?.user ?? auth.user ?? expectedUserId;
    if (user === undefined) throw this.uia.challenge(flows, session, new MatrixError("M_MISSING_PARAM", "Missing parameter: identifier.user"));
    if (auth.password === undefined) throw this.uia.challenge(flows, session, new MatrixError("M_MISSING_PARAM", "Missing parameter: password"));
    const userId = this.accounts.userIdFor(user);
    if (!userId || !(await this.accounts.checkPassword(userId, auth.password))) {
      throw this.uia.challenge(flows, session, new MatrixError("M_FORBIDDEN", "Invalid username or password"));
    }
    if (expectedUserId !== undefined && userId !== expectedUserId) throw new MatrixError("M_FORBIDDEN", "Authenticated user does not match the requester", 403);
    this.uia.complete(flows, session, "m.login.password");
    return userId;
  }
}
