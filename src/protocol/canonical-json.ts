// Canonical JSON (content/appendices.md, "Canonical JSON"): the byte form that is hashed and signed.
// Keys sorted by code point, no whitespace, raw UTF-8, only `"`, `\` and U+0000..U+001F escaped.
//
// Strict mode is the spec's grammar (room versions 6+): integers within ±(2^53-1) only. Non-strict
// mode reproduces what Synapse hashed in room versions 1-5: floats written as Python's repr and
// integers of any size. Only a LosslessNumber (from `parseJson(text, {lossless: true})`) keeps the
// exact number, so parse v1-v5 PDUs losslessly before hashing them.

import type { ErrCode } from "./errors";
import { LosslessNumber, pythonFloatRepr, type JsonValue } from "./json";

export { LosslessNumber } from "./json";

export interface CanonicalJsonOptions {
  /** Enforce the spec's number rules (room versions 6+). Defaults to true. */
  readonly strict?: boolean;
}

export type CanonicalJsonProblem =
  | "float" // a number with a fraction or exponent; only room versions 1-5 allow it
  | "integer-out-of-range" // beyond ±(2^53-1); only room versions 1-5 allow it
  | "non-finite" // NaN or ±Infinity: never JSON
  | "lone-surrogate" // a string that cannot be encoded as UTF-8
  | "unsupported-type" // undefined, a function, a bigint, a Date, a Map...
  | "too-deep"; // nesting deeper than the stack allows

/** A value that cannot be written as canonical JSON; the HTTP layer maps it to 400 M_BAD_JSON. */
export class CanonicalJsonError extends Error {
  readonly errcode: ErrCode = "M_BAD_JSON";
  readonly problem: CanonicalJsonProblem;
  /** Where in the value the problem is, outermost key first. */
  readonly path: (string | number)[] = [];
  private readonly detail: string;

  constructor(problem: CanonicalJsonProblem, detail: string) {
    super(detail);
    this.name = "CanonicalJsonError";
    this.problem = problem;
    this.detail = detail;
  }

  /** Records one more enclosing key while the error travels out of the value. */
  within(key: string | number): this {
    this.path.unshift(key);
    this.message = `${this.detail} at ${formatPath(this.path)}`;
    return this;
  }
}

/** Text that is not JSON at all; the HTTP layer maps it to 400 M_NOT_JSON. */
export class JsonParseError extends Error {
  readonly errcode: ErrCode = "M_NOT_JSON";

  constructor(message: string) {
    super(message);
    this.name = "JsonParseError";
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const UTF8 = new TextEncoder();

/** The canonical JSON text of a value. Throws CanonicalJsonError. */
export function encodeCanonicalJson(value: unknown, options: CanonicalJsonOptions = {}): string {
  let text: string | undefined;
  try {
    const ordered = inCanonicalOrder(value);
    if (ordered !== undefined) text = JSON.stringify(ordered);
  } catch (error) {
    // The fast way recurses in deeper frames than encodeValue: a value it cannot go through may
    // still be within what encodeValue can (which says whether it is too deep).
    if (!(error instanceof RangeError)) throw error;
  }
  return text ?? notTooDeep(() => encodeValue(value, options.strict ?? true));
}

/** A stack overflow while encoding is a value nested too deeply. */
function notTooDeep(encode: () => string): string {
  try {
    return encode();
  } catch (error) {
    throw error instanceof RangeError ? new CanonicalJsonError("too-deep", "JSON nested too deeply") : error;
  }
}

/** The canonical JSON of a value as the UTF-8 bytes that get hashed and signed. */
export function canonicalJsonBytes(value: unknown, options: CanonicalJsonOptions = {}): Uint8Array {
  return UTF8.encode(encodeCanonicalJson(value, options));
}

/** Why a value is not canonical JSON, or undefined when it is. */
export function validateCanonicalJson(value: unknown, options: CanonicalJsonOptions = {}): CanonicalJsonError | undefined {
  try {
    encodeCanonicalJson(value, options);
    return undefined;
  } catch (error) {
    if (error instanceof CanonicalJsonError) return error;
    throw error;
  }
}

/**
 * Orders two strings by Unicode code point, as canonical JSON sorts keys. JavaScript's `<` and
 * default `sort()` compare UTF-16 code units, which puts astral characters (surrogate pairs,
 * 0xD800..0xDFFF) before U+E000..U+FFFF; ranking code units fixes exactly that case.
 */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codeUnitRank(x) - codeUnitRank(y);
  }
  return a.length - b.length;
}

