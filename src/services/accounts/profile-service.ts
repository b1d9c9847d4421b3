// User profiles (client-server-api "Profiles"): displayname, avatar_url, m.tz and custom fields of
// local users. Other parts of the server learn of changes through onProfileChange (a display name
// change must also update the user's m.room.member events in every joined room).
//
// A new displayname or avatar_url passes the plugins' spam policies (checkUsernameForSpam, issue 9)
// when one is registered, before it is stored; a shadow is a refusal here (the user would see at
// their next look that their name did not change).
import { MatrixError } from "../../protocol/errors";
import { parseUserId, utf8Length } from "../../protocol/identifiers";
import type { ProfileStore } from "../../storage/stores";
import type { Logger } from "../runtime";
import { requireSpamAllowed, type SpamChecks } from "../plugins/spam-decisions";
import { RoomWriteQueue } from "../rooms/room-write-queue";
import type { AccountService } from "./account-service";

export type Profile = Readonly<Record<string, unknown>>;

/** Called after a field of a local user's profile changed, with the whole profile as it is now. */
export type ProfileChangeListener = (userId: string, profile: Profile, changedField: string) => void | Promise<void>;

/** profile.yaml: the keyName path parameter's pattern. */
const KEY_NAME = /^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$/;
const MAX_KEY_BYTES = 255;
const MAX_PROFILE_BYTES = 64 * 1024;
/** Fields the spec defines as strings. */
const STRING_FIELDS = new Set(["displayname", "avatar_url", "m.tz"]);

export interface ProfileServiceOptions {
  /** The plugins' spam policies (the PolicySet); absent: nothing is checked. */
  policies?: SpamChecks;
  /**
   * A user of another server: their profile as their server tells it (federation /query/profile).
   * Absent: remote profiles are not found.
   */
  remoteProfile?: (userId: string) => Promise<Profile>;
}

export class ProfileService {
  private readonly listeners: ProfileChangeListener[] = [];
  /** Profile writes, one at a time per user (keyed by user id). */
  private readonly writes = new RoomWriteQueue();

  constructor(
    private readonly store: ProfileStore,
    private readonly accounts: AccountService,
    private readonly serverName: string,
    private readonly logger: Logger,
    private readonly options: ProfileServiceOptions = {},
  ) {}

  /** Registers a listener for profile changes; returns a function that removes it. */
  onProfileChange(listener: ProfileChangeListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** The whole profile; 404 M_NOT_FOUND for users this server does not have. */
  async profile(userId: string): Promise<Profile> {
    const parsed = parseUserId(userId);
    if (parsed.ok && parsed.value.serverName !== this.serverName && this.options.remoteProfile) return this.options.remoteProfile(userId);
    await this.requireKnownUser(userId);
    return this.store.getProfile(userId);
  }

  /** One field; 404 M_NOT_FOUND when the user or the field does not exist. */
  async field(userId: string, key: string): Promise<unknown> {
    this.checkKeyName(key);
    const profile = await this.profile(userId);
    if (!Object.hasOwn(profile, key)) throw new MatrixError("M_NOT_FOUND", `Profile field ${key} is not set`);
    return profile[key];
  }

  async setField(requesterId: string, userId: string, key: string, value: unknown): Promise<void> {
    this.checkKeyName(key);
    this.requireOwnProfile(requesterId, userId);
    if (STRING_FIELDS.has(key) && typeof value !== "string") throw new MatrixError("M_BAD_JSON", `${key} must be a string`);
    const policies = this.options.policies;
    if ((key === "displayname" || key === "avatar_url") && policies?.hasSpamPolicies) {
      const current = await this.store.getProfile(userId);
      const field = (k: string) => (k === key ? (value as string) : typeof current[k] === "string" ? (current[k] as string) : undefined);
      const profile = { userId, displayName: field("displayname"), avatarUrl: field("avatar_url") };
      await requireSpamAllowed(policies, (p) => p.checkUsernameForSpam?.(profile), key === "displayname" ? "This display name is not allowed" : "This avatar is not allowed");
    }
    // One write per user at a time, so that two writes cannot both pass the size check.
    await this.writes.run(userId, async () => {
      const next = { ...(await this.store.getProfile(userId)), [key]: value };
      if (utf8Length(JSON.stringify(next)) > MAX_PROFILE_BYTES) throw new MatrixError("M_PROFILE_TOO_LARGE", "The profile would exceed 64 KiB", 400);
      await this.store.setProfileField(userId, key, value);
    });
    await this.notify(userId, key);
  }

  async deleteField(requesterId: string, userId: string, key: string): Promise<void> {
    this.checkKeyName(key);
    this.requireOwnProfile(requesterId, userId);
    const deleted = await this.writes.run(userId, async () => {
      if (!Object.hasOwn(await this.store.getProfile(userId), key)) return false;
      await this.store.deleteProfileField(userId, key);
      return true;
    });
    if (deleted) await this.notify(userId, key);
  }

  /** Every field of a user's profile removed (a deactivation that asks for erasure). */
  async eraseProfile(userId: string): Promise<void> {
    for (const key of Object.keys(await this.store.getProfile(userId))) await this.deleteField(userId, userId, key);
  }

  private async notify(userId: string, field: string): Promise<void> {
    const profile = await this.store.getProfile(userId);
    for (const listener of [...this.listeners]) {
      try {
        await listener(userId, profile, field);
      } catch (e) {
        // The profile itself changed; a failing follower (e.g. member event updates) must not undo that.
        this.logger.log("error", "profile change listener failed", { user_id: userId, error: String((e as Error)?.stack ?? e) });
      }
    }
  }

  /** 400 M_KEY_TOO_LARGE / M_INVALID_PARAM for a key name profile.yaml does not allow. */
  checkKeyName(key: string): void {
    if (utf8Length(key) > MAX_KEY_BYTES) throw new MatrixError("M_KEY_TOO_LARGE", "Profile keys are at most 255 bytes", 400);
    if (!KEY_NAME.test(key)) throw new MatrixError("M_INVALID_PARAM", `Invalid profile key ${key}`);
  }

  private async requireKnownUser(userId: string): Promise<void> {
    const parsed = parseUserId(userId);
    if (!parsed.ok) throw new MatrixError("M_INVALID_PARAM", `Invalid user ID: ${parsed.error}`);
    if (parsed.value.serverName !== this.serverName || !(await this.accounts.userExists(userId))) throw new MatrixError("M_NOT_FOUND", "Profile not found");
  }

  private requireOwnProfile(requesterId: string, userId: string): void {
    if (requesterId !== userId) throw new MatrixError("M_FORBIDDEN", "You cannot change another user's profile");
  }
}
