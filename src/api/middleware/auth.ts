// Access tokens (client-server-api "Using access tokens"): the Authorization: Bearer header, or the
// deprecated access_token query parameter that older clients (matrix-nio, sytest) still send.
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import { requireGuestMayCall } from "./guest-access";

export interface Requester {
  readonly userId: string;
  readonly deviceId: string;
  readonly accessToken: string;
  /** A guest account: it reaches only the routes of guest-access.ts. */
  readonly isGuest?: boolean;
  /** An application service's as_token made the request (it acts as userId). */
  readonly appServiceId?: string;
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

// Controllers await one of these at the top of a handler. The token lookup is a store read, so it is
// async; keeping it here rather than in an app-wide hook lets each endpoint say whether a token is
// required, optional or not taken at all. It is made once per request: the rate-limit step, which
// runs first, finds the user the same way and the handler gets that answer.
const requesters = new WeakMap<Request, Promise<Requester>>();

/** The requesting user, or 401 M_MISSING_TOKEN / M_UNKNOWN_TOKEN; a guest off its routes, 403 M_GUEST_ACCESS_FORBIDDEN. */
export function requireUser(accounts: Pick<AccountService, "authenticate">, request: Request): Promise<Requester> {
  let requester = requesters.get(request);
  if (requester === undefined) requesters.set(request, (requester = lookUpRequester(accounts, request)));
  return requester;
}

async function lookUpRequester(accounts: Pick<AccountService, "authenticate">, request: Request): Promise<Requester> {
  const accessToken = accessTokenOf(request);
  if (accessToken === undefined) throw new MatrixError("M_MISSING_TOKEN", "Missing access token", 401);
  const owner = await accounts.authenticate(accessToken, () => identityAssertion(request));
  if (owner.isGuest) requireGuestMayCall(request);
  return { ...owner, accessToken };
}

/** The user_id and device_id query parameters an application service acts as ("Identity assertion"). */
function identityAssertion(request: Request): { userId: string | null; deviceId: string | null } {
  const params = new URL(request.url).searchParams;
  // org.matrix.msc3202.device_id is the name the device parameter had before the spec took it.
  return { userId: params.get("user_id"), deviceId: params.get("device_id") ?? params.get("org.matrix.msc3202.device_id") };
}

/** For endpoints where a token is optional: undefined without one, but a bad one is still refused (401). */
export async function optionalUser(accounts: AccountService, request: Request): Promise<Requester | undefined> {
  return accessTokenOf(request) === undefined ? undefined : requireUser(accounts, request);
}
