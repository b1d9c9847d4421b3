// encodeCanonicalJson writes common values with the engine's JSON.stringify, after putting their keys
// in canonical order (inCanonicalOrder), and leaves the rest to the encoder that writes every value
// itself (encodeCanonicalJsonReference). The two must agree on every value: the same text, or the same
// refusal with the same path.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CanonicalJsonError, encodeCanonicalJson, encodeCanonicalJsonReference, inCanonicalOrder, parseJson } from "../../src/protocol/canonical-json";
import { LosslessNumber } from "../../src/protocol/json";

type Outcome = { text: string } | { problem: string; path: (string | number)[] };

function outcome(encode: () => string): Outcome {
  try {
    return { text: encode() };
  } catch (error) {
    if (error instanceof CanonicalJsonError) return { problem: error.problem, path: error.path };
    throw error;
  }
}

function expectSameAsReference(value: unknown): void {
  for (const strict of [true, false]) {
    expect(outcome(() => encodeCanonicalJson(value, { strict }))).toEqual(outcome(() => encodeCanonicalJsonReference(value, { strict })));
  }
}

/** A small seeded generator (mulberry32), so a failure names a value that can be made again. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Keys that sort alike by UTF-16 and by code point, and the ones that do not or that objects reorder.
const KEYS = ["a", "b", "B", "aa", "", "é", "\u00ff", "\ue000", "\uffff", "\u{1f600}", "\u{10000}", "10", "2", "0", "01", "-1", "1.5", "4294967294", "4294967295", "1a", "127.0.0.1:8448", "__proto__", "constructor", "toJSON", "hashes", "signatures", "content", "type"];
const STRINGS = ["", "plain", "quote \" and \\ backslash", "\u0000\u0001\u001f\u007f", "\b\f\n\r\t", "\u2028\u2029", "é€\u{1f600}", "\ud800", "x\udc00y"];
const NUMBERS = [0, -0, 1, -1, 42, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, 1.5, -0.25, 1e21, Number.NaN, Number.POSITIVE_INFINITY];

function value(next: () => number, depth: number): unknown {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(next() * list.length)]!;
  const roll = next();
  if (depth > 3 || roll < 0.35) {
    const leaf = next();
    if (leaf < 0.35) return pick(STRINGS);
    if (leaf < 0.65) return pick(NUMBERS);
    if (leaf < 0.72) return new LosslessNumber(pick(["1", "1.0", "9007199254740993", "-5"]));
    if (leaf < 0.8) return next() < 0.5;
    if (leaf < 0.88) return null;
    if (leaf < 0.92) return undefined;
    return pick([10n, new Date(0), new Map(), () => 1, Object.create(null) as object]);
  }
  if (roll < 0.6) return Array.from({ length: Math.floor(next() * 4) }, () => value(next, depth + 1));
  const entries: [string, unknown][] = [];
  for (let n = Math.floor(next() * 5); n > 0; n--) entries.push([pick(KEYS), value(next, depth + 1)]);
  // fromEntries defines each key as data: "__proto__" too, as a received PDU's parse would.
  return Object.fromEntries(entries);
}

describe("canonical JSON: the fast way agrees with the reference encoder", () => {
  test("5,000 generated values, strict and not", () => {
    const next = random(20261205);
    for (let i = 0; i < 5000; i++) expectSameAsReference(value(next, 0));
  });

  test("every PDU and case of the Synapse fixtures", () => {
    const dir = join(import.meta.dir, "../fixtures/synapse");
    let values = 0;
    const visit = (node: unknown): void => {
      if (typeof node !== "object" || node === null) return;
      expectSameAsReference(node);
      values++;
      for (const member of Array.isArray(node) ? node : Object.values(node)) visit(member);
    };
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) visit(parseJson(readFileSync(join(dir, file), "utf8"), { lossless: true }));
    expect(values).toBeGreaterThan(1000);
  });

  test("objects reordered at any depth, keys set in reverse", () => {
    const pdu = { type: "m.room.message", content: { msgtype: "m.text", body: "hi", "m.relates_to": { rel_type: "m.thread", event_id: "$x" } }, auth_events: [{ z: 1, a: 2 }, "$b"], depth: 3 };
    const reversed = (v: unknown): unknown =>
      Array.isArray(v) ? v.map(reversed) : typeof v === "object" && v !== null ? Object.fromEntries(Object.entries(v).reverse().map(([k, m]) => [k, reversed(m)])) : v;
    expect(encodeCanonicalJson(reversed(pdu))).toBe(encodeCanonicalJsonReference(pdu));
    expect(encodeCanonicalJson(reversed(pdu))).toBe('{"auth_events":[{"a":2,"z":1},"$b"],"content":{"body":"hi","m.relates_to":{"event_id":"$x","rel_type":"m.thread"},"msgtype":"m.text"},"depth":3,"type":"m.room.message"}');
  });
});

describe("canonical JSON: what the fast way takes", () => {
  test("a value comes back as a copy, keys in canonical order; the value given is left as it was", () => {
    const value = { type: "t", content: { b: 1, a: 2 }, auth: [{ y: 1, x: 2 }], sorted: { a: [1], b: "x" } };
    const ordered = inCanonicalOrder(value) as Record<string, Record<string, unknown>>;
    expect(ordered).not.toBe(value);
    expect(ordered.sorted).not.toBe(value.sorted);
    expect(ordered.sorted!.a).not.toBe(value.sorted.a);
    expect(JSON.stringify(ordered)).toBe('{"auth":[{"x":2,"y":1}],"content":{"a":2,"b":1},"sorted":{"a":[1],"b":"x"},"type":"t"}');
    expect(Object.keys(value)).toEqual(["type", "content", "auth", "sorted"]);
    expect(Object.keys(value.content)).toEqual(["b", "a"]);
  });

  test("no toJSON method reaches JSON.stringify: an array's own, an array subclass's, a non-enumerable one", () => {
    const array = Object.assign([1, 2], { toJSON: () => "hijack" });
    class Sub extends Array<number> {
      toJSON() {
        return "sub";
      }
    }
    const hidden = Object.defineProperty({ a: 1 }, "toJSON", { value: () => "x", enumerable: false });
    for (const value of [array, Sub.from([1]), hidden, { nested: hidden }, [array]]) expectSameAsReference(value);
    expect(encodeCanonicalJson(array)).toBe("[1,2]");
    expect(encodeCanonicalJson(hidden)).toBe('{"a":1}');
  });

  test("a toJSON method on Object.prototype or Array.prototype sends everything to the reference encoder", () => {
    for (const proto of [Object.prototype, Array.prototype] as Record<string, unknown>[]) {
      proto.toJSON = () => "polluted";
      try {
        expect(inCanonicalOrder({ a: [1] })).toBeUndefined();
        expect(encodeCanonicalJson({ a: [1] })).toBe('{"a":[1]}');
      } finally {
        delete proto.toJSON;
      }
    }
    expect(inCanonicalOrder({ a: [1] })).toBeDefined();
  });

  test("a getter is read once, as the reference reads it", () => {
    const flipping = () => {
      let reads = 0;
      return { get a() {
        return reads++ === 0 ? 1 : "\ud800";
      } };
    };
    expect(encodeCanonicalJson(flipping())).toBe('{"a":1}');
    expect(encodeCanonicalJsonReference(flipping())).toBe('{"a":1}');
  });

  test("a stack overflow in the fast way (its frames are deeper) hands the value to the reference encoder", () => {
    // The first walk of the keys runs out of stack, as the fast way's recursion would on a value
    // nested a little less deeply than the reference can still write.
    let walks = 0;
    const overflowOnce = new Proxy<Record<string, unknown>>(
      { b: 1, a: [2] },
      {
        ownKeys(target) {
          if (walks++ === 0) throw new RangeError("Maximum call stack size exceeded.");
          return Reflect.ownKeys(target);
        },
      },
    );
    expect(encodeCanonicalJson({ v: overflowOnce })).toBe('{"v":{"a":[2],"b":1}}');
    expect(walks).toBe(2);
  });

  test("nesting: written the same way well within the stack, too deep for both far past it", () => {
    const nested = (depth: number) => {
      let value: unknown = 1;
      for (let i = 0; i < depth; i++) value = [value];
      return value;
    };
    expect(encodeCanonicalJson(nested(5_000))).toBe(`${"[".repeat(5_000)}1${"]".repeat(5_000)}`);
    expectSameAsReference(nested(5_000));
    expect(outcome(() => encodeCanonicalJson(nested(1_000_000)))).toEqual({ problem: "too-deep", path: [] });
  });

  test("keys that begin with a digit but are no array index keep their place: a server name, 01, 4294967295", () => {
    const signatures = { "127.0.0.1:8448": { "ed25519:a": "sig" }, "4294967295": {}, "01": 1, "example.org": {} };
    expect(inCanonicalOrder(signatures)).toBeDefined();
    expect(encodeCanonicalJson(signatures)).toBe('{"01":1,"127.0.0.1:8448":{"ed25519:a":"sig"},"4294967295":{},"example.org":{}}');
    expectSameAsReference(signatures);
  });

  test("undefined members are left out, as JSON.stringify and the reference leave them", () => {
    expect(JSON.stringify(inCanonicalOrder({ b: undefined, a: 1 }))).toBe('{"a":1}');
    expect(JSON.stringify(inCanonicalOrder({ a: 1, b: undefined }))).toBe('{"a":1}');
  });

  test.each([
    ["an integer-like key (objects put those first)", { b: 1, "10": 2, "2": 3 }],
    ["the largest array index", { b: 1, "4294967294": 2 }],
    ["the key 0", { b: 1, "0": 2 }],
    ["a key with a surrogate pair (UTF-16 order is not code point order)", { "\u{1f600}": 1, "\ue000": 2 }],
    ["a __proto__ key held as data", Object.fromEntries([["__proto__", 1]])],
    ["a lone surrogate", { a: "\ud800" }],
    ["a float", { a: 1.5 }],
    ["an integer past 2^53", { a: 2 ** 53 }],
    ["a LosslessNumber", { a: new LosslessNumber("1") }],
    ["undefined in an array", [1, undefined]],
    ["a bigint", { a: 1n }],
    ["an object that is not plain", { a: new Date(0) }],
    ["an object without a prototype", { a: Object.create(null) as object }],
  ])("left to the reference encoder: %s", (_name, value) => {
    expect(inCanonicalOrder(value)).toBeUndefined();
    expectSameAsReference(value);
  });

  test("integer-like keys still sort by code point, through the reference encoder", () => {
    expect(encodeCanonicalJson({ b: 1, "10": 2, "2": 3 })).toBe('{"10":2,"2":3,"b":1}');
  });
});
