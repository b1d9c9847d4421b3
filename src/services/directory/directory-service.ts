// The room directory (client-server-api "Room aliases" and "Published room directory"): local room
// aliases (create, resolve, delete, list a room's), resolving "!room:id" / "#alias:server" for joins
// and knocks, and which rooms this server publishes in /publicRooms.
//
// Who may do what (the spec leaves it to the server; these are Synapse's rules):
// - create an alias: a user joined to the room (or a server admin); only aliases on this server;
// - delete an alias: its creator, a server admin, or a "room admin" of the room it points at;
// - change a room's directory visibility: a room admin or a server admin;
// - list a room's local aliases: joined members, anyone when its history is world_readable.
// A room admin is a user joined to the room who may send m.room.canonical_alias there (by the
// current power levels), or one of the room's creators.
//
// Spam policies (issue 9), asked only when one is registered, after those permission checks and
// before anything is stored: userMayCreateAlias for every new alias (PUT and createRoom's
// room_alias_name), userMayPublishRoom for every publication. A shadow is a refusal here: an alias
// or a listing that seemed to work would be missing at the client's next look.
import { eventSendLevel, roomCreators, userPowerLevel } from "../../protocol/auth";
import { MatrixError } from "../../protocol/errors";
import type { JsonObject } from "../../protocol/json";
import { parseRoomAlias, parseServerName, serverNameOf } from "../../protocol/identifiers";
import type { PublishedRoom, RoomDirectoryStore } from "../../storage/stores";
import type { RoomAccess } from "../rooms/room-access";
import { requireSpamAllowed, type SpamChecks } from "../plugins/spam-decisions";
import type { Clock } from "../runtime";
import { listPublicRooms, type PublicRoomsRequest, type PublicRoomsResponse, type RoomStateReader } from "./public-rooms";

export type DirectoryVisibility = "public" | "private";

export interface DirectoryOptions {
  serverName: string;
  /** Whether a user is an admin of this server (they pass every directory permission check). */
  isServerAdmin?: (userId: string) => Promise<boolean>;
  /** The plugins' spam policies (the PolicySet); absent: nothing is checked. */
  policies?: SpamChecks;
  /** Other servers' aliases and directories, over federation; absent: those are 404. */
  remote?: () => RemoteDirectory;
}

/** What the directory asks of other servers (FederatedMembershipService). */
export interface RemoteDirectory {
  resolve(alias: string): Promise<ResolvedRoom>;
  remotePublicRooms(server: string, request: PublicRoomsRequest): Promise<PublicRoomsResponse>;
}

/** An alias held for a room that is being created; `commit` maps it, `release` gives it up. */
export interface AliasReservation {
  readonly alias: string;
  commit(roomId: string): Promise<void>;
  release(): void;
}

/** Application services' part in aliases (application-service-api "Server admin style permissions", "Querying"). */
export interface DirectoryAppServices {
  /** Throws 400 M_EXCLUSIVE: a service outside its alias namespaces, anyone else inside an exclusive one. */
  checkMayCreateAlias(alias: string, appServiceId: string | undefined): void;
  /** Asks the services whose namespace holds the alias to create it; true when one did. */
  queryAlias(alias: string): Promise<boolean>;
  /** The rooms of a network's list (a third_party_instance_id), or of every network's (undefined). */
  roomList(instanceId: string | undefined): Promise<PublishedRoom[]>;
}

export interface ResolvedRoom {
  roomId: string;
  /** Servers to join through (for a local alias: this server and the other servers in the room). */
  servers: string[];
}

export class DirectoryService {
  /** Aliases promised to rooms still being created: neither PUT nor another createRoom may take them. */
  private readonly reserved = new Set<string>();
  private appServices: DirectoryAppServices | undefined;

  constructor(
    private readonly store: RoomDirectoryStore,
    private readonly access: RoomAccess,
    private readonly clock: Clock,
    private readonly options: DirectoryOptions,
  ) {}

  get serverName(): string {
    return this.options.serverName;
  }

  /** Lets application services own their alias namespaces and be asked for aliases not found. */
  useAppServices(appServices: DirectoryAppServices): void {
    this.appServices = appServices;
  }

  // ---------------------------------------------------------------------------------------------
  // Aliases

