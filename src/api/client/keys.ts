// End-to-end encryption keys (client-server-api "Key management API", keys.yaml and
// cross_signing.yaml), under v3 and r0:
//   POST /keys/upload, POST /keys/query, POST /keys/claim, GET /keys/changes,
//   POST /keys/device_signing/upload (user-interactive auth, see EndToEndKeyService.crossSigningNeedsAuth),
//   POST /keys/signatures/upload.
import { Elysia } from "elysia";
import { Type } from "@sinclair/typebox";
import { MatrixError } from "../../protocol/errors";
import type { JsonObject, JsonValue } from "../../protocol/json";
import type { AccountService } from "../../services/accounts/account-service";
import type { PasswordConfirmation } from "../../services/accounts/password-confirmation";
import type { E2eeSyncSection } from "../../services/e2ee/e2ee-sync";
import type { EndToEndKeyService } from "../../services/e2ee/e2ee-keys";
import { requireUser } from "../middleware/auth";
import { validateBody } from "../middleware/validate";
import { AuthData } from "./devices";
import { clientPaths } from "./paths";
import { uiaOperation } from "./uia-operation";

export interface KeyRouteDeps {
  accounts: AccountService;
  keys: EndToEndKeyService;
  e2eeSync: Pick<E2eeSyncSection, "keysChanges">;
  passwordConfirmation: PasswordConfirmation;
}

const Signatures = Type.Record(Type.String(), Type.Record(Type.String(), Type.String()));
/** definitions/device_keys.yaml */
const DeviceKeys = Type.Object({
  user_id: Type.String(),
  device_id: Type.String(),
  algorithms: Type.Array(Type.String()),
  keys: Type.Record(Type.String(), Type.String()),
  signatures: Signatures,
});
/** definitions/one_time_keys.yaml: each key a string or a signed object. */
const OneTimeKeys = Type.Record(Type.String(), Type.Union([Type.String(), Type.Record(Type.String(), Type.Unknown())]));
const UploadBody = Type.Object({
  device_keys: Type.Optional(DeviceKeys),
  one_time_keys: Type.Optional(OneTimeKeys),
  fallback_keys: Type.Optional(OneTimeKeys),
  // The name fallback keys had before v1.2 (MSC2732), still sent by some clients; Synapse reads it too.
  "org.matrix.msc2732.fallback_keys": Type.Optional(OneTimeKeys),
});
const Timeout = Type.Optional(Type.Integer({ minimum: 0 }));
const QueryBody = Type.Object({ device_keys: Type.Record(Type.String(), Type.Array(Type.String())), timeout: Timeout });
const ClaimBody = Type.Object({ one_time_keys: Type.Record(Type.String(), Type.Record(Type.String(), Type.String())), timeout: Timeout });
/** definitions/cross_signing_key.yaml */
const CrossSigningKey = Type.Object({
  user_id: Type.String(),
  usage: Type.Array(Type.String()),
  keys: Type.Record(Type.String(), Type.String()),
  signatures: Type.Optional(Signatures),
});
const DeviceSigningBody = Type.Object({
  master_key: Type.Optional(CrossSigningKey),
  self_signing_key: Type.Optional(CrossSigningKey),
  user_signing_key: Type.Optional(CrossSigningKey),
  auth: Type.Optional(AuthData),
});
const SignaturesBody = Type.Record(Type.String(), Type.Record(Type.String(), Type.Record(Type.String(), Type.Unknown())));

/**
 * Device keys lacking a required field are M_BAD_JSON, as Synapse answers (the spec names no code
 * for /keys/upload, and the field missing is inside the device_keys object, not a parameter).
 */
function validateUpload(body: unknown) {
  try {
    return validateBody(UploadBody, body);
  } catch (error) {
    if (error instanceof MatrixError && error.errcode === "M_MISSING_PARAM" && error.message.startsWith("Missing parameter: device_keys.")) {
      throw new MatrixError("M_BAD_JSON", `Invalid device keys: ${error.message}`);
    }
    throw error;
  }
}

/**
 * Cross-signing keys and signatures are also served under the unstable prefix, where Synapse still
 * serves them (sytest and older clients use it); the spec has only v3.
 */
const withUnstable = (path: string): string[] => [...clientPaths(path), `/_matrix/client/unstable${path}`];

function requiredQuery(value: string | undefined, name: string): string {
  if (value === undefined || value === "") throw new MatrixError("M_MISSING_PARAM", `Missing parameter: ${name}`);
  return value;
}

export function keyRoutes({ accounts, keys, e2eeSync, passwordConfirmation }: KeyRouteDeps) {
  const app = new Elysia({ name: "client-keys" });
  for (const path of clientPaths("/keys/upload")) {
    app.post(path, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateUpload(body);
      return keys.upload(me.userId, me.deviceId, {
        device_keys: input.device_keys as JsonObject | undefined,
        one_time_keys: input.one_time_keys as Record<string, JsonValue> | undefined,
        fallback_keys: (input.fallback_keys ?? input["org.matrix.msc2732.fallback_keys"]) as Record<string, JsonValue> | undefined,
      });
    });
  }
  for (const path of clientPaths("/keys/query")) {
    app.post(path, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(QueryBody, body);
      return keys.query(me.userId, input.device_keys, input.timeout);
    });
  }
  for (const path of clientPaths("/keys/claim")) {
    app.post(path, async ({ request, body }) => {
      await requireUser(accounts, request);
      const input = validateBody(ClaimBody, body);
      return keys.claim(input.one_time_keys, input.timeout);
    });
  }
  for (const path of clientPaths("/keys/changes")) {
    app.get(path, async ({ request, query }) => {
      const me = await requireUser(accounts, request);
      return e2eeSync.keysChanges(me.userId, requiredQuery(query.from, "from"), requiredQuery(query.to, "to"));
    });
  }
  for (const path of withUnstable("/keys/device_signing/upload")) {
    app.post(path, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(DeviceSigningBody, body);
      const upload = { master_key: input.master_key as JsonObject | undefined, self_signing_key: input.self_signing_key as JsonObject | undefined, user_signing_key: input.user_signing_key as JsonObject | undefined };
      if (await keys.crossSigningNeedsAuth(me.userId, upload)) await passwordConfirmation.confirm(input.auth, me.userId, uiaOperation(request));
      await keys.uploadCrossSigning(me.userId, upload);
      return {};
    });
  }
  for (const path of withUnstable("/keys/signatures/upload")) {
    app.post(path, async ({ request, body }) => {
      const me = await requireUser(accounts, request);
      const input = validateBody(SignaturesBody, body);
      return keys.uploadSignatures(me.userId, input as Record<string, Record<string, JsonObject>>);
    });
  }
  return app;
}
