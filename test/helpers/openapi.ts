// Checks real HTTP responses against the Matrix spec's OpenAPI 3.1 descriptions (v1.19), which are
// copied unchanged into test/fixtures/matrix-spec-api/ (upstream `data/` layout, so relative $refs work).
//
//   expectMatchesSpec({ api: "client-server", method: "GET", path: "/_matrix/client/v3/rooms/!r:x/members", status: 200, body });
//
// How it works: the API files of the chosen API are parsed once (Bun.YAML); a concrete path is matched
// against every operation's `servers` basePath + path template (literal segments beat parameters). The
// response object for the exact status is followed through $refs (same file or other files), and its
// `application/json` schema is bundled into one self-contained schema (every $ref target, whether another
// file, a JSON pointer such as `#/components/schemas/x`, or a recursive ref, becomes a `$defs` entry) and
// compiled by Ajv (JSON Schema 2020-12, strict off, ajv-formats). Validators are compiled lazily, once per
// schema location, and cached. Mismatches name the JSON path, Ajv's complaint and the spec file+pointer.
import { readdirSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import Ajv2020 from "ajv/dist/2020";
import type { ErrorObject, ValidateFunction } from "ajv/dist/2020";
import addFormats from "ajv-formats";

export type SpecApi = "client-server" | "server-server" | "key-server";

export interface SpecRequest {
  /** Which API description to search. Omitted: client-server and server-server are both searched. */
  api?: SpecApi;
  method: string;
  /** The concrete request path, e.g. `/_matrix/client/r0/rooms/!r:x/members`; a query string is ignored. */
  path: string;
}

export interface SpecResponseCheck extends SpecRequest {
  status: number;
  body: unknown;
  /** Media type to pick from the response's `content`; default `application/json`. */
  contentType?: string;
}

export interface SpecOperation {
  api: "client-server" | "server-server";
  /** Upper case, e.g. `GET`. */
  method: string;
  /** Full canonical template, basePath included, e.g. `/_matrix/client/v3/rooms/{roomId}/members`. */
  template: string;
  /** The template as matched (differs from `template` for an r0 alias). */
  matchedTemplate: string;
  basePath: string;
  /** The key under `paths` in the spec file, e.g. `/rooms/{roomId}/members`. */
  pathKey: string;
  /** The spec file, relative to the fixture folder, e.g. `api/client-server/rooms.yaml`. */
  file: string;
  operationId?: string;
  summary?: string;
  deprecated: boolean;
  /** Path parameters taken from the concrete path (percent-decoded); empty for a listed operation. */
  params: Record<string, string>;
  /** Documented response status keys, e.g. ["200", "403", "429"]. */
  statuses: string[];
}

/** Root of the copied spec, mirroring upstream `data/`. */
export const SPEC_ROOT = join(import.meta.dir, "..", "fixtures", "matrix-spec-api");

// ---------------------------------------------------------------------------------------------------
// Loading files

const fileCache = new Map<string, unknown>();

/** Parses one fixture file (path relative to SPEC_ROOT, posix separators). */
export function loadSpecFile(rel: string): unknown {
  let doc = fileCache.get(rel);
  if (doc === undefined) {
    const text = readFileSync(join(SPEC_ROOT, rel), "utf8");
    doc = rel.endsWith(".json") ? JSON.parse(text) : Bun.YAML.parse(text);
    fileCache.set(rel, doc);
  }
  return doc;
}

function escapePointerPart(part: string): string {
  return part.replace(/~/g, "~0").replace(/\//g, "~1");
}

function unescapePointerPart(part: string): string {
  return part.replace(/~1/g, "/").replace(/~0/g, "~");
}

function joinPointer(pointer: string, ...parts: string[]): string {
  return pointer + parts.map((p) => "/" + escapePointerPart(p)).join("");
}

function atPointer(doc: unknown, pointer: string, where: string): unknown {
  if (pointer === "" || pointer === "/") return doc;
  let node: any = doc;
  for (const raw of pointer.replace(/^\//, "").split("/")) {
    const part = unescapePointerPart(decodeURIComponent(raw));
    if (node === null || typeof node !== "object" || !(part in node)) {
      throw new Error(`spec: cannot resolve JSON pointer ${pointer} in ${where}`);
    }
    node = node[part];
  }
  return node;
}

interface Location {
  file: string;
  pointer: string;
}

/** Where a $ref written in `fromFile` points. */
function refTarget(fromFile: string, ref: string): Location {
  const hash = ref.indexOf("#");
  const filePart = hash < 0 ? ref : ref.slice(0, hash);
  const pointer = hash < 0 ? "" : ref.slice(hash + 1);
  const file = filePart ? posix.normalize(posix.join(posix.dirname(fromFile), filePart)) : fromFile;
  return { file, pointer };
}

/** Follows `$ref`s until a non-reference object; returns it with its location. */
function deref(loc: Location): { node: any; loc: Location } {
  let node: any = atPointer(loadSpecFile(loc.file), loc.pointer, loc.file);
  for (let hops = 0; node && typeof node === "object" && typeof node.$ref === "string"; hops++) {
    if (hops > 50) throw new Error(`spec: $ref loop at ${loc.file}#${loc.pointer}`);
    loc = refTarget(loc.file, node.$ref);
    node = atPointer(loadSpecFile(loc.file), loc.pointer, loc.file);
  }
  return { node, loc };
}

/**
 * A deep copy of `value` with every `{ $ref }` object replaced by its (recursively resolved) target; keys
 * next to the `$ref` override the target's, as the spec's own build does for examples.
 */
export function resolveRefsDeep(value: unknown, fromFile: string, depth = 0): unknown {
  if (depth > 64) throw new Error(`spec: $ref nesting too deep in ${fromFile}`);
  if (Array.isArray(value)) return value.map((v) => resolveRefsDeep(v, fromFile, depth + 1));
  if (value && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    if (typeof obj.$ref === "string") {
      const loc = refTarget(fromFile, obj.$ref);
      const target = resolveRefsDeep(atPointer(loadSpecFile(loc.file), loc.pointer, loc.file), loc.file, depth + 1);
      const { $ref: _ref, ...siblings } = obj;
      if (Object.keys(siblings).length === 0) return target;
      const merged: Record<string, unknown> = target && typeof target === "object" && !Array.isArray(target) ? { ...target } : {};
      for (const [k, v] of Object.entries(siblings)) merged[k] = resolveRefsDeep(v, fromFile, depth + 1);
      return merged;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) out[k] = resolveRefsDeep(v, fromFile, depth + 1);
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------------
// Operation lookup

interface Route {
  op: Omit<SpecOperation, "params" | "matchedTemplate">;
  matchedTemplate: string;
  regex: RegExp;
  paramNames: string[];
  /** Per segment: 1 for a literal segment, 0 for one with a parameter. */
  shape: number[];
  alias: boolean;
}

const API_DIRS = { "client-server": "api/client-server", "server-server": "api/server-server" } as const;
const routeCache = new Map<string, Route[]>();

const HTTP_METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/** The other prefixes Portier serves a canonical prefix under. */
function aliasesOf(template: string): string[] {
  for (const [canonical, alias] of [
    ["/_matrix/client/v3/", "/_matrix/client/r0/"],
    ["/_matrix/media/v3/", "/_matrix/media/r0/"],
  ]) {
    if (template.startsWith(canonical)) return [alias + template.slice(canonical.length)];
  }
  return [];
}

function compileTemplate(template: string): { regex: RegExp; paramNames: string[]; shape: number[] } {
  const paramNames: string[] = [];
  const segments = template.split("/");
  const shape: number[] = [];
  const parts = segments.map((segment, i) => {
    const last = i === segments.length - 1;
    shape.push(segment.includes("{") ? 0 : 1);
    return segment
      .split(/(\{[^}]+\})/)
      .map((piece) => {
        const m = /^\{([^}]+)\}$/.exec(piece);
        if (!m) return piece.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
        paramNames.push(m[1]!);
        // A final parameter may be empty (e.g. the empty state key: /state/m.room.create/).
        return last && segment === piece ? "([^/]*)" : "([^/]+)";
      })
      .join("");
  });
  return { regex: new RegExp("^" + parts.join("/") + "$"), paramNames, shape };
}

function routesFor(dirApi: "client-server" | "server-server"): Route[] {
  const cached = routeCache.get(dirApi);
  if (cached) return cached;
  const routes: Route[] = [];
  const dir = API_DIRS[dirApi];
  for (const name of readdirSync(join(SPEC_ROOT, dir)).sort()) {
    if (!name.endsWith(".yaml")) continue;
    const file = `${dir}/${name}`;
    const doc = loadSpecFile(file) as any;
    if (!doc?.paths) continue;
    const basePath: string = doc.servers?.[0]?.variables?.basePath?.default ?? "";
    for (const [pathKey, rawItem] of Object.entries<any>(doc.paths)) {
      const item = rawItem?.$ref ? deref({ file, pointer: joinPointer("/paths", pathKey) }).node : rawItem;
      for (const method of HTTP_METHODS) {
        const operation = item?.[method];
        if (!operation) continue;
        const template = basePath + pathKey;
        const op = {
          api: dirApi,
          method: method.toUpperCase(),
          template,
          basePath,
          pathKey,
          file,
          operationId: operation.operationId,
          summary: operation.summary,
          deprecated: operation.deprecated === true,
          statuses: Object.keys(operation.responses ?? {}),
        };
        for (const [matchedTemplate, alias] of [[template, false], ...aliasesOf(template).map((a) => [a, true])] as [string, boolean][]) {
          routes.push({ op, matchedTemplate, alias, ...compileTemplate(matchedTemplate) });
        }
      }
    }
  }
  routeCache.set(dirApi, routes);
  return routes;
}

function dirApisOf(api: SpecApi | undefined): ("client-server" | "server-server")[] {
  if (api === undefined) return ["client-server", "server-server"];
  if (api === "key-server") return ["server-server"];
  if (api === "client-server" || api === "server-server") return [api];
  throw new Error(`spec: unknown api ${JSON.stringify(api)}`);
}

function candidateRoutes(api: SpecApi | undefined, path: string): { route: Route; match: RegExpExecArray }[] {
  const concrete = path.replace(/[?#].*$/, "");
  const out: { route: Route; match: RegExpExecArray }[] = [];
  for (const dirApi of dirApisOf(api)) {
    for (const route of routesFor(dirApi)) {
      if (api === "key-server" && !route.op.basePath.startsWith("/_matrix/key/")) continue;
      const match = route.regex.exec(concrete);
      if (match) out.push({ route, match });
    }
  }
  return out;
}

/** Is `a` a more specific template than `b`? Literal segments beat parameters, leftmost first. */
function compareSpecificity(a: Route, b: Route): number {
  const litA = a.shape.reduce((s, x) => s + x, 0);
  const litB = b.shape.reduce((s, x) => s + x, 0);
  if (litA !== litB) return litB - litA;
  for (let i = 0; i < Math.min(a.shape.length, b.shape.length); i++) {
    if (a.shape[i] !== b.shape[i]) return b.shape[i]! - a.shape[i]!;
  }
  return Number(a.alias) - Number(b.alias);
}

/**
 * The spec operation that serves `method path`, or undefined when the spec describes no such operation
 * (unknown path, or a known path with another method).
 */
export function specOperation(request: SpecRequest): SpecOperation | undefined {
  const method = request.method.toUpperCase();
  const matches = candidateRoutes(request.api, request.path).filter((c) => c.route.op.method === method);
  if (matches.length === 0) return undefined;
  matches.sort((x, y) => compareSpecificity(x.route, y.route));
  const { route, match } = matches[0]!;
  const params: Record<string, string> = {};
  route.paramNames.forEach((name, i) => {
    const raw = match[i + 1] ?? "";
    try {
      params[name] = decodeURIComponent(raw);
    } catch {
      params[name] = raw;
    }
  });
  return { ...route.op, matchedTemplate: route.matchedTemplate, params };
}

/** Every operation of an API (canonical templates only, no r0 aliases). */
export function listSpecOperations(api: SpecApi): SpecOperation[] {
  const out: SpecOperation[] = [];
  for (const dirApi of dirApisOf(api)) {
    for (const route of routesFor(dirApi)) {
      if (route.alias) continue;
      if (api === "key-server" && !route.op.basePath.startsWith("/_matrix/key/")) continue;
      out.push({ ...route.op, matchedTemplate: route.matchedTemplate, params: {} });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Responses and schemas

interface ResponseInfo {
  /** Location of the (dereferenced) response object. */
  loc: Location;
  response: any;
}

function responseOf(op: SpecOperation, status: number | string): ResponseInfo | undefined {
  const opPointer = joinPointer("/paths", op.pathKey, op.method.toLowerCase());
  const { node: operation, loc: opLoc } = deref({ file: op.file, pointer: opPointer });
  const key = String(status);
  if (!operation?.responses || !(key in operation.responses)) return undefined;
  const { node, loc } = deref({ file: opLoc.file, pointer: joinPointer(opLoc.pointer, "responses", key) });
  return { loc, response: node };
}

/** The spec's examples for one response of an operation, with their $refs resolved. */
export function specResponseExamples(op: SpecOperation, status: number | string, contentType = "application/json"): unknown[] {
  const info = responseOf(op, status);
  const media = info?.response?.content?.[contentType];
  if (!info || !media) return [];
  const mediaLoc = { file: info.loc.file, pointer: joinPointer(info.loc.pointer, "content", contentType) };
  const examples: unknown[] = [];
  if ("example" in media) examples.push(resolveRefsDeep(media.example, mediaLoc.file));
  for (const name of Object.keys(media.examples ?? {})) {
    const { node, loc } = deref({ file: mediaLoc.file, pointer: joinPointer(mediaLoc.pointer, "examples", name) });
    if (node && "value" in node) examples.push(resolveRefsDeep(node.value, loc.file));
  }
  // Without a media-level example, fall back to the schema's own top-level example.
  if (examples.length === 0 && media.schema) {
    const { node, loc } = deref({ file: mediaLoc.file, pointer: joinPointer(mediaLoc.pointer, "schema") });
    if (node && typeof node === "object" && "example" in node) examples.push(resolveRefsDeep(node.example, loc.file));
  }
  return examples;
}

// Keywords whose value is a map from names to schemas (so `example` inside is a property name).
const SCHEMA_MAPS = new Set(["properties", "patternProperties", "$defs", "definitions", "dependentSchemas"]);
// OpenAPI-only annotations that are dropped (they may $ref example files, and validate nothing).
const ANNOTATIONS = new Set(["example", "examples", "discriminator", "xml", "externalDocs"]);
// Keywords whose value is plain data, copied as is.
const DATA_KEYWORDS = new Set(["enum", "const", "default"]);

const MATRIX_FORMATS: Record<string, RegExp | true> = {
  // The sigil checks of the spec's own string-formats.yaml; the rest are annotations only.
  "mx-user-id": /^@/,
  "mx-event-id": /^\$/,
  "mx-room-id": /^!/,
  "mx-room-alias": /^#/,
  "mx-mxc-uri": /^mxc:\/\//,
  "mx-server-name": true,
  "mx-unpadded-base64": /^[A-Za-z0-9+/]*$/,
  "mx-urlsafe-unpadded-base64": /^[A-Za-z0-9_-]*$/,
};

let ajv: Ajv2020 | undefined;

function getAjv(): Ajv2020 {
  if (ajv) return ajv;
  ajv = new Ajv2020({ strict: false, allErrors: true, verbose: true, logger: false });
  addFormats(ajv);
  for (const [name, format] of Object.entries(MATRIX_FORMATS)) ajv.addFormat(name, format);
  return ajv;
}

interface Compiled {
  validate: ValidateFunction;
  /** `$defs` name → the spec location it was copied from, for messages. */
  origins: Map<string, string>;
}

const validatorCache = new Map<string, Compiled>();

/**
 * Bundles the schema at `rootLoc` into one self-contained JSON Schema: every location reached by $ref
 * (other files, JSON pointers, recursion) becomes an entry of the root's `$defs` and the $ref is
 * rewritten to point there. OpenAPI annotations and x-* keys are dropped; formats Ajv does not know
 * (int64, ...) are registered as annotations.
 */
function bundle(rootLoc: Location): { schema: Record<string, unknown>; origins: Map<string, string> } {
  const a = getAjv();
  const names = new Map<string, string>(); // "file#pointer" → $defs name
  const origins = new Map<string, string>();
  const defs: Record<string, unknown> = {};
  const queue: Location[] = [];

  const nameFor = (loc: Location): string => {
    const key = `${loc.file}#${loc.pointer}`;
    let name = names.get(key);
    if (!name) {
      name = `ref${names.size}`;
      names.set(key, name);
      origins.set(name, key);
      queue.push(loc);
    }
    return name;
  };

  const rewrite = (node: unknown, file: string, isMap: boolean): unknown => {
    if (Array.isArray(node)) return node.map((item) => rewrite(item, file, false));
    if (!node || typeof node !== "object") return node;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
      if (isMap) {
        out[k] = rewrite(v, file, false);
      } else if (k === "$ref" && typeof v === "string") {
        out.$ref = `#/$defs/${nameFor(refTarget(file, v))}`;
      } else if (ANNOTATIONS.has(k) || k.startsWith("x-")) {
        continue;
      } else if (DATA_KEYWORDS.has(k)) {
        out[k] = v;
      } else {
        if (k === "format" && typeof v === "string" && !a.formats[v]) a.addFormat(v, true);
        out[k] = rewrite(v, file, SCHEMA_MAPS.has(k));
      }
    }
    return out;
  };

  const root = rewrite(atPointer(loadSpecFile(rootLoc.file), rootLoc.pointer, rootLoc.file), rootLoc.file, false);
  for (let loc = queue.shift(); loc; loc = queue.shift()) {
    defs[names.get(`${loc.file}#${loc.pointer}`)!] = rewrite(atPointer(loadSpecFile(loc.file), loc.pointer, loc.file), loc.file, false);
  }
  const schema = (typeof root === "object" && root ? root : {}) as Record<string, unknown>;
  if (Object.keys(defs).length) schema.$defs = { ...(schema.$defs as object | undefined), ...defs };
  return { schema, origins };
}

function validatorAt(loc: Location): Compiled {
  const key = `${loc.file}#${loc.pointer}`;
  let compiled = validatorCache.get(key);
  if (!compiled) {
    const { schema, origins } = bundle(loc);
    origins.set("", key);
    try {
      compiled = { validate: getAjv().compile(schema), origins };
    } catch (err) {
      throw new Error(`spec: cannot compile the schema at ${key}: ${(err as Error).message}`);
    }
    validatorCache.set(key, compiled);
  }
  return compiled;
}

// ---------------------------------------------------------------------------------------------------
// Checking

function describeInstancePath(pointer: string): string {
  if (!pointer) return "$";
  return (
    "$" +
    pointer
      .slice(1)
      .split("/")
      .map((raw) => {
        const part = unescapePointerPart(raw);
        if (/^\d+$/.test(part)) return `[${part}]`;
        if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) return `.${part}`;
        return `[${JSON.stringify(part)}]`;
      })
      .join("")
  );
}

function short(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? text.slice(0, 77) + "..." : text;
}

/** `#/$defs/ref3/properties/x` → `api/client-server/definitions/foo.yaml#/properties/x`. */
function schemaLocation(schemaPath: string, origins: Map<string, string>): string {
  const m = /^#\/\$defs\/(ref\d+)(.*)$/.exec(schemaPath);
  if (m && origins.has(m[1]!)) return origins.get(m[1]!)! + m[2];
  return origins.get("")! + schemaPath.replace(/^#/, "");
}

function describeError(e: ErrorObject, origins: Map<string, string>): string {
  let message = e.message ?? e.keyword;
  const params = e.params as Record<string, unknown>;
  if (e.keyword === "additionalProperties") message += ` (${short(params.additionalProperty)})`;
  else if (e.keyword === "enum") message += ` ${short(params.allowedValues)}`;
  else if (e.keyword === "const") message += ` ${short(params.allowedValue)}`;
  if (["type", "enum", "const", "format", "pattern", "minimum", "maximum", "minLength", "maxLength"].includes(e.keyword)) {
    message += `, got ${short(e.data)}`;
  }
  const title = (e.parentSchema as any)?.title;
  const where = `${schemaLocation(e.schemaPath, origins)}${title ? ` "${title}"` : ""}`;
  return `${describeInstancePath(e.instancePath)}: ${message}  [schema ${where}]`;
}

/** Human-readable mismatches between a response and the spec; empty when it matches. */
export function specMismatches(check: SpecResponseCheck): string[] {
  const op = specOperation(check);
  const what = `${check.method.toUpperCase()} ${check.path}`;
  if (!op) {
    const others = candidateRoutes(check.api, check.path).map((c) => c.route.op.method);
    return [
      others.length
        ? `${what}: the spec has no ${check.method.toUpperCase()} for this path (only ${[...new Set(others)].join(", ")})`
        : `${what}: no operation in the ${check.api ?? "client-server or server-server"} spec matches this path`,
    ];
  }
  const opName = `${op.file} ${op.method} ${op.template}${op.operationId ? ` (${op.operationId})` : ""}`;
  const info = responseOf(op, check.status);
  if (!info) {
    return [`${what}: status ${check.status} is not documented for ${opName}; documented: ${op.statuses.join(", ")}`];
  }
  const content = info.response?.content;
  if (!content) return []; // The spec documents no body for this status.
  const contentType = check.contentType ?? "application/json";
  if (!(contentType in content)) {
    return [`${what} → ${check.status}: ${opName} documents no ${contentType} body (only ${Object.keys(content).join(", ")})`];
  }
  if (!content[contentType]?.schema) return [];
  const schemaLoc = { file: info.loc.file, pointer: joinPointer(info.loc.pointer, "content", contentType, "schema") };
  const { validate, origins } = validatorAt(schemaLoc);
  if (validate(check.body)) return [];
  const errors = (validate.errors ?? []).map((e) => describeError(e, origins));
  const limit = 25;
  return errors.length > limit ? [...errors.slice(0, limit), `... and ${errors.length - limit} more`] : errors;
}

/** Throws an Error listing every mismatch when `body` is not what the spec says `method path` answers with `status`. */
export function expectMatchesSpec(check: SpecResponseCheck): void {
  const problems = specMismatches(check);
  if (problems.length === 0) return;
  const op = specOperation(check);
  const header = op
    ? `${check.method.toUpperCase()} ${check.path} → ${check.status} does not match the spec (${op.file}, ${op.method} ${op.template}):`
    : "Response does not match the spec:";
  throw new Error(`${header}\n  - ${problems.join("\n  - ")}\nbody: ${short(check.body)}`);
}
