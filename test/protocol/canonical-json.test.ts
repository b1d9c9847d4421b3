import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  CanonicalJsonError,
  canonicalJsonBytes,
  compareCodePoints,
  encodeCanonicalJson,
  JsonParseError,
  parseJson,
  parseJsonBytes,
  validateCanonicalJson,
} from "../../src/protocol/canonical-json";
import { isJsonObject, LosslessNumber, pythonFloatRepr } from "../../src/protocol/json";
import { loadFixture, type Fixture } from "./synapse-fixtures";

const sha256Base64 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("base64").replace(/=+$/, "");
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

function problemOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (error instanceof CanonicalJsonError) return error.problem;
    if (error instanceof JsonParseError) return "not-json";
    throw error;
  }
  throw new Error("expected an error");
}

describe("canonical JSON: Synapse vectors (test/fixtures/synapse/canonical-json.json)", () => {
  const cases: Fixture[] = loadFixture("canonical-json.json").cases;

  test("the fixture has the documented cases", () => {
    expect(cases.length).toBe(28);
  });

  for (const c of cases.filter((c) => c.canonical !== null)) {
    const pythonOnly = c.valid_matrix_canonical_json === false;
    test(`${c.name}: string, bytes, length and sha256 match`, () => {
      // Spec-valid cases must encode identically whichever way they are parsed; Python-only ones
      // (floats, big integers) need the lossless parser and non-strict encoding.
      const parsings = pythonOnly ? [parseJson(c.input, { lossless: true })] : [parseJson(c.input), parseJson(c.input, { lossless: true })];
      for (const value of parsings) {
        const canonical = encodeCanonicalJson(value, { strict: !pythonOnly });
        expect(canonical).toBe(c.canonical);
        const bytes = canonicalJsonBytes(value, { strict: !pythonOnly });
        if (c.canonical_utf8_hex !== undefined) expect(hex(bytes)).toBe(c.canonical_utf8_hex);
        expect(bytes.length).toBe(c.canonical_utf8_length);
        expect(sha256Base64(bytes)).toBe(c.canonical_sha256_base64);
      }
    });
    if (pythonOnly) {
      test(`${c.name}: refused by the strict encoder and the strict parser`, () => {
        const value = parseJson(c.input, { lossless: true });
        expect(["float", "integer-out-of-range"]).toContain(problemOf(() => encodeCanonicalJson(value)));
        expect(validateCanonicalJson(value)).toBeInstanceOf(CanonicalJsonError);
        expect(validateCanonicalJson(value, { strict: false })).toBeUndefined();
        expect(["float", "integer-out-of-range"]).toContain(problemOf(() => parseJson(c.input, { strict: true })));
      });
    }
  }

  test("lone_surrogate: parses, then the encoder refuses it", () => {
    const c = cases.find((c) => c.name === "lone_surrogate");
    const value = parseJson(c.input);
    expect(problemOf(() => encodeCanonicalJson(value))).toBe("lone-surrogate");
    expect(problemOf(() => encodeCanonicalJson(value, { strict: false }))).toBe("lone-surrogate");
  });

  test("nan and infinity: not JSON, and refused as values too", () => {
    for (const name of ["nan", "infinity"]) {
      const c = cases.find((c) => c.name === name);
      expect(c.canonical).toBeNull();
      expect(problemOf(() => parseJson(c.input))).toBe("not-json");
      expect(problemOf(() => parseJson(c.input, { lossless: true }))).toBe("not-json");
    }
    expect(problemOf(() => encodeCanonicalJson({ a: Number.NaN }, { strict: false }))).toBe("non-finite");
    expect(problemOf(() => encodeCanonicalJson({ a: -Infinity }, { strict: false }))).toBe("non-finite");
  });
});

