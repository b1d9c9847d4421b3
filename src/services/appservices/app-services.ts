// Application services (application-service-api): the registered services, who may act as whom,
// and which events each one is sent.
//
// Authentication ("Identity assertion"): a request whose access token is a service's as_token acts
// as the user of `?user_id=` (which must lie in one of the service's user namespaces) or else as the
// service's sender user, and as the device of `?device_id=` when given.
//
// Pushing events ("Pushing events"): each event stored in a room a service is interested in is
// queued for it in a table (so nothing is lost across a restart) and sent in order, one transaction
// in flight per service, a failed transaction retried with the same id and events after a growing
// delay.
import { MatrixError } from "../../protocol/errors";
import type { JsonObject } from "../../protocol/json";
import type { AppServiceQueueStore, AppServiceRoomListStore, StoredEvent } from "../../storage/stores";
import type { AccountAppServices } from "../accounts/account-service";
import type { DirectoryAppServices } from "../directory/directory-service";
import type { Timer } from "../federation/sender";
import type { Clock, Logger } from "../runtime";
import type { AppServiceRegistration, Namespace } from "./registration";

/** The requester an as_token makes; deviceId is empty when the service named no device. */
export interface AppServiceRequester {
  readonly userId: string;
  readonly deviceId: string;
  readonly appServiceId: string;
}

export interface AppServicesOptions {
  readonly serverName: string;
  readonly registrations: readonly AppServiceRegistration[];
  readonly queue: AppServiceQueueStore;
  readonly roomLists: AppServiceRoomListStore;
  readonly clock: Clock;
  readonly timer: Timer;
  readonly logger: Logger;
  /** The room's members by user ID (membership as value). */
  readonly memberships: (roomId: string) => Promise<ReadonlyMap<string, string>>;
  /** The room's local aliases. */
  readonly aliasesOfRoom: (roomId: string) => Promise<string[]>;
  readonly userExists: (userId: string) => Promise<boolean>;
  readonly deviceExists: (userId: string, deviceId: string) => Promise<boolean>;
  /** Makes the service's sender user when it does not exist yet (it needs an account to join rooms). */
  readonly createUser: (userId: string) => Promise<void>;
  /** The event in the client format, as the service is sent it. */
  readonly clientEvent: (roomId: string, stored: StoredEvent, pdu: JsonObject) => JsonObject | Promise<JsonObject>;
  /** Events per transaction (Synapse sends up to 100). */
  readonly batchSize?: number;
  /** The first retry's delay; it doubles up to maxRetryMs (Synapse: 2 s doubling, capped). */
  readonly retryBaseMs?: number;
  readonly maxRetryMs?: number;
  readonly requestTimeoutMs?: number;
  readonly fetch?: typeof fetch;
  /** Verify the services' TLS certificates (https:// urls). */
  readonly verifyTls?: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
/** How many rooms' member interest is kept at most. */
const MEMBER_INTEREST_ROOMS = 10_000;
/** How long a service's protocol metadata is kept. */
const PROTOCOL_CACHE_MS = 5 * 60_000;
const matches = (namespaces: readonly Namespace[], value: string) => namespaces.some((n) => n.pattern.test(value));

interface SenderState {
  running: boolean;
  /** Set when events arrive while a transaction is in flight: look again when it is done. */
  again: boolean;
  failures: number;
  retry?: { cancel(): void };
}

export class AppServices {
  readonly registrations: readonly AppServiceRegistration[];
  private readonly byToken = new Map<string, AppServiceRegistration>();
  private readonly byId = new Map<string, AppServiceRegistration>();
  private readonly senders = new Map<string, SenderState>();
  /** Per room, the services interested in it through a member; dropped on any membership change. */
  private readonly memberInterest = new Map<string, Promise<Set<string>>>();
  private readonly running = new Set<Promise<void>>();
  private stopped = false;
  /** Ends requests in flight when the server stops. */
  private readonly stopping = new AbortController();
  /** Queueing runs off the send path, one batch after another so the queue keeps the rooms' order. */
  private queueing: Promise<void> = Promise.resolve();

  constructor(private readonly options: AppServicesOptions) {
    this.registrations = options.registrations;
    for (const r of options.registrations) {
      this.byToken.set(r.asToken, r);
      this.byId.set(r.id, r);
    }
  }

  get name(): string {
    return "app-services";
  }

