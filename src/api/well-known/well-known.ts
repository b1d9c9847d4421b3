// /.well-known/matrix/server and /.well-known/matrix/client, served only when configured
// (server-server-api "Resolving server names", client-server-api "Well-known URIs").
import { Elysia } from "elysia";
import type { Config } from "../../config/schema";
import { MatrixError } from "../../protocol/errors";

export const wellKnownRoutes = (config: Readonly<Config>) =>
  new Elysia({ name: "well-known" })
    .get("/.well-known/matrix/server", () => {
      if (!config.well_known.server) throw new MatrixError("M_NOT_FOUND", "No .well-known server delegation is configured");
      return { "m.server": config.well_known.server };
    })
    .get("/.well-known/matrix/client", () => {
      const baseUrl = config.well_known.client ?? config.public_baseurl;
      if (!baseUrl) throw new MatrixError("M_NOT_FOUND", "No .well-known client information is configured");
      return { "m.homeserver": { base_url: baseUrl } };
    });
