// The identity-server part of the composition root: the outbound identity-server client (signing
// unbinds with the server key), the 3PID bindings service and third-party invites, under their own tokens.
import type { DependencyContainer } from "tsyringe";
import { IdentityServerClient } from "../services/identity/identity-client";
import { ThirdPartyIds } from "../services/identity/third-party-ids";
import { ThirdPartyInviteService } from "../services/rooms/third-party-invites";
import { PORTIER_VERSION } from "../version";
import { registerFactory, type CoreParts } from "./composition";
import { Tokens, resolve, token } from "./tokens";

export const IdentityTokens = {
  ThirdPartyIds: token<ThirdPartyIds>("ThirdPartyIds"),
  IdentityClient: token<IdentityServerClient>("IdentityClient"),
  ThirdPartyInvites: token<ThirdPartyInviteService>("ThirdPartyInvites"),
} as const;

export function registerIdentityServices(container: DependencyContainer, { config, clock, logger, stores }: Omit<CoreParts, "signingKey">): void {
  registerFactory(container, IdentityTokens.IdentityClient, () => new IdentityServerClient({ serverName: config.server_name, signer: resolve(container, Tokens.ServerKeys), config: config.identity, userAgent: `Portier/${PORTIER_VERSION}` }));
  registerFactory(container, IdentityTokens.ThirdPartyIds, () => new ThirdPartyIds({
    store: stores.threepidBindings,
    localStore: stores.localThreepids,
    identity: resolve(container, IdentityTokens.IdentityClient),
    clock,
    logger,
  }));
  registerFactory(container, IdentityTokens.ThirdPartyInvites, () => new ThirdPartyInviteService({
    serverName: config.server_name,
    engine: resolve(container, Tokens.RoomEngine),
    access: resolve(container, Tokens.RoomAccess),
    identity: resolve(container, IdentityTokens.IdentityClient),
    invite: (roomId, sender, target) => resolve(container, Tokens.FederatedMembership).invite(roomId, sender, target, undefined),
    profile: (userId) => resolve(container, Tokens.Membership).profile(userId),
    isResident: (roomId) => resolve(container, Tokens.FederatedMembership).isResident(roomId),
    exchangeRemotely: async (server, roomId, event) => {
      await resolve(container, Tokens.FederationClient).request("PUT", server, `/_matrix/federation/v1/exchange_third_party_invite/${encodeURIComponent(roomId)}`, { body: event });
    },
    inviteRemote: async (roomId, sender, target, content) => {
      await resolve(container, Tokens.RemoteMembership).invite(roomId, sender, target, content, await resolve(container, Tokens.ResidentMembership).knockRoomState(roomId));
    },
    logger,
  }));
}
