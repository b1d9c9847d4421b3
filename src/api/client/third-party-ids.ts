// Third-party identifiers (client-server-api "Adding Account Administrative Contact Information"):
// GET /account/3pid, POST /account/3pid/bind, /account/3pid/unbind and /account/3pid/delete.
// Served under v3, r0 and, as Synapse does, unstable (where sytest and older clients call bind and unbind).
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import { THREEPID_MEDIA, type ThirdPartyIds } from "../../services/identity/third-party-ids";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { clientPaths } from "./paths";

const BindBody = Type.Object({
  client_secret: Type.String(),
  id_server: Type.String(),
  id_access_token: Type.String(),
  sid: Type.String(),
});

const UnbindBody = Type.Object({
  id_server: Type.Optional(Type.String()),
  medium: Type.String(),
  address: Type.String(),
});

const paths = (path: string) => [...clientPaths(path), `/_matrix/client/unstable${path}`];

/** client_secret's grammar (client-server-api "Adding Account Administrative Contact Information"). */
const CLIENT_SECRET = /^[0-9a-zA-Z.=_-]{1,255}$/;

export function thirdPartyIdRoutes({ accounts, thirdPartyIds }: { accounts: AccountService; thirdPartyIds: ThirdPartyIds }) {
  const app = new Elysia({ name: "client-third-party-ids" });
  for (const path of paths("/account/3pid")) {
    app.get(path, async ({ request }) => {
      const me = await requireUser(accounts, request);
      return { threepids: await thirdPartyIds.list(me.userId) };
    });
  }
  for (const path of paths("/account/3pid/bind")) {
    app.post(path, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(BindBody, body);
      if (!CLIENT_SECRET.test(input.client_secret)) throw new MatrixError("M_INVALID_PARAM", "client_secret must be 1-255 characters of [0-9a-zA-Z.=_-]");
      if (input.sid === "" || input.id_access_token === "") throw new MatrixError("M_INVALID_PARAM", "sid and id_access_token must not be empty");
      await thirdPartyIds.bind(me.userId, { clientSecret: input.client_secret, idServer: input.id_server, idAccessToken: input.id_access_token, sid: input.sid });
      return {};
    });
  }
  for (const suffix of ["unbind", "delete"]) {
    for (const path of paths(`/account/3pid/${suffix}`)) {
      app.post(path, async ({ request, body }) => {
        const me = await requireUser(accounts, request);
        const input = validateBody(UnbindBody, body);
        if (!(THREEPID_MEDIA as readonly string[]).includes(input.medium)) throw new MatrixError("M_INVALID_PARAM", `medium must be one of ${THREEPID_MEDIA.join(", ")}`);
        // /delete removes an address this server validated from the account, and unbinds it from
        // identity servers as /unbind does (as Synapse's /delete).
        if (suffix === "delete") await thirdPartyIds.removeValidated(me.userId, input.medium, input.address);
        return { id_server_unbind_result: await thirdPartyIds.unbind(me.userId, input.medium, input.address, input.id_server) };
      });
    }
  }
  return app;
}