function codeUnitRank(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit < 0xe000 ? unit + 0x2000 : unit - 0x800;
}

/**
 * The text of a value as encodeValue writes it, for the tests to hold encodeCanonicalJson's faster
 * way against (as @noble/ed25519 is the reference for node:crypto's).
 */
export function encodeCanonicalJsonReference(value: unknown, options: CanonicalJsonOptions = {}): string {
  return notTooDeep(() => encodeValue(value, options.strict ?? true));
}

/**
 * The common value, made ready for the engine's own JSON.stringify (several times faster than
 * building the text piece by piece): plain objects, arrays, well-formed strings, safe integers,
 * booleans and null. It comes back as a copy (fresh arrays, and fresh objects with their keys set in
 * canonical order), for JSON.stringify to write exactly the canonical text (encodeString says why
 * for strings). A copy, not the value itself, so that JSON.stringify meets only data properties
 * read once each, as encodeValue reads them: no toJSON method (of an object, an array subclass,
 * or a non-enumerable one), no getter read a second time. Undefined for anything else, which
 * encodeValue then writes (or says what is wrong with): numbers that are not safe integers
 * (LosslessNumber, floats), lone surrogates, keys an object would not keep in the order given
 * (array indexes, which every object puts first; keys with surrogates, whose UTF-16 order is not
 * their code point order; "__proto__"), undefined in an array, any other type, and everything while
 * a toJSON method is on Object.prototype or Array.prototype (JSON.stringify would call it). A getter
 * or proxy met before the fast way gives up is read again by encodeValue, which may then see another
 * value: what gets encoded comes from JSON.parse or from object literals, which have neither.
 */
export function inCanonicalOrder(value: unknown): unknown {
  if ("toJSON" in Object.prototype || "toJSON" in Array.prototype) return undefined;
  return ordered(value);
}

function ordered(value: unknown): unknown {
  switch (typeof value) {
    case "string":
      return isWellFormed(value) ? value : undefined;
    case "number":
      return Number.isSafeInteger(value) ? value : undefined;
    case "boolean":
      return value;
    case "object": {
      if (value === null) return null;
      if (Array.isArray(value)) {
        const copy: unknown[] = new Array(value.length);
        for (let i = 0; i < value.length; i++) {
          const member = ordered(value[i]);
          if (member === undefined) return undefined;
          copy[i] = member;
        }
        return copy;
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) return undefined;
      const object = value as Record<string, unknown>;
      const keys = Object.keys(object);
      let sorted = true;
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i]!;
        if (!plainKey(key)) return undefined;
        if (i > 0 && keys[i - 1]! > key) sorted = false;
      }
      if (!sorted) keys.sort();
      const copy: Record<string, unknown> = {};
      for (const key of keys) {
        const member = object[key];
        if (member === undefined) continue; // absent, as JSON.stringify and encodeObject leave it
        const inOrder = ordered(member);
        if (inOrder === undefined) return undefined;
        copy[key] = inOrder;
      }
      return copy;
    }
    default:
      return undefined;
  }
}

/**
 * A key an object keeps in the position it is set at, and whose UTF-16 order is its code point order:
 * not an array index (those come first, in numeric order, in every object), no surrogates, and not
 * "__proto__" (which a fresh object would take as its prototype, not a key).
 */
