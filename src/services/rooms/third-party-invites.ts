// Third-party invites (client-server-api "Third-party invites"; server-server-api "Third-party
// invites"). Inviting by a 3PID asks the client's identity server who holds it (v2 /lookup, hashed
// as /hash_details allows): a bound user gets a normal invite; otherwise the identity server stores
// the invite (/store-invite) and the room gets an m.room.third_party_invite event carrying its token
// and keys. When the address is later bound, the identity server calls /3pid/onbind on the invitee's
// server with each invite's token signed: that signed block is exchanged for an m.room.member
// invite carrying content.third_party_invite.signed, by this server when it is in the room, else by
// a resident server over /exchange_third_party_invite.
import { createHash } from "node:crypto";
import { namedLevel, userPowerLevel } from "../../protocol/auth";
import type { RoomEvent } from "../../protocol/events";
import { MatrixError, type ErrCode } from "../../protocol/errors";
import { isValidUserId, serverNameOf } from "../../protocol/identifiers";
import { isJsonObject, ownMember, type JsonObject, type JsonValue } from "../../protocol/json";
import { keysThatSigned, type ThirdPartyInviteKey } from "../../protocol/signing/third-party-invite";
import type { IdentityAnswer } from "../identity/identity-client";
import type { Logger } from "../runtime";
import type { RoomAccess } from "./room-access";
import type { RoomEngine } from "./room-engine";

/** The identity-server calls this needs (IdentityServerClient). */
export interface ThirdPartyInviteIdentity {
  hashDetails(idServer: string, accessToken: string): Promise<IdentityAnswer>;
  lookup(idServer: string, accessToken: string, body: JsonObject): Promise<IdentityAnswer>;
  storeInvite(idServer: string, accessToken: string, body: JsonObject): Promise<IdentityAnswer>;
  keyValidity(keyValidityUrl: string, publicKey: string): Promise<IdentityAnswer>;
}

export interface ThirdPartyInviteDeps {
  serverName: string;
  engine: RoomEngine;
  access: RoomAccess;
  identity: ThirdPartyInviteIdentity;
  /** The usual invite of a Matrix user (local or over federation). */
  invite(roomId: string, sender: string, target: string): Promise<void>;
  /** The displayname and avatar of a local user, for the identity server's invitation message. */
  profile(userId: string): Promise<{ displayname?: string; avatar_url?: string }>;
  /** Whether this server is in the room (its state is ours to extend). */
  isResident(roomId: string): Promise<boolean>;
  /**
   * Asks `server` (in the room) to make the invite: PUT /exchange_third_party_invite/{roomId}.
   * Absent: rooms this server is not in cannot be exchanged.
   */
  exchangeRemotely?(server: string, roomId: string, event: JsonObject): Promise<void>;
  /**
   * Sends an invite of a user of another server with this content (over /invite, so that their
   * server hears of it). Absent: third-party invites of such users cannot be made here.
   */
  inviteRemote?(roomId: string, sender: string, target: string, content: JsonObject): Promise<void>;
  logger?: Logger;
}

export interface ThirdPartyId {
  readonly idServer: string;
  readonly idAccessToken: string;
  readonly medium: string;
  readonly address: string;
}

/** store-invite's token: "[0-9a-zA-Z.=_-]", 1 to 255 characters (identity-service-api). */
const TOKEN = /^[0-9a-zA-Z.=_-]{1,255}$/;

/** An identity server's error as the client's: its 4xx Matrix errors pass through, anything else is a 502. */
function identityError(idServer: string, what: string, answer: IdentityAnswer): MatrixError {
  const errcode = answer.body?.errcode;
  const message = answer.body?.error;
  if (answer.status >= 400 && answer.status < 500 && typeof errcode === "string") {
    return new MatrixError(errcode as ErrCode, typeof message === "string" ? message : `The identity server ${idServer} refused the ${what}`, answer.status);
  }
  return new MatrixError("M_UNKNOWN", `The identity server ${idServer} answered the ${what} with HTTP ${answer.status}`, 502);
}

const sha256Base64Url = (text: string) => createHash("sha256").update(text, "utf8").digest("base64url");

export class ThirdPartyInviteService {
  constructor(private readonly deps: ThirdPartyInviteDeps) {}

