// The federation part of the composition root: the outbound client, the key ring, the sender queue
// and the services that receive and request events, each a factory under its token. The room
// engine's listener that fans our own events out to the room's other servers is attached here.
import type { DependencyContainer } from "tsyringe";
import { serverNameOf } from "../protocol/identifiers";
import { isJsonObject } from "../protocol/json";
import { FederationDisabledError, type FederationClient } from "../services/federation/contracts";
import { createHttpFederationClient } from "../services/federation/federation-client";
import { FederationKeyRing, ownKeysFrom } from "../services/federation/key-ring";
import { FederationSenderService, systemTimer } from "../services/federation/sender";
import { FederationEventIngest } from "../services/federation/event-ingest";
import { ResidentMembershipService } from "../services/federation/membership-handshake";
import { RemoteMembershipService } from "../services/federation/remote-membership";
import { FederatedMembershipService } from "../services/federation/federated-membership";
import { TransactionReceiver } from "../services/federation/transaction-receiver";
import { FederationRoomReader } from "../services/federation/room-reader";
import { FederationQueries } from "../services/federation/queries";
import { PolicyServerService } from "../services/federation/policy-server";
import { loadOrCreateSigningKey } from "../services/keys/signing-key-file";
import { join } from "node:path";
import { E2eeFederation } from "../services/e2ee/federation-edus";
import { PORTIER_VERSION } from "../version";
import { registerFactory, type CoreParts } from "./composition";
import { Tokens, resolve, type Token } from "./tokens";

/** Stands in for the client when federation.enabled is false: every remote action is refused. */
const disabledClient: FederationClient = {
  request: async () => {
    throw new FederationDisabledError();
  },
};