  senderOf(registration: AppServiceRegistration): string {
    return `@${registration.senderLocalpart}:${this.options.serverName}`;
  }

  /** Whether the user is the service's sender or in one of its user namespaces. */
  isInterestedInUser(registration: AppServiceRegistration, userId: string): boolean {
    return userId === this.senderOf(registration) || matches(registration.namespaces.users, userId);
  }

  /**
   * Whether rate limits spare the user: the sender or a user of a service registered with
   * rate_limited: false. Synapse spares only requests made with the service's as_token; the
   * limiter knows only the user, so a namespaced user's own token is spared too.
   */
  isRateLimitExempt(userId: string): boolean {
    return this.registrations.some((r) => !r.rateLimited && this.isInterestedInUser(r, userId));
  }

  /** The services holding an exclusive user namespace the user ID lies in. */
  exclusiveUserOwners(userId: string): AppServiceRegistration[] {
    return this.registrations.filter((r) => r.namespaces.users.some((n) => n.exclusive && n.pattern.test(userId)) || userId === this.senderOf(r));
  }

  exclusiveAliasOwners(alias: string): AppServiceRegistration[] {
    return this.registrations.filter((r) => r.namespaces.aliases.some((n) => n.exclusive && n.pattern.test(alias)));
  }

  /**
   * The requester an as_token makes ("Identity assertion"). A user outside the service's
   * namespaces is 403 M_EXCLUSIVE (client-server-api "Application service login"); one it has not
   * registered is 403 M_FORBIDDEN, as Synapse answers; an unknown device is 400 M_UNKNOWN_DEVICE.
   */
  async requester(registration: AppServiceRegistration, userIdParam: string | null, deviceIdParam: string | null): Promise<AppServiceRequester> {
    const sender = this.senderOf(registration);
    const userId = userIdParam ?? sender;
    if (userId !== sender) {
      if (!this.isInterestedInUser(registration, userId)) throw new MatrixError("M_EXCLUSIVE", `Application service cannot masquerade as this user (${userId}).`, 403);
      if (!(await this.options.userExists(userId))) throw new MatrixError("M_FORBIDDEN", `Application service has not registered this user (${userId}).`, 403);
    }
    if (deviceIdParam !== null && !(await this.options.deviceExists(userId, deviceIdParam))) {
      throw new MatrixError("M_UNKNOWN_DEVICE", `The device ${deviceIdParam} does not belong to ${userId}`, 400);
    }
    return { userId, deviceId: deviceIdParam ?? "", appServiceId: registration.id };
  }

  /**
   * What accounts ask of the services: the owner an as_token makes, and whether a user ID may be
   * registered (application-service-api "Server admin style permissions": a service only inside
   * its own user namespaces; anyone else not inside a service's exclusive one).
   */
  forAccounts(): AccountAppServices {
    return {
      authenticate: (accessToken, assertion) => {
        const registration = this.byToken.get(accessToken);
        if (registration === undefined) return undefined;
        const asserted = assertion?.() ?? { userId: null, deviceId: null };
        return this.requester(registration, asserted.userId, asserted.deviceId);
      },
      checkMayRegister: (userId, appServiceId) => {
        if (appServiceId !== undefined) {
          const registration = this.byId.get(appServiceId);
          if (registration === undefined || !matches(registration.namespaces.users, userId)) throw new MatrixError("M_EXCLUSIVE", "User ID is not in the application service's namespace", 400);
          return;
        }
        if (this.exclusiveUserOwners(userId).length > 0) throw new MatrixError("M_EXCLUSIVE", "User ID is reserved by an application service", 400);
      },
      isInNamespace: (appServiceId, userId) => {
        const registration = this.byId.get(appServiceId);
        return registration !== undefined && this.isInterestedInUser(registration, userId);
      },
      queryUser: (userId) => this.queryUser(userId),
    };
  }

