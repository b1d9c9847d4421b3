// Third-party identifiers bound through identity servers (client-server-api "Adding Account
// Administrative Contact Information"): POST /account/3pid/bind asks the identity server to bind an
// address it validated to the user's Matrix ID and records the binding; /account/3pid/unbind and
// /delete ask it to remove the binding (from the id_server given, else from every server the
// binding was recorded for), and deactivation removes all of them. Portier validates no addresses
// itself (no /3pid/add), so the bindings are the account's 3PIDs: GET /account/3pid lists them.
import { MatrixError, type ErrCode } from "../../protocol/errors";
import type { JsonObject } from "../../protocol/json";
import type { LocalThreepidStore, ThreepidBinding, ThreepidBindingStore } from "../../storage/stores";
import type { Clock, Logger } from "../runtime";
import type { IdentityAnswer } from "./identity-client";

export type UnbindResult = "success" | "no-support";

export interface ThirdPartyIdDeps {
  store: ThreepidBindingStore;
  /** The addresses this server validated itself (email validation); none: only bindings. */
  localStore?: LocalThreepidStore;
  identity: {
    bind(idServer: string, accessToken: string, body: JsonObject): Promise<IdentityAnswer>;
    unbind(idServer: string, body: JsonObject): Promise<IdentityAnswer>;
  };
  clock: Clock;
  logger: Logger;
}

export interface BindRequest {
  readonly clientSecret: string;
  readonly idServer: string;
  readonly idAccessToken: string;
  readonly sid: string;
}

/** The media of the spec's 3PID Types appendix, the only ones the unbind endpoints accept. */
export const THREEPID_MEDIA = ["email", "msisdn"] as const;

/** An identity server's Matrix error, passed through to the client (the spec: "simply proxy any errors"). */
function proxiedError(idServer: string, answer: IdentityAnswer): MatrixError {
  const errcode = answer.body?.errcode;
  const message = answer.body?.error;
  if (answer.status >= 400 && answer.status < 500 && typeof errcode === "string") {
    return new MatrixError(errcode as ErrCode, typeof message === "string" ? message : `The identity server ${idServer} refused`, answer.status);
  }
  return new MatrixError("M_UNKNOWN", `The identity server ${idServer} answered ${answer.status}`, 502);
}

export class ThirdPartyIds {
  constructor(private readonly deps: ThirdPartyIdDeps) {}

  /** GET /account/3pid: one entry per address, however many identity servers hold it. */
  async list(userId: string): Promise<{ medium: string; address: string; validated_at: number; added_at: number }[]> {
    const seen = new Map<string, Pick<ThreepidBinding, "medium" | "address" | "validatedAt" | "addedAt">>();
    for (const b of [...((await this.deps.localStore?.listOf(userId)) ?? []), ...(await this.deps.store.bindingsOf(userId))]) {
      const key = `${b.medium}\0${b.address}`;
      if (!seen.has(key)) seen.set(key, b);
    }
    return [...seen.values()].map((b) => ({ medium: b.medium, address: b.address, validated_at: b.validatedAt, added_at: b.addedAt }));
  }

  /**
   * The one user an address is bound to, for login with a 3PID (client-server-api "Third-party
   * ID" identifiers); undefined when none, or when several accounts hold it (no way to tell which
   * the client means). Email addresses are compared in lower case, as Synapse canonicalises them.
   */
  async ownerOf(medium: string, address: string): Promise<string | undefined> {
    const canonical = medium === "email" ? address.trim().toLowerCase() : address;
    const local = await this.deps.localStore?.ownerOf(medium, canonical);
    if (local !== undefined) return local;
    const owners = new Set(await this.deps.store.ownersOf(medium, canonical));
    if (canonical !== address) for (const owner of await this.deps.store.ownersOf(medium, address)) owners.add(owner);
    return owners.size === 1 ? [...owners][0] : undefined;
  }

  /** Whether an address this server validated belongs to an account (M_THREEPID_IN_USE before mailing). */
  async inUse(medium: string, address: string): Promise<boolean> {
    return (await this.deps.localStore?.ownerOf(medium, address)) !== undefined;
  }

