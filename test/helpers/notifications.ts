// A NotificationService over real notification tables and a stand-in room store (members, snapshot,
// transactions), for tests of what it records: every user has the default push rules, every room
// is of version 10 with no power levels read, and the clock stands at 1000.
import { NotificationService } from "../../src/services/push/notification-service";
import { defaultPushRules } from "../../src/protocol/push-rules";
import { roomVersion } from "../../src/protocol/room-versions";
import type { Stores } from "../../src/storage/open";

/** The parts of the room event store the service reads here. */
export interface StandInRoomStore {
  currentStateSnapshot(): Promise<number>;
  currentMemberships(): Promise<Map<string, string>>;
  maxStreamOrdering(): Promise<number>;
  atomically<T>(fn: () => Promise<T>, options?: unknown): Promise<T>;
}

export function notificationServiceOver(stores: Stores, store: StandInRoomStore): NotificationService {
  return new NotificationService({
    serverName: "here",
    access: { versionOf: async () => roomVersion("10")!, currentAuthState: async () => () => undefined } as never,
    store: store as never,
    clientStore: {} as never,
    notifications: stores.notifications,
    pushRules: { ruleset: async (u: string) => defaultPushRules(u) } as never,
    clock: { now: () => 1000 } as never,
    timer: {} as never,
    logger: { log: () => {} } as never,
  });
}
