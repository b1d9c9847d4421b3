// Users erased on deactivation (client-server-api "Account deactivation", `erase`): their events are
// served pruned to users who join a room after the erasure, and to other servers. Every event served
// asks about its sender, so the list is held in memory: loaded once at start, added to on each
// erasure once it has committed. It only grows, and only through this server.
import type { AccountDataStore, ErasedUserStore } from "../../storage/stores";
import type { Clock } from "../runtime";

export class ErasedUsers {
  private readonly erased = new Set<string>();

  constructor(
    private readonly store: ErasedUserStore,
    private readonly accountData: Pick<AccountDataStore, "deleteAllAccountData">,
    private readonly atomically: <T>(fn: () => Promise<T>) => Promise<T>,
    private readonly clock: Clock,
  ) {}

  /** Reads the list from the database; before the first request. */
  async load(): Promise<void> {
    for (const userId of await this.store.allErased()) this.erased.add(userId);
  }

  has(userId: string): boolean {
    return this.erased.size > 0 && this.erased.has(userId);
  }

  /**
   * Erases the user: records the erasure and deletes their account data (the spec's "non-event data
   * associated with the user"), in one transaction.
   */
  async erase(userId: string): Promise<void> {
    await this.atomically(async () => {
      await this.store.markErased(userId, this.clock.now());
      await this.accountData.deleteAllAccountData(userId);
    });
    this.erased.add(userId);
  }
}
