// Device management (client-server-api "Device management"): GET /devices, GET/PUT/DELETE
// /devices/{deviceId}, POST /delete_devices. Deleting needs the m.login.password UIA stage.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { AccountService } from "../../services/accounts/account-service";
import type { PasswordConfirmation } from "../../services/accounts/password-confirmation";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { CLIENT_PREFIXES } from "./paths";
import { uiaOperation } from "./uia-operation";

export const AuthData = Type.Object({
  type: Type.Optional(Type.String()),
  session: Type.Optional(Type.String()),
  identifier: Type.Optional(Type.Object({ type: Type.Optional(Type.String()), user: Type.Optional(Type.String()) })),
  user: Type.Optional(Type.String()),
  password: Type.Optional(Type.String()),
});

const UpdateDeviceBody = Type.Object({ display_name: Type.Optional(Type.String({ maxLength: 512 })) });
const DeleteDeviceBody = Type.Object({ auth: Type.Optional(AuthData) });
const DeleteDevicesBody = Type.Object({ devices: Type.Array(Type.String()), auth: Type.Optional(AuthData) });

type Device = Awaited<ReturnType<AccountService["devices"]>>[number];

function deviceBody(d: Device) {
  return {
    device_id: d.deviceId,
    ...(d.displayName !== undefined ? { display_name: d.displayName } : {}),
    ...(d.lastSeenIp !== undefined ? { last_seen_ip: d.lastSeenIp } : {}),
    ...(d.lastSeenTs !== undefined ? { last_seen_ts: d.lastSeenTs } : {}),
  };
}

export function deviceRoutes({ accounts, passwordConfirmation }: { accounts: AccountService; passwordConfirmation: PasswordConfirmation }) {
  const app = new Elysia({ name: "client-devices" });
  for (const prefix of CLIENT_PREFIXES) {
    app.get(`${prefix}/devices`, async ({ request }) => {
      const me = await requireUser(accounts, request);
      return { devices: (await accounts.devices(me.userId)).map(deviceBody) };
    });

    app.get(`${prefix}/devices/:deviceId`, async ({ params, request }) => {
      const me = await requireUser(accounts, request);
      const device = await accounts.device(me.userId, params.deviceId);
      if (!device) throw new MatrixError("M_NOT_FOUND", "No such device");
      return deviceBody(device);
    });

    app.put(`${prefix}/devices/:deviceId`, async ({ params, request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(UpdateDeviceBody, body);
      if (!(await accounts.device(me.userId, params.deviceId))) throw new MatrixError("M_NOT_FOUND", "No such device");
      if (input.display_name !== undefined) await accounts.renameDevice(me.userId, params.deviceId, input.display_name);
      return {};
    });

    app.delete(`${prefix}/devices/:deviceId`, async ({ params, request, body }) => {
      const me = await requireUser(accounts, request);
      // Older clients send no body on the first call: the same as an empty one.
      const input = validateBody(DeleteDeviceBody, body ?? {});
      await passwordConfirmation.confirm(input.auth, me.userId, uiaOperation(request));
      // A device already gone is fine: the outcome the client asked for holds.
      await accounts.deleteDevice(me.userId, params.deviceId);
      return {};
    });

    app.post(`${prefix}/delete_devices`, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(DeleteDevicesBody, body);
      await passwordConfirmation.confirm(input.auth, me.userId, uiaOperation(request));
      for (const deviceId of input.devices) await accounts.deleteDevice(me.userId, deviceId);
      return {};
    });
  }
  return app;
}