  /** Adds an address this server validated to the user's account; M_THREEPID_IN_USE when another account holds it. */
  async addValidated(userId: string, threepid: { medium: string; address: string; validatedAt: number }): Promise<void> {
    if (!this.deps.localStore) throw new MatrixError("M_THREEPID_MEDIUM_NOT_SUPPORTED", "This server does not keep third-party identifiers", 400);
    const added = await this.deps.localStore.add({ userId, medium: threepid.medium, address: threepid.address, validatedAt: threepid.validatedAt, addedAt: this.deps.clock.now() });
    if (!added) throw new MatrixError("M_THREEPID_IN_USE", "The address is already in use by another account", 400);
  }

  /** POST /account/3pid/delete, the homeserver's part: the address leaves the account (the unbinding is `unbind`'s). */
  async removeValidated(userId: string, medium: string, address: string): Promise<boolean> {
    return (await this.deps.localStore?.remove(userId, medium, medium === "email" ? address.trim().toLowerCase() : address)) ?? false;
  }

  /** Account deactivation: the addresses this server validated leave the account (and may be used again). */
  async removeAllValidated(userId: string): Promise<void> {
    await this.deps.localStore?.removeAll(userId);
  }

  /** POST /account/3pid/bind. Recorded only once the identity server has bound it. */
  async bind(userId: string, request: BindRequest): Promise<void> {
    const answer = await this.deps.identity.bind(request.idServer, request.idAccessToken, { sid: request.sid, client_secret: request.clientSecret, mxid: userId });
    if (answer.status !== 200) throw proxiedError(request.idServer, answer);
    const { medium, address, ts } = answer.body ?? {};
    if (typeof medium !== "string" || typeof address !== "string") throw new MatrixError("M_UNKNOWN", `The identity server ${request.idServer} did not say which address it bound`, 502);
    const now = this.deps.clock.now();
    await this.deps.store.addBinding({ userId, medium, address, idServer: request.idServer, validatedAt: typeof ts === "number" && Number.isSafeInteger(ts) ? ts : now, addedAt: now });
  }

  /**
   * POST /account/3pid/unbind and /delete: unbinds from `idServer`, or when absent from every
   * server the address was bound on through us; "no-support" when there is none, or when one of
   * them does not support unbinding.
   */
  async unbind(userId: string, medium: string, address: string, idServer: string | undefined): Promise<UnbindResult> {
    const servers = idServer !== undefined
      ? [idServer]
      : (await this.deps.store.bindingsOf(userId)).filter((b) => b.medium === medium && b.address === address).map((b) => b.idServer);
    if (servers.length === 0) return "no-support";
    let result: UnbindResult = "success";
    for (const server of servers) {
      if ((await this.unbindFrom(userId, medium, address, server)) === "no-support") result = "no-support";
    }
    return result;
  }

  /**
   * Account deactivation: every recorded binding is unbound. An identity server that cannot be
   * reached does not keep the account alive (Synapse fails the deactivation instead): the answer
   * then says "no-support", and the record goes with the account.
   */
  async unbindAll(userId: string): Promise<UnbindResult> {
    const bindings = await this.deps.store.bindingsOf(userId);
    let result: UnbindResult = bindings.length > 0 ? "success" : "no-support";
    for (const b of bindings) {
      try {
        if ((await this.unbindFrom(userId, b.medium, b.address, b.idServer)) === "no-support") result = "no-support";
      } catch (error) {
        result = "no-support";
        this.deps.logger.log("warn", "a deactivated user's 3PID could not be unbound", { user_id: userId, id_server: b.idServer, error: String(error) });
        await this.deps.store.removeBinding(userId, b.medium, b.address, b.idServer);
      }
    }
    return result;
  }

  private async unbindFrom(userId: string, medium: string, address: string, idServer: string): Promise<UnbindResult> {
    const answer = await this.deps.identity.unbind(idServer, { mxid: userId, threepid: { medium, address } });
    let result: UnbindResult;
    if (answer.status === 200) result = "success";
    // As Synapse: these mean the identity server does not support unbinding (or holds no such
    // binding); the homeserver's record is dropped all the same.
    else if (answer.status === 400 || answer.status === 404 || answer.status === 501) result = "no-support";
    else throw proxiedError(idServer, answer);
    await this.deps.store.removeBinding(userId, medium, address, idServer);
    return result;
  }
}
