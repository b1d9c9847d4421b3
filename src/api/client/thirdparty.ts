// Third party networks (client-server-api "Third party networks"): GET /thirdparty/protocols,
// /thirdparty/protocol/{protocol}, /thirdparty/{location,user}/{protocol} and
// /thirdparty/{location,user}, answered by the application services that registered the protocols
// (without any, there are no protocols and nothing is found); and the application services' own
// room lists (application-service-api "Room directories"): PUT and DELETE
// /directory/list/appservice/{networkId}/{roomId}.
import { Elysia } from "elysia";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { AppServices } from "../../services/appservices/app-services";
import { requireUser } from "../middleware/auth";
import { roomIdParam } from "../room-id-param";
import { Type } from "@sinclair/typebox";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES, clientPaths } from "./paths";

export interface ThirdPartyRouteDeps {
  accounts: AccountService;
  /** Undefined when no application service is registered. */
  appServices: AppServices | undefined;
}

/** The client's search fields, as the services are asked them (without the client's own token or identity parameters). */
function searchFields(request: Request): URLSearchParams {
  const params = new URLSearchParams(new URL(request.url).search);
  for (const own of ["access_token", "user_id", "device_id"]) params.delete(own);
  return params;
}

export function thirdPartyRoutes({ accounts, appServices }: ThirdPartyRouteDeps) {
  const app = new Elysia({ name: "client-thirdparty" });
  for (const path of clientPaths("/thirdparty")) {
    app.get(`${path}/protocols`, async ({ request }) => {
      await requireUser(accounts, request);
      return (await appServices?.protocols()) ?? {};
    });
    app.get(`${path}/protocol/:protocol`, async ({ request, params }) => {
      await requireUser(accounts, request);
      const protocol = await appServices?.protocol(params.protocol);
      if (!protocol) throw new MatrixError("M_NOT_FOUND", "The protocol is unknown", 404);
      return protocol;
    });
    // Synapse answers 200 with an empty list when nothing is found (the spec names a 404); so does Portier.
    for (const kind of ["location", "user"] as const) {
      app.get(`${path}/${kind}/:protocol`, async ({ request, params }) => {
        await requireUser(accounts, request);
        return (await appServices?.thirdPartyLookup(kind, params.protocol, searchFields(request))) ?? [];
      });
      app.get(`${path}/${kind}`, async ({ request }) => {
        await requireUser(accounts, request);
        const fields = searchFields(request);
        const key = kind === "location" ? "alias" : "userid";
        if (!fields.has(key)) throw new MatrixError("M_MISSING_PARAM", `Missing parameter: ${key}`);
        return (await appServices?.thirdPartyLookup(kind, undefined, fields)) ?? [];
      });
    }
  }
  for (const prefix of CLIENT_PREFIXES) {
    const listPath = `${prefix}/directory/list/appservice/:networkId/:roomId` as const;
    const listing = async (request: Request, networkId: string, roomId: string, visibility: "public" | "private") => {
      const me = await requireUser(accounts, request);
      // As Synapse: only an application service (its as_token) edits its networks' lists.
      if (me.appServiceId === undefined || !appServices) throw new MatrixError("M_FORBIDDEN", "Only application services can edit their room lists", 403);
      await appServices.setRoomListing(me.appServiceId, networkId, roomIdParam(roomId), visibility);
      return {};
    };
    app.put(listPath, async ({ request, params, body }) => listing(request, params.networkId, params.roomId, validateBody(ListingBody, body ?? {}).visibility));
    // Synapse's DELETE, the same as visibility private.
    app.delete(listPath, async ({ request, params }) => listing(request, params.networkId, params.roomId, "private"));
  }
  return app;
}

const ListingBody = Type.Object({ visibility: Type.Union([Type.Literal("public"), Type.Literal("private")]) });