  /**
   * POST /rooms/{roomId}/invite with a 3PID. The inviter's right to invite is checked first, so an
   * invite that the room would refuse is never stored at the identity server.
   */
  async invite(roomId: string, sender: string, threepid: ThirdPartyId): Promise<void> {
    const version = await this.deps.access.versionOf(roomId);
    if ((await this.deps.access.membership(roomId, sender)) !== "join") throw new MatrixError("M_FORBIDDEN", "You are not in this room");
    const state = await this.deps.access.currentAuthState(roomId);
    if (userPowerLevel(sender, state, version) < namedLevel("invite", state, version)) throw new MatrixError("M_FORBIDDEN", "You do not have permission to invite users to this room");

    const mxid = await this.lookup(threepid);
    if (mxid !== undefined) return this.deps.invite(roomId, sender, mxid);

    const stored = await this.storeInvite(roomId, sender, threepid);
    await this.deps.engine.sendEvent(roomId, { type: "m.room.third_party_invite", sender, stateKey: stored.token, content: stored.content });
  }

  /**
   * identity-service-api "Lookup": /hash_details, then /lookup with sha256 of
   * "<address> <medium> <pepper>" (URL-safe unpadded Base64), or "<address> <medium>" in the clear
   * when the server offers only "none". Undefined when nobody holds the address.
   */
  private async lookup({ idServer, idAccessToken, medium, address }: ThirdPartyId): Promise<string | undefined> {
    const details = await this.deps.identity.hashDetails(idServer, idAccessToken);
    if (details.status !== 200 || !details.body) throw identityError(idServer, "hash_details request", details);
    const algorithms = Array.isArray(details.body.algorithms) ? details.body.algorithms : [];
    const pepper = details.body.lookup_pepper;
    if (typeof pepper !== "string") throw new MatrixError("M_UNKNOWN", `The identity server ${idServer} gave no lookup_pepper`, 502);
    let query: string;
    let algorithm: string;
    if (algorithms.includes("sha256")) {
      algorithm = "sha256";
      query = sha256Base64Url(`${address} ${medium} ${pepper}`);
    } else if (algorithms.includes("none")) {
      algorithm = "none";
      query = `${address} ${medium}`;
    } else {
      throw new MatrixError("M_UNKNOWN", `The identity server ${idServer} offers no lookup algorithm this server knows`, 502);
    }
    const answer = await this.deps.identity.lookup(idServer, idAccessToken, { addresses: [query], algorithm, pepper });
    if (answer.status !== 200 || !answer.body) throw identityError(idServer, "lookup", answer);
    const mxid = ownMember(answer.body.mappings, query);
    return typeof mxid === "string" && isValidUserId(mxid) ? mxid : undefined;
  }

  /** /store-invite, with what the room's state says of the room (the optional fields, "to the best of the server's ability"). */
  private async storeInvite(roomId: string, sender: string, { idServer, idAccessToken, medium, address }: ThirdPartyId): Promise<{ token: string; content: JsonObject }> {
    const body: JsonObject = { medium, address, room_id: roomId, sender };
    const stateString = async (type: string, key: string) => {
      const value = (await this.deps.engine.currentStateEvent(roomId, type, ""))?.content[key];
      return typeof value === "string" ? value : undefined;
    };
    const optional: Record<string, string | undefined> = {
      room_alias: await stateString("m.room.canonical_alias", "alias"),
      room_avatar_url: await stateString("m.room.avatar", "url"),
      room_join_rules: await stateString("m.room.join_rules", "join_rule"),
      room_name: await stateString("m.room.name", "name"),
      room_type: await stateString("m.room.create", "type"),
    };
    const profile = await this.deps.profile(sender);
    optional.sender_display_name = profile.displayname;
    optional.sender_avatar_url = profile.avatar_url;
    for (const [key, value] of Object.entries(optional)) if (value !== undefined) body[key] = value;

    const answer = await this.deps.identity.storeInvite(idServer, idAccessToken, body);
    if (answer.status !== 200 || !answer.body) throw identityError(idServer, "store-invite request", answer);
    const { token, display_name: displayName, public_key: legacyKey } = answer.body;
    const publicKeys = Array.isArray(answer.body.public_keys)
      ? answer.body.public_keys.filter((k): k is JsonObject => isJsonObject(k) && typeof k.public_key === "string")
      : [];
    if (typeof token !== "string" || !TOKEN.test(token)) throw new MatrixError("M_UNKNOWN", `The identity server ${idServer} returned an invalid token`, 502);
    const first = publicKeys[0];
    const publicKey = typeof legacyKey === "string" ? legacyKey : first?.public_key;
    if (typeof publicKey !== "string") throw new MatrixError("M_UNKNOWN", `The identity server ${idServer} returned no public key`, 502);
    // key_validity_url is required at the top level: the first key's (the long-term key), else the
    // identity server's own v2 URL, as Synapse falls back to.
    const keyValidityUrl = typeof first?.key_validity_url === "string" ? first.key_validity_url : `https://${idServer}/_matrix/identity/v2/pubkey/isvalid`;
    const content: JsonObject = {
      display_name: typeof displayName === "string" ? displayName : "",
      key_validity_url: keyValidityUrl,
      public_key: publicKey,
      public_keys: publicKeys.length > 0 ? publicKeys : [{ public_key: publicKey, key_validity_url: keyValidityUrl }],
    };
    return { token, content };
  }

