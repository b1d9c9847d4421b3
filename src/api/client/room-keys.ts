// Server-side key backups (client-server-api "Server-side key backups", key_backup.yaml), under v3
// and r0: /room_keys/version (create, read the latest or one, update, delete) and /room_keys/keys
// at three levels (all rooms, one room, one session), each with GET, PUT and DELETE and a required
// `version` query parameter.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { JsonObject } from "../../protocol/json";
import type { AccountService } from "../../services/accounts/account-service";
import type { KeyBackupData, KeyBackupService } from "../../services/e2ee/key-backup";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES, clientPaths } from "./paths";

const AuthDataObject = Type.Record(Type.String(), Type.Unknown());
const CreateBody = Type.Object({ algorithm: Type.String({ minLength: 1 }), auth_data: AuthDataObject });
const UpdateBody = Type.Object({ algorithm: Type.String({ minLength: 1 }), auth_data: AuthDataObject, version: Type.Optional(Type.String()) });
/** A count stored in an INTEGER column: JSON's integers go past what the column (and a JS number) holds exactly. */
const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
/** definitions/key_backup_data.yaml */
const KeyData = Type.Object({
  first_message_index: Count,
  forwarded_count: Count,
  is_verified: Type.Boolean(),
  session_data: Type.Record(Type.String(), Type.Unknown()),
});
const RoomBody = Type.Object({ sessions: Type.Record(Type.String(), KeyData) });
const AllBody = Type.Object({ rooms: Type.Record(Type.String(), RoomBody) });

function versionParam(value: string | undefined): string {
  if (value === undefined || value === "") throw new MatrixError("M_MISSING_PARAM", "Missing parameter: version");
  return value;
}

export function roomKeyRoutes({ accounts, backups }: { accounts: AccountService; backups: KeyBackupService }) {
  const app = new Elysia({ name: "client-room-keys" });
  for (const path of clientPaths("/room_keys/version")) {
    app.post(path, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(CreateBody, body);
      return backups.createVersion(me.userId, input.algorithm, input.auth_data as JsonObject);
    });
    app.get(path, async ({ request }) => backups.version((await requireUser(accounts, request)).userId));
  }
  for (const prefix of CLIENT_PREFIXES) {
    app.get(`${prefix}/room_keys/version/:version`, async ({ request, params }) => backups.version((await requireUser(accounts, request)).userId, params.version));
    app.put(`${prefix}/room_keys/version/:version`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(UpdateBody, body);
      await backups.updateVersion(me.userId, params.version, { algorithm: input.algorithm, auth_data: input.auth_data as JsonObject, version: input.version });
      return {};
    });
    app.delete(`${prefix}/room_keys/version/:version`, async ({ request, params }) => {
      const me = await requireUser(accounts, request);
      await backups.deleteVersion(me.userId, params.version);
      return {};
    });
  }

  for (const path of clientPaths("/room_keys/keys")) {
    app.get(path, async ({ request, query }) => backups.allKeys((await requireUser(accounts, request)).userId, versionParam(query.version)));
    app.put(path, async ({ request, query, body }) => {
      const me = await requireUser(accounts, request);
      const version = versionParam(query.version);
      const input = validateBody(AllBody, body);
      const rooms = Object.fromEntries(Object.entries(input.rooms).map(([roomId, room]) => [roomId, room.sessions as Record<string, KeyBackupData>]));
      return backups.putKeys(me.userId, version, rooms);
    });
    app.delete(path, async ({ request, query }) => backups.deleteKeys((await requireUser(accounts, request)).userId, versionParam(query.version)));
  }
  for (const prefix of CLIENT_PREFIXES) {
    app.get(`${prefix}/room_keys/keys/:roomId`, async ({ request, query, params }) => backups.roomKeys((await requireUser(accounts, request)).userId, versionParam(query.version), params.roomId));
    app.put(`${prefix}/room_keys/keys/:roomId`, async ({ request, query, params, body }) => {
      const me = await requireUser(accounts, request);
      const version = versionParam(query.version);
      const input = validateBody(RoomBody, body);
      return backups.putKeys(me.userId, version, { [params.roomId]: input.sessions as Record<string, KeyBackupData> });
    });
    app.delete(`${prefix}/room_keys/keys/:roomId`, async ({ request, query, params }) => backups.deleteKeys((await requireUser(accounts, request)).userId, versionParam(query.version), params.roomId));
  }
  for (const prefix of CLIENT_PREFIXES) {
    app.get(`${prefix}/room_keys/keys/:roomId/:sessionId`, async ({ request, query, params }) => backups.sessionKey((await requireUser(accounts, request)).userId, versionParam(query.version), params.roomId, params.sessionId));
    app.put(`${prefix}/room_keys/keys/:roomId/:sessionId`, async ({ request, query, params, body }) => {
      const me = await requireUser(accounts, request);
      const version = versionParam(query.version);
      const input = validateBody(KeyData, body);
      return backups.putKeys(me.userId, version, { [params.roomId]: { [params.sessionId]: input as KeyBackupData } });
    });
    app.delete(`${prefix}/room_keys/keys/:roomId/:sessionId`, async ({ request, query, params }) =>
      backups.deleteKeys((await requireUser(accounts, request)).userId, versionParam(query.version), params.roomId, params.sessionId));
  }
  return app;
}