function plainKey(key: string): boolean {
  if (isArrayIndex(key) || key === "__proto__") return false;
  for (let i = 0; i < key.length; i++) {
    const unit = key.charCodeAt(i);
    if (unit >= 0xd800 && unit < 0xe000) return false;
  }
  return true;
}

/** "0", "7", "4294967294": the integers below 2^32 - 1 written without leading zeros, as objects order them first. */
function isArrayIndex(key: string): boolean {
  if (key.length === 0 || key.length > 10) return false;
  for (let i = 0; i < key.length; i++) {
    const unit = key.charCodeAt(i);
    if (unit < 0x30 || unit > 0x39) return false;
  }
  return (key.length === 1 || key.charCodeAt(0) !== 0x30) && Number(key) < 4294967295;
}

function encodeValue(value: unknown, strict: boolean): string {
  switch (typeof value) {
    case "string":
      return encodeString(value);
    case "number":
      return encodeNumber(value, strict);
    case "boolean":
      return value ? "true" : "false";
    case "object":
      if (value === null) return "null";
      if (Array.isArray(value)) return encodeArray(value, strict);
      if (value instanceof LosslessNumber) return encodeLosslessNumber(value, strict);
      if (isPlainObject(value)) return encodeObject(value, strict);
  }
  throw new CanonicalJsonError("unsupported-type", `cannot encode ${describe(value)} as JSON`);
}

function encodeString(value: string): string {
  if (!isWellFormed(value)) {
    throw new CanonicalJsonError("lone-surrogate", "string contains an unpaired surrogate, which UTF-8 cannot encode");
  }
  // For well-formed strings JSON.stringify escapes exactly what canonical JSON escapes: `"`, `\`,
  // U+0000..U+001F (with \b \t \n \f \r short forms, \u00xx in lowercase otherwise), nothing else.
  return JSON.stringify(value);
}

// String.prototype.isWellFormed (ES2024) is native in Bun; the project's lib setting predates it.
const isWellFormed = (value: string): boolean => (value as unknown as { isWellFormed(): boolean }).isWellFormed();

function encodeNumber(value: number, strict: boolean): string {
  if (!Number.isFinite(value)) throw new CanonicalJsonError("non-finite", `${value} is not a JSON number`);
  if (Number.isSafeInteger(value)) return String(value); // String(-0) is "0", as the spec requires
  if (strict) {
    if (Number.isInteger(value)) throw new CanonicalJsonError("integer-out-of-range", `JSON integer out of range: ${value}`);
    throw new CanonicalJsonError("float", `bad JSON value: float ${value}`);
  }
  // Without the source text an integral double is written as Python would write the int it came from.
  return Number.isInteger(value) ? BigInt(value).toString() : pythonFloatRepr(value);
}

function encodeLosslessNumber(value: LosslessNumber, strict: boolean): string {
  if (!value.isFinite) throw new CanonicalJsonError("non-finite", `${value.raw} is out of range for a float`);
  if (!strict) return value.toPythonJson();
  if (!value.isIntegerLiteral) throw new CanonicalJsonError("float", `bad JSON value: float ${value.raw}`);
  const integer = BigInt(value.raw);
  if (integer > MAX_SAFE || integer < -MAX_SAFE) {
    throw new CanonicalJsonError("integer-out-of-range", `JSON integer out of range: ${value.raw}`);
  }
  return integer.toString();
}

function encodeArray(value: unknown[], strict: boolean): string {
  const parts: string[] = new Array(value.length);
  for (let i = 0; i < value.length; i++) {
    try {
      parts[i] = encodeValue(value[i], strict);
    } catch (error) {
      throw error instanceof CanonicalJsonError ? error.within(i) : error;
    }
  }
  return `[${parts.join(",")}]`;
}

function encodeObject(value: Record<string, unknown>, strict: boolean): string {
  const keys = Object.keys(value).sort(compareCodePoints);
  const parts: string[] = [];
  for (const key of keys) {
    const member = value[key];
    // Like JSON.stringify (and so like what goes over the wire), undefined members are absent.
    if (member === undefined) continue;
    try {
      parts.push(`${encodeString(key)}:${encodeValue(member, strict)}`);
    } catch (error) {
      throw error instanceof CanonicalJsonError ? error.within(key) : error;
    }
  }
  return `{${parts.join(",")}}`;
}

