// Loads one frozen Config from defaults, a YAML file, PORTIER_* environment variables and flags
// (later sources win), and validates it with a message that names the bad key.
import { readFileSync } from "node:fs";
import { Value, ValueErrorType } from "@sinclair/typebox/value";
import { ConfigSchema, type Config } from "./schema";
import { parseServerName } from "../protocol/identifiers";
import { parseAddressRange } from "../protocol/ip-ranges";

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Tree = Record<string, unknown>;

const isTree = (v: unknown): v is Tree => typeof v === "object" && v !== null && !Array.isArray(v);

function mergeInto(target: Tree, source: Tree): Tree {
  for (const [key, value] of Object.entries(source)) {
    // An empty YAML key (`well_known:` with every child commented out) means "use the default".
    if (value === null) continue;
    target[key] = isTree(value) && isTree(target[key]) ? mergeInto({ ...(target[key] as Tree) }, value) : value;
  }
  return target;
}

/** PORTIER_SERVER_NAME -> server_name; PORTIER_DATABASE__DRIVER -> database.driver. */
export function configFromEnv(env: Record<string, string | undefined>): Tree {
  const tree: Tree = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith("PORTIER_") || raw === undefined) continue;
    const path = name.slice("PORTIER_".length).toLowerCase().split("__");
    let node = tree;
    for (const part of path.slice(0, -1)) node = (node[part] = isTree(node[part]) ? node[part] : {}) as Tree;
    if (raw.trim() === "") throw new ConfigError(`environment variable ${name} is empty`);
    // String settings take the text as it is (a shared secret "0123" stays "0123"); others are
    // YAML scalars so that numbers, booleans and lists can be given ("8008", "true", "[a, b]").
    let value: unknown = raw;
    if (schemaAt(path)?.type !== "string") {
      try {
        value = Bun.YAML.parse(raw);
      } catch {
        value = raw;
      }
    }
    node[path[path.length - 1]] = value;
  }
  return tree;
}

/** The schema of a config key path, e.g. ["registration", "shared_secret"]. */
function schemaAt(path: string[]): { type?: string } | undefined {
  let node: unknown = ConfigSchema;
  for (const part of path) node = (node as { properties?: Record<string, unknown> } | undefined)?.properties?.[part];
  return node as { type?: string } | undefined;
}

export function parseConfigYaml(text: string, origin: string): Tree {
  let parsed: unknown;
  try {
    parsed = Bun.YAML.parse(text);
  } catch (e) {
    throw new ConfigError(`${origin}: not valid YAML: ${(e as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isTree(parsed)) throw new ConfigError(`${origin}: the top level must be a mapping of keys`);
  return parsed;
}

/** Validates and completes a config tree; throws ConfigError naming the first bad key. */
export function resolveConfig(...sources: Tree[]): Readonly<Config> {
  const merged = sources.reduce<Tree>((acc, s) => mergeInto(acc, s), {});
  // Environment values arrive as strings: convert them to the schema's types before checking.
  const candidate = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, Value.Clone(merged)));
  const errors = [...Value.Errors(ConfigSchema, candidate)];
  if (errors.length > 0) {
    const first = errors[0];
    const key = first.path.replace(/^\//, "").replaceAll("/", ".") || "(top level)";
    if (first.type === ValueErrorType.ObjectAdditionalProperties) throw new ConfigError(`unknown config key '${key}'`);
    throw new ConfigError(`config key '${key}': ${first.message} (got ${JSON.stringify(first.value)})`);
  }
  const config = candidate as Config;
  // The server name is in every ID this server makes and can never change: check its grammar now.
  const name = parseServerName(config.server_name);
  if (!name.ok) throw new ConfigError(`config key 'server_name': ${name.error}`);
  checkDatabase(config.database);
  for (const range of config.media.url_preview_ip_range_whitelist) {
    if (!parseAddressRange(range)) throw new ConfigError(`config key 'media.url_preview_ip_range_whitelist': ${JSON.stringify(range)} is not an address range (CIDR, e.g. 10.0.0.0/8)`);
  }
  return deepFreeze(config);
}

/** The database keys that only make sense together: postgres needs a postgres:// url, SQLite none. */
function checkDatabase(database: Config["database"]): void {
  if (database.driver === "postgres") {
    if (database.url === undefined) throw new ConfigError("config key 'database.url': required when database.driver is postgres");
    let url: URL;
    try {
      url = new URL(database.url);
    } catch {
      throw new ConfigError("config key 'database.url': not a URL (expected postgres://user:password@host:port/database)");
    }
    if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw new ConfigError(`config key 'database.url': expected a postgres:// URL, got ${url.protocol}//`);
    if (url.pathname.length <= 1) throw new ConfigError("config key 'database.url': names no database (postgres://host/DATABASE)");
    if (database.path !== undefined) throw new ConfigError("config key 'database.path': only for SQLite drivers, not postgres");
  } else if (database.url !== undefined) {
    throw new ConfigError(`config key 'database.url': only for the postgres driver (database.driver is ${database.driver})`);
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export interface LoadOptions {
  configFile?: string;
  env?: Record<string, string | undefined>;
  overrides?: Tree;
}

export function loadConfig(options: LoadOptions = {}): Readonly<Config> {
  let fileTree: Tree = {};
  if (options.configFile) {
    let text: string;
    try {
      text = readFileSync(options.configFile, "utf8");
    } catch (e) {
      throw new ConfigError(`cannot read config file ${options.configFile}: ${(e as Error).message}`);
    }
    fileTree = parseConfigYaml(text, options.configFile);
  }
  return resolveConfig(fileTree, configFromEnv(options.env ?? {}), options.overrides ?? {});
}
