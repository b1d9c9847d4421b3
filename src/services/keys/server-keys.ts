// Our signing key as other servers see it: GET /_matrix/key/v2/server
// (server-server-api "Publishing Keys"), signed by the key it publishes.
import type { Config } from "../../config/schema";
import type { JsonObject } from "../../protocol/json";
import { signJson } from "../../protocol/signing/sign-json";
import { signEvent } from "../../protocol/signing/event-signatures";
import { signEventWithId, type SignedWithId } from "../../protocol/signing/local-event";
import type { RoomVersion } from "../../protocol/room-versions";
import { encodeBase64 } from "../../protocol/base64";
import type { Clock } from "../runtime";
import type { SigningKey } from "../../protocol/signing/keys";

export class ServerKeyService {
  readonly serverName: string;
  readonly keyId: string;
  readonly publicKeyBase64: string;

  constructor(
    private readonly config: Readonly<Config>,
    private readonly clock: Clock,
    private readonly key: SigningKey,
  ) {
    this.serverName = config.server_name;
    this.keyId = key.keyId;
    this.publicKeyBase64 = encodeBase64(key.publicKey);
  }

  /** Signs a JSON object (an event, a request, a key response) as this server. */
  sign<T extends JsonObject>(object: T, options: { strict?: boolean } = {}): T {
    return signJson(object, this.config.server_name, this.key.keyId, this.key.seed, options) as T;
  }

  /** Adds the content hash and this server's signature to a PDU. */
  signEvent(pdu: JsonObject, version: RoomVersion): JsonObject {
    return signEvent(pdu, version, this.serverName, this.key.keyId, this.key.seed);
  }

  /** signEvent, with the event's ID taken from the same encoding (one redaction and encoding less per local event). */
  signEventWithId(pdu: JsonObject, version: RoomVersion): SignedWithId {
    return signEventWithId(pdu, version, this.serverName, this.key.keyId, this.key.seed);
  }

  /** The public key of one of our key ids (current or old), for checking our own signatures. */
  publicKey(keyId: string): Uint8Array | undefined {
    return keyId === this.keyId ? this.key.publicKey : undefined;
  }

  serverKeys(): JsonObject {
    const oldVerifyKeys: JsonObject = {};
    for (const [keyId, old] of Object.entries(this.config.old_signing_keys)) {
      oldVerifyKeys[keyId] = { key: old.key, expired_ts: old.expired_ts };
    }
    return this.sign({
      server_name: this.config.server_name,
      valid_until_ts: this.clock.now() + this.config.key_valid_for_ms,
      verify_keys: { [this.keyId]: { key: this.publicKeyBase64 } },
      old_verify_keys: oldVerifyKeys,
    });
  }
}