  /** What the room directory asks: who may create an alias, and the services to ask for one not found. */
  forDirectory(): DirectoryAppServices {
    return {
      checkMayCreateAlias: (alias, appServiceId) => {
        if (appServiceId !== undefined) {
          const registration = this.byId.get(appServiceId);
          if (registration === undefined || !matches(registration.namespaces.aliases, alias)) throw new MatrixError("M_EXCLUSIVE", "This application service has not reserved this kind of alias.", 400);
          return;
        }
        if (this.exclusiveAliasOwners(alias).length > 0) throw new MatrixError("M_EXCLUSIVE", "This alias is reserved by an application service.", 400);
      },
      queryAlias: (alias) => this.queryAlias(alias),
      roomList: async (instanceId) => {
        if (instanceId === undefined) return this.options.roomLists.publishedRooms();
        // Instance ids are "{service id}|{network id}", as Synapse makes them (sytest relies on it).
        const bar = instanceId.indexOf("|");
        if (bar < 0 || !this.byId.has(instanceId.slice(0, bar))) return [];
        return this.options.roomLists.publishedRooms({ appServiceId: instanceId.slice(0, bar), networkId: instanceId.slice(bar + 1) });
      },
    };
  }

  /**
   * PUT /directory/list/appservice/{networkId}/{roomId} (application-service-api "Room
   * directories"): publishes or withdraws the room in the network's list of the requesting service.
   */
  async setRoomListing(appServiceId: string, networkId: string, roomId: string, visibility: "public" | "private"): Promise<void> {
    await this.options.roomLists.setPublished(appServiceId, networkId, roomId, visibility === "public", this.options.clock.now());
  }

  async start(): Promise<void> {
    for (const r of this.registrations) {
      const sender = this.senderOf(r);
      if (!(await this.options.userExists(sender))) await this.options.createUser(sender);
    }
    // What was queued before a restart goes out now.
    for (const asId of await this.options.queue.pendingServices()) if (this.byId.get(asId)?.url) this.wake(asId);
  }

  async stop(): Promise<void> {
    await this.queueing;
    this.stopped = true;
    this.stopping.abort();
    for (const state of this.senders.values()) state.retry?.cancel();
    await Promise.allSettled([...this.running]);
  }

  /**
   * The room engine's listener: the events are queued for the services interested in them, then
   * sent. It returns at once: the sender of the event does not wait for the queue's write.
   */
  eventsPersisted(roomId: string, events: readonly { stored: StoredEvent; pdu: JsonObject }[]): void {
    this.queueing = this.queueing.then(() =>
      this.queueEvents(roomId, events).catch((error) => this.options.logger.log("error", "could not queue events for application services", { room_id: roomId, error: String((error as Error)?.stack ?? error) })),
    );
  }

  /** Resolves once everything heard so far is queued (tests, stop). */
  queued(): Promise<void> {
    return this.queueing;
  }

  private async queueEvents(roomId: string, events: readonly { stored: StoredEvent; pdu: JsonObject }[]): Promise<void> {
    const due = new Set<string>();
    for (const { stored, pdu } of events) {
      if (stored.type === "m.room.member") this.memberInterest.delete(roomId);
      const interested = await this.interestedIn(roomId, stored);
      if (interested.length === 0) continue;
      const json = JSON.stringify(await this.options.clientEvent(roomId, stored, pdu));
      await this.options.queue.enqueue(interested, json, this.options.clock.now());
      for (const id of interested) due.add(id);
    }
    for (const id of due) this.wake(id);
  }

  /** The services with a url that are interested in the event ("Pushing events" lists the cases). */
  private async interestedIn(roomId: string, stored: StoredEvent): Promise<string[]> {
    const ids: string[] = [];
    let aliases: string[] | undefined;
    let byMembers: Set<string> | undefined;
    for (const r of this.registrations) {
      if (r.url === null) continue;
      if (this.isInterestedInUser(r, stored.sender) || (stored.type === "m.room.member" && stored.stateKey !== undefined && this.isInterestedInUser(r, stored.stateKey)) || matches(r.namespaces.rooms, roomId)) {
        ids.push(r.id);
        continue;
      }
      if (r.namespaces.aliases.length > 0) {
        aliases ??= await this.options.aliasesOfRoom(roomId);
        if (aliases.some((a) => matches(r.namespaces.aliases, a))) {
          ids.push(r.id);
          continue;
        }
      }
      byMembers ??= await this.membersInterest(roomId);
      if (byMembers.has(r.id)) ids.push(r.id);
    }
    return ids;
  }