  /**
   * PUT /directory/room/{roomAlias}: maps a new local alias to a room the user is joined to. An
   * application service (appServiceId) needs no membership, as in Synapse, but only aliases of its
   * namespaces; nobody else may take an alias of a service's exclusive namespace.
   */
  async setAlias(userId: string, alias: string, roomId: string, appServiceId?: string): Promise<void> {
    this.checkNewAlias(alias);
    this.appServices?.checkMayCreateAlias(alias, appServiceId);
    if (!roomId.startsWith("!")) throw new MatrixError("M_INVALID_PARAM", `Invalid room ID: ${roomId}`);
    await this.access.versionOf(roomId);
    if (appServiceId === undefined && (await this.access.membership(roomId, userId)) !== "join" && !(await this.isServerAdmin(userId))) {
      throw new MatrixError("M_FORBIDDEN", `You must be joined to ${roomId} to give it an alias`);
    }
    if (this.options.policies?.hasSpamPolicies) await this.checkAliasSpam(this.options.policies, userId, alias);
    const taken = () => new MatrixError("M_UNKNOWN", `Room alias ${alias} already exists.`, 409);
    // From here to the reservation, no await: two requests for one alias must not both pass.
    if (this.reserved.has(alias)) throw taken();
    // Held while the row is written, so that a createRoom reserving the same alias meanwhile is refused.
    this.reserved.add(alias);
    try {
      if (!(await this.store.createAlias({ alias, roomId, creator: userId, createdTs: this.clock.now() }))) throw taken();
    } finally {
      this.reserved.delete(alias);
    }
  }