  /**
   * PUT/POST /_matrix/federation/v1/3pid/onbind. Each invite for one of our users is exchanged; one
   * that fails is logged and the others still go ahead, and then the last failure is the answer
   * (what Synapse does: the identity server learns that an invite was refused).
   */
  async onBind(body: JsonObject): Promise<void> {
    const mxid = body.mxid;
    if (typeof mxid !== "string" || !isValidUserId(mxid)) throw new MatrixError("M_INVALID_PARAM", "mxid must be a user ID");
    if (serverNameOf(mxid) !== this.deps.serverName) throw new MatrixError("M_INVALID_PARAM", `${mxid} is not a user of this server`);
    const invites = body.invites ?? [];
    if (!Array.isArray(invites)) throw new MatrixError("M_INVALID_PARAM", "invites must be an array");
    let failure: unknown;
    for (const invite of invites) {
      const roomId = ownMember(invite, "room_id");
      const sender = ownMember(invite, "sender");
      const signed = ownMember(invite, "signed");
      try {
        if (typeof roomId !== "string" || typeof sender !== "string" || !isJsonObject(signed)) throw new MatrixError("M_INVALID_PARAM", "an invite lacks room_id, sender or signed");
        if (ownMember(signed, "mxid") !== mxid) throw new MatrixError("M_INVALID_PARAM", "signed.mxid is not the bound user");
        await this.exchange(roomId, sender, mxid, signed);
      } catch (error) {
        this.deps.logger?.log("warn", "could not turn a third-party invite into a membership", {
          room_id: typeof roomId === "string" ? roomId : undefined,
          user_id: mxid,
          error: error instanceof MatrixError ? `${error.errcode}: ${error.message}` : String(error),
        });
        failure = error;
      }
    }
    if (failure !== undefined) throw failure;
  }

  /**
   * The invitee's side of the exchange: in a room we are in, we make the invite ourselves; otherwise
   * the inviter's server (in the room, as it sent the m.room.third_party_invite) is asked to.
   */
  async exchange(roomId: string, sender: string, target: string, signed: JsonObject): Promise<void> {
    if (await this.deps.isResident(roomId)) {
      await this.makeInvite(roomId, sender, target, signed);
      return;
    }
    const server = serverNameOf(sender);
    if (!this.deps.exchangeRemotely || server === undefined || server === this.deps.serverName) throw new MatrixError("M_FORBIDDEN", `This server is not in ${roomId}`);
    const event: JsonObject = {
      type: "m.room.member",
      room_id: roomId,
      sender,
      state_key: target,
      content: { membership: "invite", third_party_invite: { display_name: "", signed } },
    };
    await this.deps.exchangeRemotely(server, roomId, event);
  }

  /**
   * PUT /_matrix/federation/v1/exchange_third_party_invite/{roomId}, from the invitee's server: the
   * partial m.room.member event it built from the signed block.
   */
  async onExchange(roomId: string, event: JsonObject): Promise<void> {
    if (event.type !== "m.room.member") throw new MatrixError("M_INVALID_PARAM", "type must be m.room.member");
    if (event.room_id !== undefined && event.room_id !== roomId) throw new MatrixError("M_INVALID_PARAM", "room_id does not match the path");
    const { sender, state_key: target, content } = event;
    if (typeof sender !== "string" || !isValidUserId(sender)) throw new MatrixError("M_INVALID_PARAM", "sender must be a user ID");
    if (typeof target !== "string" || !isValidUserId(target)) throw new MatrixError("M_INVALID_PARAM", "state_key must be a user ID");
    if (!isJsonObject(content) || content.membership !== "invite") throw new MatrixError("M_INVALID_PARAM", "content.membership must be invite");
    const signed = ownMember(content.third_party_invite, "signed");
    if (!isJsonObject(signed)) throw new MatrixError("M_INVALID_PARAM", "content.third_party_invite.signed is missing");
    if (!(await this.deps.isResident(roomId))) throw new MatrixError("M_FORBIDDEN", `This server is not in ${roomId}`);
    await this.makeInvite(roomId, sender, target, signed);
  }

