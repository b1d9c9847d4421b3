// JSON value types shared by the protocol code.

/**
 * A JSON number kept as its source text, because a double cannot carry it faithfully.
 *
 * Room versions 1-5 allow floats and integers beyond ±(2^53-1), and Synapse hashes and signs them
 * the way Python writes them (`1.0`, `1e+100`, `1e-07`, `-0.0`). `JSON.parse` turns `1.0` into `1`,
 * so the event's hash and ID could not be recomputed. The lossless parser keeps such numbers as
 * instances of this class; the canonical JSON encoder writes them back as Python would.
 */
export class LosslessNumber {
  /** The number exactly as it appeared in the JSON text, e.g. "1.0", "1E-7", "18446744073709551616". */
  readonly raw: string;

  constructor(raw: string) {
    if (!JSON_NUMBER.test(raw)) throw new TypeError(`not a JSON number: ${JSON.stringify(raw)}`);
    this.raw = raw;
  }

  /** Written without fraction or exponent: Python parses it as an (unbounded) int. */
  get isIntegerLiteral(): boolean {
    return !/[.eE]/.test(this.raw);
  }

  /** False for floats Python would parse as infinity (e.g. "1e400"), which no encoder accepts. */
  get isFinite(): boolean {
    return this.isIntegerLiteral || Number.isFinite(Number(this.raw));
  }

  /** The text Synapse's canonical JSON writes for this number (Python `int` or `float` repr). */
  toPythonJson(): string {
    if (this.isIntegerLiteral) return BigInt(this.raw).toString();
    return pythonFloatRepr(Number(this.raw));
  }

  /** The nearest double, for code that only needs the value (comparisons, arithmetic). */
  valueOf(): number {
    return Number(this.raw);
  }

  toString(): string {
    return this.raw;
  }

  /** JSON.stringify (e.g. serving an event to a client) writes the same text Synapse would. */
  toJSON(): unknown {
    return rawJson(this.toPythonJson());
  }
}

const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

// JSON.rawJSON (TC39 "JSON.parse source text access") lets toJSON emit number text verbatim.
const rawJson = (JSON as unknown as { rawJSON?: (text: string) => unknown }).rawJSON ?? ((text: string) => Number(text));

/**
 * Python's `repr(float)`: the shortest digits that round-trip (as JavaScript picks them too), but
 * written in exponent form when the decimal point would sit before the 4th leading zero or after the
 * 16th digit, with a signed exponent of at least two digits, and always with a fraction otherwise.
 */
export function pythonFloatRepr(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`out of range float values are not JSON compliant: ${x}`);
  const sign = x < 0 || Object.is(x, -0) ? "-" : "";
  const [mantissa, exponentText] = Math.abs(x).toExponential().split("e");
  const digits = mantissa.replace(".", "");
  const exponent = Number(exponentText);
  // Position of the decimal point counted from the first digit (Python's `decpt`).
  const point = exponent + 1;
  if (point > 16 || point < -3) {
    const fraction = digits.length > 1 ? `.${digits.slice(1)}` : "";
    const expSign = exponent < 0 ? "-" : "+";
    return `${sign}${digits[0]}${fraction}e${expSign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
  if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}.0`;
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

export type JsonPrimitive = null | boolean | number | string | LosslessNumber;
export type JsonValue = JsonPrimitive | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof LosslessNumber);
}

/** An object's own member, never one inherited from Object.prototype (keys can come off the wire). */
export function ownMember(object: unknown, key: string): JsonValue | undefined {
  return isJsonObject(object) && Object.hasOwn(object, key) ? object[key] : undefined;
}
