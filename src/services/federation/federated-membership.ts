// Which way a client's membership request goes: rooms this server is in (a local member joined)
// are handled here by the room engine; rooms that live elsewhere go through the remote handshakes,
// via the servers the client named, the room's and alias's servers, and whoever invited the user.
import { MatrixError } from "../../protocol/errors";
import { isValidRoomAlias, isValidUserId, serverNameOf } from "../../protocol/identifiers";
import { isJsonObject, type JsonObject } from "../../protocol/json";
import type { RoomEventStore } from "../../storage/stores";
import type { MembershipService } from "../rooms/membership";
import { FederationDisabledError, type FederationClient } from "./contracts";
import type { ResidentMembershipService } from "./membership-handshake";
import type { RemoteMembershipService } from "./remote-membership";
import type { PublicRoomsRequest, PublicRoomsResponse } from "../directory/public-rooms";

export interface OutOfBandLookup {
  current(userId: string, roomId: string): Promise<{ membership: string; roomVersion: string; event: JsonObject; strippedState: readonly JsonObject[] } | undefined>;
}

export interface FederatedMembershipDeps {
  serverName: string;
  membership: MembershipService;
  remote: RemoteMembershipService;
  resident: ResidentMembershipService;
  store: RoomEventStore;
  /** A user's current membership in a room we hold. */
  membershipOf(roomId: string, userId: string): Promise<string | undefined>;
  outOfBand: OutOfBandLookup;
  client: FederationClient;
  /** Resolves a local alias (or returns a room id as it is). */
  resolveLocal(roomIdOrAlias: string): Promise<{ roomId: string; servers?: string[] }>;
  /** Whether a local user is a guest account; absent: nobody is. */
  isGuest?: (userId: string) => Promise<boolean>;
}

const GUESTS_REFUSED = "Guest access is not allowed in this room";

export class FederatedMembershipService {
  constructor(private readonly deps: FederatedMembershipDeps) {}

  /** A room id or alias to a room id and the servers that may know it (remote aliases via /query/directory). */
  async resolve(roomIdOrAlias: string): Promise<{ roomId: string; servers: string[] }> {
    if (roomIdOrAlias.startsWith("#") && isValidRoomAlias(roomIdOrAlias) && serverNameOf(roomIdOrAlias) !== this.deps.serverName) {
      const server = serverNameOf(roomIdOrAlias)!;
      const answer = await this.unknownWithoutFederation(
        () => this.deps.client.request("GET", server, "/_matrix/federation/v1/query/directory", { query: { room_alias: roomIdOrAlias } }),
        `Room alias ${roomIdOrAlias} not found`,
      );
      if (!isJsonObject(answer) || typeof answer.room_id !== "string") throw new MatrixError("M_NOT_FOUND", `Room alias ${roomIdOrAlias} not found`);
      const servers = Array.isArray(answer.servers) ? answer.servers.filter((s): s is string => typeof s === "string") : [];
      return { roomId: answer.room_id, servers: [server, ...servers] };
    }
    const local = await this.deps.resolveLocal(roomIdOrAlias);
    return { roomId: local.roomId, servers: local.servers ?? [] };
  }

