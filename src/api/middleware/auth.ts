// Access tokens (client-server-api "Using access tokens"): the Authorization: Bearer header, or the
// deprecated access_token query parameter that older clients (matrix-nio, sytest) still send.
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";

export interface Requester {
  readonly userId: string;
  readonly deviceId: string;
  readonly accessToken: string;
}

export function accessTokenOf(request: Request): string | undefined {
  const header = request.headers.get("authorization");
  if (header !== null) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new MatrixError("M_MISSING_TOKEN", "Malformed Authorization header", 401);
    return match[1];
  }
  return new URL(request.url).searchParams.get("access_token") ?? undefined;
}

/** The requesting user, or 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN. */
export function requireUser(accounts: AccountService, request: Request): Requester {
  const accessToken = accessTokenOf(request);
  if (accessToken === undefined) throw new MatrixError("M_MISSING_TOKEN", "Missing access token", 401);
  return { ...accounts.authenticate(accessToken), accessToken };
}
