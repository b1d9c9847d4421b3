// POST /_matrix/key/v2/query and GET /_matrix/key/v2/query/{serverName} (server-server-api
// "Querying Keys Through Another Server"). Portier answers for its own keys; keys of other servers
// are added when outbound key fetching lands with federation, until then they are left out, which
// the spec allows for servers "which are offline and have no cached keys".
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { JsonObject } from "../../protocol/json";
import type { ServerKeyService } from "../../services/keys/server-keys";
import { validateBody } from "../middleware/validate";

const KeyQueryBody = Type.Object({
  server_keys: Type.Record(Type.String(), Type.Record(Type.String(), Type.Object({ minimum_valid_until_ts: Type.Optional(Type.Integer()) }))),
});

export const keyQueryRoutes = (keys: ServerKeyService, serverName: string) => {
  const keysFor = (servers: string[]): JsonObject[] => (servers.includes(serverName) ? [keys.serverKeys()] : []);
  return new Elysia({ name: "key-query" })
    .post("/_matrix/key/v2/query", ({ body }) => ({ server_keys: keysFor(Object.keys(validateBody(KeyQueryBody, body).server_keys)) }))
    .get("/_matrix/key/v2/query/:serverName", ({ params }) => ({ server_keys: keysFor([params.serverName]) }));
};
