// Notes the address and user agent of every request made with an access token, for GET
// /admin/whois and the devices' last_seen_ip/last_seen_ts. The token lookup is the one the handler
// makes (requireUser keeps one per request), so this costs no extra read; it is not awaited, so no
// request waits for it, and a bad token is refused by the handler, not here.
import { Elysia } from "elysia";
import type { AccountService } from "../../services/accounts/account-service";
import type { ClientConnections } from "../../services/accounts/client-connections";
import { accessTokenOf, requireUser } from "./auth";

interface ServerLike {
  requestIP?(request: Request): { address: string } | null | undefined;
}

export interface ClientConnectionStepDeps {
  accounts: Pick<AccountService, "authenticate">;
  connections: Pick<ClientConnections, "record">;
  /** Reverse proxies whose X-Forwarded-For names the client (config trusted_proxies). */
  trustedProxies?: readonly string[];
}

/** The client's address: Bun's peer address, or from a trusted proxy the client it names. */
export function peerAddress(server: ServerLike | null | undefined, request: Request, trustedProxies: ReadonlySet<string>): string | undefined {
  let address = server?.requestIP?.(request)?.address;
  if (address === undefined) return undefined;
  if (trustedProxies.has(address)) {
    const forwarded = (request.headers.get("x-forwarded-for") ?? "").split(",").map((a) => a.trim()).filter((a) => a.length > 0);
    while (forwarded.length > 0 && trustedProxies.has(address)) address = forwarded.pop()!;
  }
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1] : address;
}

/** The step as an Elysia plugin; `.use` it on the app before the routes it covers. */
export function clientConnectionStep({ accounts, connections, trustedProxies }: ClientConnectionStepDeps) {
  const proxies = new Set(trustedProxies ?? []);
  return new Elysia({ name: "client-connection-step" }).onBeforeHandle({ as: "global" }, ({ request, server }) => {
    let token: string | undefined;
    try {
      token = accessTokenOf(request);
    } catch {
      return; // a malformed Authorization header: the handler refuses it
    }
    if (token === undefined) return;
    const ip = peerAddress(server as ServerLike | null, request, proxies);
    const userAgent = request.headers.get("user-agent") ?? undefined;
    requireUser(accounts, request).then(
      (me) => connections.record(me.userId, me.deviceId, ip, userAgent),
      () => {}, // an unknown token: the handler answers 401
    );
  });
}
