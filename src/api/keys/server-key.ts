// GET /_matrix/key/v2/server (and the deprecated /server/{keyId} form, which returns the same).
import { Elysia } from "elysia";
import type { ServerKeyService } from "../../services/keys/server-keys";

export const serverKeyRoutes = (keys: ServerKeyService) =>
  new Elysia({ name: "key-server" })
    .get("/_matrix/key/v2/server", () => keys.serverKeys())
    .get("/_matrix/key/v2/server/:keyId", () => keys.serverKeys());
