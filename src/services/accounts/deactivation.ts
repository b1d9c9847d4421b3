// POST /account/deactivate (client-server-api "Account deactivation"): the user leaves every room
// (joined ones, pending invites rejected, knocks withdrawn), their profile is erased when asked,
// and the account can never log in again, every device logged out. The user ID stays taken, as
// the spec requires (it must not be registered again). The 3PIDs bound through this server are
// unbound from their identity servers first (id_server_unbind_result: "success" when every one
// was, "no-support" when one was not, or when none was bound: then there was no identity server to
// unbind from, the spec's case for "no-support"). The addresses this server validated itself leave
// the account, free for another.
//
// Erasure (`erase: true`) also deletes the user's account data and records the erasure, after which
// their events are served pruned to those who join their rooms later and to other servers
// (ErasedUsers, ClientEventFormatter, FederationRoomReader); nothing is redacted and nothing is sent
// over federation, as the spec says.
import type { Logger } from "../runtime";

export interface DeactivationDeps {
  accounts: { deactivate(userId: string): Promise<void> };
  rooms: { roomsWithMembership(userId: string, membership: string): Promise<string[]> };
  membership: { leave(roomId: string, userId: string, reason: string | undefined): Promise<void> };
  profiles: { eraseProfile(userId: string): Promise<void> };
  erasure: { erase(userId: string): Promise<void> };
  thirdPartyIds: { unbindAll(userId: string): Promise<"success" | "no-support">; removeAllValidated?(userId: string): Promise<void> };
  logger: Logger;
}

export class AccountDeactivation {
  constructor(private readonly deps: DeactivationDeps) {}

  async deactivate(userId: string, erase: boolean): Promise<{ id_server_unbind_result: "success" | "no-support" }> {
    const unbound = await this.deps.thirdPartyIds.unbindAll(userId);
    for (const membership of ["join", "invite", "knock"]) {
      for (const roomId of await this.deps.rooms.roomsWithMembership(userId, membership)) {
        try {
          await this.deps.membership.leave(roomId, userId, undefined);
        } catch (error) {
          // A room that cannot be left now (its server unreachable) does not keep the account alive.
          this.deps.logger.log("warn", "a deactivated user could not leave a room", { user_id: userId, room_id: roomId, error: String(error) });
        }
      }
    }
    if (erase) {
      await this.deps.profiles.eraseProfile(userId);
      await this.deps.erasure.erase(userId);
    }
    await this.deps.thirdPartyIds.removeAllValidated?.(userId);
    await this.deps.accounts.deactivate(userId);
    return { id_server_unbind_result: unbound };
  }
}
