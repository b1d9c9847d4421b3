// POST /_matrix/key/v2/query and GET /_matrix/key/v2/query/{serverName}[/{keyId}] (server-server-api
// "Querying Keys Through Another Server"): this server as a notary. Our own keys come fresh from
// ServerKeyService; other servers' keys come from the key ring (fetched from the server when we
// hold nothing valid enough), each response keeping its server's signatures and gaining ours.
// Without a key ring, other servers are left out, which the spec allows for servers "which are
// offline and have no cached keys".
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import { isValidServerName } from "../../protocol/identifiers";
import type { JsonObject } from "../../protocol/json";
import type { ServerKeyService } from "../../services/keys/server-keys";
import type { NotaryKeySource } from "../../services/federation/key-ring";
import { validateBody } from "../middleware/validate";
import { mapLimited } from "../../services/runtime";

const KeyQueryBody = Type.Object({
  server_keys: Type.Record(Type.String(), Type.Record(Type.String(), Type.Object({ minimum_valid_until_ts: Type.Optional(Type.Integer()) }))),
});

/** How many servers of one query are looked up at the same time (each may cost an outbound request). */
const LOOKUPS_AT_ONCE = 8;

type Criteria = Record<string, { minimum_valid_until_ts?: number }>;

export const keyQueryRoutes = (keys: ServerKeyService, serverName: string, keyRing?: NotaryKeySource) => {
  const keysOf = async (server: string, criteria: Criteria, minimumValidUntilTs?: number): Promise<JsonObject[]> => {
    if (server === serverName) return [keys.serverKeys()];
    // Invalid server names are left out, like servers we hold nothing for.
    if (!keyRing || !isValidServerName(server)) return [];
    return (await keyRing.notaryResponses(server, criteria, minimumValidUntilTs)).map((response) => keys.sign(response));
  };
  return new Elysia({ name: "key-query" })
    .post("/_matrix/key/v2/query", async ({ body }) => {
      const queries = Object.entries(validateBody(KeyQueryBody, body).server_keys);
      const answers = await mapLimited(queries, LOOKUPS_AT_ONCE, ([server, criteria]) => keysOf(server, criteria));
      return { server_keys: answers.flat() };
    })
    .get("/_matrix/key/v2/query/:serverName", async ({ params, query }) => {
      if (!isValidServerName(params.serverName)) throw new MatrixError("M_INVALID_PARAM", `Invalid server name: ${params.serverName}`);
      return { server_keys: await keysOf(params.serverName, {}, minimumValidUntil(query.minimum_valid_until_ts)) };
    })
    // The form naming one key ID, which the spec has since dropped; Synapse still answers it, and
    // older servers ask with it. The key ID is a criterion as in the POST form.
    .get("/_matrix/key/v2/query/:serverName/:keyId", async ({ params, query }) => {
      if (!isValidServerName(params.serverName)) throw new MatrixError("M_INVALID_PARAM", `Invalid server name: ${params.serverName}`);
      const minimum = minimumValidUntil(query.minimum_valid_until_ts);
      return { server_keys: await keysOf(params.serverName, { [params.keyId]: minimum === undefined ? {} : { minimum_valid_until_ts: minimum } }, minimum) };
    });
};

function minimumValidUntil(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^-?[0-9]{1,16}$/.test(value)) throw new MatrixError("M_INVALID_PARAM", "minimum_valid_until_ts must be an integer");
  return Number(value);
}

