import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { Base64Error, decodeBase64, decodeUrlSafeBase64, encodeBase64, encodeUrlSafeBase64 } from "../../src/protocol/base64";

const ascii = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe("unpadded base64 (spec appendix examples)", () => {
  const examples: [string, string][] = [
    ["", ""],
    ["f", "Zg"],
    ["fo", "Zm8"],
    ["foo", "Zm9v"],
    ["foob", "Zm9vYg"],
    ["fooba", "Zm9vYmE"],
    ["foobar", "Zm9vYmFy"],
  ];
  for (const [plain, encoded] of examples) {
    test(`UNPADDED_BASE64(${JSON.stringify(plain)}) = ${JSON.stringify(encoded)}`, () => {
      expect(encodeBase64(ascii(plain))).toBe(encoded);
      expect(encodeUrlSafeBase64(ascii(plain))).toBe(encoded);
      expect(text(decodeBase64(encoded))).toBe(plain);
      expect(text(decodeUrlSafeBase64(encoded))).toBe(plain);
    });
  }
});

describe("base64 alphabets", () => {
  const bytes = Uint8Array.from([0xfb, 0xff, 0xbf, 0xfe]);

  test("standard uses + and /, URL-safe uses - and _", () => {
    expect(encodeBase64(bytes)).toBe("+/+//g");
    expect(encodeUrlSafeBase64(bytes)).toBe("-_-__g");
    expect(decodeBase64("+/+//g")).toEqual(bytes);
    expect(decodeUrlSafeBase64("-_-__g")).toEqual(bytes);
  });

  test("each decoder refuses the other alphabet and junk", () => {
    expect(() => decodeBase64("-_-__g")).toThrow(Base64Error);
    expect(() => decodeUrlSafeBase64("+/+//g")).toThrow(Base64Error);
    for (const junk of ["ab!c", "ab c", "ab\nc", "Zm9v Yg"]) expect(() => decodeBase64(junk)).toThrow(Base64Error);
  });

  test("padded input is accepted, wrong padding is not", () => {
    expect(text(decodeBase64("Zg=="))).toBe("f");
    expect(text(decodeBase64("Zm8="))).toBe("fo");
    expect(text(decodeUrlSafeBase64("Zm8="))).toBe("fo");
    for (const bad of ["Zg=", "Zg===", "Zm8==", "Zm9v=", "Z=g=", "=", "Zg=a"]) expect(() => decodeBase64(bad)).toThrow(Base64Error);
  });

  test("a length that leaves 6 spare bits is refused", () => {
    expect(() => decodeBase64("Z")).toThrow(Base64Error);
    expect(() => decodeBase64("Zm9vY")).toThrow(Base64Error);
  });

  test("non-zero trailing bits are ignored, as Python's decoder does (the spec's example seed has them)", () => {
    const seed = decodeBase64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1");
    expect(seed.length).toBe(32);
    expect(encodeBase64(seed)).toBe("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA0");
  });

  test("round-trips random bytes of every length mod 3", () => {
    for (let length = 0; length < 70; length++) {
      const bytes = new Uint8Array(randomBytes(length));
      expect(decodeBase64(encodeBase64(bytes))).toEqual(bytes);
      expect(decodeUrlSafeBase64(encodeUrlSafeBase64(bytes))).toEqual(bytes);
      expect(encodeBase64(bytes)).toBe(Buffer.from(bytes).toString("base64").replace(/=+$/, ""));
    }
  });

  test("encodes a view into a larger buffer without reading outside it", () => {
    const backing = Uint8Array.from([0, 1, 2, 3, 4, 5]);
    expect(encodeBase64(backing.subarray(2, 4))).toBe(encodeBase64(Uint8Array.from([2, 3])));
  });

  test("returns plain Uint8Arrays", () => {
    expect(Object.getPrototypeOf(decodeBase64("Zm9v"))).toBe(Uint8Array.prototype);
  });
});
