// The identity-server part of the composition root: the outbound identity-server client (signing
// unbinds with the server key) and the 3PID bindings service, under their own token.
import type { DependencyContainer } from "tsyringe";
import { IdentityServerClient } from "../services/identity/identity-client";
import { ThirdPartyIds } from "../services/identity/third-party-ids";
import { PORTIER_VERSION } from "../version";
import { registerFactory, type CoreParts } from "./composition";
import { Tokens, resolve, token } from "./tokens";

export const IdentityTokens = {
  ThirdPartyIds: token<ThirdPartyIds>("ThirdPartyIds"),
} as const;

export function registerIdentityServices(container: DependencyContainer, { config, clock, logger, stores }: Omit<CoreParts, "signingKey">): void {
  registerFactory(container, IdentityTokens.ThirdPartyIds, () => new ThirdPartyIds({
    store: stores.threepidBindings,
    identity: new IdentityServerClient({ serverName: config.server_name, signer: resolve(container, Tokens.ServerKeys), config: config.identity, userAgent: `Portier/${PORTIER_VERSION}` }),
    clock,
    logger,
  }));
}