function isPlainObject(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value: unknown): string {
  if (typeof value !== "object" || value === null) return `a value of type ${typeof value}`;
  return `an instance of ${value.constructor?.name ?? "an unknown class"}`;
}

function formatPath(path: (string | number)[]): string {
  return path.map((key) => (typeof key === "number" ? `[${key}]` : `.${key}`)).join("").replace(/^\./, "") || "top level";
}

export interface ParseJsonOptions {
  /**
   * Keep every number that a double cannot carry faithfully (any literal with a fraction or an
   * exponent, and integers beyond ±(2^53-1)) as a LosslessNumber. Use it for room versions 1-5.
   */
  readonly lossless?: boolean;
  /** Reject those same numbers with a CanonicalJsonError (room versions 6+, M_BAD_JSON). */
  readonly strict?: boolean;
}

type ReviverContext = { source?: string };

/**
 * Parses JSON text. Duplicate keys keep the last value, as Python's parser does. Throws
 * JsonParseError for text that is not JSON, CanonicalJsonError for numbers refused in strict mode.
 */
export function parseJson(text: string, options: ParseJsonOptions = {}): JsonValue {
  const { lossless = false, strict = false } = options;
  const reviver = strict ? strictNumber : lossless ? losslessNumber : undefined;
  if (reviver !== undefined && !HAS_SOURCE_TEXT_ACCESS) {
    throw new Error("this runtime lacks JSON.parse source text access, needed to read numbers losslessly");
  }
  try {
    return JSON.parse(text, reviver as Parameters<typeof JSON.parse>[1]) as JsonValue;
  } catch (error) {
    if (error instanceof CanonicalJsonError) throw error;
    if (error instanceof RangeError) throw new JsonParseError("JSON nested too deeply");
    throw new JsonParseError(error instanceof Error ? error.message : String(error));
  }
}

/** Parses JSON from UTF-8 bytes (e.g. a request body), refusing invalid UTF-8 as not JSON. */
export function parseJsonBytes(bytes: Uint8Array, options: ParseJsonOptions = {}): JsonValue {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new JsonParseError("request body is not valid UTF-8");
  }
  return parseJson(text, options);
}

/** Number literals a double represents exactly as Python would read them: plain safe integers. */
function isSafeIntegerLiteral(source: string, value: number): boolean {
  return Number.isSafeInteger(value) && !/[.eE]/.test(source);
}

// TC39 "JSON.parse source text access": revivers see each number's literal text (Bun has it).
const HAS_SOURCE_TEXT_ACCESS = (() => {
  let source: string | undefined;
  JSON.parse("1.0", ((_key: string, value: unknown, context?: ReviverContext) => {
    source = context?.source;
    return value;
  }) as Parameters<typeof JSON.parse>[1]);
  return source === "1.0";
})();

function losslessNumber(this: unknown, _key: string, value: unknown, context?: ReviverContext): unknown {
  if (typeof value !== "number") return value;
  const source = (context as Required<ReviverContext>).source;
  if (isSafeIntegerLiteral(source, value)) return value === 0 ? 0 : value; // "-0" is the integer 0
  return new LosslessNumber(source);
}

function strictNumber(this: unknown, key: string, value: unknown, context?: ReviverContext): unknown {
  if (typeof value !== "number") return value;
  const source = (context as Required<ReviverContext>).source;
  if (isSafeIntegerLiteral(source, value)) return value === 0 ? 0 : value;
  const error = /[.eE]/.test(source)
    ? new CanonicalJsonError("float", `bad JSON value: float ${source}`)
    : new CanonicalJsonError("integer-out-of-range", `JSON integer out of range: ${source}`);
  throw key === "" ? error : error.within(key);
}
