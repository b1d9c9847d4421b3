// The one request-pipeline step that applies rate limits (issue 9). A table maps an endpoint — its
// method and route, under every client prefix — to the token buckets it costs and what each is keyed
// by: the client's address, the requesting user, the room in the path, or the invitee in the body.
// It runs before the handler (an Elysia beforeHandle hook), so no handler calls the limiter and a
// refused request stores nothing. The limiter is whatever the plugins registered (PolicySet); without
// one, nothing is limited.
//
// Failed-login accounting is not here: it needs the password check's outcome, so AccountService does it.
import { Elysia } from "elysia";
import type { RateLimitCheck } from "../../extensions";
import { limitExceeded } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { PolicySet } from "../../services/plugins/policies";
import { CLIENT_PREFIXES } from "../client/paths";
import { accessTokenOf, requireUser } from "./auth";

/** What a bucket is keyed by. "user room" is both, for per-user-and-room cooldowns. */
type KeyKind = "address" | "user" | "room" | "user room" | "invitee";

interface Limit {
  readonly bucket: string;
  readonly key: KeyKind;
  /**
   * When true for a request, the bucket is only checked, not charged (taken and given back): a
   * registration's first round, which only fetches the auth flows, is refused when the address is
   * out of tokens but costs none (Synapse checks rc_registration on every request and charges
   * registrations).
   */
  readonly checkOnly?: (body: unknown) => boolean;
}

interface Rule {
  readonly method: string;
  /** The route as the controllers register it, after the client prefix. */
  readonly path: string;
  readonly limits: readonly Limit[];
}

const hasNoAuth = (body: unknown) => typeof body !== "object" || body === null || (body as { auth?: unknown }).auth === undefined;

const message: Limit[] = [{ bucket: "message", key: "user" }];
const join: Limit[] = [{ bucket: "join", key: "user" }];
// The per-user check comes first: a user out of knocks does not spend the room's.
const knock: Limit[] = [
  { bucket: "knock.user", key: "user" },
  { bucket: "knock.reknock", key: "user room" },
  { bucket: "knock.room", key: "room" },
];

/** Every rate-limited client endpoint. Ordered checks: the first refusal answers, and what the earlier ones took is given back. */
export const RATE_LIMITED: readonly Rule[] = [
  { method: "POST", path: "/login", limits: [{ bucket: "login.address", key: "address" }] },
  { method: "POST", path: "/register", limits: [{ bucket: "registration", key: "address", checkOnly: hasNoAuth }] },
  { method: "POST", path: "/createRoom", limits: [{ bucket: "room_creation", key: "user" }] },
  { method: "PUT", path: "/rooms/:roomId/send/:eventType/:txnId", limits: message },
  { method: "PUT", path: "/rooms/:roomId/state/:eventType", limits: message },
  { method: "PUT", path: "/rooms/:roomId/state/:eventType/:stateKey", limits: message },
  { method: "PUT", path: "/rooms/:roomId/redact/:eventId/:txnId", limits: message },
  { method: "POST", path: "/join/:roomIdOrAlias", limits: join },
  { method: "POST", path: "/rooms/:roomId/join", limits: join },
  { method: "POST", path: "/knock/:roomIdOrAlias", limits: knock },
  { method: "POST", path: "/rooms/:roomId/knock", limits: knock },
  {
    method: "POST",
    path: "/rooms/:roomId/invite",
    limits: [
      { bucket: "invite.issuer", key: "user" },
      { bucket: "invite.room", key: "room" },
      { bucket: "invite.user", key: "invitee" },
    ],
  },
];

export interface RateLimitStepDeps {
  readonly policies: Pick<PolicySet, "takeRateLimit" | "refundRateLimit">;
  /** Who sends the request (the access token's user), looked up once per request and shared with the handler. */
  readonly accounts: Pick<AccountService, "authenticate">;
  /** Server admins: asked only when a check refuses, and then the request goes through uncounted. */
  isExempt(userId: string): boolean | Promise<boolean>;
  /** A room alias in /join or /knock to its room id; undefined when unknown (the handler answers 404). */
  resolveRoom?(alias: string): Promise<string | undefined>;
  /**
   * Reverse proxies in front of Portier, by address: a request from one of them is keyed by the
   * client it names in X-Forwarded-For (the rightmost entry that is not itself a trusted proxy).
   * Without this, every client behind a proxy shares the proxy's per-address buckets.
   */
  trustedProxies?: readonly string[];
}

interface ServerLike {
  requestIP?(request: Request): { address: string } | null | undefined;
}

