// The topological order behind the reverse topological power ordering, and behind the order in
// which a backfilled batch is stored: an event after every event of the set it names, ties by key.
import { describe, expect, test } from "bun:test";
import { Yielder, topologicalOrder } from "../../../src/protocol/state-res";

const byDepth = (depths: Record<string, number>) => (eventId: string) => ({ eventId, depth: depths[eventId]! });
const compare = (x: { eventId: string; depth: number }, y: { eventId: string; depth: number }) => x.depth - y.depth || (x.eventId < y.eventId ? -1 : 1);

describe("topologicalOrder", () => {
  test("an event whose depth ties with the one it follows still comes after it (a room's power levels after its creator's join)", async () => {
    // $a-pl builds on $join, both at depth 2; by depth and ID alone $a-pl would come first.
    const graph = new Map([["$create", []], ["$join", ["$create"]], ["$a-pl", ["$join"]], ["$msg", ["$a-pl"]]]);
    const order = await topologicalOrder(graph, byDepth({ $create: 1, $join: 2, "$a-pl": 2, $msg: 3 }), compare, new Yielder());
    expect(order).toEqual(["$create", "$join", "$a-pl", "$msg"]);
  });

  test("prev events outside the set are ignored; independent events by key; a cycle is kept, last", async () => {
    const graph = new Map([["$b", ["$outside"]], ["$a", ["$outside"]], ["$x", ["$y"]], ["$y", ["$x"]]]);
    expect(await topologicalOrder(graph, byDepth({ $a: 5, $b: 5, $x: 1, $y: 2 }), compare, new Yielder())).toEqual(["$a", "$b", "$x", "$y"]);
  });
});
