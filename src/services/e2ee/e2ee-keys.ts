// End-to-end encryption keys (client-server-api "End-to-End Encryption": "Key management API",
// "Cross-signing"): device identity keys, one-time and fallback keys, cross-signing keys and the
// signatures users add to keys. Portier stores and relays them; it never holds a private key.
//
// The same keys answer other servers (server-server-api "End-to-End Encryption", "Device
// Management") through the DeviceKeySource contract of federation/queries.ts. /keys/query for users
// of other servers reads the copy of their device list kept by remote-device-lists.ts (fetching it
// for users sharing a room with ours), else asks their servers, as /keys/claim always does.
//
// Every request is checked whole before anything is written, and written in one transaction: a
// rejected upload stores nothing.
import { encodeCanonicalJson } from "../../protocol/canonical-json";
import { decodeBase64 } from "../../protocol/base64";
import { MatrixError } from "../../protocol/errors";
import { isJsonObject, type JsonObject, type JsonValue } from "../../protocol/json";
import { parseUserId, serverNameOf } from "../../protocol/identifiers";
import { verifyJsonSignature } from "../../protocol/signing/sign-json";
import type { CrossSigningKeyType, CrossSigningStore, DeviceKeyStore, KeySignature, OneTimeKeyStore, StoredCrossSigningKey, UploadedKey } from "../../storage/stores";
import type { AccountService } from "../accounts/account-service";
import { RemoteMatrixError, type FederationClient } from "../federation/contracts";
import type { DeviceKeySource } from "../federation/queries";
import type { Logger } from "../runtime";
import type { DeviceListService, DeviceListUpdate } from "./device-lists";
import type { HeldKeys, RemoteDeviceLists } from "./remote-device-lists";

/** The algorithm Olm one-time keys use; its count is always reported, zero included (as Synapse does, for clients that read a missing count as "unknown"). */
export const SIGNED_CURVE25519 = "signed_curve25519";
/** How long a /keys/query or /keys/claim waits for other servers when the client names no timeout (keys.yaml recommends 10 s). */
export const DEFAULT_REMOTE_TIMEOUT_MS = 10_000;
const MAX_REMOTE_TIMEOUT_MS = 60_000;

export interface KeysUploadInput {
  device_keys?: JsonObject;
  one_time_keys?: Record<string, JsonValue>;
  fallback_keys?: Record<string, JsonValue>;
}

export interface KeysQueryAnswer {
  failures: Record<string, JsonObject>;
  device_keys: Record<string, Record<string, JsonObject>>;
  master_keys: Record<string, JsonObject>;
  self_signing_keys: Record<string, JsonObject>;
  user_signing_keys: Record<string, JsonObject>;
}

export interface KeysClaimAnswer {
  failures: Record<string, JsonObject>;
  one_time_keys: Record<string, Record<string, Record<string, JsonValue>>>;
}

export interface CrossSigningUpload {
  master_key?: JsonObject;
  self_signing_key?: JsonObject;
  user_signing_key?: JsonObject;
}

export interface EndToEndKeyDeps {
  serverName: string;
  deviceKeys: DeviceKeyStore;
  oneTimeKeys: OneTimeKeyStore;
  crossSigning: CrossSigningStore;
  deviceLists: DeviceListService;
  accounts: Pick<AccountService, "devices" | "userExists">;
  /** Other servers' users' keys; without it they are reported as failures. */
  federation?: FederationClient;
  /** The copies of other servers' users' device lists (remote-device-lists.ts); without it every query asks their server. */
  remoteLists?: RemoteDeviceLists;
  logger: Logger;
}

const UPLOAD_FIELDS: Record<CrossSigningKeyType, keyof CrossSigningUpload> = {
  master: "master_key",
  self_signing: "self_signing_key",
  user_signing: "user_signing_key",
};

export class EndToEndKeyService implements DeviceKeySource {
  constructor(private readonly deps: EndToEndKeyDeps) {}

  // ---------------------------------------------------------------------------------------------
  // POST /keys/upload

