// Policy servers (server-server-api "Policy Servers", spec v1.18), both roles:
// - As a member server of a room that names a policy server: our users' events are signed by it
//   before they are stored or sent (a refusal reaches the client as the policy server said it, and
//   nothing is stored), and received events without its valid signature are soft-failed after one
//   more request for a signature.
// - As a policy server (policy_server.enabled): POST /_matrix/policy/v1/sign answers for rooms that
//   name this server with our policy key, backed by the spam policies of the plugins, so one
//   Portier's policy can guard rooms that live anywhere. The policy key is a key of its own, not
//   the server's signing key, as the spec asks.
import { MatrixError } from "../../protocol/errors";
import { serverNameOf } from "../../protocol/identifiers";
import { isJsonObject, ownMember, type JsonObject } from "../../protocol/json";
import { roomEventFromPdu } from "../../protocol/pdu";
import { hasValidPolicySignature, needsPolicySignature, policyServerConfig, policySignature, POLICY_SERVER_KEY_ID, withPolicySignature, type PolicyServerConfig } from "../../protocol/policy-server";
import { roomVersion, type RoomVersion } from "../../protocol/room-versions";
import { encodeBase64 } from "../../protocol/base64";
import type { RoomEventStore } from "../../storage/stores";
import type { SigningKey } from "../../protocol/signing/keys";
import type { RoomEngine } from "../rooms/room-engine";
import { policyDenial, type SpamChecks } from "../plugins/spam-decisions";
import type { Logger } from "../runtime";
import type { FederationClient } from "./contracts";

export interface PolicyServerDeps {
  serverName: string;
  engine: Pick<RoomEngine, "currentStateEvent">;
  store: Pick<RoomEventStore, "currentMemberships" | "getRoom">;
  client: FederationClient;
  /** Our policy key when this server acts as a policy server (policy_server.enabled). */
  ownKey?: SigningKey;
  policies?: SpamChecks;
  logger: Logger;
}

export class PolicyServerService {
  constructor(private readonly deps: PolicyServerDeps) {}

  /** Our policy public key, for /.well-known/matrix/policy_server; undefined when we are not a policy server. */
  get publicKeyBase64(): string | undefined {
    return this.deps.ownKey ? encodeBase64(this.deps.ownKey.publicKey) : undefined;
  }

  /**
   * The room's policy server when the room uses one: a valid m.room.policy in current state whose
   * `via` has a joined member in current state.
   */
  async activeConfig(roomId: string): Promise<PolicyServerConfig | undefined> {
    const event = await this.deps.engine.currentStateEvent(roomId, "m.room.policy", "");
    const config = event ? policyServerConfig(event.content) : undefined;
    if (!config) return undefined;
    for (const [userId, membership] of await this.deps.store.currentMemberships(roomId)) {
      if (membership === "join" && serverNameOf(userId) === config.via) return config;
    }
    return undefined;
  }

  /**
   * One of our events, signed by the room's policy server before it is stored or sent (the room
   * engine's hook). A refusal, or an answer that does not verify, refuses the client's request with
   * the policy server's own error; the event is discarded.
   */
  async signOutgoing(roomId: string, pdu: JsonObject, version: RoomVersion): Promise<JsonObject> {
    if (!needsPolicySignature(pdu)) return pdu;
    const config = await this.activeConfig(roomId);
    if (!config) return pdu;
    const signed = await this.requestSignature(config, pdu, version);
    if ("error" in signed) throw signed.error;
    return signed.pdu;
  }

  /**
   * Receipt check 7 for an event we received: recommended for inclusion when the room uses no policy
   * server, when the event needs no signature, or when it has (or, asked again, gets) a valid one.
   */
  async recommends(roomId: string, pdu: JsonObject, version: RoomVersion): Promise<boolean> {
    if (!needsPolicySignature(pdu)) return true;
    const config = await this.activeConfig(roomId);
    if (!config || hasValidPolicySignature(pdu, version, config)) return true;
    const asked = await this.requestSignature(config, pdu, version);
    if ("error" in asked) {
      this.deps.logger.log("info", "a received event has no policy server signature: soft-failed", { room_id: roomId, policy_server: config.via, error: asked.error.message });
      return false;
    }
    return true;
  }

