// The room directory (client-server-api "Room aliases", "Published room directory"):
// PUT/GET/DELETE /directory/room/{roomAlias}, GET /rooms/{roomId}/aliases,
// GET/PUT /directory/list/room/{roomId}, GET/POST /publicRooms — under v3 and r0.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { DirectoryService } from "../../services/directory/directory-service";
import { limitParam, publicRoomsBody } from "../public-rooms-request";
import { optionalUser, requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";
import { roomIdParam } from "../room-id-param";

const SetAliasBody = Type.Object({ room_id: Type.String() });
const Visibility = Type.Union([Type.Literal("public"), Type.Literal("private")]);
const SetVisibilityBody = Type.Object({ visibility: Type.Optional(Visibility) });
/**
 * `since: null` is "the first page": the spec types since as a string and says nothing of null, and
 * Synapse reads a null since as an absent one (clients, sytest among them, send it on the first page).
 */
function withoutNullSince(body: unknown): unknown {
  if (body === null || typeof body !== "object" || Array.isArray(body) || (body as Record<string, unknown>).since !== null) return body;
  const { since: _since, ...rest } = body as Record<string, unknown>;
  return rest;
}

export interface DirectoryRouteDeps {
  accounts: AccountService;
  directory: DirectoryService;
}

export function directoryRoutes({ accounts, directory }: DirectoryRouteDeps) {
  const app = new Elysia({ name: "client-directory" });
  // Endpoints the spec serves without an access token still refuse a bad one (optionalUser).

  for (const prefix of CLIENT_PREFIXES) {
    const aliasPath = `${prefix}/directory/room/:roomAlias` as const;

    app.put(aliasPath, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      await directory.setAlias(me.userId, params.roomAlias, validateBody(SetAliasBody, body).room_id, me.appServiceId);
      return {};
    });

    app.get(aliasPath, async ({ request, params }) => {
      await optionalUser(accounts, request);
      const { roomId, servers } = await directory.resolveAlias(params.roomAlias);
      return { room_id: roomId, servers };
    });

    app.delete(aliasPath, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      await directory.deleteAlias(me.userId, params.roomAlias);
      return {};
    });

    app.get(`${prefix}/rooms/:roomId/aliases`, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      return { aliases: await directory.localAliases(me.userId, roomIdParam(params.roomId)) };
    });

    const listPath = `${prefix}/directory/list/room/:roomId` as const;
    app.get(listPath, async ({ request, params }) => {
      await optionalUser(accounts, request);
      return { visibility: await directory.visibility(roomIdParam(params.roomId)) };
    });

    app.put(listPath, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(SetVisibilityBody, body ?? {});
      await directory.setVisibility(me.userId, roomIdParam(params.roomId), input.visibility ?? "public");
      return {};
    });

    app.get(`${prefix}/publicRooms`, async ({ request, query }) => {
      await optionalUser(accounts, request);
      return directory.publicRooms({ limit: limitParam(query.limit), since: query.since || undefined, server: query.server || undefined });
    });

    app.post(`${prefix}/publicRooms`, async ({ request, query, body }) => {
      await requireUser(accounts, request);
      return directory.publicRooms({ ...publicRoomsBody(withoutNullSince(body)), server: query.server || undefined });
    });
  }
  return app;
}
