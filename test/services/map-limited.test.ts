// mapLimited: at most `limit` items at a time, results in item order, and nothing new after a failure.
import { expect, test } from "bun:test";
import { mapLimited } from "../../src/services/runtime";

test("results in item order, at most `limit` running at once", async () => {
  let running = 0;
  let most = 0;
  const results = await mapLimited([5, 1, 4, 2, 3, 0], 3, async (n) => {
    most = Math.max(most, ++running);
    await Bun.sleep(n);
    running--;
    return n * 10;
  });
  expect(results).toEqual([50, 10, 40, 20, 30, 0]);
  expect(most).toBe(3);
});

test("after a failure no further item starts; the failure is thrown", async () => {
  const started: number[] = [];
  const outcome = mapLimited([0, 1, 2, 3, 4, 5, 6, 7], 2, async (n) => {
    started.push(n);
    await Bun.sleep(1);
    if (n === 1) throw new Error("item 1 failed");
    return n;
  });
  expect(await outcome.catch((e: Error) => e.message)).toBe("item 1 failed");
  await Bun.sleep(20);
  // 0 and 1 ran together; 0's worker took 2 before 1 failed; nothing after.
  expect(started).toEqual([0, 1, 2]);
});
