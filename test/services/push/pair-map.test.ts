import { expect, test } from "bun:test";
import { PairMap } from "../../../src/services/push/pair-map";

test("values per (user, room): set, replace, delete and clear keep the count of pairs", () => {
  const pairs = new PairMap<number>();
  pairs.set("@a:x", "!r:x", 1);
  pairs.set("@b:x", "!r:x", 2);
  pairs.set("@a:x", "!s:x", 3);
  pairs.set("@a:x", "!r:x", 4);
  expect(pairs.size).toBe(3);
  expect([pairs.get("@a:x", "!r:x"), pairs.get("@b:x", "!r:x"), pairs.get("@a:x", "!s:x"), pairs.get("@b:x", "!s:x")]).toEqual([4, 2, 3, undefined]);
  expect(pairs.has("@b:x", "!r:x")).toBe(true);
  expect(pairs.delete("@b:x", "!r:x")).toBe(true);
  expect(pairs.delete("@b:x", "!r:x")).toBe(false);
  expect(pairs.delete("@b:x", "!nowhere:x")).toBe(false);
  expect(pairs.has("@b:x", "!r:x")).toBe(false);
  expect(pairs.size).toBe(2);
  pairs.clear();
  expect(pairs.size).toBe(0);
  expect(pairs.get("@a:x", "!r:x")).toBeUndefined();
});