  /**
   * Another server's public room directory (client-server-api GET/POST /publicRooms?server=):
   * asked over federation, GET when there is no filter (any server answers it), POST with one.
   */
  async remotePublicRooms(server: string, request: PublicRoomsRequest): Promise<PublicRoomsResponse> {
    const filter: JsonObject = {};
    if (request.filter?.genericSearchTerm !== undefined) filter.generic_search_term = request.filter.genericSearchTerm;
    if (request.filter?.roomTypes !== undefined) filter.room_types = request.filter.roomTypes;
    const path = "/_matrix/federation/v1/publicRooms";
    const answer = await this.unknownWithoutFederation(
      () =>
        Object.keys(filter).length === 0
          ? this.deps.client.request("GET", server, path, {
              query: { ...(request.limit !== undefined ? { limit: String(request.limit) } : {}), ...(request.since ? { since: request.since } : {}), ...(request.thirdPartyInstanceId !== undefined ? { third_party_instance_id: request.thirdPartyInstanceId } : {}) },
            })
          : this.deps.client.request("POST", server, path, {
              body: { ...(request.limit !== undefined ? { limit: request.limit } : {}), ...(request.since ? { since: request.since } : {}), filter, ...(request.thirdPartyInstanceId !== undefined ? { third_party_instance_id: request.thirdPartyInstanceId } : {}) },
            }),
      `Cannot list the room directory of ${server}`,
    );
    if (!isJsonObject(answer) || !Array.isArray(answer.chunk)) throw new MatrixError("M_UNKNOWN", `${server} answered /publicRooms without a chunk`, 502);
    const chunk = answer.chunk.filter((room): room is JsonObject => isJsonObject(room) && typeof room.room_id === "string") as unknown as PublicRoomsResponse["chunk"];
    return {
      chunk,
      ...(typeof answer.next_batch === "string" ? { next_batch: answer.next_batch } : {}),
      ...(typeof answer.prev_batch === "string" ? { prev_batch: answer.prev_batch } : {}),
      total_room_count_estimate: typeof answer.total_room_count_estimate === "number" ? answer.total_room_count_estimate : chunk.length,
    };
  }

  /** Whether this server is in the room: it holds it and a local user is joined. */
  async isResident(roomId: string): Promise<boolean> {
    if (!(await this.deps.store.getRoom(roomId))) return false;
    return (await this.deps.resident.serversInRoom(roomId)).includes(this.deps.serverName);
  }

  /** `custom`: further keys of the member event's content, from the client's request. */
  async join(roomIdOrAlias: string, userId: string, reason: string | undefined, via: readonly string[], custom: JsonObject = {}): Promise<{ roomId: string }> {
    const { roomId, servers } = await this.resolve(roomIdOrAlias);
    if (await this.isResident(roomId)) return this.deps.membership.join(roomId, userId, reason, custom);
    // Guests join only rooms whose m.room.guest_access is can_join (guest_access.md, "Server
    // behaviour"); being a guest is this server's knowledge alone, so the check is ours to make.
    const guest = (await this.deps.isGuest?.(userId)) ?? false;
    if (guest) {
      // The invite's stripped state may show it beforehand (the spec does not list the event there).
      const stripped = (await this.deps.outOfBand.current(userId, roomId))?.strippedState.find((e) => e.type === "m.room.guest_access" && e.state_key === "");
      if (stripped && (isJsonObject(stripped.content) ? stripped.content.guest_access : undefined) !== "can_join") throw new MatrixError("M_FORBIDDEN", GUESTS_REFUSED);
    }
    const content: JsonObject = { ...custom, ...(await this.deps.membership.profile(userId)), ...(reason !== undefined ? { reason } : {}) };
    const candidates = await this.candidates(roomId, userId, [...via, ...servers]);
    await this.unknownWithoutFederation(() => this.deps.remote.join(roomId, userId, candidates, content), `Unknown room ${roomId}`);
    // Otherwise the room's state is first seen in send_join's answer, when the join is already in
    // the room: the guest leaves at once, as a guest must when guest access ends, and is refused.
    if (guest && (await this.guestAccess(roomId)) !== "can_join") {
      try {
        await this.deps.membership.leave(roomId, userId, GUESTS_REFUSED);
      } catch {
        // still refused; the room's guest_access listener makes guests leave on the next change
      }
      throw new MatrixError("M_FORBIDDEN", GUESTS_REFUSED);
    }
    return { roomId };
  }

  /** The guest_access of a room we hold, by its current state. */
  private async guestAccess(roomId: string): Promise<unknown> {
    const id = await this.deps.store.currentStateEvent(roomId, "m.room.guest_access", "");
    const stored = id === undefined ? undefined : await this.deps.store.getEvent(id);
    if (!stored) return undefined;
    const pdu: unknown = JSON.parse(stored.json);
    return isJsonObject(pdu) && isJsonObject(pdu.content) ? pdu.content.guest_access : undefined;
  }

