// GET /_matrix/federation/v1/version (server-server-api "Server implementation").
import { Elysia } from "elysia";
import { PORTIER_VERSION } from "../../version";

export const federationVersionRoutes = () =>
  new Elysia({ name: "federation-version" }).get("/_matrix/federation/v1/version", () => ({
    server: { name: "Portier", version: PORTIER_VERSION },
  }));