  private membersInterest(roomId: string): Promise<Set<string>> {
    let found = this.memberInterest.get(roomId);
    if (found === undefined) {
      found = this.options.memberships(roomId).then((members) => {
        const ids = new Set<string>();
        for (const [userId, membership] of members) {
          if (membership !== "join" && membership !== "invite") continue;
          for (const r of this.registrations) if (!ids.has(r.id) && this.isInterestedInUser(r, userId)) ids.add(r.id);
        }
        return ids;
      });
      found.catch(() => this.memberInterest.delete(roomId));
      // A bound on the memory it takes: dropped entries are only read again.
      if (this.memberInterest.size >= MEMBER_INTEREST_ROOMS) this.memberInterest.clear();
      this.memberInterest.set(roomId, found);
    }
    return found;
  }

  /** Starts sending the service's queue unless a transaction is already in flight or waiting to retry. */
  private wake(asId: string): void {
    if (this.stopped) return;
    let state = this.senders.get(asId);
    if (state === undefined) this.senders.set(asId, (state = { running: false, again: false, failures: 0 }));
    if (state.running || state.retry) {
      state.again = true;
      return;
    }
    state.running = true;
    const task = this.drain(asId, state).finally(() => {
      state.running = false;
      this.running.delete(task);
    });
    this.running.add(task);
  }

  private async drain(asId: string, state: SenderState): Promise<void> {
    const registration = this.byId.get(asId)!;
    const batchSize = this.options.batchSize ?? 100;
    do {
      state.again = false;
      const batch = await this.options.queue.peek(asId, batchSize);
      if (batch.length === 0 || this.stopped) return;
      const last = batch[batch.length - 1]!.id;
      // The transaction id is the id of its last event: the ids never repeat, so neither do
      // transaction ids, and a retry sends the same one (sytest's service expects digits only).
      const ok = await this.sendTransaction(registration, String(last), batch.map((e) => e.json));
      if (!ok) {
        state.failures++;
        const delay = Math.min(this.options.maxRetryMs ?? 300_000, (this.options.retryBaseMs ?? 2_000) * 2 ** (state.failures - 1));
        state.retry = this.options.timer.schedule(delay, () => {
          state.retry = undefined;
          this.wake(asId);
        });
        return;
      }
      state.failures = 0;
      await this.options.queue.remove(asId, last);
      state.again = true; // more may be queued than one batch held
    } while (state.again && !this.stopped);
  }