  /** GET /directory/room/{roomAlias}: the room of an alias and servers to join it through. */
  async resolveAlias(alias: string): Promise<ResolvedRoom> {
    const parsed = parseRoomAlias(alias);
    if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `Room alias invalid: ${parsed.error}`);
    if (parsed.value.serverName !== this.serverName) {
      const remote = this.options.remote?.();
      if (!remote) throw new MatrixError("M_NOT_FOUND", `Room alias ${alias} not found`);
      const found = await remote.resolve(alias);
      return { roomId: found.roomId, servers: [...new Set(found.servers)] };
    }
    let record = await this.store.getAlias(alias);
    // An alias of an application service's namespace that is not there yet: the service may make it ("Querying").
    if (!record && this.appServices && (await this.appServices.queryAlias(alias))) record = await this.store.getAlias(alias);
    if (!record) throw new MatrixError("M_NOT_FOUND", `Room alias ${alias} not found.`);
    return { roomId: record.roomId, servers: await this.serversOf(record.roomId) };
  }

  /**
   * A room ID from a "!room" ID (returned as is) or a "#alias" (resolved); 400 for anything else.
   * Shared by /join/{roomIdOrAlias} and /knock/{roomIdOrAlias}.
   */
  async resolveRoomIdOrAlias(idOrAlias: string): Promise<ResolvedRoom> {
    if (idOrAlias.startsWith("!")) {
      const server = serverNameOf(idOrAlias);
      return { roomId: idOrAlias, servers: server === undefined ? [] : [server] };
    }
    if (idOrAlias.startsWith("#")) return this.resolveAlias(idOrAlias);
    throw new MatrixError("M_INVALID_PARAM", `${idOrAlias} is neither a room ID nor a room alias`);
  }

  /**
   * DELETE /directory/room/{roomAlias}: the alias's creator, a server admin or a room admin may. An
   * alias the room lists in m.room.canonical_alias is taken out of that event too, as the requester;
   * if the power levels refuse that, the alias is deleted all the same (directory.yaml recommends it).
   */
  async deleteAlias(userId: string, alias: string): Promise<void> {
    const parsed = parseRoomAlias(alias);
    if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `Room alias invalid: ${parsed.error}`);
    if (parsed.value.serverName !== this.serverName) throw new MatrixError("M_NOT_FOUND", `Room alias ${alias} not found.`);
    const record = await this.store.getAlias(alias);
    if (!record) throw new MatrixError("M_NOT_FOUND", `Room alias ${alias} not found.`);
    if (record.creator !== userId && !(await this.isServerAdmin(userId)) && !(await this.isRoomAdmin(record.roomId, userId))) {
      throw new MatrixError("M_FORBIDDEN", "You may not delete this alias: only its creator or an admin of its room may");
    }
    await this.store.deleteAlias(alias);
    await this.dropFromCanonicalAlias(record.roomId, userId, alias);
  }

  /** GET /rooms/{roomId}/aliases: members (or anyone, when the history is world_readable). */
  async localAliases(userId: string, roomId: string): Promise<string[]> {
    const known = await this.roomExists(roomId);
    const readable =
      known &&
      ((await this.access.membership(roomId, userId)) === "join" || this.access.historyVisibility(await this.access.currentAuthState(roomId)) === "world_readable");
    if (!readable && !(await this.isServerAdmin(userId))) throw new MatrixError("M_FORBIDDEN", "You are not a member of the room.");
    return this.store.aliasesOfRoom(roomId);
  }

  /**
   * A room upgrade (client-server-api "Room Upgrades", server behaviour step 4): every local alias
   * of the old room points at the new one, each keeping its creator; all or none of them move.
   */
  async moveLocalAliases(fromRoomId: string, toRoomId: string): Promise<string[]> {
    return this.access.store.atomically(async () => {
      const aliases = await this.store.aliasesOfRoom(fromRoomId);
      for (const alias of aliases) {
        const record = await this.store.getAlias(alias);
        if (!record) continue;
        await this.store.deleteAlias(alias);
        await this.store.createAlias({ ...record, roomId: toRoomId });
      }
      return aliases;
    });
  }

  /**
   * createRoom's room_alias_name: checks "#localpart:ourserver" and holds it until the room exists,
   * so that a taken alias fails the request before anything is stored (400 M_ROOM_IN_USE).
   */
  async reserveAlias(localpart: string, creator: string): Promise<AliasReservation> {
    if (localpart.includes(":")) throw new MatrixError("M_INVALID_PARAM", "room_alias_name must be the alias local part, without ':'");
    const alias = `#${localpart}:${this.serverName}`;
    this.checkNewAlias(alias);
    if (this.options.policies?.hasSpamPolicies) await this.checkAliasSpam(this.options.policies, creator, alias);
    const taken = () => new MatrixError("M_ROOM_IN_USE", `Room alias ${alias} already taken`);
    // From here to the reservation, no await: two createRooms with one alias must not both pass.
    if (this.reserved.has(alias)) throw taken();
    // Held before the store is asked, so that a second createRoom with this alias is refused meanwhile.
    this.reserved.add(alias);
    try {
      if (await this.store.getAlias(alias)) throw taken();
    } catch (error) {
      this.reserved.delete(alias);
      throw error;
    }
    let held = true;
    return {
      alias,
      commit: async (roomId) => {
        if (!held) throw new Error(`alias reservation ${alias} is no longer held`);
        if (!(await this.store.createAlias({ alias, roomId, creator, createdTs: this.clock.now() }))) throw taken();
      },
      release: () => {
        if (held) this.reserved.delete(alias);
        held = false;
      },
    };
  }

  // ---------------------------------------------------------------------------------------------
  // Published room directory

  /** GET /directory/list/room/{roomId}. */
  async visibility(roomId: string): Promise<DirectoryVisibility> {
    if (!(await this.roomExists(roomId))) throw new MatrixError("M_NOT_FOUND", "Room not found");
    return (await this.store.isPublished(roomId)) ? "public" : "private";
  }

  /** PUT /directory/list/room/{roomId}: room admins and server admins only. */
  async setVisibility(userId: string, roomId: string, visibility: DirectoryVisibility): Promise<void> {
    if (!(await this.roomExists(roomId))) throw new MatrixError("M_NOT_FOUND", "Room not found");
    if (!(await this.isServerAdmin(userId)) && !(await this.isRoomAdmin(roomId, userId))) {
      throw new MatrixError("M_FORBIDDEN", "You may not change this room's visibility in the room directory: it needs the power to send m.room.canonical_alias");
    }
    const policies = this.options.policies;
    if (visibility === "public" && policies?.hasSpamPolicies) {
      await requireSpamAllowed(policies, (p) => p.userMayPublishRoom?.(userId, roomId), "You may not publish this room in the room directory");
    }
    await this.store.setPublished(roomId, visibility === "public", this.clock.now());
  }

  /** createRoom with visibility "public": the creator may publish their new room. */
  /** The room a local alias points at, if it exists (for m.room.canonical_alias checks). */
  async localAliasTarget(alias: string): Promise<string | undefined> {
    return (await this.store.getAlias(alias))?.roomId;
  }

  publish(roomId: string): Promise<void> {
    return this.store.setPublished(roomId, true, this.clock.now());
  }

  /** Whether the spam policies let the creator of a new room publish it (createRoom asks before `publish`). */
  async mayPublish(userId: string, roomId: string): Promise<boolean> {
    const policies = this.options.policies;
    if (!policies?.hasSpamPolicies) return true;
    // Any answer but allow keeps the room unlisted: the room itself is made either way.
    return (await policies.spamCheck((p) => p.userMayPublishRoom?.(userId, roomId))).kind === "allow";
  }

  /** GET and POST /publicRooms for this server; another server's directory needs federation. */
  async publicRooms(request: PublicRoomsRequest & { server?: string }): Promise<PublicRoomsResponse> {
    if (request.server !== undefined && request.server !== this.serverName) {
      if (!parseServerName(request.server).ok) throw new MatrixError("M_INVALID_PARAM", `Invalid server name: ${request.server}`);
      const remote = this.options.remote?.();
      if (!remote) throw new MatrixError("M_NOT_FOUND", `Cannot list the room directory of ${request.server}`);
      return remote.remotePublicRooms(request.server, request);
    }
    // A network's list (an application service's), every list, or this server's own.
    const published =
      request.thirdPartyInstanceId !== undefined
        ? ((await this.appServices?.roomList(request.thirdPartyInstanceId)) ?? [])
        : request.includeAllNetworks && this.appServices
          ? unionOfRooms(await this.store.publishedRooms(), await this.appServices.roomList(undefined))
          : await this.store.publishedRooms();
    return listPublicRooms(published, { ...request, thirdPartyInstanceId: undefined }, this.stateReader);
  }

  /** Current state and local aliases, as the directory's room descriptions read them. */
  readonly stateReader: RoomStateReader = {
    state: async (roomId, type, stateKey) => (await this.access.engine.currentStateEvent(roomId, type, stateKey))?.content,
    localAliases: (roomId) => this.store.aliasesOfRoom(roomId),
  };

  // ---------------------------------------------------------------------------------------------

  private checkAliasSpam(policies: SpamChecks, userId: string, alias: string): Promise<void> {
    return requireSpamAllowed(policies, (p) => p.userMayCreateAlias?.(userId, alias), `You may not create the alias ${alias}`);
  }

  /** A valid alias on this server (400 M_INVALID_PARAM otherwise, also for other servers' aliases). */
  private checkNewAlias(alias: string): void {
    const parsed = parseRoomAlias(alias);
    if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `Room alias invalid: ${parsed.error}`);
    if (parsed.value.serverName !== this.serverName) throw new MatrixError("M_INVALID_PARAM", `Room alias must be on this server (${this.serverName})`);
    // Synapse's rule too: whitespace in an alias is almost always a client mistake, and unshareable.
    if (/\s/u.test(parsed.value.localpart)) throw new MatrixError("M_INVALID_PARAM", "Room alias must not contain whitespace");
  }

  private async roomExists(roomId: string): Promise<boolean> {
    try {
      await this.access.versionOf(roomId);
      return true;
    } catch (error) {
      if (error instanceof MatrixError && error.errcode === "M_NOT_FOUND") return false;
      throw error;
    }
  }

  private async isServerAdmin(userId: string): Promise<boolean> {
    return (await this.options.isServerAdmin?.(userId)) ?? false;
  }

  /** Joined, and a creator of the room or able to send m.room.canonical_alias by the current power levels. */
  private async isRoomAdmin(roomId: string, userId: string): Promise<boolean> {
    if (!(await this.roomExists(roomId)) || (await this.access.membership(roomId, userId)) !== "join") return false;
    const version = await this.access.versionOf(roomId);
    const lookup = await this.access.currentAuthState(roomId);
    const create = lookup("m.room.create", "");
    if (create && roomCreators(create, version).includes(userId)) return true;
    return userPowerLevel(userId, lookup, version) >= eventSendLevel("m.room.canonical_alias", true, lookup, version);
  }

  /** This server first, then the other servers with joined members. */
  private async serversOf(roomId: string): Promise<string[]> {
    const servers = new Set<string>([this.serverName]);
    for (const [member, membership] of await this.access.store.currentMemberships(roomId)) {
      const server = serverNameOf(member);
      if (membership === "join" && server !== undefined) servers.add(server);
    }
    return [...servers];
  }

  private async dropFromCanonicalAlias(roomId: string, userId: string, alias: string): Promise<void> {
    const content = (await this.access.engine.currentStateEvent(roomId, "m.room.canonical_alias", ""))?.content;
    if (!content) return;
    const alt = Array.isArray(content.alt_aliases) ? content.alt_aliases : undefined;
    if (content.alias !== alias && !alt?.includes(alias)) return;
    const updated: JsonObject = { ...content };
    if (updated.alias === alias) delete updated.alias;
    if (alt) updated.alt_aliases = alt.filter((a) => a !== alias);
    try {
      await this.access.engine.sendEvent(roomId, { type: "m.room.canonical_alias", sender: userId, stateKey: "", content: updated });
    } catch (error) {
      if (!(error instanceof MatrixError)) throw error;
    }
  }
}

/** Each room once: the main list's entry first. */
function unionOfRooms(main: readonly PublishedRoom[], more: readonly PublishedRoom[]): PublishedRoom[] {
  const seen = new Set(main.map((r) => r.roomId));
  return [...main, ...more.filter((r) => !seen.has(r.roomId))];
}