  /**
   * POST /join with `third_party_signed` ({sender, mxid, token, signatures}): the joiner's proof that
   * an m.room.third_party_invite was for them. The invite is made from it first, then the join.
   */
  async inviteFromJoin(roomId: string, userId: string, signedInput: Record<string, unknown>): Promise<void> {
    const signed = signedInput as JsonObject;
    const { sender, mxid, token } = signed;
    if (typeof sender !== "string" || typeof mxid !== "string" || typeof token !== "string" || !isJsonObject(signed.signatures)) {
      throw new MatrixError("M_BAD_JSON", "third_party_signed must have sender, mxid, token and signatures");
    }
    if (mxid !== userId) throw new MatrixError("M_FORBIDDEN", "third_party_signed.mxid is not you");
    if ((await this.deps.access.membership(roomId, userId).catch(() => undefined)) === "invite") return;
    await this.exchange(roomId, sender, userId, signed);
  }

  /**
   * Builds, checks and sends the m.room.member invite: the token names an m.room.third_party_invite
   * of the current state sent by `sender`; a signature in `signed` verifies under one of its keys;
   * and, as the server making the event, we ask each such key's key_validity_url whether the key
   * still stands (client-server-api: the participating server "MUST validate that the public key
   * used for signing is still valid"). The auth rules check the signature again on the event.
   */
  private async makeInvite(roomId: string, sender: string, target: string, signed: JsonObject): Promise<void> {
    const token = ownMember(signed, "token");
    if (typeof token !== "string") throw new MatrixError("M_FORBIDDEN", "signed has no token");
    if (ownMember(signed, "mxid") !== target) throw new MatrixError("M_FORBIDDEN", "signed.mxid is not the invitee");
    const thirdPartyInvite: RoomEvent | undefined = await this.deps.engine.currentStateEvent(roomId, "m.room.third_party_invite", token);
    if (!thirdPartyInvite || !isJsonObject(thirdPartyInvite.content) || Object.keys(thirdPartyInvite.content).length === 0) {
      throw new MatrixError("M_FORBIDDEN", `No third-party invite with token ${token} in ${roomId}`);
    }
    if (thirdPartyInvite.sender !== sender) throw new MatrixError("M_FORBIDDEN", "The third-party invite was sent by someone else");
    const keys = keysThatSigned(signed, thirdPartyInvite.content);
    if (keys.length === 0) throw new MatrixError("M_FORBIDDEN", "No signature in signed matches the third-party invite's public keys");
    if (!(await this.anyKeyStillValid(keys))) throw new MatrixError("M_FORBIDDEN", "The identity server no longer vouches for the key that signed the invite");
    const displayName = thirdPartyInvite.content.display_name;
    const content: JsonObject = {
      membership: "invite",
      third_party_invite: { display_name: typeof displayName === "string" ? displayName : "", signed: signed as JsonValue },
    };
    const current = await this.deps.access.membership(roomId, target);
    if (current === "invite" || current === "join") return; // already made good (a retried onbind, a second join)
    if (serverNameOf(target) === this.deps.serverName) {
      await this.deps.engine.sendEvent(roomId, { type: "m.room.member", sender, stateKey: target, content });
      return;
    }
    // The invitee's server is not in the room: it learns of the invite by /invite, as of any other.
    if (!this.deps.inviteRemote) throw new MatrixError("M_FORBIDDEN", `Cannot invite ${target}: this server does not invite users of other servers`);
    await this.deps.inviteRemote(roomId, sender, target, content);
  }

  /** Whether the identity server still calls one of the signing keys valid; an unreachable one vouches for nothing. */
  private async anyKeyStillValid(keys: readonly ThirdPartyInviteKey[]): Promise<boolean> {
    for (const key of keys) {
      if (key.keyValidityUrl === undefined) return true; // "valid indefinitely"
      try {
        const answer = await this.deps.identity.keyValidity(key.keyValidityUrl, key.publicKey);
        if (answer.status === 200 && answer.body?.valid === true) return true;
      } catch (error) {
        this.deps.logger?.log("warn", "could not check a third-party invite key", { url: key.keyValidityUrl, error: error instanceof Error ? error.message : String(error) });
      }
    }
    return false;
  }
}