  /** Asks the policy server (ourselves, or over federation) to sign; checks what comes back. */
  private async requestSignature(config: PolicyServerConfig, pdu: JsonObject, version: RoomVersion): Promise<{ pdu: JsonObject } | { error: MatrixError }> {
    let answer: unknown;
    try {
      answer = config.via === this.deps.serverName ? await this.signAsPolicyServer(pdu, version, roomIdOf(pdu)) : await this.deps.client.request("POST", config.via, "/_matrix/policy/v1/sign", { body: pdu });
    } catch (error) {
      // The policy server's own error, as it gave it (a remote one included).
      if (error instanceof MatrixError) return { error: policyDenial(error.errcode, error.message) };
      return { error: new MatrixError("M_UNKNOWN", `The room's policy server ${config.via} could not be asked: ${String(error)}`, 502) };
    }
    const fromServer = isJsonObject(answer) ? ownMember(answer, config.via) : undefined;
    const signature = isJsonObject(fromServer) ? ownMember(fromServer, POLICY_SERVER_KEY_ID) : undefined;
    if (typeof signature !== "string") return { error: new MatrixError("M_UNKNOWN", `The room's policy server ${config.via} answered without a signature`, 502) };
    const signed = withPolicySignature(pdu, config.via, signature);
    // The key in the room's state is the one that counts: a rotated key signs nothing here.
    if (!hasValidPolicySignature(signed, version, config)) return { error: new MatrixError("M_FORBIDDEN", `The signature of the room's policy server ${config.via} does not match the room's policy key`) };
    return { pdu: signed };
  }

  /**
   * POST /_matrix/policy/v1/sign: our signature of the event when the room names us as its policy
   * server with our key and the spam policies let the event through; 400 M_FORBIDDEN otherwise (the
   * spec's "refuses to sign"), 404 M_NOT_FOUND for rooms we do not guard.
   */
  async sign(body: unknown): Promise<JsonObject> {
    if (!this.deps.ownKey) throw new MatrixError("M_UNRECOGNIZED", "This server is not a policy server", 404);
    if (!isJsonObject(body)) throw new MatrixError("M_NOT_JSON", "The body must be a PDU");
    const roomId = roomIdOf(body);
    const room = roomId === undefined ? undefined : await this.deps.store.getRoom(roomId);
    const version = room ? roomVersion(room.roomVersion) : undefined;
    if (!roomId || !version) throw new MatrixError("M_NOT_FOUND", "Unknown room");
    return this.signAsPolicyServer(body, version, roomId);
  }

  private async signAsPolicyServer(pdu: JsonObject, version: RoomVersion, roomId: string | undefined): Promise<JsonObject> {
    const key = this.deps.ownKey;
    if (!key) throw new MatrixError("M_UNRECOGNIZED", "This server is not a policy server", 404);
    if (!roomId) throw new MatrixError("M_BAD_JSON", "The PDU has no room_id");
    const config = await this.activeConfig(roomId);
    if (!config || config.via !== this.deps.serverName || config.publicKeyBase64 !== encodeBase64(key.publicKey)) throw new MatrixError("M_NOT_FOUND", "This server is not the policy server of that room");
    if (!needsPolicySignature(pdu)) throw new MatrixError("M_BAD_JSON", "The m.room.policy state event is not signed by the policy server");
    let event;
    try {
      event = roomEventFromPdu(pdu, version);
    } catch (error) {
      throw new MatrixError("M_BAD_JSON", `Malformed PDU: ${String((error as Error)?.message ?? error)}`);
    }
    const policies = this.deps.policies;
    if (policies?.hasSpamPolicies) {
      const spamEvent = { roomId, sender: event.sender, type: event.type, stateKey: event.state_key, content: event.content, local: serverNameOf(event.sender) === this.deps.serverName };
      const decision = await policies.spamCheck((p) => p.checkEventForSpam?.(spamEvent));
      // The spec answers a refusal with 400 M_FORBIDDEN; a shadow is a refusal here too (the event
      // would be shown to every other server).
      if (decision.kind !== "allow") throw new MatrixError("M_FORBIDDEN", decision.kind === "deny" ? decision.message : "The policy server does not recommend this event", 400);
    }
    try {
      return policySignature(pdu, version, this.deps.serverName, key.seed);
    } catch {
      throw new MatrixError("M_BAD_JSON", "The PDU is not canonical JSON");
    }
  }
}

function roomIdOf(pdu: JsonObject): string | undefined {
  return typeof pdu.room_id === "string" ? pdu.room_id : undefined;
}
