// POST /rooms/{roomId}/upgrade (client-server-api "Room Upgrades").
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { AccountService } from "../../services/accounts/account-service";
import type { RoomUpgradeService } from "../../services/rooms/room-upgrade";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { roomIdParam } from "../room-id-param";
import { CLIENT_PREFIXES } from "./paths";

// additional_creators (v1.16): the new room's creators beside the upgrader, in versions that have them.
const UpgradeBody = Type.Object({ new_version: Type.String({ minLength: 1 }), additional_creators: Type.Optional(Type.Array(Type.String())) });

export function roomUpgradeRoutes({ accounts, upgrades }: { accounts: AccountService; upgrades: RoomUpgradeService }) {
  const app = new Elysia({ name: "client-room-upgrade" });
  for (const prefix of CLIENT_PREFIXES) {
    app.post(`${prefix}/rooms/:roomId/upgrade`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(UpgradeBody, body);
      return upgrades.upgrade(roomIdParam(params.roomId), me.userId, input.new_version, input.additional_creators);
    });
  }
  return app;
}