/** The step as an Elysia plugin; `.use` it on the app before the routes it covers. */
export function rateLimitStep(deps: RateLimitStepDeps) {
  const rules = new Map<string, Rule>();
  const proxies = new Set(deps.trustedProxies ?? []);
  for (const prefix of CLIENT_PREFIXES) for (const rule of RATE_LIMITED) rules.set(`${rule.method} ${prefix}${rule.path}`, rule);

  return new Elysia({ name: "rate-limit-step" }).onBeforeHandle({ as: "global" }, async ({ request, route, params, body, server }) => {
    const rule = rules.get(`${request.method} ${route}`);
    if (rule === undefined) return;
    const keys = new RequestKeys(request, params as Record<string, string | undefined>, body, server as ServerLike | null, proxies, deps);
    const taken: RateLimitCheck[] = [];
    for (const limit of rule.limits) {
      const key = await keys.of(limit.key);
      if (key === undefined) continue;
      const check: RateLimitCheck = { bucket: limit.bucket, key };
      const result = deps.policies.takeRateLimit(check);
      if (!result.allowed) {
        // A refused request costs nothing: what the earlier checks took goes back.
        for (const t of taken) deps.policies.refundRateLimit(t);
        const user = rule.limits.some((l) => l.key.includes("user")) ? await keys.of("user") : undefined;
        if (user !== undefined && (await deps.isExempt(user))) return;
        throw limitExceeded(Math.max(1, Math.ceil(result.retryAfterMs)));
      }
      if (limit.checkOnly?.(body)) deps.policies.refundRateLimit(check);
      else taken.push(check);
    }
  });
}

/** The keys of one request, each found once and only if a check needs it. */
class RequestKeys {
  private user: Promise<string | undefined> | undefined;
  private room: Promise<string | undefined> | undefined;

  constructor(
    private readonly request: Request,
    private readonly params: Record<string, string | undefined>,
    private readonly body: unknown,
    private readonly server: ServerLike | null,
    private readonly proxies: ReadonlySet<string>,
    private readonly deps: RateLimitStepDeps,
  ) {}

  /** undefined: the request has no such key (no token; an unknown alias) and that check is skipped — the handler refuses it anyway. */
  async of(kind: KeyKind): Promise<string | undefined> {
    switch (kind) {
      case "address":
        return clientAddress(this.server, this.request, this.proxies);
      case "user":
        return (this.user ??= this.findUser());
      case "room":
        return (this.room ??= this.findRoom());
      case "user room": {
        const [user, room] = [await this.of("user"), await this.of("room")];
        return user === undefined || room === undefined ? undefined : `${user} ${room}`;
      }
      case "invitee": {
        const invitee = (this.body as { user_id?: unknown } | undefined)?.user_id;
        return typeof invitee === "string" && invitee.startsWith("@") ? invitee : undefined;
      }
    }
  }

  private async findUser(): Promise<string | undefined> {
    // No token: the handler answers 401; a bad one is refused here exactly as the handler would.
    if (accessTokenOf(this.request) === undefined) return undefined;
    return (await requireUser(this.deps.accounts, this.request)).userId;
  }

  private async findRoom(): Promise<string | undefined> {
    const room = this.params.roomId ?? this.params.roomIdOrAlias;
    if (room === undefined) return undefined;
    if (room.startsWith("!")) return room;
    if (room.startsWith("#") && this.deps.resolveRoom) return this.deps.resolveRoom(room).catch(() => undefined);
    return undefined;
  }
}

/**
 * The client's address from Bun's server (or, from a trusted proxy, from X-Forwarded-For), as a bucket
 * key: IPv4-mapped IPv6 as IPv4, and IPv6 by its /64 (one client usually holds a whole /64, so
 * per-address limits would not hold per address). In-process requests (app.handle in tests) have no
 * server: "unknown".
 */
export function clientAddress(server: ServerLike | null | undefined, request: Request, trustedProxies: ReadonlySet<string> = new Set()): string {
  let address = server?.requestIP?.(request)?.address;
  if (address === undefined) return "unknown";
  if (trustedProxies.has(address)) {
    const forwarded = (request.headers.get("x-forwarded-for") ?? "").split(",").map((a) => a.trim()).filter((a) => a.length > 0);
    while (forwarded.length > 0 && trustedProxies.has(address)) address = forwarded.pop()!;
  }
  return addressKey(address);
}

export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!address.includes(":")) return address;
  const groups = expandIPv6(address);
  return groups === undefined ? address : `${groups.slice(0, 4).join(":")}::/64`;
}

function expandIPv6(address: string): string[] | undefined {
  const bare = address.split("%")[0].toLowerCase();
  const halves = bare.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(":") : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return undefined;
  const groups = [...head, ...Array<string>(missing).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return undefined;
  return groups.map((g) => g.replace(/^0+(?=.)/, ""));
}
