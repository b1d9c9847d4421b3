// Typing notifications, receipts and read markers (client-server-api "Typing Notifications",
// "Receipts", "Fully read markers"): PUT /rooms/{roomId}/typing/{userId},
// POST /rooms/{roomId}/receipt/{receiptType}/{eventId}, POST /rooms/{roomId}/read_markers — v3 and r0.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { ReceiptService, TypingService } from "../../services/rooms/ephemeral";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";
import { roomIdParam } from "../room-id-param";

const TypingBody = Type.Object({ typing: Type.Boolean(), timeout: Type.Optional(Type.Integer({ minimum: 0 })) });
const ReceiptBody = Type.Object({ thread_id: Type.Optional(Type.String()) });
const ReadMarkersBody = Type.Object({
  "m.fully_read": Type.Optional(Type.String()),
  "m.read": Type.Optional(Type.String()),
  "m.read.private": Type.Optional(Type.String()),
});

export interface ReceiptRouteDeps {
  accounts: AccountService;
  typing: TypingService;
  receipts: ReceiptService;
}

export function receiptRoutes({ accounts, typing, receipts }: ReceiptRouteDeps) {
  const app = new Elysia({ name: "client-receipts" });
  for (const prefix of CLIENT_PREFIXES) {
    const base = `${prefix}/rooms/:roomId` as const;
    app.put(`${base}/typing/:userId`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(TypingBody, body);
      await typing.setTyping(roomIdParam(params.roomId), me.userId, params.userId, input.typing, input.timeout);
      return {};
    });

    app.post(`${base}/receipt/:receiptType/:eventId`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(ReceiptBody, body ?? {});
      await receipts.setReceipt(roomIdParam(params.roomId), me.userId, params.receiptType, params.eventId, input.thread_id);
      return {};
    });

    app.post(`${base}/read_markers`, async ({ request, params, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(ReadMarkersBody, body);
      await receipts.setReadMarkers(roomIdParam(params.roomId), me.userId, { fullyRead: input["m.fully_read"], read: input["m.read"], readPrivate: input["m.read.private"] });
      return {};
    });
  }
  return app;
}