export function registerFederationServices(container: DependencyContainer, { config, clock, logger, stores }: Omit<CoreParts, "signingKey">): void {
  const get = <T>(t: Token<T>): T => resolve(container, t);
  const serverName = config.server_name;

  /** Remote invites that answer a local user's knock, between storing the invite and acting on it. */
  const answeredKnocks = new Set<string>();

  /** Whether the member event's target was knocking before it (their member event is among its auth events). */
  const wasKnocking = async (stored: { stateKey?: string; sender: string; authEvents: readonly string[] }): Promise<boolean> => {
    if (stored.stateKey === stored.sender) return false;
    for (const id of stored.authEvents) {
      const auth = (await get(Tokens.RoomEngine).parsedEvent(id))?.event;
      if (auth?.type === "m.room.member" && auth.state_key === stored.stateKey) return auth.content.membership === "knock";
    }
    return false;
  };

  registerFactory(container, Tokens.FederationClient, () => {
    if (!config.federation.enabled) return disabledClient;
    const keys = get(Tokens.ServerKeys);
    return createHttpFederationClient({ serverName, signer: keys, config: config.federation, clock, userAgent: `Portier/${PORTIER_VERSION}` }).client;
  });
  registerFactory(container, Tokens.KeyRing, () => new FederationKeyRing({
    store: stores.serverKeys,
    client: get(Tokens.FederationClient),
    clock,
    ownServerName: serverName,
    ownKeys: ownKeysFrom(get(Tokens.ServerKeys)),
    trustedKeyServers: config.federation.trusted_key_servers,
    logger,
  }));
  registerFactory(container, Tokens.FederationSender, () => {
    const sender = new FederationSenderService({ store: stores.federationOutbox, client: get(Tokens.FederationClient), ownServerName: serverName, clock, timer: systemTimer, logger });
    // Our own events go to every other server with a member in the room; a member event also to
    // the server of the user it is about (an invited, kicked or banned user's server learns of it).
    // In a room with a policy server, our events carry its signature before they are stored or sent.
    get(Tokens.RoomEngine).setPolicySigner((roomId, pdu, version) => get(Tokens.PolicyServer).signOutgoing(roomId, pdu, version));
    get(Tokens.RoomEngine).onEvent(async (roomId, stored, pdu) => {
      if (!config.federation.enabled || serverNameOf(stored.sender) !== serverName) return;
      if (get(Tokens.RemoteMembership).takeDeliveredByResident(stored.eventId)) return;
      const destinations = new Set(await get(Tokens.FederationRoomReader).joinedServers(roomId));
      if (stored.type === "m.room.member" && stored.stateKey !== undefined) {
        const target = serverNameOf(stored.stateKey);
        const membership = isJsonObject(pdu.content) ? pdu.content.membership : undefined;
        // A remote invite went to the invitee's server by /invite already. The kick that rejects a
        // knock reaches the knocker's server only when the operator opts in (no homeserver expects it).
        if (target && membership !== "invite" && (config.knocks.notify_remote_rejection || !(await wasKnocking(stored)))) destinations.add(target);
      }
      destinations.delete(serverName);
      if (destinations.size > 0) await sender.queuePdu([...destinations], pdu);
    });
    // Typing of our users goes to the room's other servers as m.typing EDUs: each change of the
    // set of our users typing in a room, per user.
    const typingSent = new Map<string, Set<string>>();
    const typing = get(Tokens.Typing);
    typing.onChange((roomId) => {
      if (!config.federation.enabled) return;
      const now = new Set(typing.typingUsers(roomId).filter((u) => serverNameOf(u) === serverName));
      const before = typingSent.get(roomId) ?? new Set<string>();
      const changes = [...[...now].filter((u) => !before.has(u)).map((u) => [u, true] as const), ...[...before].filter((u) => !now.has(u)).map((u) => [u, false] as const)];
      if (now.size > 0) typingSent.set(roomId, now);
      else typingSent.delete(roomId);
      if (changes.length === 0) return;
      void (async () => {
        const destinations = (await get(Tokens.FederationRoomReader).joinedServers(roomId)).filter((d) => d !== serverName);
        for (const [userId, isTyping] of changes) await sender.queueEdu(destinations, "m.typing", { room_id: roomId, user_id: userId, typing: isTyping });
      })().catch((error) => logger.log("warn", "could not queue a typing notification", { room_id: roomId, error: String(error) }));
    });
    // Our users' presence goes to every server sharing a room with them as m.presence EDUs.
    get(Tokens.Presence).onChange((userId) => {
      if (!config.federation.enabled || serverNameOf(userId) !== serverName) return;
      void (async () => {
        const destinations = new Set<string>();
        for (const roomId of await stores.roomEvents.roomsWithMembership(userId, "join")) {
          for (const server of await get(Tokens.FederationRoomReader).joinedServers(roomId)) if (server !== serverName) destinations.add(server);
        }
        if (destinations.size === 0) return;
        await sender.queueEdu([...destinations], "m.presence", { push: [{ user_id: userId, ...get(Tokens.Presence).status(userId) }] });
      })().catch((error) => logger.log("warn", "could not queue a presence update", { user_id: userId, error: String(error) }));
    });
    // Our users' public read receipts go to the room's other servers as m.receipt EDUs (private
    // receipts and fully-read markers stay here, as the spec says).
    get(Tokens.Receipts).onReceipt((change) => {
      if (!config.federation.enabled || change.receiptType !== "m.read" || serverNameOf(change.userId) !== serverName) return;
      void (async () => {
        const destinations = (await get(Tokens.FederationRoomReader).joinedServers(change.roomId)).filter((d) => d !== serverName);
        if (destinations.length === 0) return;
        const data = { ts: change.ts, ...(change.threadId !== undefined ? { thread_id: change.threadId } : {}) };
        await sender.queueEdu(destinations, "m.receipt", { [change.roomId]: { "m.read": { [change.userId]: { event_ids: [change.eventId], data } } } });
      })().catch((error) => logger.log("warn", "could not queue a read receipt", { room_id: change.roomId, error: String(error) }));
    });

    // ---- End-to-end encryption --------------------------------------------------------------
    // Our users' device and key changes go to the servers sharing a room with them
    // (m.device_list_update, m.signing_key_update); to-device messages for other servers' users
    // as m.direct_to_device.
    get(Tokens.DeviceLists).onChange((update) => {
      if (!config.federation.enabled) return;
      get(Tokens.E2eeFederation).outbound(update).catch((error) => logger.log("warn", "could not queue a device list update", { user_id: update.userId, error: String(error) }));
    });
    get(Tokens.ToDevice).onRemote(async (server, content) => {
      if (config.federation.enabled) await sender.queueEdu([server], "m.direct_to_device", content);
    });
    // A leave (or kick, or ban) may end the last room one of our users shares with another server's
    // user: the copy of their device list is dropped then (remote-device-lists.ts).
    get(Tokens.RoomEngine).onEvent((roomId, stored, pdu) => {
      const membership = isJsonObject(pdu.content) ? pdu.content.membership : undefined;
      if (stored.type !== "m.room.member" || stored.stateKey === undefined || (membership !== "leave" && membership !== "ban")) return;
      void get(Tokens.EndToEndKeys).remoteDeviceLists?.membershipEnded(roomId, stored.stateKey).catch((error) =>
        logger.log("warn", "could not drop device lists no longer shared", { room_id: roomId, error: String(error) }));
    });
    // ---- end of end-to-end encryption ----------------------------------------------------------
    return sender;
  });
  registerFactory(container, Tokens.EventIngest, () => new FederationEventIngest({
    serverName,
    receiver: get(Tokens.PduReceiver),
    engine: get(Tokens.RoomEngine),
    store: stores.roomEvents,
    keyRing: get(Tokens.KeyRing),
    client: get(Tokens.FederationClient),
    logger,
    policies: get(Tokens.Policies),
    policyServer: get(Tokens.PolicyServer),
    joinedServers: (roomId) => get(Tokens.FederationRoomReader).joinedServers(roomId),
  }));
  // The policy key (a key of its own, not the signing key), read or made once when we are a policy server.
  const policyKey = config.policy_server.enabled ? loadOrCreateSigningKey(config.policy_server.signing_key_path ?? join(config.data_dir, "policy_server.key")).key : undefined;
  registerFactory(container, Tokens.PolicyServer, () => new PolicyServerService({
    serverName,
    engine: get(Tokens.RoomEngine),
    store: stores.roomEvents,
    client: get(Tokens.FederationClient),
    ownKey: policyKey,
    policies: get(Tokens.Policies),
    logger,
  }));
  registerFactory(container, Tokens.ResidentMembership, () => new ResidentMembershipService({
    serverName,
    engine: get(Tokens.RoomEngine),
    store: stores.roomEvents,
    ingest: get(Tokens.EventIngest),
    reader: get(Tokens.FederationRoomReader),
    sender: get(Tokens.FederationSender),
    signer: get(Tokens.ServerKeys),
    policies: get(Tokens.Policies),
    logger,
    restrictedJoinAuthoriser: (roomId, userId) => get(Tokens.Membership).restrictedJoinAuthoriser(roomId, userId),
    acceptKnock: (roomId, userId) => get(Tokens.KnockModeration).acceptKnock(roomId, userId),
    userExists: async (userId) => get(Tokens.Accounts).userExists(userId),
    recordRemoteInvite: async (input) => {
      // Whether this invite answers the user's knock: read before the invite replaces it.
      const before = await get(Tokens.OutOfBandMemberships).current(input.userId, input.roomId);
      if (before?.membership === "knock") answeredKnocks.add(`${input.userId}\u0000${input.roomId}`);
      await get(Tokens.OutOfBandMemberships).record({ ...input, membership: "invite" });
    },
    onRemoteInvite: ({ userId, roomId, origin }) => {
      const key = `${userId}\u0000${roomId}`;
      if (!answeredKnocks.delete(key) || !config.knocks.auto_join_on_invite) return;
      // The knocker asked to join and the invite is the answer: join on their behalf, after the
      // inviting server has had its reply. A refusal leaves the invite for the user to accept.
      setTimeout(() => {
        get(Tokens.FederatedMembership).join(roomId, userId, undefined, [origin]).catch((error) =>
          logger.log("info", "could not join a knocker on their accepted knock; the invite stands", { room_id: roomId, user_id: userId, error: String(error) }));
      }, 0);
    },
  }));
  registerFactory(container, Tokens.RemoteMembership, () => new RemoteMembershipService({
    serverName,
    client: get(Tokens.FederationClient),
    ingest: get(Tokens.EventIngest),
    engine: get(Tokens.RoomEngine),
    store: stores.roomEvents,
    signer: get(Tokens.ServerKeys),
    outOfBand: get(Tokens.OutOfBandMemberships),
    clock,
    logger,
  }));
  registerFactory(container, Tokens.FederatedMembership, () => new FederatedMembershipService({
    serverName,
    membership: get(Tokens.Membership),
    remote: get(Tokens.RemoteMembership),
    resident: get(Tokens.ResidentMembership),
    store: stores.roomEvents,
    membershipOf: (roomId, userId) => get(Tokens.RoomAccess).membership(roomId, userId),
    outOfBand: get(Tokens.OutOfBandMemberships),
    client: get(Tokens.FederationClient),
    resolveLocal: (roomIdOrAlias) => get(Tokens.Directory).resolveRoomIdOrAlias(roomIdOrAlias),
    isGuest: (userId) => get(Tokens.Accounts).isGuest(userId),
  }));
  registerFactory(container, Tokens.TransactionReceiver, () => new TransactionReceiver({
    serverName,
    aclAllows: (roomId, origin) => get(Tokens.FederationRoomReader).aclAllows(roomId, origin),
    roomVersionOf: async (roomId) => (await stores.roomEvents.getRoom(roomId))?.roomVersion,
    outOfBand: get(Tokens.OutOfBandMemberships),
    ingest: get(Tokens.EventIngest),
    typing: get(Tokens.Typing),
    receipts: get(Tokens.Receipts),
    e2ee: get(Tokens.E2eeFederation),
    presence: get(Tokens.Presence),
    answers: stores.inboundTransactions,
    logger,
  }));
  registerFactory(container, Tokens.FederationRoomReader, () => {
    const erased = get(Tokens.ErasedUsers);
    return new FederationRoomReader(get(Tokens.RoomEngine), stores.roomEvents, (userId) => erased.has(userId));
  });
  registerFactory(container, Tokens.FederationQueries, () => new FederationQueries({
    serverName,
    directory: get(Tokens.Directory),
    profiles: get(Tokens.Profiles),
    accounts: get(Tokens.Accounts),
    deviceKeys: get(Tokens.EndToEndKeys),
  }));
  registerFactory(container, Tokens.E2eeFederation, () => new E2eeFederation({
    serverName,
    deviceLists: get(Tokens.DeviceLists),
    keys: get(Tokens.EndToEndKeys),
    toDevice: get(Tokens.ToDevice),
    rooms: stores.roomEvents,
    sent: stores.deviceKeys,
    remoteLists: get(Tokens.EndToEndKeys).remoteDeviceLists,
    joinedServers: (roomId) => get(Tokens.FederationRoomReader).joinedServers(roomId),
    queueEdu: (destinations, eduType, content) => get(Tokens.FederationSender).queueEdu(destinations, eduType, content),
    logger,
  }));
}