  async knock(roomIdOrAlias: string, userId: string, reason: string | undefined, via: readonly string[]): Promise<{ roomId: string }> {
    const { roomId, servers } = await this.resolve(roomIdOrAlias);
    if (await this.isResident(roomId)) return this.deps.membership.knock(roomId, userId, reason);
    const content: JsonObject = { ...(await this.deps.membership.profile(userId)), ...(reason !== undefined ? { reason } : {}) };
    const candidates = await this.candidates(roomId, userId, [...via, ...servers]);
    await this.unknownWithoutFederation(() => this.deps.remote.knock(roomId, userId, candidates, content), `Unknown room ${roomId}`);
    return { roomId };
  }

  /** Leaving a room we are in is local; rejecting a remote invite or rescinding a remote knock goes through the room's servers. */
  async leave(roomId: string, userId: string, reason: string | undefined): Promise<void> {
    if (await this.isResident(roomId)) return this.deps.membership.leave(roomId, userId, reason);
    const outOfBand = await this.deps.outOfBand.current(userId, roomId);
    const held = (await this.deps.store.getRoom(roomId)) !== undefined;
    if (!outOfBand || (outOfBand.membership !== "invite" && outOfBand.membership !== "knock")) {
      if (held) return this.deps.membership.leave(roomId, userId, reason);
      throw new MatrixError("M_NOT_FOUND", `Unknown room ${roomId}`);
    }
    await this.deps.remote.leave(roomId, userId, await this.candidates(roomId, userId, []), reason !== undefined ? { reason } : {}, outOfBand);
  }

  async invite(roomId: string, sender: string, target: string, reason: string | undefined): Promise<void> {
    if (!isValidUserId(target) || serverNameOf(target) === this.deps.serverName) return this.deps.membership.invite(roomId, sender, target, reason);
    if (!(await this.isResident(roomId))) throw new MatrixError("M_FORBIDDEN", "This server is not in the room");
    const current = await this.deps.membershipOf(roomId, target);
    if (current === "join") throw new MatrixError("M_FORBIDDEN", `${target} is already in the room`);
    if (current === "ban") throw new MatrixError("M_FORBIDDEN", `${target} is banned from the room`);
    if ((await this.deps.membershipOf(roomId, sender)) !== "join") throw new MatrixError("M_FORBIDDEN", "You are not in this room");
    await this.deps.remote.invite(roomId, sender, target, reason !== undefined ? { reason } : {}, await this.deps.resident.knockRoomState(roomId));
  }

  /**
   * The servers to try, in order: those the client named (and the alias's), the server of an invite
   * or knock we hold for this room, then the room id's own server (pre-v12 ids name their creator's).
   */
  private async candidates(roomId: string, userId: string, named: readonly string[]): Promise<string[]> {
    const out = [...named];
    const outOfBand = await this.deps.outOfBand.current(userId, roomId);
    const inviter = outOfBand && typeof outOfBand.event.sender === "string" ? serverNameOf(outOfBand.event.sender) : undefined;
    if (inviter && outOfBand!.membership === "invite") out.push(inviter);
    // The servers whose events the stripped state holds (the room's create and join rules): they
    // were in the room when we were invited or knocked, so they can take our leave.
    for (const event of outOfBand?.strippedState ?? []) {
      const server = typeof event.sender === "string" ? serverNameOf(event.sender) : undefined;
      if (server) out.push(server);
    }
    const roomServer = serverNameOf(roomId);
    if (roomServer) out.push(roomServer);
    if (await this.deps.store.getRoom(roomId)) out.push(...(await this.deps.resident.serversInRoom(roomId)));
    return [...new Set(out)].filter((s) => s !== this.deps.serverName);
  }

  /** A server that does not federate knows nothing of rooms and aliases elsewhere: 404, as before federation. */
  private async unknownWithoutFederation<T>(call: () => Promise<T>, message: string): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof FederationDisabledError) throw new MatrixError("M_NOT_FOUND", message);
      throw error;
    }
  }
}
