import { describe, expect, test } from "bun:test";
import { SyncNotifier } from "../../../src/services/sync/notifier";
import { formatSyncToken, parseSyncToken } from "../../../src/services/sync/sync-token";
import { parseStreamToken } from "../../../src/services/rooms/stream-token";
import type { StoredEvent } from "../../../src/storage/stores";

function harness(memberships: Record<string, Record<string, string>>) {
  const listeners = { event: [] as ((roomId: string, stored: StoredEvent) => void)[], typing: [] as ((roomId: string) => void)[], receipt: [] as ((roomId: string) => void)[], data: [] as ((userId: string) => void)[] };
  const notifier = new SyncNotifier({
    onEvent: (l) => listeners.event.push(l),
    onTyping: (l) => listeners.typing.push(l),
    onReceipt: (l) => listeners.receipt.push(l),
    onAccountData: (l) => listeners.data.push(l),
    memberships: async (roomId) => new Map(Object.entries(memberships[roomId] ?? {})),
  });
  return { notifier, listeners };
}

const message = (sender: string) => ({ type: "m.room.message", sender, stateKey: undefined }) as unknown as StoredEvent;

describe("SyncNotifier", () => {
  test("wakes the joined, invited and knocking users of a room only; typing only the joined", async () => {
    const { notifier, listeners } = harness({ "!r": { "@a": "join", "@i": "invite", "@k": "knock", "@l": "leave" } });
    const waits = Object.fromEntries(["@a", "@i", "@k", "@l", "@x"].map((u) => [u, notifier.waitFor(u, 200)]));
    listeners.event[0]!("!r", message("@a"));
    expect(await waits["@a"]!.promise).toBe("woken");
    expect(await waits["@i"]!.promise).toBe("woken");
    expect(await waits["@k"]!.promise).toBe("woken");
    expect(await waits["@l"]!.promise).toBe("timeout");
    expect(await waits["@x"]!.promise).toBe("timeout");
    expect(notifier.waitingCount()).toBe(0);

    const joined = notifier.waitFor("@a", 100);
    const invited = notifier.waitFor("@i", 100);
    listeners.typing[0]!("!r");
    expect(await joined.promise).toBe("woken");
    expect(await invited.promise).toBe("timeout");

    // A member event also wakes its target (a user just invited, kicked or banned).
    const target = notifier.waitFor("@l", 200);
    listeners.event[0]!("!r", { type: "m.room.member", sender: "@a", stateKey: "@l" } as unknown as StoredEvent);
    expect(await target.promise).toBe("woken");
  });

  test("account data wakes its user; abort and stop release waits", async () => {
    const { notifier, listeners } = harness({});
    const w = notifier.waitFor("@a", 10_000);
    listeners.data[0]!("@a");
    expect(await w.promise).toBe("woken");
    const controller = new AbortController();
    const aborted = notifier.waitFor("@a", 10_000, controller.signal);
    controller.abort();
    expect(await aborted.promise).toBe("aborted");
    const held = notifier.waitFor("@b", 10_000);
    expect(notifier.waitingCount()).toBe(1);
    notifier.stop();
    expect(await held.promise).toBe("stopped");
    expect(await notifier.waitFor("@b", 10_000).promise).toBe("stopped");
    expect(notifier.waitingCount()).toBe(0);
  });
});

describe("sync tokens", () => {
  test("round-trip; malformed ones are M_INVALID_PARAM; /messages reads their event position", () => {
    const p = { events: 12, accountData: 3, receipts: 4, typing: 5, boot: "k3x9" };
    expect(parseSyncToken(formatSyncToken(p))).toEqual(p);
    for (const bad of ["", "s1", "s1_2_3_4", "x1_2_3_4_b", "s1_2_3_4_B!", "s-1_2_3_4_b"]) expect(() => parseSyncToken(bad)).toThrow(expect.objectContaining({ errcode: "M_INVALID_PARAM" }));
    expect(parseStreamToken(formatSyncToken(p))).toBe(12);
    expect(parseStreamToken("s7")).toBe(7);
  });
});