describe("canonical JSON: the spec appendix examples", () => {
  const examples: [string, string][] = [
    ["{}", "{}"],
    ['{\n    "one": 1,\n    "two": "Two"\n}', '{"one":1,"two":"Two"}'],
    ['{\n    "b": "2",\n    "a": "1"\n}', '{"a":"1","b":"2"}'],
    ['{"b":"2","a":"1"}', '{"a":"1","b":"2"}'],
    [
      '{"auth":{"success":true,"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"medium":"email","address":"john.doe@example.org"},{"medium":"msisdn","address":"123456789"}]}}}',
      '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ],
    ['{"a": "日本語"}', '{"a":"日本語"}'],
    ['{"本": 2, "日": 1}', '{"日":1,"本":2}'],
    ['{"a": "\\u65E5"}', '{"a":"日"}'],
    ['{"a": null}', '{"a":null}'],
    // A double-valued parse turns 1e10 into an integer; the appendix shows that result.
    ['{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'],
  ];
  for (const [input, canonical] of examples) {
    test(canonical, () => {
      expect(encodeCanonicalJson(parseJson(input))).toBe(canonical);
    });
  }
});

describe("canonical JSON encoder", () => {
  test("sorts keys by code point, not UTF-16 code unit", () => {
    expect(encodeCanonicalJson({ "😀": 1, "～": 2, "ﬁ": 3, "\ue000": 4 })).toBe('{"\ue000":4,"ﬁ":3,"～":2,"😀":1}');
    expect(compareCodePoints("😀", "\uffff")).toBeGreaterThan(0);
    expect(compareCodePoints("a", "ab")).toBeLessThan(0);
    expect(compareCodePoints("\ud7ff", "😀")).toBeLessThan(0);
  });

  test("escapes only quote, backslash and C0 controls", () => {
    expect(encodeCanonicalJson("\"\\/\u0000\b\t\n\u000b\f\r\u001f\u007f\u2028")).toBe('"\\"\\\\/\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\u007f\u2028"');
  });

  test("strict mode refuses floats and unsafe integers, with the path", () => {
    const error = validateCanonicalJson({ content: { list: [1, 2.5] } });
    expect(error?.problem).toBe("float");
    expect(error?.path).toEqual(["content", "list", 1]);
    expect(error?.message).toContain("content.list[1]");
    expect(error?.errcode).toBe("M_BAD_JSON");
    expect(validateCanonicalJson({ n: 2 ** 53 })?.problem).toBe("integer-out-of-range");
    expect(validateCanonicalJson({ n: -(2 ** 53) })?.problem).toBe("integer-out-of-range");
    expect(validateCanonicalJson({ n: 2 ** 53 - 1, m: -(2 ** 53 - 1) })).toBeUndefined();
  });

  test("strict mode refuses LosslessNumbers that are floats or out of range, accepts safe integer text", () => {
    expect(validateCanonicalJson({ n: new LosslessNumber("1.0") })?.problem).toBe("float");
    expect(validateCanonicalJson({ n: new LosslessNumber("9007199254740992") })?.problem).toBe("integer-out-of-range");
    expect(encodeCanonicalJson({ n: new LosslessNumber("9007199254740991") })).toBe('{"n":9007199254740991}');
    expect(encodeCanonicalJson({ n: new LosslessNumber("-0") })).toBe('{"n":0}');
  });

  test("non-strict mode writes numbers as Synapse did", () => {
    expect(encodeCanonicalJson([1.5, 2 ** 60, 1e-7], { strict: false })).toBe("[1.5,1152921504606846976,1e-07]");
    expect(encodeCanonicalJson([new LosslessNumber("1.0"), new LosslessNumber("-0.0")], { strict: false })).toBe("[1.0,-0.0]");
    expect(problemOf(() => encodeCanonicalJson([new LosslessNumber("1e400")], { strict: false }))).toBe("non-finite");
  });

  test("refuses values JSON has no form for; drops undefined members like JSON.stringify", () => {
    expect(problemOf(() => encodeCanonicalJson({ a: new Date(0) }))).toBe("unsupported-type");
    expect(problemOf(() => encodeCanonicalJson({ a: 1n }))).toBe("unsupported-type");
    expect(problemOf(() => encodeCanonicalJson([undefined]))).toBe("unsupported-type");
    expect(problemOf(() => encodeCanonicalJson({ a: () => 1 }))).toBe("unsupported-type");
    expect(encodeCanonicalJson({ a: undefined, b: 1 })).toBe('{"b":1}');
    expect(encodeCanonicalJson(Object.assign(Object.create(null), { z: 1, y: 2 }))).toBe('{"y":2,"z":1}');
  });

  test("keeps a __proto__ key as data", () => {
    const value = parseJson('{"__proto__":{"x":1},"a":2}');
    expect(encodeCanonicalJson(value)).toBe('{"__proto__":{"x":1},"a":2}');
  });

  test("deep nesting fails cleanly", () => {
    let deep: unknown = 0;
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(problemOf(() => encodeCanonicalJson(deep))).toBe("too-deep");
  });
});

describe("Python float repr", () => {
  // [JSON literal, Python 3 repr(float(literal))], produced with CPython.
  const table: [string, string][] = [
    ["1.0", "1.0"], ["1.5", "1.5"], ["1e100", "1e+100"], ["1E-7", "1e-07"], ["100.0", "100.0"], ["0.1", "0.1"],
    ["1e16", "1e+16"], ["1e15", "1000000000000000.0"], ["1e2", "100.0"], ["123456789012345680000.0", "1.2345678901234568e+20"],
    ["-0.0", "-0.0"], ["0.0", "0.0"], ["0.0001", "0.0001"], ["0.00001", "1e-05"], ["0.001234", "0.001234"],
    ["5e-324", "5e-324"], ["1.7976931348623157e308", "1.7976931348623157e+308"], ["9999999999999998.0", "9999999999999998.0"],
    ["12345678901234567.0", "1.2345678901234568e+16"], ["1234567890123456.7", "1234567890123456.8"],
    ["0.30000000000000004", "0.30000000000000004"], ["-2.5e-5", "-2.5e-05"], ["3.14159", "3.14159"], ["1e-4", "0.0001"],
    ["1e22", "1e+22"], ["1e21", "1e+21"], ["123.456e5", "12345600.0"], ["-1e-10", "-1e-10"],
    ["2.2250738585072014e-308", "2.2250738585072014e-308"], ["4.35", "4.35"], ["1.23456789e-3", "0.00123456789"],
    ["9007199254740993.0", "9007199254740992.0"], ["1e+2", "100.0"], ["0.5e1", "5.0"], ["-123.0", "-123.0"],
  ];
  for (const [literal, repr] of table) {
    test(`${literal} -> ${repr}`, () => {
      expect(pythonFloatRepr(Number(literal))).toBe(repr);
      expect(new LosslessNumber(literal).toPythonJson()).toBe(repr);
    });
  }

  test("integers of any size are written as Python ints", () => {
    expect(new LosslessNumber("18446744073709551616").toPythonJson()).toBe("18446744073709551616");
    expect(new LosslessNumber("-0").toPythonJson()).toBe("0");
  });
});

describe("parseJson", () => {
  test("default mode is JSON.parse: numbers become doubles", () => {
    expect(parseJson('{"a":1.0,"b":[1e2]}')).toEqual({ a: 1, b: [100] });
  });

  test("lossless mode keeps float and big-integer text, plain safe integers stay numbers", () => {
    const value = parseJson('{"f":1.0,"e":1E-7,"big":18446744073709551616,"safe":9007199254740991,"z":-0}', { lossless: true });
    if (!isJsonObject(value)) throw new Error("expected an object");
    expect(value.f).toBeInstanceOf(LosslessNumber);
    expect((value.f as LosslessNumber).raw).toBe("1.0");
    expect((value.e as LosslessNumber).raw).toBe("1E-7");
    expect((value.big as LosslessNumber).raw).toBe("18446744073709551616");
    expect(value.safe).toBe(9007199254740991);
    expect(Object.is(value.z, 0)).toBe(true);
    expect(isJsonObject(value.f)).toBe(false);
    expect(encodeCanonicalJson(value, { strict: false })).toBe('{"big":18446744073709551616,"e":1e-07,"f":1.0,"safe":9007199254740991,"z":0}');
  });

  test("a LosslessNumber serialises with JSON.stringify as Synapse would write it", () => {
    expect(JSON.stringify({ a: new LosslessNumber("1E2"), b: new LosslessNumber("-0.0") })).toBe('{"a":100.0,"b":-0.0}');
  });

  test("strict mode refuses floats and out-of-range integers as M_BAD_JSON, naming the key", () => {
    let caught: unknown;
    try {
      parseJson('{"content":{"x":1.0}}', { strict: true });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CanonicalJsonError);
    expect((caught as CanonicalJsonError).errcode).toBe("M_BAD_JSON");
    expect((caught as CanonicalJsonError).message).toContain("x");
    expect(problemOf(() => parseJson("[9007199254740992]", { strict: true }))).toBe("integer-out-of-range");
    expect(parseJson("[9007199254740991,-9007199254740991]", { strict: true })).toEqual([9007199254740991, -9007199254740991]);
  });

  test("text that is not JSON is M_NOT_JSON", () => {
    for (const text of ["", "{", "{'a':1}", '{"a":1,}', "NaN", "\ufeff{}", "[1] x", "01"]) {
      let caught: unknown;
      try {
        parseJson(text);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(JsonParseError);
      expect((caught as JsonParseError).errcode).toBe("M_NOT_JSON");
    }
  });

  test("duplicate keys keep the last value, as Python does", () => {
    expect(parseJson('{"a":1,"a":2}')).toEqual({ a: 2 });
  });

  test("bytes must be UTF-8", () => {
    expect(parseJsonBytes(new TextEncoder().encode('{"a":"é"}'))).toEqual({ a: "é" });
    expect(problemOf(() => parseJsonBytes(Uint8Array.from([0x7b, 0x22, 0xff, 0x22, 0x7d])))).toBe("not-json");
  });
});
