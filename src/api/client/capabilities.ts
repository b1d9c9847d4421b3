// GET /capabilities (client-server-api "Capabilities negotiation"): what this server lets a user do.
import { Elysia } from "elysia";
import { DEFAULT_ROOM_VERSION, ROOM_VERSIONS } from "../../protocol/room-versions";
import type { AccountService } from "../../services/accounts/account-service";
import { requireUser } from "../middleware/auth";
import { clientPaths } from "./paths";

export function capabilitiesBody() {
  const available: Record<string, "stable" | "unstable"> = {};
  for (const id of ROOM_VERSIONS.keys()) available[id] = "stable";
  return {
    capabilities: {
      "m.change_password": { enabled: true },
      "m.room_versions": { default: DEFAULT_ROOM_VERSION, available },
      // m.profile_fields absent: every field may be set; the deprecated pair still says so for old clients.
      "m.set_displayname": { enabled: true },
      "m.set_avatar_url": { enabled: true },
      "m.3pid_changes": { enabled: false },
    },
  };
}

export function capabilitiesRoutes({ accounts }: { accounts: AccountService }) {
  const app = new Elysia({ name: "client-capabilities" });
  for (const path of clientPaths("/capabilities")) {
    app.get(path, async ({ request }) => {
      await requireUser(accounts, request);
      return capabilitiesBody();
    });
  }
  return app;
}
