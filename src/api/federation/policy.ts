// Policy servers (spec v1.18): POST /_matrix/policy/v1/sign (server-server-api, X-Matrix
// authenticated; answered when policy_server.enabled) and GET /.well-known/matrix/policy_server
// (client-server-api: the public key a room puts in its m.room.policy event).
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import type { PolicyServerService } from "../../services/federation/policy-server";
import type { FederationAuthenticator } from "../middleware/x-matrix";

export function policyServerRoutes({ authenticate, policyServer }: { authenticate: FederationAuthenticator; policyServer: PolicyServerService }) {
  return new Elysia({ name: "policy-server" })
    .post("/_matrix/policy/v1/sign", async ({ request, body }) => {
      await authenticate(request, body);
      return policyServer.sign(body);
    })
    .get("/.well-known/matrix/policy_server", () => {
      const key = policyServer.publicKeyBase64;
      if (key === undefined) throw new MatrixError("M_NOT_FOUND", "This server is not a policy server");
      return { public_keys: { ed25519: key } };
    });
}
