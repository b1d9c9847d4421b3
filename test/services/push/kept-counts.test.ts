// A kept unread count answers for an earlier position (a /sync whose position was taken before the
// newest notifications) from the notifications it took in one by one, or says it cannot.
import { expect, test } from "bun:test";
import { keptUpTo, type KeptCounts } from "../../../src/services/push/notification-service";

// Counted at 10 (three notifications, the newest at 10), then 12 (highlight), 15 and 20 taken in.
const kept: KeptCounts = {
  roomVersion: 0,
  counts: { notifications: 6, highlights: 2, newest: 20 },
  recent: [
    { ordering: 12, highlight: true },
    { ordering: 15, highlight: false },
    { ordering: 20, highlight: false },
  ],
  base: 10,
};

test("at or after its newest notification (or unbounded), the count itself", () => {
  expect(keptUpTo(kept, undefined)).toBe(kept.counts);
  expect(keptUpTo(kept, 20)).toBe(kept.counts);
  expect(keptUpTo(kept, 99)).toBe(kept.counts);
});

test("before some of the recent notifications, the count less those after the position", () => {
  expect(keptUpTo(kept, 19)).toEqual({ notifications: 5, highlights: 2, newest: 15 });
  expect(keptUpTo(kept, 15)).toEqual({ notifications: 5, highlights: 2, newest: 15 });
  expect(keptUpTo(kept, 12)).toEqual({ notifications: 4, highlights: 2, newest: 12 });
  expect(keptUpTo(kept, 11)).toEqual({ notifications: 3, highlights: 1, newest: 10 });
  expect(keptUpTo(kept, 10)).toEqual({ notifications: 3, highlights: 1, newest: 10 });
});

test("before what was counted, nothing it can tell: a query", () => {
  expect(keptUpTo(kept, 9)).toBeUndefined();
  expect(keptUpTo({ ...kept, recent: [], base: 20 }, 19)).toBeUndefined();
});

test("a count from zero (nothing was unread) holds at any earlier position", () => {
  const fromZero: KeptCounts = { roomVersion: 0, counts: { notifications: 1, highlights: 0, newest: 7 }, recent: [{ ordering: 7, highlight: false }], base: 0 };
  expect(keptUpTo(fromZero, 3)).toEqual({ notifications: 0, highlights: 0, newest: 0 });
});
