// GET /_matrix/client/versions (client-server-api "API Standards"): the spec versions Portier serves.
// No access token needed; r0 versions stay listed because older clients (matrix-nio, sytest) look for them.
// Up to v1.11: clients read it as "authenticated media is served" (matrix-js-sdk and Element then
// download and preview through /_matrix/client/v1/media), which Portier now does.
import { Elysia } from "elysia";

export const SUPPORTED_CLIENT_VERSIONS = [
  "r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1",
  "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11",
] as const;

export const versionsRoutes = () =>
  new Elysia({ name: "client-versions" }).get("/_matrix/client/versions", () => ({
    versions: [...SUPPORTED_CLIENT_VERSIONS],
    // Simplified sliding sync (MSC4186): Element X looks for this before it uses the endpoint.
    unstable_features: { "org.matrix.simplified_msc3575": true },
  }));