  /** PUT /_matrix/app/v1/transactions/{txnId}; true when the service answered 2xx. */
  private async sendTransaction(registration: AppServiceRegistration, txnId: string, events: string[]): Promise<boolean> {
    const url = `${registration.url}/_matrix/app/v1/transactions/${encodeURIComponent(txnId)}`;
    try {
      const response = await (this.options.fetch ?? fetch)(url, {
        method: "PUT",
        headers: { "content-type": "application/json", authorization: `Bearer ${registration.hsToken}` },
        // The events are stored as JSON text already: joined, not parsed and serialised again.
        body: `{"events":[${events.join(",")}]}`,
        signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.options.requestTimeoutMs ?? 30_000)]),
        ...(this.options.verifyTls === false ? { tls: { rejectUnauthorized: false } } : {}),
      } as RequestInit);
      await response.arrayBuffer().catch(() => undefined);
      if (response.ok) return true;
      this.options.logger.log("warn", "application service refused a transaction", { appservice: registration.id, status: response.status });
      return false;
    } catch (error) {
      if (!this.stopped) this.options.logger.log("warn", "application service unreachable", { appservice: registration.id, error: String(error) });
      return false;
    }
  }

  /**
   * Asks the services whose namespace holds the user whether it exists ("Querying"): GET
   * /_matrix/app/v1/users/{userId}. True when one answered 200 (it has then created the user).
   */
  async queryUser(userId: string): Promise<boolean> {
    for (const r of this.registrations) {
      if (r.url === null || !matches(r.namespaces.users, userId)) continue;
      if (await this.query(r, `/_matrix/app/v1/users/${encodeURIComponent(userId)}`)) return true;
    }
    return false;
  }

  /** GET /_matrix/app/v1/rooms/{alias} of the services whose alias namespace holds it; true when one made it. */
  async queryAlias(alias: string): Promise<boolean> {
    for (const r of this.registrations) {
      if (r.url === null || !matches(r.namespaces.aliases, alias)) continue;
      if (await this.query(r, `/_matrix/app/v1/rooms/${encodeURIComponent(alias)}`)) return true;
    }
    return false;
  }

  private async query(registration: AppServiceRegistration, path: string): Promise<boolean> {
    return (await this.getJson(registration, path)) !== undefined;
  }

  /** GET a path of the service; its JSON answer when 2xx, else undefined (logged when unreachable). */
  private async getJson(registration: AppServiceRegistration, path: string): Promise<unknown> {
    try {
      const response = await (this.options.fetch ?? fetch)(`${registration.url}${path}`, {
        headers: { authorization: `Bearer ${registration.hsToken}` },
        signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.options.requestTimeoutMs ?? 30_000)]),
        ...(this.options.verifyTls === false ? { tls: { rejectUnauthorized: false } } : {}),
      } as RequestInit);
      const text = await response.text().catch(() => "");
      if (!response.ok) return undefined;
      try {
        return text === "" ? {} : JSON.parse(text);
      } catch {
        return undefined;
      }
    } catch (error) {
      this.options.logger.log("warn", "application service unreachable", { appservice: registration.id, error: String(error) });
      return undefined;
    }
  }

  // Third party networks (client-server-api "Third party networks"): answered from the services
  // that registered the protocol.

  /** Each service's metadata of a protocol, kept (as Synapse keeps it) so a lookup asks once. */
  private readonly protocolCache = new Map<string, { at: number; value: Promise<JsonObject | undefined> }>();

  /** GET /thirdparty/protocols: every registered protocol the services describe. */
  async protocols(): Promise<Record<string, JsonObject>> {
    const names = [...new Set(this.registrations.flatMap((r) => r.protocols))];
    const result: Record<string, JsonObject> = {};
    await Promise.all(
      names.map(async (name) => {
        const merged = await this.protocol(name);
        if (merged) result[name] = merged;
      }),
    );
    return result;
  }

  /**
   * GET /thirdparty/protocol/{protocol}: the first service's metadata with every service's
   * instances (Synapse merges them so); undefined when no service describes it.
   */
  async protocol(name: string): Promise<JsonObject | undefined> {
    const answers = await Promise.all(this.registrations.filter((r) => r.url !== null && r.protocols.includes(name)).map((r) => this.protocolOf(r, name)));
    const valid = answers.filter((a): a is JsonObject => a !== undefined);
    if (valid.length === 0) return undefined;
    return { ...valid[0]!, instances: valid.flatMap((a) => a.instances as JsonObject[]) };
  }

  private protocolOf(registration: AppServiceRegistration, name: string): Promise<JsonObject | undefined> {
    const key = `${registration.id}\u0000${name}`;
    const cached = this.protocolCache.get(key);
    if (cached && this.options.clock.now() - cached.at < PROTOCOL_CACHE_MS) return cached.value;
    const value = this.getJson(registration, `/_matrix/app/v1/thirdparty/protocol/${encodeURIComponent(name)}`).then((answer) => {
      if (!isObject(answer) || !Array.isArray(answer.instances) || !answer.instances.every(isObject)) {
        this.protocolCache.delete(key);
        return undefined;
      }
      // As Synapse: an instance naming its network gets an instance_id unique across services.
      const instances = (answer.instances as JsonObject[]).map((i) => (typeof i.network_id === "string" ? { ...i, instance_id: `${registration.id}|${i.network_id}` } : i));
      return { ...(answer as JsonObject), instances } as JsonObject;
    });
    this.protocolCache.set(key, { at: this.options.clock.now(), value });
    return value;
  }

  /**
   * GET /thirdparty/{user,location}/{protocol} with the client's search fields, or (protocol
   * undefined) /thirdparty/{user,location} by userid or alias: the answers of the services asked,
   * one list.
   */
  async thirdPartyLookup(kind: "user" | "location", protocol: string | undefined, query: URLSearchParams): Promise<JsonObject[]> {
    const asked = this.registrations.filter((r) => r.url !== null && (protocol === undefined || r.protocols.includes(protocol)));
    const search = query.size > 0 ? `?${query}` : "";
    const path = `/_matrix/app/v1/thirdparty/${kind}${protocol === undefined ? "" : `/${encodeURIComponent(protocol)}`}${search}`;
    const answers = await Promise.all(asked.map((r) => this.getJson(r, path)));
    return answers.flatMap((a) => (Array.isArray(a) ? a.filter(isObject) : [])) as JsonObject[];
  }
}