  async upload(userId: string, deviceId: string, input: KeysUploadInput): Promise<{ one_time_key_counts: Record<string, number> }> {
    const { deviceKeys, oneTimeKeys, deviceLists } = this.deps;
    let newDeviceKeys: string | undefined;
    if (input.device_keys !== undefined) {
      const keys = input.device_keys;
      if (keys.user_id !== userId) throw new MatrixError("M_INVALID_PARAM", "device_keys.user_id does not match the user of the access token");
      if (keys.device_id !== deviceId) throw new MatrixError("M_INVALID_PARAM", "device_keys.device_id does not match the device of the access token");
      newDeviceKeys = JSON.stringify(keys);
    }
    const oneTime = uploadedKeys(input.one_time_keys, "one_time_keys");
    const fallback = uploadedKeys(input.fallback_keys, "fallback_keys");
    const fallbackAlgorithms = new Set<string>();
    for (const key of fallback) {
      if (fallbackAlgorithms.has(key.algorithm)) throw new MatrixError("M_INVALID_PARAM", `fallback_keys holds more than one key of algorithm ${key.algorithm}`);
      fallbackAlgorithms.add(key.algorithm);
    }
    const updates = await deviceKeys.atomically(async () => {
      // A one-time key ID is used once: the same key again is a retry, another key under it an error
      // (400, as keys.yaml says). Checked in the transaction that adds them, so that of two uploads
      // at once with the same key ID, the second sees the first's key.
      const stored = await oneTimeKeys.oneTimeKeys(userId, deviceId, oneTime);
      for (const key of oneTime) {
        const before = stored.get(`${key.algorithm}:${key.keyId}`);
        if (before !== undefined && !sameJson(before, key.keyJson)) throw new MatrixError("M_INVALID_PARAM", `One-time key ${key.algorithm}:${key.keyId} already exists with other contents`);
      }
      const updates: DeviceListUpdate[] = [];
      if (newDeviceKeys !== undefined) {
        const before = (await deviceKeys.deviceKeys(userId, [deviceId])).get(deviceId);
        if (before === undefined || !sameJson(before, newDeviceKeys)) {
          // New keys: the signatures stored for the old ones no longer verify. Only a change of what
          // a signature covers (all but `signatures` and `unsigned`) drops them.
          if (before !== undefined && !sameJson(signedPart(before), signedPart(newDeviceKeys))) {
            await this.deps.crossSigning.deleteSignaturesOn(userId, deviceId);
            // The device's own signatures on the master key were made with its old ed25519 key.
            if (ed25519Of(before, deviceId) !== ed25519Of(newDeviceKeys, deviceId)) await this.deps.crossSigning.deleteOwnSignaturesBy(userId, `ed25519:${deviceId}`);
          }
          await deviceKeys.putDeviceKeys(userId, deviceId, newDeviceKeys);
          updates.push(await deviceLists.record({ kind: "device", userId, deviceId, deleted: false }));
        }
      }
      if (oneTime.length > 0) await oneTimeKeys.addOneTimeKeys(userId, deviceId, oneTime);
      for (const key of fallback) await oneTimeKeys.setFallbackKey(userId, deviceId, key);
      return updates;
    });
    deviceLists.announce(updates);
    return { one_time_key_counts: await this.oneTimeKeyCounts(userId, deviceId) };
  }

  /** Unclaimed one-time keys per algorithm, signed_curve25519 always included. */
  async oneTimeKeyCounts(userId: string, deviceId: string): Promise<Record<string, number>> {
    return { [SIGNED_CURVE25519]: 0, ...(await this.deps.oneTimeKeys.countOneTimeKeys(userId, deviceId)) };
  }

  unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    return this.deps.oneTimeKeys.unusedFallbackKeyTypes(userId, deviceId);
  }

  // ---------------------------------------------------------------------------------------------
  // POST /keys/query

  /**
   * Device and cross-signing keys of the users asked for, as `requester` may see them: their own
   * user-signing key only to themselves, signatures on a master key by its owner's devices to
   * everyone and by another user's user-signing key to that user only. Users of other servers are
   * answered from our copy of their device list or asked of their servers, all servers at once; a
   * server that does not answer is listed in `failures`.
   */
  async query(requester: string, query: Readonly<Record<string, readonly string[]>>, timeoutMs = DEFAULT_REMOTE_TIMEOUT_MS): Promise<KeysQueryAnswer> {
    const answer: KeysQueryAnswer = { failures: {}, device_keys: {}, master_keys: {}, self_signing_keys: {}, user_signing_keys: {} };
    const remote = new Map<string, Record<string, readonly string[]>>();
    for (const [userId, deviceIds] of Object.entries(query)) {
      const server = requireUserServer(userId);
      if (server !== this.deps.serverName) {
        const forServer = remote.get(server) ?? {};
        forServer[userId] = deviceIds;
        remote.set(server, forServer);
        continue;
      }
      if (!(await this.deps.accounts.userExists(userId))) continue;
      answer.device_keys[userId] = await this.localDeviceKeys(userId, deviceIds, true);
      const cross = await this.crossSigningKeysFor(userId, requester);
      if (cross.master) answer.master_keys[userId] = cross.master;
      if (cross.selfSigning) answer.self_signing_keys[userId] = cross.selfSigning;
      if (cross.userSigning) answer.user_signing_keys[userId] = cross.userSigning;
    }
    await Promise.all([...remote].map(([server, users]) => this.queryRemote(server, users, timeoutMs, answer)));
    return answer;
  }

  /**
   * Users of one other server: from the copy of their device list where one is held; else their
   * whole list fetched (/user/devices) and kept, for users sharing a room with ours (as Synapse);
   * else asked of their server (/user/keys/query). A server that does not answer is a failure.
   */
  private async queryRemote(server: string, users: Record<string, readonly string[]>, timeoutMs: number, answer: KeysQueryAnswer): Promise<void> {
    const put = (userId: string, keys: HeldKeys) => {
      answer.device_keys[userId] = keys.devices;
      if (keys.master) answer.master_keys[userId] = keys.master;
      if (keys.selfSigning) answer.self_signing_keys[userId] = keys.selfSigning;
    };
    const lists = this.deps.remoteLists;
    const ask: Record<string, readonly string[]> = {};
    let unreachable: unknown;
    await Promise.all(
      Object.entries(users).map(async ([userId, deviceIds]) => {
        try {
          const keys = lists && ((await lists.heldKeys(userId, deviceIds)) ?? (await lists.fetchKeys(userId, deviceIds, timeoutMs)));
          if (keys) return put(userId, keys);
        } catch (error) {
          // A server that answers, but not /user/devices, may still answer /user/keys/query.
          if (!(error instanceof RemoteMatrixError)) unreachable = error;
        }
        ask[userId] = deviceIds;
      }),
    );
    if (unreachable !== undefined) {
      answer.failures[server] = this.failureOf(server, unreachable);
      return;
    }
    if (Object.keys(ask).length === 0) return;
    try {
      const reply = await this.remoteRequest(server, "/_matrix/federation/v1/user/keys/query", { device_keys: ask as JsonValue }, timeoutMs);
      for (const userId of Object.keys(ask)) {
        const devices = isJsonObject(reply.device_keys) ? reply.device_keys[userId] : undefined;
        if (isJsonObject(devices)) answer.device_keys[userId] = remoteDevices(userId, devices);
        const master = isJsonObject(reply.master_keys) ? reply.master_keys[userId] : undefined;
        if (isJsonObject(master) && master.user_id === userId) answer.master_keys[userId] = master;
        const selfSigning = isJsonObject(reply.self_signing_keys) ? reply.self_signing_keys[userId] : undefined;
        if (isJsonObject(selfSigning) && selfSigning.user_id === userId) answer.self_signing_keys[userId] = selfSigning;
      }
    } catch (error) {
      answer.failures[server] = this.failureOf(server, error);
    }
  }

  /**
   * A local user's device keys with the signatures others may see, and (for the client API) each
   * device's name in `unsigned`. Only keys of devices that exist: keys outliving their device (an
   * upload that raced the device's deletion) are never shown, as Synapse joins its devices table.
   */
  private async localDeviceKeys(userId: string, deviceIds: readonly string[] | undefined, withNames: boolean): Promise<Record<string, JsonObject>> {
    const stored = await this.deps.deviceKeys.deviceKeys(userId, deviceIds);
    if (stored.size === 0) return {};
    const devices = new Map((await this.deps.accounts.devices(userId)).map((d) => [d.deviceId, d.displayName]));
    for (const deviceId of stored.keys()) if (!devices.has(deviceId)) stored.delete(deviceId);
    if (stored.size === 0) return {};
    const signatures = (await this.deps.crossSigning.signaturesOn(userId, [...stored.keys()])).filter((s) => s.signerUserId === userId);
    const names = withNames ? devices : undefined;
    const out: Record<string, JsonObject> = {};
    for (const [deviceId, json] of stored) {
      const keys = withSignatures(JSON.parse(json) as JsonObject, signatures.filter((s) => s.targetKeyId === deviceId));
      if (names) {
        const name = names.get(deviceId);
        const unsigned = isJsonObject(keys.unsigned) ? keys.unsigned : {};
        keys.unsigned = name === undefined ? unsigned : { ...unsigned, device_display_name: name };
      }
      out[deviceId] = keys;
    }
    return out;
  }

  /** A user's cross-signing keys as `requester` may see them (undefined: another server, which sees what everyone sees). */
  private async crossSigningKeysFor(userId: string, requester: string | undefined): Promise<{ master?: JsonObject; selfSigning?: JsonObject; userSigning?: JsonObject }> {
    const keys = await this.deps.crossSigning.keys(userId);
    if (keys.size === 0) return {};
    const out: { master?: JsonObject; selfSigning?: JsonObject; userSigning?: JsonObject } = {};
    const master = keys.get("master");
    if (master) {
      const signatures = (await this.deps.crossSigning.signaturesOn(userId, [master.publicKey])).filter((s) => s.signerUserId === userId || s.signerUserId === requester);
      out.master = withSignatures(JSON.parse(master.keyJson) as JsonObject, signatures);
    }
    const selfSigning = keys.get("self_signing");
    if (selfSigning) out.selfSigning = JSON.parse(selfSigning.keyJson) as JsonObject;
    const userSigning = keys.get("user_signing");
    if (userSigning && requester === userId) out.userSigning = JSON.parse(userSigning.keyJson) as JsonObject;
    return out;
  }

  // ---------------------------------------------------------------------------------------------
  // POST /keys/claim

  /** One key per (user, device, algorithm): a one-time key while any is left, else the fallback key. */
  async claim(query: Readonly<Record<string, Readonly<Record<string, string>>>>, timeoutMs = DEFAULT_REMOTE_TIMEOUT_MS): Promise<KeysClaimAnswer> {
    const answer: KeysClaimAnswer = { failures: {}, one_time_keys: {} };
    const remote = new Map<string, Record<string, Readonly<Record<string, string>>>>();
    for (const [userId, devices] of Object.entries(query)) {
      const server = requireUserServer(userId);
      if (server !== this.deps.serverName) {
        const forServer = remote.get(server) ?? {};
        forServer[userId] = devices;
        remote.set(server, forServer);
        continue;
      }
      for (const [deviceId, algorithm] of Object.entries(devices)) {
        const key = await this.claimOneTimeKey(userId, deviceId, algorithm);
        if (key !== undefined) (answer.one_time_keys[userId] ??= {})[deviceId] = key;
      }
    }
    await Promise.all(
      [...remote].map(async ([server, users]) => {
        try {
          const reply = await this.remoteRequest(server, "/_matrix/federation/v1/user/keys/claim", { one_time_keys: users as JsonValue }, timeoutMs);
          const keys = isJsonObject(reply.one_time_keys) ? reply.one_time_keys : {};
          for (const userId of Object.keys(users)) {
            const devices = keys[userId];
            if (!isJsonObject(devices)) continue;
            for (const [deviceId, deviceKeys] of Object.entries(devices)) {
              if (isJsonObject(deviceKeys) && Object.hasOwn(users[userId]!, deviceId)) (answer.one_time_keys[userId] ??= {})[deviceId] = deviceKeys;
            }
          }
        } catch (error) {
          answer.failures[server] = this.failureOf(server, error);
        }
      }),
    );
    return answer;
  }

  // ---------------------------------------------------------------------------------------------
  // POST /keys/device_signing/upload and /keys/signatures/upload

  /**
   * Whether uploading these cross-signing keys needs user-interactive auth (cross_signing.yaml, from
   * v1.11): not while the user has no master key yet (the first upload, as Synapse allows), nor when
   * every key given is the one already stored (a retried upload); replacing a key does.
   */
  async crossSigningNeedsAuth(userId: string, upload: CrossSigningUpload): Promise<boolean> {
    const existing = await this.deps.crossSigning.keys(userId);
    if (!existing.has("master")) return false;
    for (const [type, field] of Object.entries(UPLOAD_FIELDS) as [CrossSigningKeyType, keyof CrossSigningUpload][]) {
      const given = upload[field];
      if (given === undefined) continue;
      const stored = existing.get(type);
      if (stored === undefined || !sameJson(stored.keyJson, JSON.stringify(given))) return true;
    }
    return false;
  }

  /** Stores the user's new cross-signing keys once each is well formed and signed as the spec asks. */
  async uploadCrossSigning(userId: string, upload: CrossSigningUpload): Promise<void> {
    const existing = await this.deps.crossSigning.keys(userId);
    const given: StoredCrossSigningKey[] = [];
    for (const [type, field] of Object.entries(UPLOAD_FIELDS) as [CrossSigningKeyType, keyof CrossSigningUpload][]) {
      const key = upload[field];
      if (key !== undefined) given.push({ type, publicKey: crossSigningPublicKey(key, userId, type, field), keyJson: JSON.stringify(key) });
    }
    if (given.length === 0) return;
    const master = given.find((k) => k.type === "master") ?? existing.get("master");
    for (const key of given) {
      if (key.type === "master") continue;
      if (!master) throw new MatrixError("M_MISSING_PARAM", "No master signing key: upload one with (or before) the other cross-signing keys");
      const verdict = verifyKeySignature(JSON.parse(key.keyJson) as JsonObject, userId, master.publicKey);
      if (!verdict) throw new MatrixError("M_INVALID_SIGNATURE", `The ${UPLOAD_FIELDS[key.type]} is not signed by the master signing key`);
    }
    // Device IDs and cross-signing public keys share one namespace in verification (cross-signing section).
    const deviceIds = new Set((await this.deps.accounts.devices(userId)).map((d) => d.deviceId));
    for (const key of given) if (deviceIds.has(key.publicKey)) throw new MatrixError("M_FORBIDDEN", "Key ID in use", 403);

    const changed = given.filter((k) => !sameJson(existing.get(k.type)?.keyJson, k.keyJson));
    if (changed.length === 0) return;
    // The user-signing key is seen by its owner only (/keys/query), so a change of it alone is a
    // change for the owner's devices and nobody else (as Synapse notifies): recorded as one with the
    // owner as its only observer, which is also never sent over federation.
    const ownerOnly = changed.every((k) => k.type === "user_signing");
    const update = await this.deps.deviceKeys.atomically(async () => {
      for (const key of changed) await this.deps.crossSigning.putKey(userId, key);
      return this.deps.deviceLists.record(ownerOnly ? { kind: "signature", userId, observer: userId } : { kind: "cross-signing", userId });
    });
    this.deps.deviceLists.announce([update]);
  }

  /**
   * Adds signatures to keys (cross_signing.yaml /keys/signatures/upload): the user's own device keys
   * signed by their self-signing key, their master key signed by their own devices, and other
   * users' master keys signed by their user-signing key. Each key is judged on its own; those
   * refused are listed in `failures`.
   */
  async uploadSignatures(userId: string, body: Readonly<Record<string, Readonly<Record<string, JsonObject>>>>): Promise<{ failures: Record<string, Record<string, JsonObject>> }> {
    const failures: Record<string, Record<string, JsonObject>> = {};
    const mine = await this.deps.crossSigning.keys(userId);
    const accepted: KeySignature[] = [];
    const updates: Parameters<DeviceListService["record"]>[0][] = [];
    for (const [targetUserId, keys] of Object.entries(body)) {
      for (const [keyId, signed] of Object.entries(keys)) {
        try {
          if (!isJsonObject(signed)) throw new MatrixError("M_INVALID_PARAM", "A signed key must be an object");
          if (targetUserId === userId) {
            const master = mine.get("master");
            if (master && keyId === master.publicKey) {
              accepted.push(...(await this.deviceSignaturesOnMaster(userId, master, signed)));
              updates.push({ kind: "signature", userId });
            } else {
              accepted.push(await this.selfSignatureOnDevice(userId, keyId, signed, mine.get("self_signing")));
              updates.push({ kind: "signature", userId });
            }
          } else {
            accepted.push(await this.userSignatureOnMaster(userId, targetUserId, keyId, signed, mine.get("user_signing")));
            // Only the signer sees a signature made with their user-signing key.
            updates.push({ kind: "signature", userId: targetUserId, observer: userId });
          }
        } catch (error) {
          if (!(error instanceof MatrixError)) throw error;
          (failures[targetUserId] ??= {})[keyId] = { errcode: error.errcode, error: error.message };
        }
      }
    }
    if (accepted.length > 0) {
      const recorded = await this.deps.deviceKeys.atomically(async () => {
        await this.deps.crossSigning.putSignatures(accepted);
        const seen = new Set<string>();
        const out: DeviceListUpdate[] = [];
        for (const update of updates) {
          const key = `${update.userId}\u0000${update.kind === "signature" ? (update.observer ?? "") : ""}`;
          if (seen.has(key)) continue;
          seen.add(key);
          out.push(await this.deps.deviceLists.record(update));
        }
        return out;
      });
      this.deps.deviceLists.announce(recorded);
    }
    return { failures };
  }

  private async deviceSignaturesOnMaster(userId: string, master: StoredCrossSigningKey, signed: JsonObject): Promise<KeySignature[]> {
    requireSameKey(master.keyJson, signed);
    const bySigner = isJsonObject(signed.signatures) ? signed.signatures[userId] : undefined;
    const candidates = isJsonObject(bySigner) ? Object.keys(bySigner).filter((id) => id.startsWith("ed25519:") && id !== `ed25519:${master.publicKey}`) : [];
    const devices = await this.deps.deviceKeys.deviceKeys(userId, candidates.map((id) => id.slice("ed25519:".length)));
    const out: KeySignature[] = [];
    for (const signerKeyId of candidates) {
      const deviceId = signerKeyId.slice("ed25519:".length);
      const deviceKeys = devices.get(deviceId);
      const publicKey = deviceKeys === undefined ? undefined : (JSON.parse(deviceKeys) as JsonObject).keys;
      const ed25519 = isJsonObject(publicKey) ? publicKey[signerKeyId] : undefined;
      if (typeof ed25519 !== "string" || !verifyKeySignature(signed, userId, ed25519, signerKeyId)) continue;
      out.push({ targetUserId: userId, targetKeyId: master.publicKey, signerUserId: userId, signerKeyId, signature: String((bySigner as JsonObject)[signerKeyId]) });
    }
    if (out.length === 0) throw new MatrixError("M_INVALID_SIGNATURE", "No valid signature by one of the user's devices");
    return out;
  }

  private async selfSignatureOnDevice(userId: string, deviceId: string, signed: JsonObject, selfSigning: StoredCrossSigningKey | undefined): Promise<KeySignature> {
    const stored = (await this.deps.deviceKeys.deviceKeys(userId, [deviceId])).get(deviceId);
    if (stored === undefined) throw new MatrixError("M_NOT_FOUND", `No keys of device ${deviceId}`);
    requireSameKey(stored, signed);
    if (!selfSigning) throw new MatrixError("M_MISSING_PARAM", "No self-signing key to sign devices with");
    return this.signatureBy(signed, userId, deviceId, userId, selfSigning.publicKey);
  }

  private async userSignatureOnMaster(userId: string, targetUserId: string, keyId: string, signed: JsonObject, userSigning: StoredCrossSigningKey | undefined): Promise<KeySignature> {
    requireUserServer(targetUserId);
    if (!userSigning) throw new MatrixError("M_MISSING_PARAM", "No user-signing key to sign other users' keys with");
    const master = await this.masterKeyOf(targetUserId);
    if (!master || master.publicKey !== keyId) throw new MatrixError("M_NOT_FOUND", `${keyId} is not the master key of ${targetUserId}`);
    requireSameKey(master.keyJson, signed);
    return this.signatureBy(signed, targetUserId, keyId, userId, userSigning.publicKey);
  }

  private signatureBy(signed: JsonObject, targetUserId: string, targetKeyId: string, signerUserId: string, signerPublicKey: string): KeySignature {
    const signerKeyId = `ed25519:${signerPublicKey}`;
    if (!verifyKeySignature(signed, signerUserId, signerPublicKey)) throw new MatrixError("M_INVALID_SIGNATURE", "Invalid signature");
    const bySigner = (signed.signatures as JsonObject)[signerUserId] as JsonObject;
    return { targetUserId, targetKeyId, signerUserId, signerKeyId, signature: String(bySigner[signerKeyId]) };
  }

  /** A user's master key: ours from the store, another server's asked of it. */
  private async masterKeyOf(userId: string): Promise<StoredCrossSigningKey | undefined> {
    const server = requireUserServer(userId);
    if (server === this.deps.serverName) return (await this.deps.crossSigning.keys(userId)).get("master");
    const reply = await this.remoteRequest(server, "/_matrix/federation/v1/user/keys/query", { device_keys: { [userId]: [] } }, DEFAULT_REMOTE_TIMEOUT_MS).catch(() => undefined);
    const master = reply && isJsonObject(reply.master_keys) ? reply.master_keys[userId] : undefined;
    if (!isJsonObject(master)) return undefined;
    try {
      return { type: "master", publicKey: crossSigningPublicKey(master, userId, "master", "master_key"), keyJson: JSON.stringify(master) };
    } catch {
      return undefined;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Devices going away

  /**
   * Deletes a device's keys and the signatures on them, and records the change of the user's device
   * list. Made to run inside the transaction that deletes the device (AccountService's device
   * deletion listeners): it only writes, and returns what announces the change, to be called once
   * that transaction has committed.
   */
  async deleteDevice(userId: string, deviceId: string): Promise<() => void> {
    const update = await this.deps.deviceKeys.atomically(async () => {
      await this.deps.deviceKeys.deleteDeviceKeys(userId, deviceId);
      await this.deps.oneTimeKeys.deleteDeviceKeys(userId, deviceId);
      await this.deps.crossSigning.deleteSignaturesOn(userId, deviceId);
      return this.deps.deviceLists.record({ kind: "device", userId, deviceId, deleted: true });
    });
    return () => this.deps.deviceLists.announce([update]);
  }

  /**
   * Whether `id` is one of the user's cross-signing public keys, which no device may take as its ID
   * (the spec's "Cross-signing": device and cross-signing key IDs share one namespace).
   */
  async isCrossSigningKey(userId: string, id: string): Promise<boolean> {
    for (const key of (await this.deps.crossSigning.keys(userId)).values()) if (key.publicKey === id) return true;
    return false;
  }

  /**
   * A device was renamed: its name is part of what /keys/query answers, so the user's device list
   * changed. A device without keys counts too, as a new one does (and as Synapse counts every rename).
   */
  async deviceRenamed(userId: string, deviceId: string): Promise<void> {
    await this.deps.deviceLists.change({ kind: "device", userId, deviceId, deleted: false });
  }

  // ---------------------------------------------------------------------------------------------
  // DeviceKeySource: what other servers see (no device names, no user-signing key)

  deviceKeys(userId: string, deviceIds?: readonly string[]): Promise<Record<string, JsonObject>> {
    return this.localDeviceKeys(userId, deviceIds, false);
  }

  async crossSigningKeys(userId: string): Promise<{ master?: JsonObject; selfSigning?: JsonObject }> {
    const { master, selfSigning } = await this.crossSigningKeysFor(userId, undefined);
    return { ...(master ? { master } : {}), ...(selfSigning ? { selfSigning } : {}) };
  }

  async claimOneTimeKey(userId: string, deviceId: string, algorithm: string): Promise<Record<string, JsonObject | string> | undefined> {
    const key = (await this.deps.oneTimeKeys.claimOneTimeKey(userId, deviceId, algorithm)) ?? (await this.deps.oneTimeKeys.claimFallbackKey(userId, deviceId, algorithm));
    return key && { [`${key.algorithm}:${key.keyId}`]: JSON.parse(key.keyJson) as JsonObject | string };
  }

  /**
   * The stream_id /user/devices gives: that of the last m.device_list_update sent about the user,
   * which the next one names as its prev_id (so a server that resynced can apply it); the user's
   * last device list change while none was sent.
   */
  async deviceListStreamId(userId: string): Promise<number> {
    return (await this.deps.deviceKeys.lastSentStreamId(userId)) ?? (await this.deps.deviceLists.lastChange(userId));
  }

  /** The copies of other servers' users' device lists, when kept. */
  get remoteDeviceLists(): RemoteDeviceLists | undefined {
    return this.deps.remoteLists;
  }

  // ---------------------------------------------------------------------------------------------

  private async remoteRequest(server: string, path: string, body: JsonObject, timeoutMs: number): Promise<JsonObject> {
    if (!this.deps.federation) throw new MatrixError("M_UNKNOWN", "Federation is not available", 503);
    const reply = await this.deps.federation.request("POST", server, path, { body, timeoutMs: Math.min(Math.max(timeoutMs, 1), MAX_REMOTE_TIMEOUT_MS) });
    if (!isJsonObject(reply)) throw new MatrixError("M_UNKNOWN", `${server} answered with something other than an object`, 502);
    return reply;
  }

  /** An entry of `failures` (the shape Synapse gives: the status and a message). */
  private failureOf(server: string, error: unknown): JsonObject {
    this.deps.logger.log("info", "could not get keys from another server", { server, error: String(error) });
    if (error instanceof RemoteMatrixError) return { status: error.status, errcode: error.errcode, message: error.message };
    if (error instanceof MatrixError) return { status: error.status >= 500 ? error.status : 503, message: error.message };
    return { status: 503, message: String(error) };
  }
}

// -----------------------------------------------------------------------------------------------

/** The server of a user ID; 400 M_INVALID_PARAM for one that is not valid. */
function requireUserServer(userId: string): string {
  const parsed = parseUserId(userId);
  if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID ${JSON.stringify(userId)}: ${parsed.error}`);
  return parsed.value.serverName;
}

/** The keys of a /keys/upload field as stored: each property `<algorithm>:<key id>` with a string or object key. */
function uploadedKeys(keys: Record<string, JsonValue> | undefined, field: string): UploadedKey[] {
  if (keys === undefined) return [];
  const out: UploadedKey[] = [];
  for (const [id, key] of Object.entries(keys)) {
    const colon = id.indexOf(":");
    if (colon <= 0 || colon === id.length - 1) throw new MatrixError("M_INVALID_PARAM", `${field}: key ID ${JSON.stringify(id)} is not <algorithm>:<key id>`);
    if (typeof key !== "string" && !isJsonObject(key)) throw new MatrixError("M_INVALID_PARAM", `${field}: key ${id} must be a string or an object`);
    out.push({ algorithm: id.slice(0, colon), keyId: id.slice(colon + 1), keyJson: JSON.stringify(key) });
  }
  return out;
}

/** The public key of a cross-signing key after checking its shape (cross_signing_key.yaml); 400 M_INVALID_PARAM otherwise. */
function crossSigningPublicKey(key: JsonObject, userId: string, type: CrossSigningKeyType, field: string): string {
  if (key.user_id !== userId) throw new MatrixError("M_INVALID_PARAM", `${field}.user_id must be ${userId}`);
  if (!Array.isArray(key.usage) || !key.usage.includes(type)) throw new MatrixError("M_INVALID_PARAM", `${field}.usage must include "${type}"`);
  const entries = isJsonObject(key.keys) ? Object.entries(key.keys) : [];
  if (entries.length !== 1) throw new MatrixError("M_INVALID_PARAM", `${field}.keys must hold exactly one key`);
  const [keyId, publicKey] = entries[0]!;
  if (typeof publicKey !== "string" || keyId !== `ed25519:${publicKey}`) throw new MatrixError("M_INVALID_PARAM", `${field}.keys must map "ed25519:<public key>" to that public key`);
  try {
    if (decodeBase64(publicKey).length !== 32) throw new Error("wrong length");
  } catch {
    throw new MatrixError("M_INVALID_PARAM", `${field}: the public key is not an unpadded base64 ed25519 key`);
  }
  return publicKey;
}

/** Whether `signer` signed the object with the ed25519 key `publicKey` (filed under `ed25519:<publicKey>` unless another key ID is given). */
function verifyKeySignature(object: JsonObject, signer: string, publicKey: string, keyId = `ed25519:${publicKey}`): boolean {
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(publicKey);
  } catch {
    return false;
  }
  try {
    return verifyJsonSignature(object, signer, keyId, bytes).valid;
  } catch {
    return false;
  }
}

/** The signed object must be the stored key, but for signatures and unsigned (cross_signing.yaml); 400 M_INVALID_PARAM otherwise. */
function requireSameKey(storedJson: string, signed: JsonObject): void {
  const { signatures: _a, unsigned: _b, ...stored } = JSON.parse(storedJson) as JsonObject;
  const { signatures: _c, unsigned: _d, ...given } = signed;
  if (!sameJson(JSON.stringify(stored), JSON.stringify(given))) throw new MatrixError("M_INVALID_PARAM", "The signed object does not match the stored key");
}

/** The part of a key (JSON text) its signatures cover: all but `signatures` and `unsigned`. */
function signedPart(keyJson: string): string {
  const { signatures: _s, unsigned: _u, ...signed } = JSON.parse(keyJson) as JsonObject;
  return JSON.stringify(signed);
}

/** A device's ed25519 key in its device keys (JSON text), if any. */
function ed25519Of(keyJson: string, deviceId: string): string | undefined {
  const keys = (JSON.parse(keyJson) as JsonObject).keys;
  const key = isJsonObject(keys) ? keys[`ed25519:${deviceId}`] : undefined;
  return typeof key === "string" ? key : undefined;
}

/** Whether two JSON texts hold the same value (key order aside). */
function sameJson(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a === b) return true;
  try {
    return encodeCanonicalJson(JSON.parse(a), { strict: false }) === encodeCanonicalJson(JSON.parse(b), { strict: false });
  } catch {
    return false;
  }
}

/** A copy of a key with stored signatures merged into its `signatures`. */
function withSignatures(key: JsonObject, signatures: readonly KeySignature[]): JsonObject {
  if (signatures.length === 0) return key;
  const all: Record<string, Record<string, JsonValue>> = {};
  if (isJsonObject(key.signatures)) for (const [user, byKey] of Object.entries(key.signatures)) if (isJsonObject(byKey)) all[user] = { ...byKey };
  for (const s of signatures) (all[s.signerUserId] ??= {})[s.signerKeyId] = s.signature;
  return { ...key, signatures: all };
}

/** Another server's devices of one user, keeping only entries that say they are that user's. */
function remoteDevices(userId: string, devices: JsonObject): Record<string, JsonObject> {
  const out: Record<string, JsonObject> = {};
  for (const [deviceId, keys] of Object.entries(devices)) {
    if (isJsonObject(keys) && keys.user_id === userId && keys.device_id === deviceId && serverNameOf(userId) !== undefined) out[deviceId] = keys;
  }
  return out;
}
