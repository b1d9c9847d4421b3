// PUT /sendToDevice/{eventType}/{txnId} (client-server-api "Send-to-Device messaging", to_device.yaml),
// under v3 and r0: the messages go to the named devices' queues, delivered by /sync.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import type { JsonObject } from "../../protocol/json";
import type { AccountService } from "../../services/accounts/account-service";
import type { ToDeviceService } from "../../services/e2ee/to-device";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";

const SendBody = Type.Object({ messages: Type.Record(Type.String(), Type.Record(Type.String(), Type.Record(Type.String(), Type.Unknown()))) });

export function toDeviceRoutes({ accounts, toDevice }: { accounts: AccountService; toDevice: ToDeviceService }) {
  const app = new Elysia({ name: "client-to-device" });
  for (const prefix of CLIENT_PREFIXES) {
    app.put(`${prefix}/sendToDevice/:eventType/:txnId`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(SendBody, body);
      await toDevice.send(me, params.eventType, params.txnId, input.messages as Record<string, Record<string, JsonObject>>);
      return {};
    });
  }
  return app;
}
