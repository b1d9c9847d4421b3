// Pushers (client-server-api "Push Notifications: Client behaviour", pusher.yaml): GET /pushers and
// POST /pushers/set. A pusher is stored with the session that set it (its access token's hash and
// its device), so that, as in Synapse, a password change removes those of the user's other
// sessions, and a device that is deleted or logged out takes its pushers along: a phone that logged
// out must stop ringing.
import { createHash } from "node:crypto";
import { MatrixError } from "../../protocol/errors";
import { utf8Length } from "../../protocol/identifiers";
import type { NotificationStore, PusherRecord, PusherStore } from "../../storage/stores";
import type { Clock } from "../runtime";

/** The body of POST /pushers/set, its types already checked. */
export interface PusherInput {
  pushkey: string;
  kind: string | null;
  app_id: string;
  app_display_name?: string;
  device_display_name?: string;
  profile_tag?: string;
  lang?: string;
  data?: Record<string, unknown>;
  append?: boolean;
}

/** A pusher as GET /pushers shows it. */
export interface ClientPusher {
  pushkey: string;
  kind: string;
  app_id: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag?: string;
  lang: string;
  data: Record<string, unknown>;
}

/** The only path a push gateway serves notifications on (push-gateway-api, POST /_matrix/push/v1/notify). */
export const PUSH_GATEWAY_PATH = "/_matrix/push/v1/notify";
const MAX_PUSHKEY_BYTES = 512;
const MAX_APP_ID_CHARS = 64;

/** Told the user whose pushers changed (created, updated or removed). */
export type PusherListener = (userId: string) => void;

const tokenHash = (accessToken: string) => createHash("sha256").update(`pusher-token\0${accessToken}`).digest("base64url");

export function clientPusher(p: PusherRecord): ClientPusher {
  const out: ClientPusher = { pushkey: p.pushkey, kind: p.kind, app_id: p.appId, app_display_name: p.appDisplayName, device_display_name: p.deviceDisplayName, lang: p.lang, data: p.data };
  if (p.profileTag !== undefined) out.profile_tag = p.profileTag;
  return out;
}

export class PusherService {
  private readonly listeners: PusherListener[] = [];

  constructor(
    private readonly store: PusherStore,
    private readonly notifications: Pick<NotificationStore, "maxNotificationStreamId">,
    private readonly clock: Clock,
  ) {}

  onChange(listener: PusherListener): void {
    this.listeners.push(listener);
  }

  async pushers(userId: string): Promise<ClientPusher[]> {
    return (await this.store.pushersOf(userId)).map(clientPusher);
  }

  /** The stored pushers of a user (for delivery). */
  records(userId: string): Promise<PusherRecord[]> {
    return this.store.pushersOf(userId);
  }

  allRecords(): Promise<PusherRecord[]> {
    return this.store.allPushers();
  }

  /**
   * POST /pushers/set: kind null deletes the user's pusher with this app_id and pushkey; otherwise it
   * is created or updated, and (unless `append`) other users' pushers with the same app_id and pushkey
   * are removed. Nothing is stored when the body is refused.
   */
  async setPusher(userId: string, session: { accessToken: string; deviceId: string } | undefined, input: PusherInput): Promise<void> {
    if (utf8Length(input.pushkey) > MAX_PUSHKEY_BYTES) throw new MatrixError("M_INVALID_PARAM", `pushkey may be at most ${MAX_PUSHKEY_BYTES} bytes`);
    if ([...input.app_id].length > MAX_APP_ID_CHARS) throw new MatrixError("M_INVALID_PARAM", `app_id may be at most ${MAX_APP_ID_CHARS} characters`);
    if (input.kind === null) {
      if (await this.store.deletePusher(userId, input.app_id, input.pushkey)) this.changed(userId);
      return;
    }
    const missing = (["app_display_name", "device_display_name", "lang", "data"] as const).filter((k) => input[k] === undefined);
    if (missing.length > 0) throw new MatrixError("M_MISSING_PARAM", `Missing parameters: ${missing.join(", ")}`);
    // Email pushers need a mail server Portier does not have; only HTTP pushers are delivered.
    if (input.kind !== "http") throw new MatrixError("M_INVALID_PARAM", `Unsupported pusher kind ${JSON.stringify(input.kind)}: only "http" pushers are supported`);
    checkGatewayUrl(input.data!.url);

    const existing = (await this.store.pushersOf(userId)).find((p) => p.appId === input.app_id && p.pushkey === input.pushkey);
    await this.store.setPusher({
      userId,
      appId: input.app_id,
      pushkey: input.pushkey,
      kind: input.kind,
      appDisplayName: input.app_display_name!,
      deviceDisplayName: input.device_display_name!,
      profileTag: input.profile_tag,
      lang: input.lang!,
      data: input.data!,
      accessTokenHash: session === undefined ? undefined : tokenHash(session.accessToken),
      deviceId: session?.deviceId,
      // The pushkey of an existing pusher is the same one: it was last set when the pusher was made.
      pushkeyTs: existing?.pushkeyTs ?? this.clock.now(),
      // A new pusher delivers what is notified from now on, not the user's whole history.
      lastNotification: existing?.lastNotification ?? (await this.notifications.maxNotificationStreamId()),
    });
    this.changed(userId);
    if (!input.append) {
      for (const removed of new Set((await this.store.deleteOtherUsersPushers(input.app_id, input.pushkey, userId)).map((p) => p.userId))) this.changed(removed);
    }
  }

  /**
   * After a password change that logged out the user's other sessions: their pushers go too, all but
   * those set with `keepAccessToken` (the requester's token; none when the change came without one).
   */
  async removeOtherSessionsPushers(userId: string, keepAccessToken: string | undefined): Promise<number> {
    const removed = await this.store.deletePushersExceptToken(userId, keepAccessToken === undefined ? undefined : tokenHash(keepAccessToken));
    if (removed.length > 0) this.changed(userId);
    return removed.length;
  }

  /** A device was deleted (or logged out): the pushers its sessions set go with it. */
  async removeDevicePushers(userId: string, deviceId: string): Promise<void> {
    if ((await this.store.deletePushersOfDevice(userId, deviceId)).length > 0) this.changed(userId);
  }

  /** A push gateway rejected the pushkey: the pusher is removed (push-gateway-api, `rejected`). */
  async removeRejected(userId: string, appId: string, pushkey: string): Promise<void> {
    if (await this.store.deletePusher(userId, appId, pushkey)) this.changed(userId);
  }

  /** The pusher has delivered (or given up on) every notification up to this stream id. */
  advance(pusher: PusherRecord, streamId: number): Promise<void> {
    return this.store.setLastNotification(pusher.userId, pusher.appId, pusher.pushkey, streamId);
  }

  private changed(userId: string): void {
    for (const listener of this.listeners) listener(userId);
  }
}

/**
 * data.url of an HTTP pusher: an absolute http(s) URL whose path is /_matrix/push/v1/notify. The
 * spec asks clients for HTTPS; plain HTTP is accepted, as Synapse does, for gateways on a local
 * network and for tests.
 */
function checkGatewayUrl(url: unknown): void {
  if (typeof url !== "string") throw new MatrixError("M_INVALID_PARAM", "data.url is required for an http pusher");
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new MatrixError("M_INVALID_PARAM", "data.url is not a valid URL");
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") throw new MatrixError("M_INVALID_PARAM", "data.url must be an https URL");
  if (parsed.pathname !== PUSH_GATEWAY_PATH) throw new MatrixError("M_INVALID_PARAM", `data.url must have the path ${PUSH_GATEWAY_PATH}`);
}
